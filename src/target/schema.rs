//! The target-file schema: plain data with strict serde, plus the checks serde cannot express.

use crate::fault::model::LinkProxy;
use serde::{Deserialize, Serialize};

/// Prefill and decode instances per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratio {
    pub prefill: usize,
    pub decode: usize,
}

/// Which router fronts the local stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalRouter {
    /// `pdchaos sim router`.
    #[default]
    Builtin,
    /// SGLang Model Gateway (`sglang-router`) in PD mode.
    Sglang,
    /// `vllm-router` in PD mode.
    Vllm,
}

/// The simulator on loopback, started and owned by the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    pub ratio: Ratio,
    #[serde(default = "one")]
    pub groups: usize,
    #[serde(default = "tiny")]
    pub profile: String,
    #[serde(default)]
    pub router: LocalRouter,
    /// Broken variants (`pdchaos sim up --break NAME`), for honesty runs.
    #[serde(default)]
    pub breaks: Vec<String>,
}

fn one() -> usize {
    1
}
fn tiny() -> String {
    "tiny".into()
}

impl LocalTarget {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ratio.prefill == 0 || self.ratio.decode == 0 || self.groups == 0 {
            return Err("local: ratio.prefill, ratio.decode and groups must be at least 1".into());
        }
        Ok(())
    }
}

/// Label selectors that find each role's pods (`key=value[,key=value]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSelectors {
    pub prefill: String,
    pub decode: String,
    #[serde(default)]
    pub router: Option<String>,
}

/// The workload kinds the runner can scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    /// `leaderworkerset.x-k8s.io/v1`, scaled through the dynamic API.
    LeaderWorkerSet,
}

/// One scalable workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
    /// Defaults to the target's first namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The workloads behind each role (absent: ratio faults are refused for that role).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workloads {
    #[serde(default)]
    pub prefill: Option<WorkloadRef>,
    #[serde(default)]
    pub decode: Option<WorkloadRef>,
}

/// How the runner reaches a Toxiproxy inside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToxiproxyAccess {
    /// Base URL of the Toxiproxy API as the runner sees it (a Service address when the runner
    /// runs in the cluster; `http://127.0.0.1:8474` behind `kubectl port-forward`).
    pub api: String,
    /// `svc/NAME:PORT` to port-forward when `api` is on loopback: the runner starts
    /// `kubectl port-forward` itself for the run (see [`crate::target::port_forward`]).
    #[serde(default)]
    pub port_forward: Option<String>,
    /// Which proxy carries which link, so link faults find their proxy.
    pub proxies: Vec<LinkProxy>,
}

/// A Prometheus query whose value says the system is serving degraded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSignal {
    /// Base URL of the Prometheus HTTP API (`/api/v1/query` is appended).
    pub url: String,
    /// PromQL; the mode is degraded while the result is above `above`.
    pub query: String,
    #[serde(default)]
    pub above: f64,
    /// Which degraded mode the metric signals (default: decode-only, decode prefilling
    /// locally, which is what llm-d's and Dynamo's fallbacks do).
    #[serde(default = "decode_only")]
    pub mode: crate::pd::PdMode,
}

fn decode_only() -> crate::pd::PdMode {
    crate::pd::PdMode::DecodeOnly
}

/// How the runner tells disaggregated from degraded serving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DegradedSignal {
    /// A response header carrying `disaggregated|prefill-only|decode-only` (`x-pd-mode`).
    Header { name: String },
    /// A metric, for systems that expose the mode only through Prometheus.
    Prometheus(PrometheusSignal),
    /// Not observable: mode checks are skipped and reported as such, never passed.
    None,
}

/// Load from several pods (a Kubernetes Indexed Job of `pdchaos load --shard I/N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedLoad {
    pub shards: u32,
    pub image: String,
    /// How long the runner gives the Job's pods to be scheduled and started before the shards
    /// begin together (`--start-at`); the fault schedule counts from that moment.
    #[serde(default = "twenty_s")]
    pub start_delay_ms: u64,
}

fn twenty_s() -> u64 {
    20_000
}

/// The `context` value for a runner inside the cluster, which has no kubeconfig context.
pub const IN_CLUSTER: &str = "in-cluster";

/// A cluster deployment, acted on only inside `context` and `namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeTarget {
    /// Base URL of the OpenAI-compatible API, e.g. `http://gateway.llm:8000/v1`.
    pub endpoint: String,
    pub model: String,
    /// The kubeconfig context the runner may use; any other current context is refused.
    /// [`IN_CLUSTER`] means the pod's own ServiceAccount (the runner runs as a Job there).
    pub context: String,
    /// The namespaces the runner may act in.
    pub namespaces: Vec<String>,
    pub selectors: RoleSelectors,
    #[serde(default)]
    pub workloads: Workloads,
    #[serde(default)]
    pub toxiproxy: Option<ToxiproxyAccess>,
    pub degraded: DegradedSignal,
    #[serde(default)]
    pub load: Option<DistributedLoad>,
}

impl KubeTarget {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!(
                "kubernetes.endpoint `{}` must be an http:// or https:// URL",
                self.endpoint
            ));
        }
        if self.namespaces.is_empty() {
            return Err(
                "kubernetes.namespaces must list at least one namespace (the allow-list)".into(),
            );
        }
        if self.context.trim().is_empty() {
            return Err("kubernetes.context must name the allowed kubeconfig context".into());
        }
        for (role, sel) in [
            ("prefill", Some(&self.selectors.prefill)),
            ("decode", Some(&self.selectors.decode)),
            ("router", self.selectors.router.as_ref()),
        ] {
            if let Some(sel) = sel {
                check_selector(sel).map_err(|e| format!("kubernetes.selectors.{role}: {e}"))?;
            }
        }
        for w in [&self.workloads.prefill, &self.workloads.decode]
            .into_iter()
            .flatten()
        {
            if let Some(ns) = &w.namespace
                && !self.namespaces.contains(ns)
            {
                return Err(format!(
                    "workload {} is in namespace `{ns}`, outside kubernetes.namespaces",
                    w.name
                ));
            }
        }
        if let Some(l) = &self.load
            && l.shards == 0
        {
            return Err("kubernetes.load.shards must be at least 1".into());
        }
        Ok(())
    }

    /// The namespace used when a workload names none.
    pub fn default_namespace(&self) -> &str {
        &self.namespaces[0]
    }
}

/// Accepts equality selectors (`a=b`, `a==b`, `a!=b`) joined by commas, as kubectl does.
fn check_selector(sel: &str) -> Result<(), String> {
    if sel.trim().is_empty() {
        return Err("empty label selector".into());
    }
    for term in sel.split(',') {
        let (k, v) = term
            .split_once("!=")
            .or_else(|| term.split_once("=="))
            .or_else(|| term.split_once('='))
            .ok_or_else(|| format!("`{term}` is not key=value"))?;
        if k.trim().is_empty() || v.contains('=') {
            return Err(format!("`{term}` is not key=value"));
        }
    }
    Ok(())
}

/// Re-exported name for the link enum used in `toxiproxy.proxies[].link`.
pub use crate::fault::model::Link as LinkName;
