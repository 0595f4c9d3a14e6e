//! The scenario's world: the deployment it asked for, the load it will run, the faults it
//! schedules, and everything recorded while it ran (records, timeline, verdicts).//!
//! This file owns the types: the [`Layout`] asked for, the [`Deployment`] run against, the
//! [`LoadSpec`], the [`Scheduled`] faults and the [`PdWorld`] itself. `deploy` gets a deployment
//! (the local stack, or a checked cluster), `run_load` runs the load with its faults (in process
//! or as a Kubernetes Job), `judge` turns the records into windows and verdicts.

mod deploy;
mod judge;
mod run_load;

use crate::check::Verdict;
use crate::clock::{self, Micros};
use crate::fault::control::{NodeControl, NodeProcess};
use crate::fault::kube::KubeFaults;
use crate::fault::model::FaultSpec;
use crate::fault::nemesis::Nemesis;
use crate::load::engine::Ramp;
use crate::load::record::RequestRecord;
use crate::report::layout::SweepRow;
use crate::sim::stack::{RouterKind, Stack};
use crate::suite::context;
use crate::target::{DegradedSignal, KubeTarget};
use std::time::Duration;

/// The local deployment a scenario asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub prefill: usize,
    pub decode: usize,
    pub groups: usize,
    pub profile: String,
    pub breaks: Vec<String>,
    /// The router in front (a local target file's `router:`).
    pub router: RouterKind,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            prefill: 1,
            decode: 1,
            groups: 1,
            profile: "tiny".into(),
            breaks: vec![],
            router: RouterKind::Builtin,
        }
    }
}

/// What a scenario runs against: the local stack, or the cluster of a Kubernetes target file.
#[derive(Clone)]
pub enum Deployment {
    Local(Stack),
    Cluster(Box<Cluster>),
}

/// A Kubernetes target and its fault backend, shared by every scenario of a run.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub target: KubeTarget,
    pub kube: KubeFaults,
}

impl Deployment {
    pub fn base_url(&self) -> String {
        match self {
            Deployment::Local(s) => s.base_url(),
            Deployment::Cluster(c) => c.target.endpoint.trim_end_matches('/').to_string(),
        }
    }

    pub fn model(&self) -> String {
        match self {
            Deployment::Local(_) => "pdchaos-sim".into(),
            Deployment::Cluster(c) => c.target.model.clone(),
        }
    }

    /// Nodes by name and group (the local stack's; a cluster's pods are found by selector).
    pub fn nodes(&self) -> Vec<NodeProcess> {
        match self {
            Deployment::Local(s) => s.nodes(),
            Deployment::Cluster(_) => Vec::new(),
        }
    }
}

/// Why a mode check cannot be judged on this deployment (`None`: it can).
pub fn mode_unobservable() -> Option<String> {
    let c = context().cluster.as_ref()?;
    match &c.target.degraded {
        DegradedSignal::Header { name } if name.eq_ignore_ascii_case(crate::pd::HEADER_MODE) => {
            None
        }
        DegradedSignal::Header { name } => Some(format!(
            "this target reports the mode in header `{name}`; the load client reads `{}` only",
            crate::pd::HEADER_MODE
        )),
        DegradedSignal::Prometheus(_) => None,
        DegradedSignal::None => {
            Some("this target's mode is not observable (degraded: none)".into())
        }
    }
}

/// The load a scenario will run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub users: u32,
    pub ramp: Option<Ramp>,
    pub max_tokens: Option<u32>,
    pub unique_prefix: bool,
    pub prompt: Option<String>,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            users: 4,
            ramp: None,
            max_tokens: None,
            unique_prefix: true,
            prompt: None,
        }
    }
}

/// A fault to apply at an offset from the start of the next load run.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub at: Duration,
    pub specs: Vec<FaultSpec>,
}

#[derive(Debug, Default)]
pub struct PdWorld {
    pub layout: Layout,
    /// The scenario named a layout (on a cluster it is checked, not built).
    pub layout_asked: bool,
    pub load: LoadSpec,
    pub scheduled: Vec<Scheduled>,
    /// Every request of the scenario, all runs.
    pub records: Vec<RequestRecord>,
    /// Named runs (for comparisons such as cache hit vs miss).
    pub runs: Vec<(String, Vec<RequestRecord>)>,
    pub started_us: Micros,
    pub ended_us: Micros,
    pub verdicts: Vec<Verdict>,
    pub sweep: Vec<SweepRow>,
    /// The sizing targets a sweep was judged against (drawn on the report's sweep figure).
    pub sweep_targets: Option<crate::report::layout::SweepTargets>,
    pub degraded_at_us: Option<Micros>,
    pub recovered_at_us: Option<Micros>,
    pub nemesis: Option<Nemesis>,
    pub fault_seq: u32,
}

impl cucumber::World for PdWorld {
    type Error = std::convert::Infallible;
    async fn new() -> Result<Self, Self::Error> {
        // The target file's layout (ratio, profile, router) until a step says otherwise; before
        // issue 8 this was Layout::default(), so a local target's fields were ignored.
        let layout = crate::suite::CONTEXT
            .get()
            .map(|c| c.default_layout.clone())
            .unwrap_or_default();
        Ok(PdWorld {
            started_us: clock::now_us(),
            layout,
            ..PdWorld::default()
        })
    }
}
