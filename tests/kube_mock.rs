//! The Kubernetes fault backend against an in-memory fake cluster (a tower-test mock service:
//! no API server can run on these machines, hence "mock" in every test name). Each test checks
//! the exact calls made, that the fault was read back before being reported applied, that
//! healing restored the cluster, and that every call is one the shipped RBAC Role allows.

mod kube_fake;

use kube_fake::FakeCluster;
use pdchaos::fault::kube::{KubeFaults, check_context};
use pdchaos::fault::model::{FaultId, FaultKind, FaultSpec, FaultTarget, Link};
use pdchaos::fault::nemesis::{FaultError, Healers, Nemesis, heal_journal};
use pdchaos::pd::Role;
use pdchaos::target::{Target, parse_target};
use std::path::Path;
use std::time::Duration;

const TARGET: &str = r#"
name: fake
kubernetes:
  endpoint: http://gateway.staging:8000/v1
  model: m
  context: staging
  namespaces: [llm]
  selectors:
    prefill: app=llm,role=prefill
    decode: app=llm,role=decode
    router: app=llm,role=router
  workloads:
    prefill: {kind: StatefulSet, name: prefill}
    decode: {kind: Deployment, name: decode}
  degraded:
    header: {name: x-pd-mode}
"#;

/// [`TARGET`] with the prefill role behind the fake's LeaderWorkerSet.
fn lws_target() -> String {
    TARGET.replace(
        "prefill: {kind: StatefulSet, name: prefill}",
        "prefill: {kind: LeaderWorkerSet, name: prefill-lws}",
    )
}

fn target(text: &str) -> pdchaos::target::KubeTarget {
    match parse_target(text, Path::new("fake.yaml")).unwrap().target {
        Target::Kubernetes(k) => k,
        other => panic!("not a kube target: {other:?}"),
    }
}

/// A fake cluster with 2 prefill (StatefulSet), 3 decode (Deployment), 1 router, and a
/// LeaderWorkerSet; plus a nemesis over it journalling into `dir`.
fn setup(dir: &Path, text: &str) -> (FakeCluster, KubeFaults, Nemesis) {
    let fake = FakeCluster::default();
    fake.workload("statefulsets", "llm", "prefill", 2, "app=llm,role=prefill");
    fake.workload("deployments", "llm", "decode", 3, "app=llm,role=decode");
    fake.workload("deployments", "llm", "router", 1, "app=llm,role=router");
    fake.workload(
        "leaderworkersets",
        "llm",
        "prefill-lws",
        1,
        "app=llm,role=lws",
    );
    let mut kube = KubeFaults::new(fake.client("llm"), target(text));
    kube.poll = Duration::from_millis(5);
    kube.ready_timeout = Duration::from_secs(5);
    let nemesis = Nemesis::new(&dir.join("journal.jsonl"), None)
        .unwrap()
        .with_kube(kube.clone());
    (fake, kube, nemesis)
}

fn spec(id: &str, kind: FaultKind, target: FaultTarget) -> FaultSpec {
    FaultSpec {
        id: FaultId(id.into()),
        kind,
        target,
        duration: None,
    }
}

/// Every recorded call maps to an RBAC rule the shipped Role grants.
fn assert_rbac(fake: &FakeCluster) {
    for c in fake.calls() {
        let (g, r, v) = pdchaos::target::rbac::classify(&c.method, &c.path)
            .unwrap_or_else(|| panic!("unclassifiable call {} {}", c.method, c.path));
        assert!(
            pdchaos::target::rbac::permitted(&g, &r, &v),
            "{} {} needs ({g:?}, {r}, {v}), which the Role does not grant",
            c.method,
            c.path
        );
    }
}

fn write_lines(fake: &FakeCluster) -> Vec<String> {
    fake.writes()
        .iter()
        .map(|c| format!("{} {}", c.method, c.path.split('?').next().unwrap()))
        .collect()
}

#[tokio::test]
async fn kill_deletes_the_first_ready_pod_with_grace_0_and_heals_when_replaced_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), TARGET);
    let before = fake.ready_pods("llm", "decode");
    let first = before.iter().map(|p| p.0.clone()).min().unwrap();
    let kill = spec(
        "k1",
        FaultKind::Kill,
        FaultTarget::Role { role: Role::Decode },
    );
    nemesis.apply(kill).await.unwrap();
    assert_eq!(
        write_lines(&fake),
        vec![format!("DELETE /api/v1/namespaces/llm/pods/{first}")]
    );
    let delete = fake.writes().remove(0);
    assert_eq!(delete.body["gracePeriodSeconds"], 0, "{:?}", delete.body);
    let list = &fake.calls()[0];
    assert!(
        list.path
            .contains("labelSelector=app%3Dllm%2Crole%3Ddecode"),
        "{}",
        list.path
    );
    assert!(
        !fake
            .ready_pods("llm", "decode")
            .iter()
            .any(|p| p.0 == first)
    );

    let report = nemesis.heal(&FaultId("k1".into())).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.leftovers);
    let after = fake.ready_pods("llm", "decode");
    assert_eq!(after.len(), 3, "the Deployment's replacement is ready");
    assert!(!after.iter().any(|p| p.0 == first));
    let phases: Vec<_> = nemesis.timeline().iter().map(|e| e.phase).collect();
    use pdchaos::fault::model::FaultPhase::*;
    assert_eq!(
        phases,
        vec![Planned, Applied, Verified, Healed, HealVerified]
    );
    assert_rbac(&fake);
}

#[tokio::test]
async fn stop_with_grace_and_kill_of_a_statefulset_pod_tell_replacements_by_uid_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), TARGET);
    let old = fake.ready_pods("llm", "prefill");
    let stop = spec(
        "s1",
        FaultKind::Stop {
            grace: Duration::from_secs(7),
        },
        FaultTarget::Node {
            name: "prefill-1".into(),
        },
    );
    nemesis.apply(stop).await.unwrap();
    let w = fake.writes();
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].path.split('?').next(),
        Some("/api/v1/namespaces/llm/pods/prefill-1")
    );
    assert_eq!(w[0].body["gracePeriodSeconds"], 7);
    let r = nemesis.heal(&FaultId("s1".into())).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.leftovers);
    let new = fake.ready_pods("llm", "prefill");
    let uid = |pods: &[(String, String)]| {
        pods.iter()
            .find(|p| p.0 == "prefill-1")
            .map(|p| p.1.clone())
    };
    assert!(uid(&new).is_some(), "the StatefulSet recreated prefill-1");
    assert_ne!(uid(&new), uid(&old), "same name, new pod");
    assert_rbac(&fake);
}

#[tokio::test]
async fn evict_uses_the_eviction_api_on_every_pod_of_the_role_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), TARGET);
    let ev = spec(
        "e1",
        FaultKind::Evict,
        FaultTarget::AllOf {
            role: Role::Prefill,
        },
    );
    nemesis.apply(ev).await.unwrap();
    assert_eq!(
        write_lines(&fake),
        vec![
            "POST /api/v1/namespaces/llm/pods/prefill-0/eviction",
            "POST /api/v1/namespaces/llm/pods/prefill-1/eviction"
        ]
    );
    assert!(nemesis.heal_all().await.is_clean());
    assert_eq!(fake.ready_pods("llm", "prefill").len(), 2);
    assert_rbac(&fake);
}

#[tokio::test]
async fn scale_deployment_and_statefulset_then_back_waiting_for_ready_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), TARGET);
    let down = spec(
        "d1",
        FaultKind::Scale { replicas: 1 },
        FaultTarget::Role { role: Role::Decode },
    );
    nemesis.apply(down).await.unwrap();
    assert_eq!(fake.replicas("llm", "decode"), 1);
    assert_eq!(
        fake.ready_pods("llm", "decode").len(),
        1,
        "apply waits until the workload reports the new count ready"
    );
    let up = spec(
        "p1",
        FaultKind::Scale { replicas: 4 },
        FaultTarget::Role {
            role: Role::Prefill,
        },
    );
    nemesis.apply(up).await.unwrap();
    assert_eq!(fake.ready_pods("llm", "prefill").len(), 4);
    assert_eq!(
        write_lines(&fake),
        vec![
            "PATCH /apis/apps/v1/namespaces/llm/deployments/decode/scale",
            "PATCH /apis/apps/v1/namespaces/llm/statefulsets/prefill/scale"
        ]
    );
    assert_eq!(fake.writes()[0].body["spec"]["replicas"], 1);
    let r = nemesis.heal_all().await;
    assert!(r.is_clean(), "{:?}", r.leftovers);
    assert_eq!(fake.replicas("llm", "decode"), 3);
    assert_eq!(fake.ready_pods("llm", "decode").len(), 3);
    assert_eq!(fake.ready_pods("llm", "prefill").len(), 2);
    assert_rbac(&fake);
}

#[tokio::test]
async fn scale_a_leaderworkerset_through_the_dynamic_api_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), &lws_target());
    let up = spec(
        "l1",
        FaultKind::Scale { replicas: 3 },
        FaultTarget::Role {
            role: Role::Prefill,
        },
    );
    nemesis.apply(up).await.unwrap();
    assert_eq!(
        write_lines(&fake),
        vec!["PATCH /apis/leaderworkerset.x-k8s.io/v1/namespaces/llm/leaderworkersets/prefill-lws"]
    );
    assert_eq!(fake.ready_pods("llm", "prefill-lws").len(), 3);
    assert!(nemesis.heal_all().await.is_clean());
    assert_eq!(fake.replicas("llm", "prefill-lws"), 1);
    assert_rbac(&fake);
}

#[tokio::test]
async fn partition_creates_a_networkpolicy_and_heal_deletes_it_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), TARGET);
    let cut = spec(
        "KV cut",
        FaultKind::Partition,
        FaultTarget::Link {
            link: Link::DecodePrefillKv,
            node: None,
        },
    );
    nemesis.apply(cut).await.unwrap();
    let p = fake.policies();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["metadata"]["name"], "pdchaos-kv-cut");
    assert_eq!(
        p[0]["spec"]["podSelector"]["matchLabels"]["role"],
        "prefill"
    );
    assert_eq!(p[0]["spec"]["policyTypes"][0], "Ingress");
    let peers = p[0]["spec"]["ingress"][0]["from"].as_array().unwrap();
    assert!(
        peers
            .iter()
            .any(|peer| peer["podSelector"]["matchExpressions"][0]
                == serde_json::json!({"key": "role", "operator": "NotIn", "values": ["decode"]})),
        "{peers:?}"
    );
    assert!(nemesis.heal_all().await.is_clean());
    assert!(fake.policies().is_empty());
    assert_eq!(
        write_lines(&fake),
        vec![
            "POST /apis/networking.k8s.io/v1/namespaces/llm/networkpolicies",
            "DELETE /apis/networking.k8s.io/v1/namespaces/llm/networkpolicies/pdchaos-kv-cut"
        ]
    );
    assert_rbac(&fake);
}

#[tokio::test]
async fn outside_the_allow_list_nothing_is_written_mock() {
    let dir = tempfile::tempdir().unwrap();
    // A workload namespace outside the list is refused when the target file is read...
    let bad = TARGET.replace(
        "{kind: Deployment, name: decode}",
        "{kind: Deployment, name: decode, namespace: prod}",
    );
    let err = parse_target(&bad, Path::new("t.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("outside kubernetes.namespaces"),
        "{err}"
    );
    // ... and a journal entry naming another namespace is refused when healing.
    let (fake, kube, nemesis) = setup(dir.path(), TARGET);
    let journal = dir.path().join("other.jsonl");
    std::fs::write(
        &journal,
        r#"{"ts_us":1,"fault":"x","phase":"planned","undo":[{"action":"scale_workload","namespace":"prod","kind":"Deployment","name":"decode","replicas":9}]}
"#,
    )
    .unwrap();
    let healers = Healers {
        control: None,
        kube: Some(&kube),
    };
    let r = heal_journal(&journal, healers).await.unwrap();
    assert!(
        r.leftovers
            .iter()
            .any(|l| l.contains("`prod` is not in the target file's allow-list")),
        "{:?}",
        r.leftovers
    );
    // A role without a workload, and pause, are refused before anything is written.
    let e = nemesis
        .apply(spec(
            "r1",
            FaultKind::Scale { replicas: 2 },
            FaultTarget::Role { role: Role::Router },
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, FaultError::Refused { .. }), "{e}");
    let e = nemesis
        .apply(spec(
            "p",
            FaultKind::Pause,
            FaultTarget::Role { role: Role::Decode },
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot SIGSTOP"), "{e}");
    assert!(fake.writes().is_empty(), "{:?}", write_lines(&fake));
    assert_eq!(fake.replicas("prod", "decode"), 0);
}

#[test]
fn a_kubeconfig_on_another_context_is_refused_mock() {
    let kc: kube::config::Kubeconfig = serde_yaml_kc(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context: {cluster: c, user: u}\n- name: staging\n  context: {cluster: c, user: u}\nclusters: []\nusers: []\n",
    );
    let e = check_context(&kc, "staging").unwrap_err().to_string();
    assert!(
        e.contains("`prod`") && e.contains("use-context staging"),
        "{e}"
    );
    let mut ok = kc.clone();
    ok.current_context = Some("staging".into());
    assert!(check_context(&ok, "staging").is_ok());
    ok.contexts.retain(|c| c.name != "staging");
    assert!(check_context(&ok, "staging").is_err());
}

fn serde_yaml_kc(text: &str) -> kube::config::Kubeconfig {
    kube::config::Kubeconfig::from_yaml(text).unwrap()
}

#[tokio::test]
async fn dry_run_lists_the_writes_and_makes_none_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, _, nemesis) = setup(dir.path(), TARGET);
    let steps = nemesis
        .dry_run(&spec(
            "d",
            FaultKind::Kill,
            FaultTarget::Role {
                role: Role::Prefill,
            },
        ))
        .await
        .unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s == "DELETE /api/v1/namespaces/llm/pods/prefill-0 gracePeriodSeconds=0"),
        "{steps:?}"
    );
    assert!(steps.iter().any(|s| s.contains("pods_ready")), "{steps:?}");
    assert!(fake.writes().is_empty());
    assert!(fake.calls().iter().all(|c| c.method == "GET"));
}

#[tokio::test]
async fn a_killed_runners_scale_fault_is_healed_from_the_journal_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, kube, nemesis) = setup(dir.path(), TARGET);
    nemesis
        .apply(spec(
            "left",
            FaultKind::Scale { replicas: 0 },
            FaultTarget::Role { role: Role::Decode },
        ))
        .await
        .unwrap();
    drop(nemesis); // the runner dies without healing
    assert_eq!(fake.replicas("llm", "decode"), 0);
    let journal = dir.path().join("journal.jsonl");
    let without = heal_journal(&journal, Healers::default()).await.unwrap();
    assert!(
        without.leftovers.iter().any(|l| l.contains("--target")),
        "{:?}",
        without.leftovers
    );
    let healers = Healers {
        control: None,
        kube: Some(&kube),
    };
    let r = heal_journal(&journal, healers).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.leftovers);
    assert_eq!(fake.replicas("llm", "decode"), 3);
    assert_eq!(fake.ready_pods("llm", "decode").len(), 3);
    let again = heal_journal(&journal, healers).await.unwrap();
    assert!(again.healed.is_empty(), "healed once, not twice");
    assert_rbac(&fake);
}

/// Every fault kind and its heal, once each: the calls made are exactly the Role's rules, so
/// the Role is the minimum (a grant nothing uses fails here as surely as a missing one).
#[tokio::test]
async fn the_role_grants_exactly_the_calls_the_backend_makes_mock() {
    use pdchaos::target::rbac::{RUNNER_CALLS, classify};
    use std::collections::BTreeSet;
    let mut used = BTreeSet::new();
    for lws in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let text = if lws {
            lws_target()
        } else {
            TARGET.to_string()
        };
        let (fake, kube, nemesis) = setup(dir.path(), &text);
        let decode = FaultTarget::Role { role: Role::Decode };
        let prefill = FaultTarget::Role {
            role: Role::Prefill,
        };
        let kv = FaultTarget::Link {
            link: Link::DecodePrefillKv,
            node: None,
        };
        for (i, (kind, target)) in [
            (FaultKind::Kill, decode.clone()),
            (FaultKind::Evict, decode.clone()),
            (FaultKind::Scale { replicas: 2 }, decode.clone()),
            (FaultKind::Scale { replicas: 3 }, prefill),
            (FaultKind::Partition, kv),
        ]
        .into_iter()
        .enumerate()
        {
            nemesis
                .apply(spec(&format!("f{i}"), kind, target))
                .await
                .unwrap();
            let r = nemesis.heal_all().await;
            assert!(r.is_clean(), "{:?}", r.leftovers);
        }
        if lws {
            fake.run_jobs_with(env!("CARGO_BIN_EXE_pdchaos"));
            let job = load_job(
                "pdchaos-load-r",
                &[
                    "--url",
                    "http://127.0.0.1:9/v1",
                    "--model",
                    "m",
                    "-c",
                    "2",
                    "-n",
                    "2",
                ],
            );
            kube.run_load_job(&job, Duration::from_secs(60))
                .await
                .unwrap();
        }
        for c in fake.calls() {
            used.insert(classify(&c.method, &c.path).unwrap());
        }
    }
    let role: BTreeSet<_> = RUNNER_CALLS
        .iter()
        .map(|c| {
            (
                c.group.to_string(),
                c.resource.to_string(),
                c.verb.to_string(),
            )
        })
        .collect();
    assert_eq!(used, role);
}

/// The command line refuses a cluster whose kubeconfig is on another context, before any call.
#[test]
fn fault_apply_refuses_a_kubeconfig_on_another_context_mock() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let target = dir.path().join("t.yaml");
    std::fs::write(&target, TARGET).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .args(["fault", "apply", "--kind", "kill", "--role", "decode"])
        .arg("--target")
        .arg(&target)
        .arg("--journal")
        .arg(dir.path().join("j.jsonl"))
        .env("KUBECONFIG", &kc)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("context is `prod`") && err.contains("t.yaml"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .args(["fault", "apply", "--kind", "evict", "--pid", "x=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
}

fn load_job(name: &str, args: &[&str]) -> pdchaos::target::kubernetes::LoadJob {
    pdchaos::target::kubernetes::LoadJob {
        name: name.into(),
        image: "pdchaos:test".into(),
        shards: 2,
        args: args.iter().map(|a| a.to_string()).collect(),
        start_at_ms: pdchaos::clock::now_us() / 1000 + 200,
    }
}

/// The distributed load Job: the fake runs each index as a real `pdchaos load --shard I/2`
/// process (nothing listens at the URL, so every request is a connect error, which is enough
/// to see the records travel through the pods' logs); the Job is deleted afterwards.
#[tokio::test]
async fn load_job_runs_every_shard_and_returns_their_records_mock() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, kube, _) = setup(dir.path(), TARGET);
    fake.run_jobs_with(env!("CARGO_BIN_EXE_pdchaos"));
    let job = load_job(
        "pdchaos-load-t",
        &[
            "--url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "-c",
            "2",
            "-n",
            "6",
        ],
    );
    let records = kube
        .run_load_job(&job, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(records.len(), 6, "3 requests from each of 2 shards");
    let mut ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "ids are unique across shards");
    assert!(
        records
            .iter()
            .all(|r| r.outcome.to_string() == "connect_error")
    );
    assert!(
        records
            .iter()
            .all(|r| r.sent_us / 1000 >= job.start_at_ms - 5)
    );
    assert_eq!(fake.jobs(), 0, "the Job was deleted");
    assert_eq!(
        write_lines(&fake),
        vec![
            "POST /apis/batch/v1/namespaces/llm/jobs",
            "DELETE /apis/batch/v1/namespaces/llm/jobs/pdchaos-load-t"
        ]
    );
    assert_rbac(&fake);

    let bad = load_job(
        "pdchaos-load-bad",
        &["--url", "http://127.0.0.1:9/v1", "--no-such-flag"],
    );
    let e = kube
        .run_load_job(&bad, Duration::from_secs(60))
        .await
        .unwrap_err();
    // The runner gives up at the first failed shard (as a Job with backoffLimit 0 does), so
    // the second shard's process may or may not have ended yet: 1 or 2.
    let e = e.to_string();
    assert!(
        e.contains("load job llm/pdchaos-load-bad: ")
            && (e.contains(": 1 shard(s) failed") || e.contains(": 2 shard(s) failed")),
        "{e}"
    );
    assert_eq!(fake.jobs(), 0, "a failed Job is deleted too");
}

/// `kubectl port-forward` to the in-cluster Toxiproxy, with a stand-in kubectl (a mock: no
/// cluster here) that records its arguments and serves a real Toxiproxy API (ours) on the
/// forwarded local port; the runner waits for the API, and stopping kills the forward.
#[tokio::test]
async fn toxiproxy_port_forward_runs_kubectl_in_the_allowed_context_mock() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let port = pdchaos::net::free_loopback_addr().unwrap().port();
    let args_file = dir.path().join("args");
    let kubectl = dir.path().join("kubectl");
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\nfor a; do last=$a; done\nexec {} toxiproxy --listen 127.0.0.1:${{last%%:*}}\n",
            args_file.display(),
            env!("CARGO_BIN_EXE_pdchaos")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = TARGET.replace(
        "  degraded:",
        &format!(
            "  toxiproxy:\n    api: http://127.0.0.1:{port}\n    port_forward: svc/toxiproxy:8474\n    proxies: []\n  degraded:"
        ),
    );
    let t = target(&text);
    let pf = pdchaos::target::port_forward::start_with(&t, kubectl.to_str().unwrap())
        .await
        .unwrap()
        .expect("a forward was asked for");
    let recorded = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        recorded.trim(),
        format!(
            "--context staging --namespace llm port-forward --address 127.0.0.1 svc/toxiproxy {port}:8474"
        )
    );
    let api = pdchaos::fault::toxiproxy::ToxiproxyClient::new(format!("http://127.0.0.1:{port}"));
    assert!(
        api.version().await.is_ok(),
        "the API answers through the forward"
    );
    let pid = pf.pid().unwrap();
    pf.stop().await;
    assert!(pdchaos::sim::proc::is_dead(pid), "the forward is stopped");
    assert!(api.version().await.is_err());

    // A kubectl that exits at once is reported, naming the command.
    let e = pdchaos::target::port_forward::start_with(&t, "/bin/false")
        .await
        .unwrap_err();
    assert!(e.contains("/bin/false") && e.contains("exited"), "{e}");
}
