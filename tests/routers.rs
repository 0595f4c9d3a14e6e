//! Real routers in front of our workers: SGLang's model gateway (`sglang-router`) and
//! `vllm-router`, each in PD mode, started by the local stack (`--router sglang|vllm`).
//!
//! Each router must carry a streaming load end to end (every request `ok`, a non-empty answer,
//! KV moved from the prefill node to the decode node). Then the only prefill node is killed and
//! restarted under load, and what the router did is asserted as observed (docs/routers.md): a
//! change in a router's behaviour fails the test and says what changed.
//!
//! A router that is not installed is reported on stderr and the test returns early, unless
//! `PDCHAOS_REQUIRE_ROUTERS=1` (CI sets it), which turns the missing router into a failure.
//! With two prefill nodes, one is killed: SGLang's gateway retries on the other, vLLM's router
//! answers 500 for each request sent to the dead node until its health checks drop it
//! (docs/findings.md).

use pdchaos::clock;
use pdchaos::fault::control::NodeControl;
use pdchaos::load::record::{OutcomeKind, RequestRecord};
use pdchaos::load::{self, LoadConfig};
use pdchaos::pd::PdMode;
use pdchaos::sim::proc;
use pdchaos::sim::stack::{RouterKind, Stack, StackConfig, find_router};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Starts a 1P/1D stack behind `kind`, or says why it cannot (see the module docs).
async fn stack(kind: RouterKind) -> Option<Stack> {
    stack_of(kind, 1).await
}

async fn stack_of(kind: RouterKind, prefill: usize) -> Option<Stack> {
    if let Err(e) = find_router(kind) {
        let msg = format!("router `{}` is not installed: {e}", kind.as_str());
        if std::env::var("PDCHAOS_REQUIRE_ROUTERS").as_deref() == Ok("1") {
            panic!("{msg} (PDCHAOS_REQUIRE_ROUTERS=1)");
        }
        eprintln!("SKIPPED (not passed): {msg}");
        return None;
    }
    let mut cfg = StackConfig::new(env!("CARGO_BIN_EXE_pdchaos"));
    cfg.router = kind;
    cfg.prefill = prefill;
    Some(Stack::start(cfg).await.expect("stack starts"))
}

fn counter(status: &serde_json::Value, name: &str) -> u64 {
    status["metrics"][name].as_u64().unwrap_or(0)
}

async fn serves_streams_through(kind: RouterKind) {
    let Some(s) = stack(kind).await else { return };
    let before_p = s.worker_status("prefill-0").await.unwrap();
    let before_d = s.worker_status("decode-0").await.unwrap();
    let mut cfg = LoadConfig::new(s.base_url(), "sim");
    cfg.max_requests = Some(30);
    cfg.shape = load::engine::Shape::Closed {
        users: 4,
        ramp: None,
    };
    let recs = load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(recs.len(), 30);
    for r in &recs {
        assert_eq!(
            r.outcome,
            OutcomeKind::Ok,
            "{}: request {} ended {:?}: {:?}",
            kind.as_str(),
            r.id,
            r.outcome,
            r.error
        );
        assert!(r.answer_chars > 0, "request {} has an empty answer", r.id);
        // The decode worker's usage chunk passes through the router unchanged.
        assert_eq!(r.server.mode, Some(PdMode::Disaggregated));
        assert_eq!(r.server.prefill.as_deref(), Some("prefill-0"));
        assert_eq!(r.server.decode.as_deref(), Some("decode-0"));
    }
    let p = s.worker_status("prefill-0").await.unwrap();
    let d = s.worker_status("decode-0").await.unwrap();
    let grew =
        |a: &serde_json::Value, b: &serde_json::Value, n: &str| counter(a, n) - counter(b, n);
    assert!(
        grew(&p, &before_p, "kv_transfers") >= 30,
        "prefill-0 handed over KV {} times for 30 requests: {p}",
        grew(&p, &before_p, "kv_transfers")
    );
    assert!(
        grew(&d, &before_d, "served_disaggregated") >= 30,
        "decode-0 served {} of 30 requests: {d}",
        grew(&d, &before_d, "served_disaggregated")
    );
    assert_eq!(counter(&d, "kv_transfer_failures"), 0);
    let pids = s.pids().await;
    s.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for pid in pids {
        assert!(proc::is_dead(pid), "process {pid} survived teardown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sglang_router_serves_streams_from_our_workers() {
    serves_streams_through(RouterKind::Sglang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_router_serves_streams_from_our_workers() {
    serves_streams_through(RouterKind::Vllm).await;
}

/// What a router did when its only prefill node died and came back.
#[derive(Debug)]
struct PrefillDeath {
    /// Requests sent from 3 s after the kill until the restart, and how many were `ok`.
    sent_while_dead: usize,
    ok_while_dead: usize,
    /// Seconds from the kill to the last request the router still sent to the dead node (a
    /// failure that is not the router's own "no available worker" refusal).
    stopped_routing_s: Option<f64>,
    /// The longest a failed request took (a hang would show here).
    slowest_failure_s: f64,
    /// Every failure while dead was an HTTP error whose body contains `refusal`.
    refusals: usize,
    other_failures: Vec<String>,
    /// Seconds from the restarted node's first good health answer to the first `ok` request.
    recovered_s: Option<f64>,
}

async fn kill_the_only_prefill(kind: RouterKind, refusal: &str) -> Option<PrefillDeath> {
    let s = stack(kind).await?;
    let mut cfg = LoadConfig::new(s.base_url(), "sim");
    // An open loop: a router that fails fast must not turn the test into a request flood.
    cfg.shape = load::engine::Shape::Open {
        rate_per_s: 20.0,
        poisson: false,
    };
    cfg.duration = Some(Duration::from_secs(20));
    cfg.timeouts.first_token = Duration::from_secs(15);
    cfg.timeouts.total = Duration::from_secs(20);
    let run = tokio::spawn(load::run(cfg, CancellationToken::new(), |_| {}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = clock::now_us();
    s.kill("prefill-0").await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    s.restart("prefill-0").await.unwrap();
    let back = clock::now_us();
    let recs: Vec<RequestRecord> = run.await.unwrap().unwrap();
    s.shutdown().await;

    let secs = |us: u64, from: u64| us.saturating_sub(from) as f64 / 1e6;
    let dead: Vec<&RequestRecord> = recs
        .iter()
        .filter(|r| r.sent_us >= killed + 3_000_000 && r.end_us < back)
        .collect();
    let failed: Vec<&RequestRecord> = recs
        .iter()
        .filter(|r| r.sent_us >= killed && r.sent_us < back && !r.outcome.is_ok())
        .collect();
    let is_refusal = |r: &RequestRecord| r.error.as_deref().is_some_and(|e| e.contains(refusal));
    let obs = PrefillDeath {
        sent_while_dead: dead.len(),
        ok_while_dead: dead.iter().filter(|r| r.outcome.is_ok()).count(),
        stopped_routing_s: failed
            .iter()
            .filter(|r| !is_refusal(r))
            .map(|r| secs(r.sent_us, killed))
            .reduce(f64::max),
        slowest_failure_s: failed
            .iter()
            .map(|r| secs(r.end_us, r.sent_us))
            .fold(0.0, f64::max),
        refusals: dead.iter().filter(|r| is_refusal(r)).count(),
        other_failures: {
            let mut v: Vec<String> = failed
                .iter()
                .filter(|r| !is_refusal(r))
                .map(|r| {
                    let e = r.error.clone().unwrap_or_default();
                    format!(
                        "{}: {}",
                        r.outcome.as_str(),
                        e.chars().take(160).collect::<String>()
                    )
                })
                .collect();
            v.sort();
            v.dedup();
            v
        },
        recovered_s: recs
            .iter()
            .filter(|r| r.sent_us >= back && r.outcome.is_ok())
            .map(|r| secs(r.sent_us, back))
            .reduce(f64::min),
    };
    eprintln!("{} router, only prefill killed: {obs:#?}", kind.as_str());
    Some(obs)
}

/// Asserts what both routers were observed to do (docs/routers.md, "Prefill death").
fn assert_prefill_death(kind: RouterKind, o: &PrefillDeath) {
    let name = kind.as_str();
    assert!(o.sent_while_dead >= 40, "{name}: too little load: {o:?}");
    // KNOWN FAILURE of both routers: no degraded serving. With the only prefill node dead the
    // decode node could serve alone, but neither router falls back to it; every request fails.
    assert_eq!(
        o.ok_while_dead, 0,
        "{name}: the router now serves without a prefill node (decode-only fallback?): update \
         docs/routers.md and the known failure: {o:?}"
    );
    assert_eq!(
        o.refusals, o.sent_while_dead,
        "{name}: while the prefill node was dead not every request got the router's refusal: {o:?}"
    );
    // Before the refusals, the failures are HTTP errors (none a cut stream or a silent short
    // answer).
    assert!(
        o.other_failures.iter().all(|e| e.starts_with("http_error")),
        "{name}: failures other than HTTP errors: {o:?}"
    );
    // It fails fast (no request hangs until a timeout) and stops sending to the dead node within
    // its health-check window (interval 1 s x 2 failures).
    assert!(
        o.slowest_failure_s < 2.0,
        "{name}: a failed request hung: {o:?}"
    );
    let stopped = o.stopped_routing_s.unwrap_or(0.0);
    assert!(
        stopped < 3.0,
        "{name}: kept routing to the dead node for {stopped:.1} s: {o:?}"
    );
    let back = o
        .recovered_s
        .expect("the router never served again after the restart");
    assert!(back < 8.0, "{name}: took {back:.1} s to serve again: {o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sglang_router_fails_every_request_while_the_only_prefill_is_dead_and_recovers() {
    let refusal = "No available prefill workers";
    if let Some(o) = kill_the_only_prefill(RouterKind::Sglang, refusal).await {
        assert_prefill_death(RouterKind::Sglang, &o);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_router_fails_every_request_while_the_only_prefill_is_dead_and_recovers() {
    let refusal = "No available workers: 0 prefill";
    if let Some(o) = kill_the_only_prefill(RouterKind::Vllm, refusal).await {
        assert_prefill_death(RouterKind::Vllm, &o);
    }
}

/// Kills `prefill-0` of two under an open-loop load; returns the failures after the kill as
/// (seconds after the kill it was sent, outcome, error), and how many requests were sent after.
async fn kill_one_of_two_prefills(kind: RouterKind) -> Option<(Vec<(f64, String)>, usize)> {
    let s = stack_of(kind, 2).await?;
    let mut cfg = LoadConfig::new(s.base_url(), "sim");
    cfg.shape = load::engine::Shape::Open {
        rate_per_s: 20.0,
        poisson: false,
    };
    cfg.duration = Some(Duration::from_secs(10));
    let run = tokio::spawn(load::run(cfg, CancellationToken::new(), |_| {}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = clock::now_us();
    s.kill("prefill-0").await.unwrap();
    let recs: Vec<RequestRecord> = run.await.unwrap().unwrap();
    s.shutdown().await;
    let after: Vec<&RequestRecord> = recs.iter().filter(|r| r.end_us >= killed).collect();
    let failures = after
        .iter()
        .filter(|r| !r.outcome.is_ok())
        .map(|r| {
            let e = r.error.clone().unwrap_or_default();
            (
                r.sent_us.saturating_sub(killed) as f64 / 1e6,
                format!(
                    "{}: {}",
                    r.outcome.as_str(),
                    e.chars().take(120).collect::<String>()
                ),
            )
        })
        .collect::<Vec<_>>();
    eprintln!(
        "{} router, one of two prefill nodes killed: {} requests after, failures: {failures:#?}",
        kind.as_str(),
        after.len()
    );
    Some((failures, after.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sglang_router_retries_on_the_other_prefill_when_one_of_two_dies() {
    let Some((failures, sent)) = kill_one_of_two_prefills(RouterKind::Sglang).await else {
        return;
    };
    assert!(sent >= 100, "too little load: {sent}");
    // Observed: at most a request or two sent in the instant of the kill fails, with our decode
    // worker's 502 (its KV fetch from the dead node was reset) passed through, not retried.
    // Every later request is retried on, or routed to, the live prefill node.
    assert!(
        failures.len() <= 3,
        "sglang: {} requests failed although a second prefill node was up: {failures:?}",
        failures.len()
    );
    for (at, what) in &failures {
        assert!(
            *at < 0.5 && what.contains("HTTP 502") && what.contains("kv transfer failed"),
            "sglang: a failure other than a KV fetch cut by the kill itself: {what} at {at:.2} s"
        );
    }
}

/// KNOWN FAILURE (vllm-router 0.1.17, docs/findings.md): a request paired with the dead
/// prefill node gets `500 Transparent proxy request failed` at once, no retry on the healthy
/// one, until two failed health checks (~2 s at 1 s) drop the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_router_answers_500_for_the_dead_prefill_until_health_checks_drop_it() {
    let Some((failures, sent)) = kill_one_of_two_prefills(RouterKind::Vllm).await else {
        return;
    };
    assert!(sent >= 100, "too little load: {sent}");
    assert!(
        !failures.is_empty(),
        "vllm: no request failed: the router now retries the prefill step on the healthy node; \
         update docs/findings.md and this known failure"
    );
    for (at, what) in &failures {
        assert!(
            what.starts_with("http_error: HTTP 500: Transparent proxy request failed"),
            "vllm: a different failure: {what}"
        );
        assert!(
            *at < 3.5,
            "vllm: still routing to the dead prefill {at:.1} s after the kill: {failures:?}"
        );
    }
}

/// `sim up --router` refuses what it cannot start with one line naming the flag, exit 2, and
/// starts nothing (no router needs to be installed for this).
#[test]
fn sim_up_refuses_a_missing_router_or_a_layout_it_cannot_front() {
    let bin = env!("CARGO_BIN_EXE_pdchaos");
    let cases: [(&[&str], &str); 3] = [
        (
            &["sim", "up", "--router", "vllm"],
            "--router vllm: $PDCHAOS_VLLM_ROUTER=/nonexistent/vllm-router: not an executable file",
        ),
        (
            &["sim", "up", "--router", "sglang", "--groups", "2"],
            "--router sglang: a real router fronts one pool of workers; use --groups 1",
        ),
        (
            &[
                "sim",
                "up",
                "--router",
                "sglang",
                "--break",
                "ignore-kv-cut",
            ],
            "--router sglang: the router --break variants belong to the builtin router",
        ),
    ];
    for (args, expected) in cases {
        let out = std::process::Command::new(bin)
            .args(args)
            .env("PDCHAOS_VLLM_ROUTER", "/nonexistent/vllm-router")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors, [format!("error: {expected}")], "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Pauses (SIGSTOP) the only prefill node for 8 s under an open-loop load of 10 requests/s
/// (24 s in all);
/// returns the records and the pause and resume times.
async fn pause_the_only_prefill(kind: RouterKind) -> Option<(Vec<RequestRecord>, u64, u64)> {
    let s = stack(kind).await?;
    let mut cfg = LoadConfig::new(s.base_url(), "sim");
    cfg.shape = load::engine::Shape::Open {
        rate_per_s: 10.0,
        poisson: false,
    };
    cfg.duration = Some(Duration::from_secs(24));
    cfg.timeouts.first_token = Duration::from_secs(30);
    cfg.timeouts.total = Duration::from_secs(30);
    let run = tokio::spawn(load::run(cfg, CancellationToken::new(), |_| {}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let paused = clock::now_us();
    s.pause("prefill-0").await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    s.resume("prefill-0").await.unwrap();
    let resumed = clock::now_us();
    let recs: Vec<RequestRecord> = run.await.unwrap().unwrap();
    s.shutdown().await;
    Some((recs, paused, resumed))
}

/// KNOWN FAILURE of both routers (docs/findings.md 3): requests already sent to a prefill node
/// that hangs are not released when the health checks mark it down; they wait for it to wake.
/// Requests sent after that are refused at once. `hung_outcome` is how the held requests end.
async fn assert_pause(kind: RouterKind, hung_outcome: OutcomeKind, refusal: &str, back_s: f64) {
    let Some((recs, paused, resumed)) = pause_the_only_prefill(kind).await else {
        return;
    };
    let name = kind.as_str();
    let s = |us: u64| us as f64 / 1e6;
    let early: Vec<&RequestRecord> = recs
        .iter()
        .filter(|r| r.sent_us >= paused && r.sent_us < paused + 1_000_000)
        .collect();
    assert!(early.len() >= 8, "{name}: too little load: {}", early.len());
    for r in &early {
        let held_until = s(r.end_us) - s(resumed);
        eprintln!(
            "{name}: sent {:+.2} s after the pause, ended {held_until:+.2} s after the resume: {} {:?}",
            s(r.sent_us) - s(paused),
            r.outcome.as_str(),
            r.error
                .as_deref()
                .map(|e| e.chars().take(100).collect::<String>())
        );
        assert!(
            held_until > -0.5,
            "{name}: a request sent to the paused prefill ended {:.1} s before it resumed: the \
             router now releases them; update docs/findings.md 3: {:?}",
            -held_until,
            r.error
        );
        assert_eq!(r.outcome, hung_outcome, "{name}: {:?}", r.error);
    }
    let late: Vec<&RequestRecord> = recs
        .iter()
        .filter(|r| r.sent_us >= paused + 4_000_000 && r.sent_us < resumed)
        .collect();
    assert!(late.len() >= 30, "{name}: too little load: {}", late.len());
    // Refused at once; except that a circuit breaker going half-open (SGLang, after 5 s) lets a
    // trial request through to the paused node, and that one is held until the resume too.
    let refused = late
        .iter()
        .filter(|r| {
            r.error.as_deref().is_some_and(|e| e.contains(refusal)) && r.e2e_us() < 1_000_000
        })
        .count();
    for r in &late {
        let refused_now =
            r.error.as_deref().is_some_and(|e| e.contains(refusal)) && r.e2e_us() < 1_000_000;
        assert!(
            refused_now || r.end_us + 500_000 >= resumed,
            "{name}: once the node is marked down a request is refused at once or held; this \
             one: {} in {} ms: {:?}",
            r.outcome.as_str(),
            r.e2e_us() / 1000,
            r.error
        );
    }
    assert!(
        refused * 10 >= late.len() * 8,
        "{name}: only {refused} of {} requests sent while the node was marked down were refused",
        late.len()
    );
    let back = recs
        .iter()
        .filter(|r| r.sent_us >= resumed && r.outcome.is_ok())
        .map(|r| s(r.sent_us) - s(resumed))
        .reduce(f64::min)
        .expect("never served again after the resume");
    eprintln!("{name}: first ok request sent {back:.2} s after the resume");
    assert!(
        back < back_s,
        "{name}: {back:.1} s to serve again after the resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sglang_router_holds_requests_sent_to_a_paused_prefill_then_refuses_them() {
    // The held requests end 503 once the node wakes, and those failures keep the circuit
    // breaker open (5 s): recovery takes seconds although the health checks pass at once.
    assert_pause(
        RouterKind::Sglang,
        OutcomeKind::HttpError,
        "No available prefill workers",
        10.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_router_holds_requests_sent_to_a_paused_prefill_then_serves_them() {
    assert_pause(
        RouterKind::Vllm,
        OutcomeKind::Ok,
        "No available workers: 0 prefill",
        1.5,
    )
    .await;
}

/// Scaling beyond the start layout behind SGLang's gateway: the stack registers the new nodes
/// through the gateway's `POST /workers` (a prefill node with its `bootstrap_port`), returns
/// once the gateway lists them healthy, and the new nodes take traffic; scaling back removes
/// them from the gateway and stops them, and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sglang_router_takes_nodes_grown_beyond_the_layout() {
    let Some(s) = stack(RouterKind::Sglang).await else {
        return;
    };
    s.scale(pdchaos::pd::Role::Decode, 2)
        .await
        .expect("decode grows");
    s.scale(pdchaos::pd::Role::Prefill, 2)
        .await
        .expect("prefill grows");
    let mut cfg = LoadConfig::new(s.base_url(), "sim");
    cfg.max_requests = Some(16);
    cfg.shape = load::engine::Shape::Closed {
        users: 4,
        ramp: None,
    };
    let recs = load::run(cfg.clone(), CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert!(recs.iter().all(|r| r.outcome == OutcomeKind::Ok));
    for n in ["prefill-1", "decode-1"] {
        let served = recs
            .iter()
            .filter(|r| [&r.server.prefill, &r.server.decode].contains(&&Some(n.to_string())))
            .count();
        assert!(served >= 4, "{n} served {served} of 16 behind the gateway");
    }
    let grown: Vec<u32> = s
        .nodes()
        .into_iter()
        .filter(|n| n.name.ends_with("-1"))
        .filter_map(|n| n.pid)
        .collect();
    assert_eq!(grown.len(), 2);
    s.scale(pdchaos::pd::Role::Decode, 1).await.unwrap();
    s.scale(pdchaos::pd::Role::Prefill, 1).await.unwrap();
    for pid in grown {
        assert_eq!(proc::state(pid), None, "pid {pid} is left");
    }
    let recs = load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert!(
        recs.iter().all(|r| r.outcome == OutcomeKind::Ok
            && r.server.decode.as_deref() == Some("decode-0")),
        "after scaling back the gateway routes to the start layout only"
    );
    s.shutdown().await;
}

/// vllm-router 0.1.17 refuses new workers over HTTP in PD mode (observed: `/add_worker` and
/// `POST /workers` answer 400): scaling beyond the layout says so and starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_router_growth_is_refused_with_a_clear_error() {
    let Some(s) = stack(RouterKind::Vllm).await else {
        return;
    };
    let before = s.nodes();
    let e = s
        .scale(pdchaos::pd::Role::Decode, 2)
        .await
        .expect_err("vllm-router cannot take a new worker");
    assert!(e.0.contains("vllm-router") && !e.0.contains('\n'), "{e}");
    assert_eq!(s.nodes(), before, "nothing was started");
    s.shutdown().await;
}
