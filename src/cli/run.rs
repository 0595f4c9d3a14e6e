//! `pdchaos run`: the resilience suite against the local stack (default) or a target file.

use crate::cli::bad_input;
use crate::sim::stack::RouterKind;
use crate::suite::world::{Cluster, Layout};
use crate::suite::{self, RunOptions};
use crate::target::{LocalRouter, Target, load_target};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
    pdchaos run                                   every feature in ./features against a local 1P/1D stack\n  \
    pdchaos run features/prefill_failure.feature --junit junit.xml\n  \
    pdchaos run --tags '@smoke and not @slow' --out reports/nightly\n  \
    pdchaos run --list-steps                      the step vocabulary (docs/steps.md)\n  \
    pdchaos run --target targets/llm-d.yaml features/prefill_failure.feature   on a staging cluster (only its allow-listed context and namespaces)\n\n\
Each scenario leaves OUT/<scenario>/ with records.jsonl, timeline.jsonl, windows.json, verdicts.json.\n\
Exit codes: 0 every scenario passed, 1 a scenario failed, 2 bad input.")]
pub struct RunArgs {
    /// Feature files or folders (default: ./features).
    pub features: Vec<PathBuf>,
    /// A target file describing a deployment; without it, a local stack is started.
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Tag expression, e.g. '@prefill and not @slow'.
    #[arg(long)]
    pub tags: Option<String>,
    /// Only scenarios whose name contains this text.
    #[arg(long)]
    pub name: Option<String>,
    /// Leave out the scenario with exactly this name (repeatable).
    #[arg(long = "skip-scenario", value_name = "NAME")]
    pub skip_scenario: Vec<String>,
    /// Write JUnit XML here (one test case per scenario).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the run index as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "pdchaos-out")]
    pub out: PathBuf,
    /// Break the local stack on purpose (to see scenarios fail): no-fallback-on-prefill-death,
    /// ignore-kv-cut, never-recover, drop-answer-after-thinking, no-done.
    #[arg(long = "break", value_name = "NAME")]
    pub breaks: Vec<String>,
    /// Print the step vocabulary as Markdown and exit.
    #[arg(long)]
    pub list_steps: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    if args.list_steps {
        print!("{}", suite::steps::markdown());
        return Ok(0);
    }
    let mut layout = Layout::default();
    let mut breaks = args.breaks.clone();
    let mut target = "local stack (pdchaos sim, profile tiny)".to_string();
    let mut cluster = None;
    // Kept for the whole run: the port-forward to the cluster's Toxiproxy, if any.
    let mut forward = None;
    if let Some(path) = &args.target {
        match load_target(path).map_err(|e| bad_input(e.to_string()))? {
            Target::Local(l) => {
                let router = match l.router {
                    LocalRouter::Builtin => RouterKind::Builtin,
                    LocalRouter::Sglang => RouterKind::Sglang,
                    LocalRouter::Vllm => RouterKind::Vllm,
                };
                if router != RouterKind::Builtin {
                    crate::sim::stack::find_router(router).map_err(|e| {
                        bad_input(format!(
                            "{}: router {}: {e}",
                            path.display(),
                            router.as_str()
                        ))
                    })?;
                }
                layout = Layout {
                    prefill: l.ratio.prefill,
                    decode: l.ratio.decode,
                    groups: l.groups,
                    profile: l.profile.clone(),
                    breaks: vec![],
                    router,
                };
                breaks.extend(l.breaks.iter().cloned());
                target = format!(
                    "{} (local stack {}P/{}D, profile {}, router {})",
                    path.display(),
                    l.ratio.prefill,
                    l.ratio.decode,
                    l.profile,
                    router.as_str()
                );
            }
            Target::Kubernetes(k) => {
                if !args.breaks.is_empty() {
                    return Err(bad_input(
                        "--break switches defects on in the local stack only, not on a cluster",
                    ));
                }
                let (kube, pf) = crate::cli::fault::connect_cluster(path, &k).await?;
                forward = pf;
                target = format!(
                    "{} (Kubernetes {} in {:?}, endpoint {})",
                    path.display(),
                    k.context,
                    k.namespaces,
                    k.endpoint
                );
                cluster = Some(Cluster { target: k, kube });
            }
        }
    }
    let mut check = crate::sim::stack::Breaks::default();
    for b in &breaks {
        check
            .set(b)
            .map_err(|e| bad_input(format!("--break: {e}")))?;
    }
    let mut features = Vec::new();
    let inputs = if args.features.is_empty() {
        vec![PathBuf::from("features")]
    } else {
        args.features.clone()
    };
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| bad_input(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "feature"))
                .collect();
            found.sort();
            features.extend(found);
        } else if p.is_file() {
            features.push(p);
        } else {
            return Err(bad_input(format!(
                "{}: no such feature file or folder",
                p.display()
            )));
        }
    }
    if features.is_empty() {
        return Err(bad_input("no .feature files found"));
    }
    let opts = RunOptions {
        features,
        tags: args.tags,
        name: args.name,
        skip: args.skip_scenario,
        out_dir: args.out.clone(),
        binary: std::env::current_exe()?,
        force_breaks: breaks,
        default_layout: layout,
        junit: args.junit,
        json: args.json,
        target,
        cluster,
    };
    let result = suite::run(opts).await.map_err(bad_input);
    if let Some(pf) = forward {
        pf.stop().await;
    }
    let result = result?;
    println!();
    for s in &result.scenarios {
        println!(
            "{}  {} / {}",
            if s.passed { "PASS" } else { "FAIL" },
            s.feature,
            s.name
        );
    }
    println!(
        "\nreports: {}/ (summary.md, run.json, one folder per scenario)",
        args.out.display()
    );
    match crate::report::write_report(&args.out, None, &crate::report::ReportOptions::default()) {
        Ok(f) => println!("report:  {}", f.html.display()),
        Err(e) => eprintln!("report: {e}"),
    }
    println!("{} passed, {} failed", result.passed(), result.failed());
    Ok(if result.ok() { 0 } else { 1 })
}
