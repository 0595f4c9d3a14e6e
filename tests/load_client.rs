//! The load client against a real HTTP server started here on 127.0.0.1 whose timings and
//! misbehaviour are scripted: measured figures must match the script, and every outcome kind
//! must be produced by the server behaviour that defines it.

use pdchaos::load::client::Timeouts;
use pdchaos::load::engine::{LoadConfig, Ramp, Shape};
use pdchaos::load::record::{OutcomeKind, RequestRecord};
use pdchaos::load::{self, scripted};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn run_one(base: &str, model: &str, n: u64, timeouts: Timeouts) -> Vec<RequestRecord> {
    let mut cfg = LoadConfig::new(base, model);
    cfg.max_requests = Some(n);
    cfg.shape = Shape::Closed {
        users: n.min(4) as u32,
        ramp: None,
    };
    cfg.timeouts = timeouts;
    load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap()
}

fn short() -> Timeouts {
    Timeouts {
        first_token: Duration::from_millis(400),
        total: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn measured_ttft_and_decode_rate_match_the_servers_timings() {
    let addr = scripted::serve().await.unwrap();
    let base = format!("http://{addr}/v1");
    // 200 ms to the first token, then 20 more tokens 20 ms apart: decode rate = 21 tokens over
    // ~400 ms after the first token = ~52 tok/s; TPOT = 400/20 = 20 ms.
    let recs = run_one(
        &base,
        "scripted:ttft_ms=200,itl_ms=20,tokens=21",
        8,
        short(),
    )
    .await;
    let s = load::summarize(&recs, None);
    assert_eq!(s.requests.ok, 8, "{:?}", s.outcomes);
    // Tolerance: the client adds its own latency (loopback, scheduling on a shared machine),
    // never less than the scripted delay; 60 ms covers a noisy 2-core host.
    assert!(
        s.ttft_ms.min >= 199.0 && s.ttft_ms.p50 < 260.0,
        "TTFT {:?}",
        s.ttft_ms
    );
    assert!(
        s.tpot_ms.p50 > 18.0 && s.tpot_ms.p50 < 26.0,
        "TPOT {:?}",
        s.tpot_ms
    );
    assert!(
        s.decode_tps.p50 > 40.0 && s.decode_tps.p50 < 56.0,
        "decode {:?}",
        s.decode_tps
    );
    assert!(
        s.itl_ms.p50 > 15.0 && s.itl_ms.p50 < 30.0,
        "ITL {:?}",
        s.itl_ms
    );
    assert_eq!(s.output_tokens.mean, 21.0);
    assert!(!s.output_tokens.estimated);
    // The client's first token is never before the server's own stamp, and close to it.
    for r in &recs {
        let server = r.server.first_token_us.expect("server stamp");
        let client = r.first_token_us().unwrap();
        assert!(
            client >= server && client - server < 50_000,
            "client {client} server {server}"
        );
    }
}

#[tokio::test]
async fn reasoning_then_answer_gives_two_first_token_times() {
    let addr = scripted::serve().await.unwrap();
    let base = format!("http://{addr}/v1");
    let recs = run_one(
        &base,
        "scripted:ttft_ms=50,itl_ms=30,reasoning=5,tokens=3",
        1,
        short(),
    )
    .await;
    let r = &recs[0];
    assert_eq!(r.outcome, OutcomeKind::Ok);
    let gap = r.first_answer_us.unwrap() - r.first_reasoning_us.unwrap();
    assert!(
        (140_000..260_000).contains(&gap),
        "reasoning->answer gap {gap} µs, scripted 150 ms"
    );
    assert_eq!(r.usage.unwrap().reasoning_tokens, Some(5));
}

#[tokio::test]
async fn every_outcome_kind_is_produced_by_its_server_behaviour() {
    let addr = scripted::serve().await.unwrap();
    let base = format!("http://{addr}/v1");
    let cases: &[(&str, OutcomeKind)] = &[
        ("scripted:tokens=3", OutcomeKind::Ok),
        ("scripted:status=503", OutcomeKind::HttpError),
        ("scripted:status=429", OutcomeKind::HttpError),
        ("scripted:stall", OutcomeKind::TimeoutFirstToken),
        ("scripted:tokens=50,itl_ms=200", OutcomeKind::TimeoutTotal),
        ("scripted:tokens=5,cut_after=2", OutcomeKind::StreamCut),
        ("scripted:tokens=5,no_done", OutcomeKind::StreamCut),
        ("scripted:tokens=5,error_after=2", OutcomeKind::InBandError),
        ("scripted:json_error", OutcomeKind::InBandError),
        ("scripted:tokens=0", OutcomeKind::EmptyAnswer),
        (
            "scripted:reasoning=4,tokens=0",
            OutcomeKind::TruncatedReasoning,
        ),
        (
            "scripted:tokens=5,malformed_after=1",
            OutcomeKind::Malformed,
        ),
    ];
    let t = Timeouts {
        first_token: Duration::from_millis(400),
        total: Duration::from_millis(1500),
    };
    for (model, want) in cases {
        let recs = run_one(&base, model, 1, t).await;
        assert_eq!(recs[0].outcome, *want, "{model}: {:?}", recs[0].error);
        if *want == OutcomeKind::HttpError {
            assert!(recs[0].http_status.unwrap() >= 400);
        }
    }
    // Nothing listens on a port we just freed: a connect error, not a crash.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let recs = run_one(&format!("http://{free}/v1"), "m", 1, t).await;
    assert_eq!(recs[0].outcome, OutcomeKind::ConnectError);
}

#[tokio::test]
async fn missing_usage_warns_by_default_and_fails_on_request() {
    let addr = scripted::serve().await.unwrap();
    let base = format!("http://{addr}/v1");
    let recs = run_one(&base, "scripted:tokens=4,no_usage", 1, short()).await;
    assert_eq!(recs[0].outcome, OutcomeKind::Ok);
    assert!(recs[0].missing_usage && recs[0].tokens_estimated);
    assert_eq!(
        recs[0].output_tokens, 4,
        "estimated from content-bearing chunks"
    );
    let mut cfg = LoadConfig::new(base, "scripted:tokens=4,no_usage");
    cfg.max_requests = Some(1);
    cfg.require_usage = true;
    let recs = load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(recs[0].outcome, OutcomeKind::Malformed);
}

#[tokio::test]
async fn ramp_up_spreads_the_start_of_users() {
    let addr = scripted::serve().await.unwrap();
    let mut cfg = LoadConfig::new(format!("http://{addr}/v1"), "scripted:ttft_ms=10,tokens=2");
    cfg.shape = Shape::Closed {
        users: 4,
        ramp: Some(Ramp {
            users: 1,
            every: Duration::from_millis(150),
        }),
    };
    cfg.duration = Some(Duration::from_millis(700));
    let recs = load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    let first_send = |user: u32| {
        recs.iter()
            .filter(|r| r.user == user)
            .map(|r| r.sent_us)
            .min()
            .unwrap()
    };
    // User k joins k ramp steps (150 ms each) after user 0; without a ramp all four would
    // send their first request within a few milliseconds.
    for k in 1..4u32 {
        let lag = first_send(k) - first_send(0);
        assert!(
            lag >= u64::from(k) * 150_000 - 5_000,
            "user {k} joined after {lag} µs"
        );
    }
}

#[tokio::test]
async fn open_loop_counts_latency_from_the_intended_send_time() {
    let addr = scripted::serve().await.unwrap();
    let mut cfg = LoadConfig::new(format!("http://{addr}/v1"), "scripted:ttft_ms=5,tokens=2");
    cfg.shape = Shape::Open {
        rate_per_s: 50.0,
        poisson: false,
    };
    cfg.max_requests = Some(20);
    let recs = load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(recs.len(), 20);
    let mut intended: Vec<u64> = recs.iter().map(|r| r.intended_us).collect();
    intended.sort();
    // 20 requests at 50/s: intended times 20 ms apart, 380 ms from first to last.
    let span = intended[19] - intended[0];
    assert!((370_000..=390_000).contains(&span), "span {span}");
    assert!(recs.iter().all(|r| r.intended_us <= r.sent_us));
}

#[tokio::test]
async fn cancel_stops_sending_and_drains() {
    let addr = scripted::serve().await.unwrap();
    let mut cfg = LoadConfig::new(format!("http://{addr}/v1"), "scripted:ttft_ms=20,tokens=5");
    cfg.shape = Shape::Closed {
        users: 2,
        ramp: None,
    };
    cfg.duration = Some(Duration::from_secs(30));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let started = std::time::Instant::now();
    let recs = load::run(cfg, cancel, |_| {}).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!recs.is_empty());
    assert!(
        recs.iter().all(|r| r.outcome == OutcomeKind::Ok),
        "drained requests complete"
    );
}
