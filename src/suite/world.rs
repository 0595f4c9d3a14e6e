//! The scenario's world: the deployment it asked for, the load it will run, the faults it
//! schedules, and everything recorded while it ran (records, timeline, verdicts).

use crate::check::Verdict;
use crate::check::windows::{self, FaultWindow, Span};
use crate::clock::{self, Micros};
use crate::fault::control::NodeControl;
use crate::fault::model::FaultSpec;
use crate::fault::nemesis::Nemesis;
use crate::load::engine::{LoadConfig, Ramp, Shape};
use crate::load::metrics::Window;
use crate::load::prompts::PromptSource;
use crate::load::record::RequestRecord;
use crate::report::layout::SweepRow;
use crate::sim::stack::{RouterKind, Stack, StackConfig};
use crate::suite::context;
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
    /// The running deployment this scenario asked for (started or reused).
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

    fn load_config(&self, base_url: String, users: u32, duration: Duration) -> LoadConfig {
        let mut cfg = LoadConfig::new(base_url, "pdchaos-sim");
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
        let stack = self.stack().await;
        let cfg = self.load_config(stack.base_url(), users, duration);
        let nemesis = self.nemesis().clone();
        let scheduled = std::mem::take(&mut self.scheduled);
        let injector = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
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
        let records = crate::load::run(cfg, CancellationToken::new(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("load: {e}"));
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
