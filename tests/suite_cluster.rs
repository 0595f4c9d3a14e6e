//! The suite against a Kubernetes target, wired end to end except for the API server: the
//! cluster's API is the in-memory fake of `kube_fake` (a mock: none can run here), its
//! endpoint is a real local stack, and its mode is read from a Prometheus HTTP API on loopback
//! that reports "degraded" while the fake cluster has no ready prefill pod. The scenario's pod
//! kill must reach the fake cluster, show as decode-only through the polled metric, be healed
//! when its duration ends and show as disaggregated again; a scenario whose layout the cluster
//! does not have must fail with the counts, not pass.

mod kube_fake;

use kube_fake::FakeCluster;
use pdchaos::fault::kube::KubeFaults;
use pdchaos::sim::stack::{Stack, StackConfig};
use pdchaos::suite::world::{Cluster, Layout};
use pdchaos::suite::{self, RunOptions};
use pdchaos::target::{Target, parse_target};
use std::path::Path;
use std::time::Duration;

const FEATURE: &str = r#"Feature: Cluster wiring

  Scenario: A prefill pod is killed under load
    Given a local P/D deployment with 1 prefill and 2 decode nodes
    And a load of 2 concurrent users
    When the prefill node is killed after 500ms for 1s
    And the load runs for 3s
    Then the success rate over the whole run is at least 95%
    And requests are served decode-only within 1s of the fault
    And requests are served disaggregated again within 1s of the heal

  Scenario: The cluster does not have the asked-for layout
    Given a local P/D deployment with 2 prefill and 4 decode nodes
    And a load of 1 concurrent users
    When the load runs for 1s
    Then the success rate over the whole run is at least 95%
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_runs_against_a_kubernetes_target_mock() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(StackConfig::new(env!("CARGO_BIN_EXE_pdchaos")))
        .await
        .unwrap();
    let fake = FakeCluster::default();
    let prom = fake_prometheus(fake.clone()).await;
    let yaml = format!(
        "name: fake\nkubernetes:\n  endpoint: {}\n  model: pdchaos-sim\n  context: staging\n  namespaces: [llm]\n  selectors:\n    prefill: role=prefill\n    decode: role=decode\n  degraded:\n    prometheus: {{url: '{prom}', query: 'prefill_down'}}\n  load: {{shards: 2, image: 'pdchaos:test', start_delay_ms: 1500}}\n",
        stack.base_url()
    );
    let Target::Kubernetes(target) = parse_target(&yaml, Path::new("fake.yaml")).unwrap().target
    else {
        panic!("not a kube target")
    };
    fake.workload("statefulsets", "llm", "prefill", 1, "role=prefill");
    fake.workload("deployments", "llm", "decode", 2, "role=decode");
    fake.run_jobs_with(env!("CARGO_BIN_EXE_pdchaos"));
    // A replacement pod takes 1.2 s to be Ready, as a controller and a readiness probe would,
    // so the prefill side is down from the kill until just after the 1 s fault ends.
    fake.ready_after(Duration::from_millis(1200));
    let before = fake.ready_pods("llm", "prefill");
    let mut kube = KubeFaults::new(fake.client("llm"), target.clone());
    kube.poll = Duration::from_millis(20);
    kube.ready_timeout = Duration::from_secs(10);
    let feature = dir.path().join("cluster.feature");
    std::fs::write(&feature, FEATURE).unwrap();
    let out = dir.path().join("out");
    let result = suite::run(RunOptions {
        features: vec![feature],
        tags: None,
        name: None,
        skip: vec![],
        out_dir: out.clone(),
        binary: env!("CARGO_BIN_EXE_pdchaos").into(),
        force_breaks: vec![],
        junit: None,
        json: None,
        target: "fake cluster".into(),
        default_layout: Layout::default(),
        cluster: Some(Cluster { target, kube }),
    })
    .await;
    stack.shutdown().await;
    let result = result.unwrap();
    let verdicts: Vec<(String, bool)> = result
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), s.passed))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("A prefill pod is killed under load".to_string(), true),
            (
                "The cluster does not have the asked-for layout".to_string(),
                false
            ),
        ]
    );
    let deletes: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|c| c.method == "DELETE" && c.path.contains("/pods/"))
        .collect();
    assert_eq!(deletes.len(), 1, "one pod killed");
    let first = before.iter().map(|p| p.0.clone()).min().unwrap();
    assert!(deletes[0].path.contains(&format!("/pods/{first}")));
    assert_eq!(fake.ready_pods("llm", "prefill").len(), 1, "healed");
    // The load ran as a Job of two shards (real `pdchaos load --shard I/2` processes, the
    // fake's Job controller), and the scenario judged the records read from their logs.
    let jobs: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|c| c.path.contains("/jobs"))
        .map(|c| c.method)
        .collect();
    assert_eq!(jobs, vec!["POST", "DELETE"], "one load Job, deleted");
    assert_eq!(fake.jobs(), 0);
    let dir_a = &result.scenarios[0].dir;
    let text = std::fs::read_to_string(out.join(dir_a).join("records.jsonl")).unwrap();
    let users: std::collections::BTreeSet<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["user"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        users.into_iter().collect::<Vec<_>>(),
        vec![0, 1],
        "both shards' users"
    );
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"heal_verified\""), "{journal}");
    assert!(
        pdchaos::fault::journal::unhealed(
            &pdchaos::fault::journal::read(&out.join("journal.jsonl")).unwrap()
        )
        .is_empty()
    );
}

/// A Prometheus query API on loopback: `prefill_down` is 1 while no prefill pod is ready.
async fn fake_prometheus(fake: FakeCluster) -> String {
    use axum::extract::{Query, State};
    use std::collections::HashMap;
    async fn query(
        State(fake): State<FakeCluster>,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::Json<serde_json::Value> {
        assert_eq!(q.get("query").map(String::as_str), Some("prefill_down"));
        let down = if fake.ready_pods("llm", "prefill").is_empty() {
            "1"
        } else {
            "0"
        };
        axum::Json(
            serde_json::json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [0, down]}]}}),
        )
    }
    let app = axum::Router::new()
        .route("/api/v1/query", axum::routing::get(query))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
