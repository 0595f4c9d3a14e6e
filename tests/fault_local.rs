//! The fault layer against real processes, a real embedded Toxiproxy and real traffic: each
//! fault is verified by its effect, healed, and verified clean; a killed runner's leftovers are
//! healed by `pdchaos heal`; the published Python Toxiproxy client drives the embedded server.

use pdchaos::fault::control::NodeControl;
use pdchaos::fault::model::{
    FaultId, FaultKind, FaultPhase, FaultSpec, FaultTarget, Link, Stream, Toxic,
};
use pdchaos::fault::nemesis::Nemesis;
use pdchaos::load::{self, LoadConfig, Summary};
use pdchaos::pd::Role;
use pdchaos::sim::proc;
use pdchaos::sim::stack::{Stack, StackConfig};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_pdchaos");

async fn stack() -> Stack {
    Stack::start(StackConfig::new(BIN))
        .await
        .expect("stack starts")
}

async fn burst(s: &Stack, n: u64) -> Summary {
    let mut cfg = LoadConfig::new(s.base_url(), "sim");
    cfg.max_requests = Some(n);
    cfg.shape = load::engine::Shape::Closed {
        users: 2,
        ramp: None,
    };
    cfg.timeouts.first_token = Duration::from_secs(8);
    load::summarize(
        &load::run(cfg, CancellationToken::new(), |_| {})
            .await
            .unwrap(),
        None,
    )
}

fn spec(id: &str, kind: FaultKind, target: FaultTarget) -> FaultSpec {
    FaultSpec {
        id: FaultId(id.into()),
        kind,
        target,
        duration: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_is_verified_in_proc_then_resumed_and_traffic_degrades_meanwhile() {
    let s = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let n = Nemesis::new(&dir.path().join("j.jsonl"), Some(Arc::new(s.clone()))).unwrap();
    let decode = s
        .nodes()
        .into_iter()
        .find(|x| x.role == Role::Decode)
        .unwrap();
    n.apply(spec(
        "pause-d",
        FaultKind::Pause,
        FaultTarget::Role { role: Role::Decode },
    ))
    .await
    .unwrap();
    assert!(proc::is_stopped(decode.pid.unwrap()), "SIGSTOP took effect");
    s.wait_mode("prefill-only", Duration::from_secs(5))
        .await
        .expect("router stops using the hung decode");
    let sum = burst(&s, 4).await;
    assert_eq!(
        sum.modes.get("prefill-only"),
        Some(&4),
        "{:?} {:?}",
        sum.modes,
        sum.outcomes
    );
    let report = n.heal(&FaultId("pause-d".into())).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.leftovers);
    assert!(!proc::is_stopped(decode.pid.unwrap()));
    let phases: Vec<FaultPhase> = n.timeline().iter().map(|e| e.phase).collect();
    assert_eq!(
        phases,
        [
            FaultPhase::Planned,
            FaultPhase::Applied,
            FaultPhase::Verified,
            FaultPhase::Healed,
            FaultPhase::HealVerified
        ]
    );
    s.wait_mode("disaggregated", Duration::from_secs(5))
        .await
        .unwrap();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_toxic_on_the_kv_link_adds_measured_latency_and_heals() {
    let s = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let n = Nemesis::new(&dir.path().join("j.jsonl"), Some(Arc::new(s.clone()))).unwrap();
    let before = burst(&s, 6).await;
    let kind = FaultKind::Toxic {
        toxic: Toxic::Latency {
            latency: 120,
            jitter: 0,
        },
        stream: Stream::Downstream,
        toxicity: 1.0,
    };
    n.apply(spec(
        "slow-kv",
        kind,
        FaultTarget::Link {
            link: Link::DecodePrefillKv,
            node: None,
        },
    ))
    .await
    .unwrap();
    let during = burst(&s, 6).await;
    assert_eq!(during.requests.ok, 6, "{:?}", during.outcomes);
    let added = during.ttft_ms.p50 - before.ttft_ms.p50;
    assert!(
        added >= 90.0,
        "KV latency toxic adds ~120 ms to TTFT: before {:?} during {:?}",
        before.ttft_ms,
        during.ttft_ms
    );
    assert!(n.heal_all().await.is_clean());
    let after = burst(&s, 6).await;
    assert!(
        after.ttft_ms.p50 < before.ttft_ms.p50 + 150.0,
        "healed: {:?}",
        after.ttft_ms
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_of_router_to_prefill_and_kill_heal_by_restart() {
    let s = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let n = Nemesis::new(&dir.path().join("j.jsonl"), Some(Arc::new(s.clone()))).unwrap();
    n.apply(spec(
        "cut-rp",
        FaultKind::Partition,
        FaultTarget::Link {
            link: Link::RouterPrefill,
            node: None,
        },
    ))
    .await
    .unwrap();
    s.wait_mode("decode-only", Duration::from_secs(5))
        .await
        .expect("router sees prefill as down");
    assert!(n.heal_all().await.is_clean());
    s.wait_mode("disaggregated", Duration::from_secs(5))
        .await
        .unwrap();
    n.apply(spec(
        "kill-p",
        FaultKind::Kill,
        FaultTarget::Role {
            role: Role::Prefill,
        },
    ))
    .await
    .unwrap();
    assert!(
        s.nodes()
            .iter()
            .any(|x| x.role == Role::Prefill && x.pid.is_none())
    );
    let report = n.heal_all().await;
    assert!(report.is_clean(), "{:?}", report.leftovers);
    assert!(
        s.nodes().iter().all(|x| x.pid.is_some()),
        "killed node restarted by heal"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_with_a_duration_heals_itself() {
    let s = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let n = Nemesis::new(&dir.path().join("j.jsonl"), Some(Arc::new(s.clone()))).unwrap();
    let mut f = spec(
        "brief",
        FaultKind::Partition,
        FaultTarget::Link {
            link: Link::DecodePrefillKv,
            node: None,
        },
    );
    f.duration = Some(Duration::from_millis(400));
    n.apply(f).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        n.timeline()
            .iter()
            .any(|e| e.phase == FaultPhase::HealVerified),
        "{:?}",
        n.timeline()
    );
    s.shutdown().await;
}

/// A Scale fault beyond the start layout: the nemesis scales decode from 1 to 3 (new
/// processes the router takes), verifies 3 run, and heals back to 1 with the extra processes
/// gone; traffic meanwhile spreads over the grown nodes and none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_fault_grows_decode_beyond_the_layout_verifies_and_heals_back() {
    let s = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let n = Nemesis::new(&dir.path().join("j.jsonl"), Some(Arc::new(s.clone()))).unwrap();
    let id = FaultId("scale-d".into());
    n.apply(spec(
        "scale-d",
        FaultKind::Scale { replicas: 3 },
        FaultTarget::Role { role: Role::Decode },
    ))
    .await
    .unwrap();
    let phases: Vec<FaultPhase> = n
        .timeline()
        .into_iter()
        .filter(|e| e.fault == id)
        .map(|e| e.phase)
        .collect();
    assert!(phases.contains(&FaultPhase::Verified), "{phases:?}");
    let decodes: Vec<_> = s
        .nodes()
        .into_iter()
        .filter(|x| x.role == Role::Decode && x.pid.is_some())
        .collect();
    assert_eq!(decodes.len(), 3, "{decodes:?}");
    let sum = burst(&s, 12).await;
    assert_eq!(sum.requests.ok, 12, "{:?}", sum.outcomes);
    for d in &decodes[1..] {
        let st = s.worker_status(&d.name).await.unwrap();
        assert!(
            st["metrics"]["served_disaggregated"].as_u64().unwrap_or(0) >= 2,
            "{} took no share of the traffic: {st}",
            d.name
        );
    }
    let report = n.heal(&id).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.leftovers);
    assert!(
        n.timeline()
            .iter()
            .any(|e| e.fault == id && e.phase == FaultPhase::HealVerified)
    );
    let running: Vec<String> = s
        .nodes()
        .into_iter()
        .filter(|x| x.role == Role::Decode && x.pid.is_some())
        .map(|x| x.name)
        .collect();
    assert_eq!(running, ["decode-0"]);
    for d in &decodes[1..] {
        let pid = d.pid.unwrap();
        assert_eq!(proc::state(pid), None, "{} (pid {pid}) is left", d.name);
    }
    let sum = burst(&s, 4).await;
    assert_eq!(sum.requests.ok, 4, "{:?}", sum.outcomes);
    s.shutdown().await;
}

#[test]
fn killed_runner_leaves_a_journal_that_heal_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = victim.id();
    let mut runner = Command::new(BIN)
        .args([
            "fault",
            "apply",
            "--kind",
            "pause",
            "--pid",
            &format!("victim={pid}"),
            "--duration",
            "60s",
        ])
        .arg("--journal")
        .arg(&journal)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !proc::is_stopped(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(proc::is_stopped(pid), "runner paused the victim");
    runner.kill().unwrap();
    runner.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        proc::is_stopped(pid),
        "the killed runner could not heal: still paused"
    );
    let out = Command::new(BIN)
        .arg("heal")
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!proc::is_stopped(pid), "pdchaos heal resumed the victim");
    let list = Command::new(BIN)
        .args(["fault", "list"])
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("healed"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = victim.id();
    let out = Command::new(BIN)
        .args([
            "fault",
            "apply",
            "--kind",
            "pause",
            "--pid",
            &format!("victim={pid}"),
            "--duration",
            "5s",
            "--dry-run",
        ])
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("would: SIGSTOP -> victim (pid {pid})")),
        "{text}"
    );
    assert!(
        text.contains("heal:") && text.contains("heal after 5s"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!proc::is_stopped(pid), "a dry run must not pause anything");
    assert!(
        pdchaos::fault::journal::read(&journal).unwrap().is_empty(),
        "a dry run journals nothing"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}
