//! The resilience suite: Gherkin features run against a deployment, one scenario at a time.
//!
//! [`world`] holds a scenario's state, [`steps`] the vocabulary, [`faults`] the fault phrases.
//! [`run`] drives cucumber with scenarios in series, undefined steps failing the run, faults
//! healed before the first scenario and after every one, and an output folder per scenario
//! in the layout of [`crate::report::layout`].

pub mod faults;
pub mod output;
pub mod steps;
pub mod world;

use crate::clock::{self, Micros};
use crate::report::layout::ScenarioEntry;
use crate::sim::stack::Stack;
use cucumber::tag::Ext as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use world::{Layout, PdWorld};

/// What a run is given.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub features: Vec<PathBuf>,
    pub tags: Option<String>,
    /// Substring of scenario names to run.
    pub name: Option<String>,
    /// Scenarios (exact names) left out of the run.
    pub skip: Vec<String>,
    pub out_dir: PathBuf,
    /// The pdchaos executable used to start local nodes.
    pub binary: PathBuf,
    /// Defects forced on every local deployment (for the suite's own honesty tests).
    pub force_breaks: Vec<String>,
    /// JUnit XML and JSON copies of the results, for CI.
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// A description of the target for the report.
    pub target: String,
    /// The deployment of scenarios that do not ask for one (from the target file).
    pub default_layout: Layout,
    /// A Kubernetes target: scenarios run against it instead of the local stack.
    pub cluster: Option<world::Cluster>,
}

/// Shared by every scenario of a run.
pub struct Context {
    pub binary: PathBuf,
    pub out_dir: PathBuf,
    pub journal: PathBuf,
    pub force_breaks: Vec<String>,
    pub default_layout: Layout,
    pub stack: tokio::sync::Mutex<Option<(Layout, Stack)>>,
    /// The cluster's fault backend when the target file is a Kubernetes one.
    pub kube: Option<crate::fault::kube::KubeFaults>,
    /// The Kubernetes target, when the run is against a cluster rather than the local stack.
    pub cluster: Option<world::Cluster>,
    pub results: Mutex<Vec<ScenarioEntry>>,
    pub started_us: Micros,
}

static CONTEXT: OnceLock<Context> = OnceLock::new();

/// The run's shared context (set once by [`run`]).
pub fn context() -> &'static Context {
    CONTEXT
        .get()
        .expect("the suite context is set by suite::run")
}

/// On Ctrl-C or SIGTERM: heal every fault the journal says is open (using the running stack to
/// restart what was killed), stop the stack, and exit 130. The After hooks do not run when the
/// runner is interrupted, so this is what keeps a shared deployment from being left broken.
pub fn heal_on_interrupt() {
    tokio::spawn(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("\ninterrupted: healing faults and stopping the local stack ...");
        let Some(ctx) = CONTEXT.get() else {
            std::process::exit(130)
        };
        let stack = ctx.stack.lock().await.take();
        let control = stack
            .as_ref()
            .map(|(_, s)| s as &dyn crate::fault::control::NodeControl);
        let healers = crate::fault::nemesis::Healers {
            control,
            kube: ctx.kube.as_ref(),
        };
        match crate::fault::nemesis::heal_journal(&ctx.journal, healers).await {
            Ok(r) if r.is_clean() => eprintln!("healed {} fault(s)", r.healed.len()),
            Ok(r) => eprintln!("COULD NOT HEAL: {}", r.leftovers.join("; ")),
            Err(e) => eprintln!("COULD NOT HEAL: {e}"),
        }
        if let Some((_, s)) = stack {
            s.shutdown().await;
        }
        std::process::exit(130);
    });
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub scenarios: Vec<ScenarioEntry>,
    /// Steps that matched no definition, or parse errors: these fail the run.
    pub failed_steps_or_parse: bool,
}

impl RunResult {
    pub fn passed(&self) -> usize {
        self.scenarios.iter().filter(|s| s.passed).count()
    }
    pub fn failed(&self) -> usize {
        self.scenarios.len() - self.passed()
    }
    pub fn ok(&self) -> bool {
        !self.scenarios.is_empty() && self.failed() == 0 && !self.failed_steps_or_parse
    }
}

/// Runs the features; call once per process.
pub async fn run(opts: RunOptions) -> Result<RunResult, String> {
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("--out {}: {e}", opts.out_dir.display()))?;
    let journal = opts.out_dir.join("journal.jsonl");
    // Heal what an earlier, killed run left behind before breaking anything new.
    let healers = crate::fault::nemesis::Healers {
        control: None,
        kube: opts.cluster.as_ref().map(|c| &c.kube),
    };
    let left = crate::fault::nemesis::heal_journal(&journal, healers)
        .await
        .map_err(|e| e.to_string())?;
    if !left.is_clean() {
        eprintln!(
            "warning: an earlier run left faults that could not be healed: {}",
            left.leftovers.join("; ")
        );
    }
    heal_on_interrupt();
    let tags = match &opts.tags {
        Some(t) => Some(
            t.parse::<cucumber::gherkin::tagexpr::TagOperation>()
                .map_err(|e| format!("--tags `{t}`: {e}"))?,
        ),
        None => None,
    };
    if CONTEXT
        .set(Context {
            binary: opts.binary.clone(),
            out_dir: opts.out_dir.clone(),
            journal,
            force_breaks: opts.force_breaks.clone(),
            default_layout: opts.default_layout.clone(),
            stack: tokio::sync::Mutex::new(None),
            kube: opts.cluster.as_ref().map(|c| c.kube.clone()),
            cluster: opts.cluster.clone(),
            results: Mutex::new(Vec::new()),
            started_us: clock::now_us(),
        })
        .is_err()
    {
        return Err("the suite can run once per process".into());
    }
    let patterns = steps::all()
        .into_iter()
        .map(|s| {
            regex::Regex::new(s.pattern)
                .map(|re| (s.kind, re, s.run))
                .map_err(|e| format!("step pattern {}: {e}", s.pattern))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let name = opts.name.clone();
    let mut failed_parse = false;
    for feature in &opts.features {
        let (tags, name, skip) = (tags.clone(), name.clone(), opts.skip.clone());
        let mut cucumber = cucumber::Cucumber::<PdWorld, _, PathBuf, _, _>::new()
            .max_concurrent_scenarios(1)
            .with_default_cli();
        for (kind, re, run) in &patterns {
            cucumber = match kind {
                steps::Kind::Given => cucumber.given(re.clone(), *run),
                steps::Kind::When => cucumber.when(re.clone(), *run),
                steps::Kind::Then => cucumber.then(re.clone(), *run),
            };
        }
        let writer = cucumber
            .fail_on_skipped()
            .after(|feature, _rule, scenario, finished, world| {
                Box::pin(output::after_scenario(feature, scenario, finished, world))
            })
            .filter_run(feature.clone(), move |_, _, sc| {
                let tag_ok = tags.as_ref().is_none_or(|t| t.eval(sc.tags.iter()));
                let name_ok = name.as_ref().is_none_or(|n| sc.name.contains(n.as_str()));
                tag_ok && name_ok && !skip.contains(&sc.name)
            })
            .await;
        use cucumber::writer::Stats as _;
        if writer.parsing_errors() > 0 || writer.hook_errors() > 0 {
            failed_parse = true;
        }
    }
    if let Some((_, s)) = context().stack.lock().await.take() {
        s.shutdown().await;
    }
    let scenarios = context()
        .results
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let result = RunResult {
        scenarios,
        failed_steps_or_parse: failed_parse,
    };
    output::write_run(&opts, &result)
        .map_err(|e| format!("writing {}: {e}", opts.out_dir.display()))?;
    Ok(result)
}
