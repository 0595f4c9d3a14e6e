//! The Kubernetes manifests render with `kubectl kustomize`, every document parses into the
//! k8s-openapi type its kind declares (and loses nothing in a round trip, so a misspelt field
//! fails), the overlays have the ratios they claim, the wiring through Toxiproxy is consistent,
//! the Role grants what the runner needs and nothing more, and the sharded load Job runs one
//! valid `pdchaos load --shard I/N` per index whose files the merge Job reads.

use clap::Parser as _;
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount},
    rbac::v1::{Role, RoleBinding},
};
use pdchaos::target::rbac::{RUNNER_CALLS, permitted};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const OVERLAYS: [&str; 4] = ["base", "overlays/1p1d", "overlays/1p3d", "overlays/2p4d"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every folder under `manifests/` that holds a kustomization, relative to `manifests/`, so a
/// new folder is rendered and type-checked without being listed here.
fn kustomizations() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        if dir.join("kustomization.yaml").is_file() {
            let rel = dir.strip_prefix(base).unwrap().to_str().unwrap();
            out.push(rel.to_string());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, base, out);
        }
    }
    let base = root().join("manifests");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out
}

/// Installs Debian's kubectl when it is missing and we may (root), so that `cargo test` alone
/// works on a fresh machine of this project's kind; .ci/run installs it up front.
fn ensure_kubectl() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let have = Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_ok();
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if !have && root_user {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-qq", "kubernetes-client"])
                .status();
        }
    });
}

/// Renders one kustomization; fails loudly (never skips) when kubectl is missing.
fn render(dir: &str) -> Vec<Value> {
    ensure_kubectl();
    let path = root().join("manifests").join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `kubectl kustomize` ({e}): install kubectl \
                 (`apt-get install -y kubernetes-client`, as .ci/run does) to validate manifests/"
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    text.split("\n---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            serde_saphyr::from_str::<Value>(d)
                .unwrap_or_else(|e| panic!("{dir}: rendered YAML does not parse: {e}\n{d}"))
        })
        .collect()
}

/// Drops nulls and empty objects, which serialisers may add or omit freely.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalise(v)))
                .filter(|(_, v)| !matches!(v, Value::Object(m) if m.is_empty()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, what: &str) {
    let t: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} does not parse as its declared kind: {e}"));
    let back = serde_json::to_value(&t).expect("serialise");
    assert_eq!(
        normalise(&back),
        normalise(doc),
        "{what}: fields lost in a round trip through k8s-openapi (a misspelt or misplaced field?)"
    );
}

fn check_types(dir: &str, docs: &[Value]) {
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or("<none>");
        let what = format!("{dir}: {kind}/{}", doc["metadata"]["name"]);
        match kind {
            "Namespace" => typed::<Namespace>(doc, &what),
            "ServiceAccount" => typed::<ServiceAccount>(doc, &what),
            "Role" => typed::<Role>(doc, &what),
            "RoleBinding" => typed::<RoleBinding>(doc, &what),
            "ConfigMap" => typed::<ConfigMap>(doc, &what),
            "Service" => typed::<Service>(doc, &what),
            "Deployment" => typed::<Deployment>(doc, &what),
            "Job" => typed::<Job>(doc, &what),
            "PersistentVolumeClaim" => typed::<PersistentVolumeClaim>(doc, &what),
            other => panic!("{what}: kind `{other}` has no k8s-openapi type in this test"),
        }
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

fn replicas(docs: &[Value], name: &str) -> u64 {
    find(docs, "Deployment", name)["spec"]["replicas"]
        .as_u64()
        .unwrap_or(1)
}

#[test]
fn every_kustomization_renders_and_parses_into_its_declared_types() {
    let all = kustomizations();
    for dir in OVERLAYS.iter().chain(&["load-job", "load-job/merge"]) {
        assert!(all.iter().any(|d| d == dir), "{dir} not found in {all:?}");
    }
    for dir in &all {
        let docs = render(dir);
        assert!(!docs.is_empty(), "{dir}: no documents");
        if OVERLAYS.contains(&dir.as_str()) {
            assert!(docs.len() >= 15, "{dir}: only {} documents", docs.len());
        }
        check_types(dir, &docs);
    }
}

#[test]
fn overlays_have_the_ratios_they_are_named_after() {
    let d = render("overlays/1p1d");
    assert_eq!((replicas(&d, "prefill"), replicas(&d, "decode")), (1, 1));
    let d = render("overlays/1p3d");
    assert_eq!((replicas(&d, "prefill"), replicas(&d, "decode")), (1, 3));
    let d = render("overlays/2p4d");
    let p = replicas(&d, "prefill") + replicas(&d, "prefill-1");
    assert_eq!((p, replicas(&d, "decode")), (2, 4));
}

/// Every configMap volume names a rendered ConfigMap (kustomize's hashed names), every Service
/// selects some pod template, and every pod runs as non-root.
#[test]
fn references_resolve_in_every_kustomization() {
    for dir in kustomizations() {
        let dir = dir.as_str();
        let docs = render(dir);
        let templates: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "Deployment" || d["kind"] == "Job")
            .map(|d| &d["spec"]["template"])
            .collect();
        for t in &templates {
            assert_eq!(
                t["spec"]["securityContext"]["runAsNonRoot"], true,
                "{dir}: {t}"
            );
            for v in t["spec"]["volumes"].as_array().into_iter().flatten() {
                if let Some(cm) = v["configMap"]["name"].as_str() {
                    find(&docs, "ConfigMap", cm);
                }
            }
        }
        for svc in docs.iter().filter(|d| d["kind"] == "Service") {
            let sel = svc["spec"]["selector"].as_object().expect("selector");
            let hit = templates.iter().any(|t| {
                sel.iter()
                    .all(|(k, v)| &t["metadata"]["labels"][k.as_str()] == v)
            });
            assert!(
                hit,
                "{dir}: Service {} selects no pod",
                svc["metadata"]["name"]
            );
        }
    }
}

/// The router's config is a real `RouterConfig`, and each worker address is a proxy that the
/// Toxiproxy config creates and the toxiproxy Service exposes: every link can be faulted.
#[test]
fn every_router_link_passes_through_a_populated_proxy() {
    for dir in OVERLAYS {
        let docs = render(dir);
        let data = |name: &str, key: &str| -> String {
            let cm = docs
                .iter()
                .find(|d| {
                    d["kind"] == "ConfigMap"
                        && d["metadata"]["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with(name))
                })
                .unwrap_or_else(|| panic!("{dir}: no ConfigMap {name}"));
            cm["data"][key].as_str().expect("data key").to_string()
        };
        let router: pdchaos::sim::router::RouterConfig =
            serde_saphyr::from_str(&data("router-config", "router.yaml"))
                .unwrap_or_else(|e| panic!("{dir}: router.yaml: {e}"));
        let proxies: Vec<Value> =
            serde_json::from_str(&data("toxiproxy-config", "toxiproxy.json")).expect("json");
        let svc = find(&docs, "Service", "toxiproxy");
        let exposed: Vec<u64> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_u64().unwrap())
            .collect();
        let proxied = |port: u64| {
            proxies
                .iter()
                .any(|p| p["listen"].as_str().unwrap().ends_with(&format!(":{port}")))
                && exposed.contains(&port)
        };
        let mut links = 0;
        for g in &router.groups {
            for w in g.prefill.iter().chain(&g.decode) {
                let port: u64 = w.url.rsplit(':').next().unwrap().parse().unwrap();
                assert!(
                    w.url.contains("//toxiproxy:") && proxied(port),
                    "{dir}: {w:?}"
                );
                links += 1;
            }
            for w in &g.prefill {
                assert_eq!(w.kv_host.as_deref(), Some("toxiproxy"), "{dir}: {w:?}");
                assert!(proxied(u64::from(w.kv_port.unwrap())), "{dir}: {w:?}");
                links += 1;
            }
        }
        assert_eq!(links, proxies.len(), "{dir}: every proxy carries one link");
    }
}

#[test]
fn the_job_target_is_the_shipped_target_file() {
    let shipped = std::fs::read_to_string(root().join("targets/pdchaos-k8s.yaml")).unwrap();
    let copy = std::fs::read_to_string(root().join("manifests/base/config/target.yaml")).unwrap();
    assert_eq!(
        shipped, copy,
        "manifests/base/config/target.yaml drifted from targets/"
    );
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2);
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
}

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn steps(workflow: &Value, rel: &str) -> Vec<Value> {
    let jobs = workflow["jobs"]
        .as_object()
        .unwrap_or_else(|| panic!("{rel}: no jobs"));
    let mut all = Vec::new();
    for (name, job) in jobs {
        let steps = job["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{rel}: job {name} has no steps"));
        for s in steps {
            assert!(
                s.get("uses").is_some() != s.get("run").is_some(),
                "{rel}: job {name}: a step needs exactly one of uses/run: {s}"
            );
        }
        all.extend(steps.iter().cloned());
    }
    all
}

#[test]
fn ci_pipelines_are_well_formed() {
    let rel = "ci/github/pdchaos.yml";
    let gh = yaml(rel);
    assert!(
        gh["on"]["schedule"][0]["cron"].is_string(),
        "{rel}: no schedule"
    );
    assert!(
        gh["on"].get("workflow_dispatch").is_some(),
        "{rel}: no workflow_dispatch"
    );
    let s = steps(&gh, rel);
    let text = serde_json::to_string(&s).unwrap();
    for needle in [
        "PDCHAOS_KUBECONFIG",
        "--junit",
        "upload-artifact",
        "exit 1",
        // The heal after a cancelled run must read the journal of this run's --out and reach
        // the cluster (pod, scale and NetworkPolicy faults), or it heals nothing.
        "pdchaos heal --journal reports/journal.jsonl --target",
    ] {
        assert!(text.contains(needle), "{rel} lacks {needle}");
    }
    assert!(
        gh["env"].is_null(),
        "{rel}: secrets belong in the job env, not at the top level"
    );

    let rel = "ci/github/kind.yml";
    let kind = yaml(rel);
    let text = serde_json::to_string(&steps(&kind, rel)).unwrap();
    assert!(
        text.contains("kind-action") && text.contains("manifests/overlays/"),
        "{rel}"
    );
    let default = kind["on"]["workflow_dispatch"]["inputs"]["overlay"]["default"]
        .as_str()
        .expect("overlay default");
    assert!(
        root().join("manifests/overlays").join(default).is_dir(),
        "{rel}: {default}"
    );

    let rel = "ci/gitlab/.gitlab-ci.yml";
    let gl = yaml(rel);
    let job = &gl["pdchaos"];
    assert!(job["script"].is_array(), "{rel}: no script");
    assert_eq!(
        job["artifacts"]["reports"]["junit"], "reports/junit.xml",
        "{rel}"
    );
    assert_eq!(job["artifacts"]["when"], "always", "{rel}");
    let after = serde_json::to_string(&job["after_script"]).unwrap();
    assert!(
        after.contains("pdchaos heal --journal reports/journal.jsonl --target"),
        "{rel}: after_script must heal this run's journal on the cluster: {after}"
    );
    let target = gl["variables"]["PDCHAOS_TARGET"]
        .as_str()
        .expect("PDCHAOS_TARGET");
    assert!(
        root().join(target).is_file(),
        "{rel}: {target} is not shipped"
    );
}

fn granted(role: &Role) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role.rules.iter().flatten() {
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in {rule:?}");
                    out.push((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn the_role_grants_every_runner_call_and_nothing_else() {
    let docs = render("base");
    let role: Role = serde_json::from_value(find(&docs, "Role", "pdchaos-runner").clone()).unwrap();
    let have = granted(&role);
    for c in RUNNER_CALLS {
        let (g, r, v) = (c.group, c.resource, c.verb);
        assert!(
            have.iter()
                .any(|h| (h.0.as_str(), h.1.as_str(), h.2.as_str()) == (g, r, v)),
            "the Role lacks {v} on {g}/{r}"
        );
    }
    for h in &have {
        assert!(
            permitted(&h.0, &h.1, &h.2),
            "the Role grants {} on {}/{}, which the runner never calls",
            h.2,
            h.0,
            h.1
        );
    }
    let binding = find(&docs, "RoleBinding", "pdchaos-runner");
    assert_eq!(binding["subjects"][0]["name"], "pdchaos-runner");
    let job = find(&docs, "Job", "pdchaos-run");
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "pdchaos-runner"
    );
}

/// Where a pod template mounts the claim `claim`.
fn mount_of(job: &Job, claim: &str) -> PathBuf {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        })
        .unwrap_or_else(|| panic!("no volume of claim {claim}"));
    let mount = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .unwrap_or_else(|| panic!("volume {} is not mounted", volume.name));
    PathBuf::from(&mount.mount_path)
}

/// The container's args as `pdchaos` would parse them, `$(JOB_COMPLETION_INDEX)` expanded to
/// `index` as Kubernetes does.
fn parse_args(job: &Job, index: i32) -> pdchaos::cli::Command {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let args = pod.containers[0].args.clone().expect("args");
    let argv = std::iter::once("pdchaos".to_string()).chain(
        args.iter()
            .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string())),
    );
    pdchaos::cli::Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?} do not parse as pdchaos flags: {e}"))
        .command
}

#[test]
fn the_load_job_runs_shard_i_of_n_per_index_and_the_merge_job_reads_every_file() {
    use pdchaos::cli::Command as Cmd;
    use pdchaos::load::shard::Shard;
    let docs = render("load-job");
    let job: Job = serde_json::from_value(find(&docs, "Job", "pdchaos-load").clone()).unwrap();
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    let n = spec.completions.expect("completions");
    assert!(n >= 2, "{n} completions");
    assert_eq!(spec.parallelism, Some(n), "every shard must run at once");
    assert_eq!(spec.backoff_limit, Some(0));
    // `$(JOB_COMPLETION_INDEX)` in args expands only from a variable the container declares.
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    let env = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "JOB_COMPLETION_INDEX")
        .expect("JOB_COMPLETION_INDEX in env");
    assert_eq!(
        env.value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    let out_dir = mount_of(&job, "pdchaos-load-shards");
    let pvc = find(&docs, "PersistentVolumeClaim", "pdchaos-load-shards");
    assert_eq!(
        pvc["spec"]["accessModes"][0], "ReadWriteMany",
        "pods span nodes"
    );
    let mut saved = std::collections::BTreeSet::new();
    for i in 0..n {
        let Cmd::Load(load) = parse_args(&job, i) else {
            panic!("index {i}: not `pdchaos load`");
        };
        let cfg = pdchaos::cli::load::config_from_args(&load)
            .unwrap_or_else(|e| panic!("index {i}: {e}"));
        assert_eq!(cfg.shard, Shard::new(i as u32, n as u32).unwrap());
        assert_eq!(cfg.empty_shard(), None, "index {i}");
        let file = load.save_shard.expect("--save-shard");
        assert_eq!(file.parent(), Some(out_dir.as_path()), "{}", file.display());
        assert!(
            pdchaos::cli::merge::is_shard_file_name(&file),
            "`pdchaos merge DIR` would skip {}",
            file.display()
        );
        saved.insert(file);
    }
    assert_eq!(saved.len(), n as usize, "two indices write one file");
    // The URL is the base stack's router Service, in the same namespace.
    let Cmd::Load(load) = parse_args(&job, 0) else {
        unreachable!()
    };
    let base = render("base");
    let port = find(&base, "Service", "router")["spec"]["ports"][0]["port"].clone();
    assert_eq!(load.url, format!("http://router:{port}/v1"));
    assert_eq!(
        find(&docs, "Job", "pdchaos-load")["metadata"]["namespace"],
        find(&base, "Service", "router")["metadata"]["namespace"]
    );

    let docs = render("load-job/merge");
    let merge: Job =
        serde_json::from_value(find(&docs, "Job", "pdchaos-load-merge").clone()).unwrap();
    let Cmd::Merge(m) = parse_args(&merge, 0) else {
        panic!("not `pdchaos merge`");
    };
    let dir = mount_of(&merge, "pdchaos-load-shards");
    assert_eq!(
        m.files,
        vec![dir.clone()],
        "the merge reads the shards' directory"
    );
    assert_eq!(dir, out_dir);
    assert!(!m.allow_missing, "a missing shard must fail the merge");
}
