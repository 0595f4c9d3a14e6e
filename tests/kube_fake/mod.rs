//! An in-memory Kubernetes API server for the kube backend's mock tests: no API server can run
//! on these machines, so this answers the calls the backend makes, as a tower-test mock service,
//! and plays the controllers' part (a deleted pod is replaced, a scaled workload gains or loses
//! pods, each new pod turns Ready one request later). It records every call it was sent.

#![allow(dead_code)] // shared by several test binaries, each using part of it

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One request the backend sent.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
struct Workload {
    /// Plural resource: deployments, statefulsets, leaderworkersets.
    resource: &'static str,
    ns: String,
    name: String,
    replicas: u32,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Pod {
    ns: String,
    name: String,
    uid: String,
    owner: String,
    labels: BTreeMap<String, String>,
    ready: bool,
    terminating: bool,
    created: std::time::Instant,
}

/// A shard process's exit code and stdout.
type Ended = (i32, String);

/// A Job whose pods are real `pdchaos` processes (the fake's Job controller runs the
/// container's args with the local binary, `$(JOB_COMPLETION_INDEX)` filled in).
#[derive(Debug, Clone)]
struct FakeJob {
    /// Per index: exit code and stdout, once the process ended.
    done: Arc<Mutex<Vec<Option<Ended>>>>,
}

#[derive(Default)]
struct State {
    workloads: Vec<Workload>,
    pods: Vec<Pod>,
    policies: BTreeMap<(String, String), Value>,
    jobs: BTreeMap<(String, String), FakeJob>,
    job_binary: Option<std::path::PathBuf>,
    /// How long a new pod takes to turn Ready (zero: at the next request).
    ready_delay: std::time::Duration,
    seq: u32,
}

/// The fake cluster; clones share it.
#[derive(Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

fn labels(sel: &str) -> BTreeMap<String, String> {
    sel.split(',')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl State {
    /// The controllers: terminating pods go, pending pods turn ready, workloads get their count.
    fn tick(&mut self) {
        self.pods.retain(|p| !p.terminating);
        for p in &mut self.pods {
            p.ready = p.ready || p.created.elapsed() >= self.ready_delay;
        }
        for w in self.workloads.clone() {
            let live: Vec<usize> = (0..self.pods.len())
                .filter(|&i| self.pods[i].owner == w.name && self.pods[i].ns == w.ns)
                .collect();
            for &i in live.iter().skip(w.replicas as usize) {
                self.pods[i].terminating = true;
            }
            for k in live.len()..w.replicas as usize {
                self.seq += 1;
                let name = if w.resource == "deployments" {
                    format!("{}-{:05}", w.name, self.seq)
                } else {
                    // StatefulSets and LWS reuse ordinal names: only the uid tells them apart.
                    let taken: Vec<String> = self.pods.iter().map(|p| p.name.clone()).collect();
                    (0..)
                        .map(|o| format!("{}-{o}", w.name))
                        .find(|n| !taken.contains(n))
                        .unwrap_or_else(|| format!("{}-{k}", w.name))
                };
                self.pods.push(Pod {
                    ns: w.ns.clone(),
                    name,
                    uid: format!("uid-{}", self.seq),
                    owner: w.name.clone(),
                    labels: w.labels.clone(),
                    ready: false,
                    terminating: false,
                    created: std::time::Instant::now(),
                });
            }
        }
    }

    fn pod_json(p: &Pod) -> Value {
        let mut meta = json!({"name": p.name, "namespace": p.ns, "uid": p.uid, "labels": p.labels});
        if p.terminating {
            meta["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
               "status": {"phase": "Running", "conditions": [
                   {"type": "Ready", "status": if p.ready { "True" } else { "False" }}]}})
    }

    fn counts(&self, w: &Workload) -> (usize, usize) {
        let mine = self
            .pods
            .iter()
            .filter(|p| p.owner == w.name && p.ns == w.ns && !p.terminating);
        let current = mine.clone().count();
        (current, mine.filter(|p| p.ready).count())
    }

    fn workload_json(&self, w: &Workload, scale: bool) -> Value {
        let (current, ready) = self.counts(w);
        let meta = json!({"name": w.name, "namespace": w.ns, "generation": 1});
        if scale {
            return json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": meta,
                          "spec": {"replicas": w.replicas}, "status": {"replicas": current}});
        }
        let (api, kind) = match w.resource {
            "deployments" => ("apps/v1", "Deployment"),
            "statefulsets" => ("apps/v1", "StatefulSet"),
            _ => ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
        };
        json!({"apiVersion": api, "kind": kind, "metadata": meta,
               "spec": {"replicas": w.replicas, "serviceName": w.name,
                        "selector": {"matchLabels": w.labels},
                        "template": {"metadata": {"labels": w.labels}}},
               "status": {"replicas": current, "readyReplicas": ready, "observedGeneration": 1}})
    }

    fn handle(&mut self, method: &str, uri: &str, body: &Value) -> (u16, Value) {
        self.tick();
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        // Normalise to [group-ish prefix..., "namespaces", ns, resource, name?, sub?].
        let at = parts.iter().position(|p| *p == "namespaces");
        let Some(at) = at else {
            return status(404, "NotFound", format!("no route {path}"));
        };
        let ns = parts.get(at + 1).copied().unwrap_or_default().to_string();
        let res = parts.get(at + 2).copied().unwrap_or_default();
        let name = parts.get(at + 3).map(|s| s.to_string());
        let sub = parts.get(at + 4).copied();
        match (res, method, name, sub) {
            ("pods", "GET", None, _) => {
                let want = query_param(query, "labelSelector")
                    .map(|s| labels(&s))
                    .unwrap_or_default();
                let items: Vec<Value> = self
                    .pods
                    .iter()
                    .filter(|p| p.ns == ns && want.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
                    .map(Self::pod_json)
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
                )
            }
            ("pods", "GET", Some(n), None) => {
                match self.pods.iter().find(|p| p.ns == ns && p.name == n) {
                    Some(p) => (200, Self::pod_json(p)),
                    None => status(404, "NotFound", format!("pods \"{n}\" not found")),
                }
            }
            ("pods", "DELETE", Some(n), None) => {
                let grace = body
                    .get("gracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                let Some(i) = self.pods.iter().position(|p| p.ns == ns && p.name == n) else {
                    return status(404, "NotFound", format!("pods \"{n}\" not found"));
                };
                self.pods[i].terminating = true;
                let out = Self::pod_json(&self.pods[i]);
                if grace == 0 {
                    self.pods.remove(i);
                }
                (200, out)
            }
            ("pods", "POST", Some(n), Some("eviction")) => {
                match self.pods.iter_mut().find(|p| p.ns == ns && p.name == n) {
                    Some(p) => {
                        p.terminating = true;
                        (
                            201,
                            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                        )
                    }
                    None => status(404, "NotFound", format!("pods \"{n}\" not found")),
                }
            }
            ("networkpolicies", "POST", None, _) => {
                let n = body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if self.policies.contains_key(&(ns.clone(), n.clone())) {
                    return status(
                        409,
                        "AlreadyExists",
                        format!("networkpolicies \"{n}\" already exists"),
                    );
                }
                self.policies.insert((ns, n), body.clone());
                (201, body.clone())
            }
            ("networkpolicies", "GET", Some(n), _) => match self.policies.get(&(ns, n.clone())) {
                Some(p) => (200, p.clone()),
                None => status(
                    404,
                    "NotFound",
                    format!("networkpolicies \"{n}\" not found"),
                ),
            },
            ("networkpolicies", "DELETE", Some(n), _) => {
                match self.policies.remove(&(ns, n.clone())) {
                    Some(p) => (200, p),
                    None => status(
                        404,
                        "NotFound",
                        format!("networkpolicies \"{n}\" not found"),
                    ),
                }
            }
            ("jobs", "POST", None, _) => self.create_job(&ns, body),
            ("jobs", "GET", Some(n), _) => match self.jobs.get(&(ns.clone(), n.clone())) {
                Some(j) => {
                    let done = j.done.lock().unwrap();
                    let ok = done.iter().flatten().filter(|d| d.0 == 0).count();
                    let failed = done.iter().flatten().filter(|d| d.0 != 0).count();
                    (
                        200,
                        json!({"apiVersion": "batch/v1", "kind": "Job",
                        "metadata": {"name": n, "namespace": ns},
                        "spec": {"template": {"spec": {"containers": []}}},
                        "status": {"succeeded": ok, "failed": failed}}),
                    )
                }
                None => status(404, "NotFound", format!("jobs \"{n}\" not found")),
            },
            ("jobs", "DELETE", Some(n), _) => match self.jobs.remove(&(ns.clone(), n.clone())) {
                Some(_) => {
                    self.pods.retain(|p| !(p.ns == ns && p.owner == n));
                    (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                    )
                }
                None => status(404, "NotFound", format!("jobs \"{n}\" not found")),
            },
            ("pods", "GET", Some(n), Some("log")) => {
                let Some(p) = self.pods.iter().find(|p| p.ns == ns && p.name == n) else {
                    return status(404, "NotFound", format!("pods \"{n}\" not found"));
                };
                let index: usize = p.labels["batch.kubernetes.io/job-completion-index"]
                    .parse()
                    .unwrap();
                let job = &self.jobs[&(ns.clone(), p.owner.clone())];
                let text = job.done.lock().unwrap()[index]
                    .as_ref()
                    .map(|d| d.1.clone())
                    .unwrap_or_default();
                (200, Value::String(text))
            }
            (r @ ("deployments" | "statefulsets" | "leaderworkersets"), m, Some(n), sub) => {
                let Some(i) = self
                    .workloads
                    .iter()
                    .position(|w| w.resource == r && w.ns == ns && w.name == n)
                else {
                    return status(404, "NotFound", format!("{r} \"{n}\" not found"));
                };
                if m == "PATCH" {
                    if let Some(k) = body.pointer("/spec/replicas").and_then(Value::as_u64) {
                        self.workloads[i].replicas = k as u32;
                    }
                } else if m != "GET" {
                    return status(405, "MethodNotAllowed", format!("{m} {path}"));
                }
                let w = self.workloads[i].clone();
                (200, self.workload_json(&w, sub == Some("scale")))
            }
            _ => status(404, "NotFound", format!("no route {method} {path}")),
        }
    }
}

impl State {
    fn create_job(&mut self, ns: &str, body: &Value) -> (u16, Value) {
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let shards = body
            .pointer("/spec/completions")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let args: Vec<String> = body
            .pointer("/spec/template/spec/containers/0/args")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let Some(bin) = self.job_binary.clone() else {
            return status(403, "Forbidden", "this fake cluster runs no Jobs".into());
        };
        let done = Arc::new(Mutex::new(vec![None; shards]));
        for i in 0..shards {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()))
                .collect();
            let (bin, done) = (bin.clone(), done.clone());
            std::thread::spawn(move || {
                let out = std::process::Command::new(bin).args(&args).output();
                let result = match out {
                    Ok(o) => (
                        o.status.code().unwrap_or(-1),
                        String::from_utf8_lossy(&o.stdout).into_owned(),
                    ),
                    Err(e) => (-1, e.to_string()),
                };
                done.lock().unwrap()[i] = Some(result);
            });
            self.seq += 1;
            let labels = [
                ("batch.kubernetes.io/job-name".to_string(), name.clone()),
                (
                    "batch.kubernetes.io/job-completion-index".to_string(),
                    i.to_string(),
                ),
            ];
            self.pods.push(Pod {
                ns: ns.to_string(),
                name: format!("{name}-{i}-{:05}", self.seq),
                uid: format!("uid-{}", self.seq),
                owner: name.clone(),
                labels: labels.into(),
                ready: true,
                terminating: false,
                created: std::time::Instant::now(),
            });
        }
        self.jobs.insert((ns.to_string(), name), FakeJob { done });
        (201, body.clone())
    }
}

impl FakeCluster {
    /// Lets the fake run Jobs: their pods become `binary` processes.
    pub fn run_jobs_with(&self, binary: impl Into<std::path::PathBuf>) {
        self.state.lock().unwrap().job_binary = Some(binary.into());
    }

    /// New pods turn Ready this long after they are created (default: at the next request).
    pub fn ready_after(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().ready_delay = delay;
    }

    /// Jobs still present (the runner must delete its Job).
    pub fn jobs(&self) -> usize {
        self.state.lock().unwrap().jobs.len()
    }

    /// Adds a workload with `replicas` ready pods labelled `labels` (`key=value,...`).
    pub fn workload(
        &self,
        resource: &'static str,
        ns: &str,
        name: &str,
        replicas: u32,
        labels_sel: &str,
    ) {
        let mut s = self.state.lock().unwrap();
        s.workloads.push(Workload {
            resource,
            ns: ns.into(),
            name: name.into(),
            replicas,
            labels: labels(labels_sel),
        });
        s.tick();
        s.tick();
    }

    /// Ready, non-terminating pods of a workload, by name.
    pub fn ready_pods(&self, ns: &str, owner: &str) -> Vec<(String, String)> {
        let s = self.state.lock().unwrap();
        s.pods
            .iter()
            .filter(|p| p.ns == ns && p.owner == owner && p.ready && !p.terminating)
            .map(|p| (p.name.clone(), p.uid.clone()))
            .collect()
    }

    pub fn replicas(&self, ns: &str, name: &str) -> u32 {
        let s = self.state.lock().unwrap();
        s.workloads
            .iter()
            .find(|w| w.ns == ns && w.name == name)
            .map(|w| w.replicas)
            .unwrap_or(0)
    }

    pub fn policies(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .policies
            .values()
            .cloned()
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls other than reads.
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method != "GET")
            .collect()
    }

    /// A kube client whose every request this fake answers (the tower-test mock pattern).
    pub fn client(&self, default_ns: &str) -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let uri = parts.uri.to_string();
                me.calls.lock().unwrap().push(Call {
                    method: parts.method.to_string(),
                    path: uri.clone(),
                    body: body.clone(),
                });
                let (code, out) =
                    me.state
                        .lock()
                        .unwrap()
                        .handle(parts.method.as_str(), &uri, &body);
                // Pod logs are plain text; everything else is JSON.
                let (kind, bytes) = match out {
                    Value::String(text) => ("text/plain", text.into_bytes()),
                    other => ("application/json", serde_json::to_vec(&other).unwrap()),
                };
                let resp = Response::builder()
                    .status(code)
                    .header("content-type", kind)
                    .body(Body::from(bytes))
                    .unwrap();
                send.send_response(resp);
            }
        });
        kube::Client::new(svc, default_ns)
    }
}
