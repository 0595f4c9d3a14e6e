//! The scenario's world: the deployment it asked for, the load it will run, the faults it
//! schedules, and everything recorded while it ran (records, timeline, verdicts).

use crate::check::Verdict;
use crate::check::windows::{self, FaultWindow, Span};
use crate::clock::{self, Micros};
use crate::fault::control::NodeControl;
use crate::fault::control::NodeProcess;
use crate::fault::kube::KubeFaults;
use crate::fault::model::FaultSpec;
use crate::fault::nemesis::Nemesis;
use crate::load::engine::{LoadConfig, Ramp, Shape};
use crate::load::metrics::Window;
use crate::load::prompts::PromptSource;
use crate::load::record::RequestRecord;
use crate::report::layout::SweepRow;
use crate::sim::stack::{RouterKind, Stack, StackConfig};
use crate::suite::context;
use crate::target::{DegradedSignal, KubeTarget};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

impl PdWorld {
    /// The deployment this scenario runs against: on a cluster, the target file's (checked
    /// against the layout the scenario asks for); locally, the stack it asked for.
    pub async fn deployment(&mut self) -> Deployment {
        let Some(c) = context().cluster.clone() else {
            return Deployment::Local(self.stack().await);
        };
        assert!(
            self.layout.breaks.is_empty() && context().force_breaks.is_empty(),
            "defects can be switched on in the local stack only, not on a cluster"
        );
        if self.layout_asked {
            let ns = c.kube.namespace(None).unwrap_or_else(|e| panic!("{e}"));
            for (role, sel, want) in [
                ("prefill", &c.target.selectors.prefill, self.layout.prefill),
                ("decode", &c.target.selectors.decode, self.layout.decode),
            ] {
                let have = c
                    .kube
                    .ready_pods(&ns, sel)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .len();
                assert!(
                    have == want * self.layout.groups,
                    "the scenario asks for {want} {role} per group, the cluster has {have} ready {role} pods (`{sel}`): scale it, or leave this scenario out with --tags"
                );
            }
        }
        if self.nemesis.is_none() {
            let mut n = Nemesis::new(&context().journal, None)
                .unwrap_or_else(|e| panic!("fault journal: {e}"));
            if let Some(t) = &c.target.toxiproxy {
                n = n.with_toxiproxy(&t.api, t.proxies.clone());
            }
            self.nemesis = Some(n.with_kube(c.kube.clone()));
        }
        Deployment::Cluster(Box::new(c))
    }

    /// The local stack this scenario asked for (started or reused).
    pub async fn stack(&mut self) -> Stack {
        let ctx = context();
        let mut layout = self.layout.clone();
        layout.breaks.extend(ctx.force_breaks.iter().cloned());
        let mut shared = ctx.stack.lock().await;
        if let Some((l, s)) = shared.as_ref()
            && *l == layout
        {
            let s = s.clone();
            drop(shared);
            // A real router may still hold the previous scenario's fault against a node (an
            // open circuit breaker outlives the heal: docs/findings.md, finding 4). Each
            // scenario starts from a system that serves disaggregated, or fails saying why,
            // rather than inheriting the last one's refusals.
            if s.router() != crate::sim::stack::RouterKind::Builtin
                && let Err(e) = s.wait_mode("disaggregated", Duration::from_secs(60)).await
            {
                panic!(
                    "before this scenario: the {} router did not serve disaggregated again \
                     after the previous scenario's faults were healed: {e}",
                    s.router().as_str()
                );
            }
            self.ensure_nemesis(&s);
            return s;
        }
        if let Some((_, old)) = shared.take() {
            old.shutdown().await;
        }
        let mut cfg = StackConfig::new(ctx.binary.clone());
        cfg.prefill = layout.prefill;
        cfg.decode = layout.decode;
        cfg.groups = layout.groups;
        cfg.profile = layout.profile.clone();
        cfg.router = layout.router;
        for b in &layout.breaks {
            cfg.breaks.set(b).unwrap_or_else(|e| panic!("{e}"));
        }
        eprintln!(
            "  (starting local stack {}P/{}D x{} {} {:?}, router {})",
            layout.prefill,
            layout.decode,
            layout.groups,
            layout.profile,
            layout.breaks,
            layout.router.as_str()
        );
        let s = Stack::start(cfg)
            .await
            .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
        if let Some(cmd) = s.router_command() {
            // `pdchaos scorecard` reads the exact flags off this line.
            eprintln!("  (router command: {cmd})");
        }
        *shared = Some((layout, s.clone()));
        drop(shared);
        self.ensure_nemesis(&s);
        s
    }

    fn ensure_nemesis(&mut self, s: &Stack) {
        if self.nemesis.is_none() {
            let control: Arc<dyn NodeControl> = Arc::new(s.clone());
            let n = Nemesis::new(&context().journal, Some(control))
                .unwrap_or_else(|e| panic!("fault journal: {e}"));
            self.nemesis = Some(n);
        }
    }

    pub fn nemesis(&self) -> &Nemesis {
        self.nemesis.as_ref().expect("a deployment is running")
    }

    pub fn next_fault_id(&mut self, what: &str) -> String {
        self.fault_seq += 1;
        format!("{}-{what}-{}", clock::now_us() / 1000, self.fault_seq)
    }

    fn load_config(&self, d: &Deployment, users: u32, duration: Duration) -> LoadConfig {
        let mut cfg = LoadConfig::new(d.base_url(), d.model());
        cfg.shape = Shape::Closed {
            users,
            ramp: self.load.ramp,
        };
        cfg.duration = Some(duration);
        cfg.unique_prefix = self.load.unique_prefix;
        cfg.sampling.max_tokens = self.load.max_tokens;
        cfg.timeouts.first_token = Duration::from_secs(10);
        cfg.timeouts.total = Duration::from_secs(30);
        if let Some(p) = &self.load.prompt {
            cfg.prompts = PromptSource::Inline(p.clone());
        }
        cfg
    }

    /// Runs the load for `duration` with `users`, applying the scheduled faults on time.
    pub async fn run_load(
        &mut self,
        name: &str,
        users: u32,
        duration: Duration,
    ) -> Vec<RequestRecord> {
        let d = self.deployment().await;
        let cfg = self.load_config(&d, users, duration);
        // A mode seen only in metrics is polled while the load runs and written onto the
        // records afterwards, so the mode checks judge it like the header.
        let prom = match &d {
            Deployment::Cluster(c) => match &c.target.degraded {
                DegradedSignal::Prometheus(p) => Some(p.clone()),
                _ => None,
            },
            Deployment::Local(_) => None,
        };
        let stop_poll = CancellationToken::new();
        let poller = prom.clone().map(|p| {
            crate::target::prometheus::poll(p, Duration::from_millis(250), stop_poll.clone())
        });
        // Load from a Kubernetes Job starts after the pods are given time to be scheduled;
        // the fault schedule counts from the moment every shard starts sending.
        let job = match &d {
            Deployment::Cluster(c) => c.target.load.clone().map(|l| (c.kube.clone(), l)),
            Deployment::Local(_) => None,
        };
        let delay = job.as_ref().map_or(Duration::ZERO, |(_, l)| {
            Duration::from_millis(l.start_delay_ms)
        });
        let start = tokio::time::Instant::now() + delay;
        let start_at_ms = clock::now_us() / 1000 + delay.as_millis() as u64;
        let nemesis = self.nemesis().clone();
        let scheduled = std::mem::take(&mut self.scheduled);
        let injector = tokio::spawn(async move {
            let mut errors = Vec::new();
            for s in scheduled {
                tokio::time::sleep_until(start + s.at).await;
                for spec in s.specs {
                    if let Err(e) = nemesis.apply(spec).await {
                        errors.push(e.to_string());
                    }
                }
            }
            errors
        });
        let mut records = match job {
            Some((kube, l)) => {
                let job = crate::target::kubernetes::LoadJob {
                    name: format!("pdchaos-load-{start_at_ms}"),
                    image: l.image.clone(),
                    shards: l.shards,
                    args: load_args(&cfg),
                    start_at_ms,
                };
                eprintln!("  (load: Job {} of {} shards)", job.name, job.shards);
                kube.run_load_job(&job, delay + duration + Duration::from_secs(120))
                    .await
                    .unwrap_or_else(|e| panic!("distributed load: {e}"))
            }
            None => crate::load::run(cfg, CancellationToken::new(), |_| {})
                .await
                .unwrap_or_else(|e| panic!("load: {e}")),
        };
        stop_poll.cancel();
        if let (Some(p), Some(poller)) = (&prom, poller) {
            let (samples, failed) = poller.await.unwrap_or_default();
            assert!(
                !samples.is_empty(),
                "Prometheus at {} answered none of {failed} queries for the mode",
                p.url
            );
            crate::target::prometheus::annotate(&mut records, &samples, p);
        }
        match injector.await {
            Ok(errors) if !errors.is_empty() => {
                panic!("a fault could not be applied: {}", errors.join("; "))
            }
            Err(e) => panic!("fault injector failed: {e}"),
            _ => {}
        }
        self.records.extend(records.iter().cloned());
        self.runs.push((name.to_string(), records.clone()));
        self.ended_us = clock::now_us();
        records
    }

    pub fn fault_window(&self) -> Option<FaultWindow> {
        windows::fault_window(
            &self
                .nemesis
                .as_ref()
                .map(Nemesis::timeline)
                .unwrap_or_default(),
        )
    }

    /// What the serving side did during the fault and after its heal (`None` without a fault).
    pub fn explanation(&self) -> Option<crate::check::explain::Explanation> {
        let f = self.fault_window()?;
        let timeline = self
            .nemesis
            .as_ref()
            .map(Nemesis::timeline)
            .unwrap_or_default();
        let nodes = crate::check::explain::faulted_nodes(&timeline);
        Some(crate::check::explain::explain(&self.records, f, &nodes))
    }

    /// Records a verdict like [`PdWorld::judge`]; a failed one first gets the explanation of
    /// what the serving side did during the fault appended to its detail.
    pub fn judge_explained(&mut self, mut v: Verdict) {
        if !v.passed
            && let Some(e) = self.explanation()
        {
            v.detail = Some(match v.detail.take() {
                Some(d) => format!("{d}; {e}"),
                None => e.to_string(),
            });
        }
        self.judge(v);
    }

    /// The records window for a span; panics with a clear message when the span has no meaning.
    pub fn window(&self, span: Span) -> Window {
        let end = self
            .records
            .iter()
            .map(|r| r.end_us)
            .max()
            .unwrap_or(self.ended_us)
            .max(self.ended_us);
        windows::window(span, (self.started_us, end + 1), self.fault_window()).unwrap_or_else(
            || panic!("there is no `{span}` window: no fault was applied, or it was never healed"),
        )
    }

    /// Records a verdict; a failed one fails the step with what was measured.
    pub fn judge(&mut self, v: Verdict) {
        let passed = v.passed;
        let msg = format!(
            "{}: measured {}, expected {}{}",
            v.expectation,
            v.measured,
            v.bound,
            v.detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        self.verdicts.push(v);
        assert!(passed, "{msg}");
    }

    pub fn run_records(&self, name: &str) -> &[RequestRecord] {
        self.runs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_slice())
            .unwrap_or_else(|| panic!("no load run named \"{name}\""))
    }
}

/// `pdchaos load` arguments that make a load Job's shards run `cfg`, the same configuration the
/// in-process engine gets, so the two ways of running a scenario's load cannot drift apart.
fn load_args(cfg: &LoadConfig) -> Vec<String> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut a: Vec<String> = vec![
        "--url".into(),
        cfg.base_url.clone(),
        "--model".into(),
        cfg.model.clone(),
        "--timeout-first-token".into(),
        ms(cfg.timeouts.first_token),
        "--timeout".into(),
        ms(cfg.timeouts.total),
    ];
    if let Shape::Closed { users, ramp } = cfg.shape {
        a.extend(["-c".into(), users.to_string()]);
        if let Some(r) = ramp {
            a.extend(["--ramp".into(), format!("{}/{}", r.users, ms(r.every))]);
        }
    }
    if let Some(d) = cfg.duration {
        a.extend(["--duration".into(), ms(d)]);
    }
    if let Some(m) = cfg.sampling.max_tokens {
        a.extend(["--max-tokens".into(), m.to_string()]);
    }
    if !cfg.unique_prefix {
        a.push("--no-unique-prefix".into());
    }
    if let PromptSource::Inline(p) = &cfg.prompts {
        a.extend(["--prompt".into(), p.clone()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// The arguments a load Job's shards get parse back, through `pdchaos load`'s own command
    /// line, into the configuration the in-process engine would run.
    #[test]
    fn load_job_args_give_the_same_load_config() {
        let mut cfg = LoadConfig::new("http://gw:8000/v1", "m");
        cfg.shape = Shape::Closed {
            users: 6,
            ramp: Some(Ramp {
                users: 2,
                every: Duration::from_millis(250),
            }),
        };
        cfg.duration = Some(Duration::from_secs(7));
        cfg.unique_prefix = false;
        cfg.sampling.max_tokens = Some(12);
        cfg.timeouts.first_token = Duration::from_secs(10);
        cfg.timeouts.total = Duration::from_secs(30);
        let args = load_args(&cfg);
        let cli = Cli::try_parse_from(
            ["pdchaos", "load"]
                .into_iter()
                .map(String::from)
                .chain(args.clone()),
        )
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Command::Load(a) = cli.command else {
            panic!("not a load command")
        };
        let back = crate::cli::load::config_from_args(&a).unwrap();
        assert_eq!(
            (back.base_url.as_str(), back.model.as_str()),
            ("http://gw:8000/v1", "m")
        );
        assert_eq!(format!("{:?}", back.shape), format!("{:?}", cfg.shape));
        assert_eq!(back.duration, cfg.duration);
        assert_eq!(back.unique_prefix, cfg.unique_prefix);
        assert_eq!(back.sampling.max_tokens, cfg.sampling.max_tokens);
        assert_eq!(
            (back.timeouts.first_token, back.timeouts.total),
            (cfg.timeouts.first_token, cfg.timeouts.total)
        );
        assert_eq!(format!("{:?}", back.prompts), format!("{:?}", cfg.prompts));
    }
}
