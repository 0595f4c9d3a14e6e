//! `pdchaos scorecard`: the feature set against the local stack once per router (ours, the
//! SGLang model gateway, the vLLM router), each as its own `pdchaos run` child process with a
//! local target file of its own and its own output folder; then one table of every scenario by
//! router, written as Markdown and JSON ([`crate::report::scorecard`]).
//!
//! Scenarios that ask for more groups than a real router supports (one pool of workers) are left
//! out of that router's run (`pdchaos run --skip-scenario`) and marked skipped, with the reason.

use crate::cli::bad_input;
use crate::report::scorecard::{self, RouterRun, Row, Scorecard};
use crate::sim::stack::{RouterKind, find_router};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
    pdchaos scorecard                                     every feature, builtin + sglang + vllm, writes docs/scorecard.md and .json\n  \
    pdchaos scorecard --routers sglang,vllm --features features/prefill_failure.feature --out /tmp/sc\n  \
    pdchaos scorecard --repeat 3                          every cell from 3 runs: results that differ show as 2/3 pass\n  \
    pdchaos scorecard --no-run                            rebuild the table from the run folders of the last scorecard\n\n\
The real routers are found as `pdchaos sim up --router` finds them ($PDCHAOS_SGLANG_ROUTER,\n\
$PDCHAOS_VLLM_ROUTER, PATH, ./.venv/bin); their flags are in docs/routers.md.\n\
Exit codes: 0 the scorecard was written (whatever the routers scored), 2 bad input or a run that could not start.")]
pub struct ScorecardArgs {
    /// Routers to score, comma-separated: builtin, sglang, vllm.
    #[arg(long, value_delimiter = ',', default_value = "builtin,sglang,vllm")]
    pub routers: Vec<String>,
    /// Feature file or folder.
    #[arg(long, default_value = "features")]
    pub features: PathBuf,
    /// Output path without extension: writes OUT.md and OUT.json.
    #[arg(long, default_value = "docs/scorecard")]
    pub out: PathBuf,
    /// Where each router's target file, run folder and log go.
    #[arg(long, default_value = "pdchaos-out/scorecard")]
    pub work: PathBuf,
    /// Do not run anything: rebuild the table from the run folders already in --work.
    #[arg(long)]
    pub no_run: bool,
    /// Runs of the feature set per router: each cell shows every run (results that differ as
    /// `2/3 pass`, figures that differ run by run).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
}

fn router_kind(name: &str) -> Option<RouterKind> {
    [RouterKind::Builtin, RouterKind::Sglang, RouterKind::Vllm]
        .into_iter()
        .find(|k| k.as_str() == name)
}

/// A scenario that asks for several groups: feature name, scenario name, groups.
pub type MultiGroup = (String, String, usize);

/// Scenarios that ask for more than one group, with the count asked for.
pub fn multi_group_scenarios(features: &[PathBuf]) -> Result<Vec<MultiGroup>, String> {
    use cucumber::gherkin::{Feature, GherkinEnv, Step};
    let re = regex::Regex::new(r"\bin (\d+) groups\b").map_err(|e| e.to_string())?;
    let groups = |steps: &[Step]| {
        steps
            .iter()
            .filter_map(|s| re.captures(&s.value))
            .filter_map(|c| c[1].parse::<usize>().ok())
            .max()
    };
    let mut out = Vec::new();
    for f in features {
        let feature = Feature::parse_path(f, GherkinEnv::default())
            .map_err(|e| format!("{}: {e}", f.display()))?;
        let bg = feature.background.as_ref().and_then(|b| groups(&b.steps));
        let scenarios = feature
            .scenarios
            .iter()
            .chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()));
        for s in scenarios {
            if let Some(n) = groups(&s.steps).or(bg).filter(|n| *n > 1) {
                out.push((feature.name.clone(), s.name.clone(), n));
            }
        }
    }
    Ok(out)
}

fn feature_files(p: &Path) -> Result<Vec<PathBuf>, String> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    if !p.is_dir() {
        return Err(format!(
            "--features {}: no such feature file or folder",
            p.display()
        ));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| format!("--features {}: {e}", p.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.extension().is_some_and(|x| x == "feature"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!("--features {}: no .feature files", p.display()));
    }
    Ok(found)
}

/// A real router's version: its `--version` line, else the wheel's pip metadata
/// (`<venv>/lib/python*/site-packages/<pkg>-<version>.dist-info` next to the executable).
fn router_version(kind: RouterKind, exe: &Path) -> String {
    let pkg = kind
        .package()
        .unwrap_or("")
        .split("==")
        .next()
        .unwrap_or("");
    if let Ok(o) = std::process::Command::new(exe).arg("--version").output() {
        let text = String::from_utf8_lossy(&o.stdout);
        let line = text.lines().next().unwrap_or("").trim();
        if o.status.success() && !line.is_empty() && line.chars().any(|c| c.is_ascii_digit()) {
            return format!("{line} (`{} --version`)", kind.executable().unwrap_or(""));
        }
    }
    let dist = format!("{}-", pkg.replace('-', "_"));
    let lib = exe
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().and_then(Path::parent).map(|v| v.join("lib")));
    let found = lib
        .and_then(|l| std::fs::read_dir(l).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|py| std::fs::read_dir(py.path().join("site-packages")).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .find_map(|n| {
            n.strip_prefix(&dist)?
                .strip_suffix(".dist-info")
                .map(String::from)
        });
    match found {
        Some(v) => format!("{pkg} {v} (pip metadata)"),
        None => format!("{pkg} (version unknown: no --version, no dist-info found)"),
    }
}

/// The router command line of a run's log, with the executable's folder and the run's ports
/// replaced (so regenerating the scorecard does not change it for nothing).
pub fn normalise_command(line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut prev = String::new();
    let port_url = regex::Regex::new(r"^(https?://[^/:]+):\d+(.*)$").expect("valid regex");
    for (i, tok) in line.split_whitespace().enumerate() {
        let t = if i == 0 {
            Path::new(tok)
                .file_name()
                .map_or(tok.to_string(), |f| f.to_string_lossy().into_owned())
        } else if prev == "--port" || prev == "--prometheus-port" {
            "<port>".into()
        } else if prev.starts_with("http")
            && out.iter().rev().nth(1).is_some_and(|p| p == "--prefill")
        {
            "<kv-port>".into()
        } else if let Some(c) = port_url.captures(tok) {
            format!("{}:<port>{}", &c[1], &c[2])
        } else {
            tok.to_string()
        };
        prev = tok.to_string();
        out.push(t);
    }
    out.join(" ")
}

/// Run `run` (from 1) of router `kind`: its output folder and its log.
fn run_paths(work: &Path, kind: RouterKind, run: u32) -> (PathBuf, PathBuf) {
    let dir = work.join(kind.as_str());
    (
        dir.join(format!("run-{run}")),
        dir.join(format!("run-{run}.log")),
    )
}

async fn run_router(
    exe: &Path,
    kind: RouterKind,
    features: &Path,
    skip: &[MultiGroup],
    work: &Path,
    run: u32,
) -> anyhow::Result<()> {
    let name = kind.as_str();
    let target = work.join(format!("{name}.yaml"));
    std::fs::write(
        &target,
        format!(
            "# Written by pdchaos scorecard: the local stack behind the {name} router.\n\
             name: scorecard-{name}\n\
             local:\n  ratio: {{prefill: 1, decode: 1}}\n  groups: 1\n  profile: tiny\n  router: {name}\n"
        ),
    )
    .map_err(|e| bad_input(format!("--work {}: {e}", work.display())))?;
    let (out, log_path) = run_paths(work, kind, run);
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .map_err(|e| bad_input(format!("--work {}: {e}", out.display())))?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| bad_input(format!("--work {}: {e}", parent.display())))?;
    }
    let log = std::fs::File::create(&log_path)
        .map_err(|e| bad_input(format!("--work {}: {e}", log_path.display())))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("run")
        .arg("--target")
        .arg(&target)
        .arg("--out")
        .arg(&out)
        .arg(features);
    for (_, s, _) in skip {
        cmd.arg("--skip-scenario").arg(s);
    }
    cmd.stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
    let started = std::time::Instant::now();
    eprintln!(
        "scorecard: {name}: run {run}: pdchaos run (log {}) ...",
        log_path.display()
    );
    let status = cmd.status().await?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let closing = text
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or("");
    match status.code() {
        Some(0 | 1) => {
            eprintln!(
                "scorecard: {name}: run {run}: {closing} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        code => {
            let err = text
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("no error line");
            Err(bad_input(format!(
                "--routers {name}: pdchaos run exited {code:?}: {err} (log {})",
                log_path.display()
            )))
        }
    }
}

pub async fn run(args: ScorecardArgs) -> anyhow::Result<i32> {
    let mut kinds = Vec::new();
    for r in &args.routers {
        let k = router_kind(r.trim()).ok_or_else(|| {
            bad_input(format!(
                "--routers: unknown router `{r}` (builtin, sglang, vllm)"
            ))
        })?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    if kinds.is_empty() {
        return Err(bad_input("--routers: name at least one router"));
    }
    let files = feature_files(&args.features).map_err(bad_input)?;
    let multi = multi_group_scenarios(&files).map_err(|e| bad_input(format!("--features {e}")))?;
    let mut exes = Vec::new();
    for k in &kinds {
        let exe = if *k == RouterKind::Builtin {
            None
        } else {
            Some(find_router(*k).map_err(|e| bad_input(format!("--routers {}: {e}", k.as_str())))?)
        };
        exes.push(exe);
    }
    std::fs::create_dir_all(&args.work)
        .map_err(|e| bad_input(format!("--work {}: {e}", args.work.display())))?;
    let me = std::env::current_exe()?;
    let mut routers = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for (k, exe) in kinds.iter().zip(&exes) {
        let name = k.as_str();
        let skip: Vec<MultiGroup> = if *k == RouterKind::Builtin {
            vec![]
        } else {
            multi.clone()
        };
        for run in 1..=args.repeat {
            if !args.no_run {
                run_router(&me, *k, &args.features, &skip, &args.work, run).await?;
            }
            let (dir, _) = run_paths(&args.work, *k, run);
            let cells = scorecard::read_run(&dir).map_err(|e| {
                bad_input(format!(
                    "--work {}: {e} (run without --no-run, with the same --repeat)",
                    args.work.display()
                ))
            })?;
            scorecard::merge(&mut rows, name, cells);
        }
        let skipped: Vec<(String, String)> = skip
            .iter()
            .map(|(_, s, n)| {
                (
                    s.clone(),
                    format!(
                        "needs {n} groups; a real router fronts one pool of workers (sim up --router refuses --groups > 1)"
                    ),
                )
            })
            .collect();
        for ((feature, s, _), (_, why)) in skip.iter().zip(&skipped) {
            match rows
                .iter_mut()
                .find(|r| &r.feature == feature && &r.scenario == s)
            {
                Some(r) => {
                    r.cells.insert(name.into(), vec![scorecard::skipped(why)]);
                }
                None => rows.push(Row {
                    feature: feature.clone(),
                    scenario: s.clone(),
                    cells: [(name.to_string(), vec![scorecard::skipped(why)])].into(),
                }),
            }
            eprintln!("scorecard: {name}: skipped \"{s}\": {why}");
        }
        let log = std::fs::read_to_string(run_paths(&args.work, *k, 1).1).unwrap_or_default();
        let command = match exe {
            None => "pdchaos sim router (the builtin router, as the local stack starts it: policy round_robin, falls back to decode-only / prefill-only)".to_string(),
            Some(_) => log
                .lines()
                .find_map(|l| l.trim().strip_prefix("(router command: "))
                .map(|c| normalise_command(c.trim_end_matches(')')))
                .unwrap_or_else(|| "not recorded (no router command line in the run's log)".into()),
        };
        routers.push(RouterRun {
            router: name.into(),
            version: match exe {
                None => format!("pdchaos {}", env!("CARGO_PKG_VERSION")),
                Some(e) => router_version(*k, e),
            },
            command,
            target_file: args.work.join(format!("{name}.yaml")).display().to_string(),
            run_dir: args.work.join(name).display().to_string(),
            skipped,
        });
    }
    let command = format!(
        "pdchaos scorecard --routers {} --features {} --out {}{}",
        kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(","),
        args.features.display(),
        args.out.display(),
        if args.repeat > 1 {
            format!(" --repeat {}", args.repeat)
        } else {
            String::new()
        }
    );
    let card = Scorecard {
        command,
        pdchaos_version: env!("CARGO_PKG_VERSION").into(),
        repeat: args.repeat,
        features: files.iter().map(|f| f.display().to_string()).collect(),
        routers,
        rows,
    };
    let (md, json) = (
        args.out.with_extension("md"),
        args.out.with_extension("json"),
    );
    if let Some(parent) = md.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| bad_input(format!("--out {}: {e}", parent.display())))?;
    }
    std::fs::write(&md, card.to_markdown())
        .map_err(|e| bad_input(format!("--out {}: {e}", md.display())))?;
    std::fs::write(&json, card.to_json())
        .map_err(|e| bad_input(format!("--out {}: {e}", json.display())))?;
    println!("scorecard: {} and {}", md.display(), json.display());
    for r in &card.routers {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for row in &card.rows {
            if let Some(runs) = row.cells.get(&r.router) {
                *count.entry(scorecard::outcome(runs)).or_default() += 1;
            }
        }
        let n = |k: &str| count.get(k).copied().unwrap_or(0);
        let mixed = if n("mixed") > 0 {
            format!(", {} passed in some runs only", n("mixed"))
        } else {
            String::new()
        };
        println!(
            "  {}: {} passed, {} failed{mixed}, {} skipped",
            r.router,
            n("pass"),
            n("fail"),
            n("skipped")
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_command_lines_lose_paths_and_ports() {
        let line = "/x/.venv/bin/vllm-router --vllm-pd-disaggregation --host 127.0.0.1 --port 4321 \
                    --prometheus-port 99 --policy round_robin --prefill http://127.0.0.1:555 777 \
                    --decode http://127.0.0.1:666";
        assert_eq!(
            normalise_command(line),
            "vllm-router --vllm-pd-disaggregation --host 127.0.0.1 --port <port> \
             --prometheus-port <port> --policy round_robin --prefill http://127.0.0.1:<port> \
             <kv-port> --decode http://127.0.0.1:<port>"
        );
    }
}
