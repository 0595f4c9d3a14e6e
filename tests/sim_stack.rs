//! The local P/D stack as real processes: it serves streams that the load client measures, and
//! its failover rules hold when real faults hit real processes and links.

use pdchaos::fault::control::NodeControl;
use pdchaos::fault::model::Link;
use pdchaos::fault::toxiproxy::ToxiproxyClient;
use pdchaos::load::{self, LoadConfig, Summary};
use pdchaos::pd::Role;
use pdchaos::sim::proc;
use pdchaos::sim::stack::{Stack, StackConfig};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn stack(prefill: usize, decode: usize) -> Stack {
    let mut cfg = StackConfig::new(env!("CARGO_BIN_EXE_pdchaos"));
    cfg.prefill = prefill;
    cfg.decode = decode;
    Stack::start(cfg).await.expect("stack starts")
}

async fn burst(stack: &Stack, n: u64) -> Summary {
    let mut cfg = LoadConfig::new(stack.base_url(), "sim");
    cfg.max_requests = Some(n);
    cfg.shape = load::engine::Shape::Closed {
        users: 4,
        ramp: None,
    };
    let recs = load::run(cfg, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    load::summarize(&recs, None)
}

fn node(stack: &Stack, role: Role) -> String {
    stack
        .nodes()
        .into_iter()
        .find(|n| n.role == role)
        .unwrap()
        .name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_disaggregated_streams_with_server_timings() {
    let s = stack(1, 2).await;
    let sum = burst(&s, 20).await;
    assert_eq!(sum.requests.ok, 20, "{:?}", sum.outcomes);
    assert_eq!(sum.modes.get("disaggregated"), Some(&20));
    assert!(!sum.output_tokens.estimated, "usage is sent");
    assert!(
        sum.ttft_ms.p50 > 10.0,
        "prefill + transfer take time: {:?}",
        sum.ttft_ms
    );
    let pids = s.pids().await;
    s.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for pid in pids {
        assert!(proc::is_dead(pid), "process {pid} survived teardown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_only_prefill_degrades_to_decode_only_and_recovers() {
    let s = stack(1, 1).await;
    let p = node(&s, Role::Prefill);
    s.kill(&p).await.unwrap();
    let sum = burst(&s, 10).await;
    assert_eq!(sum.requests.ok, 10, "{:?}", sum.outcomes);
    assert_eq!(sum.modes.get("decode-only"), Some(&10), "{:?}", sum.modes);
    s.restart(&p).await.unwrap();
    s.wait_mode("disaggregated", Duration::from_secs(5))
        .await
        .unwrap();
    let sum = burst(&s, 6).await;
    assert_eq!(sum.modes.get("disaggregated"), Some(&6), "{:?}", sum.modes);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_only_decode_degrades_to_prefill_only() {
    let s = stack(1, 1).await;
    s.kill(&node(&s, Role::Decode)).await.unwrap();
    let sum = burst(&s, 8).await;
    assert_eq!(sum.requests.ok, 8, "{:?}", sum.outcomes);
    assert_eq!(sum.modes.get("prefill-only"), Some(&8), "{:?}", sum.modes);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_kv_link_degrades_and_healing_it_recovers() {
    let s = stack(1, 1).await;
    let kv = s
        .link_proxies()
        .into_iter()
        .find(|l| l.link == Link::DecodePrefillKv)
        .unwrap();
    let toxi = ToxiproxyClient::new(s.toxiproxy_api().unwrap());
    toxi.disable(&kv.proxy).await.unwrap();
    toxi.verify_enabled(&kv.proxy, false).await.unwrap();
    s.wait_mode("decode-only", Duration::from_secs(5))
        .await
        .expect("router notices the cut link");
    let sum = burst(&s, 8).await;
    assert_eq!(sum.requests.ok, 8, "{:?}", sum.outcomes);
    assert_eq!(sum.modes.get("decode-only"), Some(&8), "{:?}", sum.modes);
    toxi.enable(&kv.proxy).await.unwrap();
    s.wait_mode("disaggregated", Duration::from_secs(5))
        .await
        .expect("recovers");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_prompt_hits_the_prefix_cache() {
    let s = stack(1, 1).await;
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(400);
    let run = |unique: bool| {
        let mut cfg = LoadConfig::new(s.base_url(), "sim");
        cfg.max_requests = Some(6);
        cfg.unique_prefix = unique;
        cfg.prompts = load::prompts::PromptSource::Inline(long.clone());
        async move {
            load::summarize(
                &load::run(cfg, CancellationToken::new(), |_| {})
                    .await
                    .unwrap(),
                None,
            )
        }
    };
    let miss = run(true).await;
    let hit = run(false).await;
    assert!(
        hit.ttft_ms.p50 < miss.ttft_ms.p50,
        "hit {:?} vs miss {:?}",
        hit.ttft_ms,
        miss.ttft_ms
    );
    s.shutdown().await;
}
