//! The router scorecard: one row per scenario, one column group per router, read from the run
//! folders `pdchaos run --out` left (one per router), rendered as Markdown and JSON.
//!
//! Per cell: pass/fail (or skipped, with the reason), and from the scenario's evidence
//! - **detect**: from the fault until the router stopped sending requests to the faulted node
//!   ([`crate::check::explain::Explanation::detect_ms`], from `records.jsonl` and
//!   `timeline.jsonl`);
//! - **recover**: from the heal until every request sent was `ok` (and disaggregated, where the
//!   mode is reported);
//! - **success during the fault**: `windows.json`'s `during` window;
//! - **why** it failed: the first failing verdict of `verdicts.json` (or the step error of
//!   `scenario.json`).
//!
//! Scenarios without a fault have no detect / recover / during figures.

use crate::check::Verdict;
use crate::check::explain::{self, Explanation};
use crate::check::windows;
use crate::fault::model::TimelineEvent;
use crate::load::metrics::Summary;
use crate::load::record::RequestRecord;
use crate::report::layout::{self, RunIndex, ScenarioMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A router's run: what was run and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterRun {
    /// `builtin`, `sglang`, `vllm`.
    pub router: String,
    /// Package and version, e.g. `sglang-router 0.3.2`.
    pub version: String,
    /// The router's command line as the stack started it (ports replaced by placeholders).
    pub command: String,
    /// The target file and run folder used.
    pub target_file: String,
    pub run_dir: String,
    /// Scenarios left out, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<(String, String)>,
}

/// One run of a scenario under one router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// `pass`, `fail`, `skipped` or `not run`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_ms: Option<f64>,
    /// Success rate during the fault, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_during_pct: Option<f64>,
    /// The fault happened: `detect_ms: None` then means "never stopped routing there".
    #[serde(default)]
    pub faulted: bool,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// What the router did during the fault (for failed scenarios with a fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// One scenario across routers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub feature: String,
    pub scenario: String,
    /// By router name: one cell per run of the scenario behind that router, in run order.
    pub cells: BTreeMap<String, Vec<Cell>>,
}

/// The whole scorecard (`docs/scorecard.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// The command that regenerates it.
    pub command: String,
    pub pdchaos_version: String,
    /// How many times each router ran the feature set.
    #[serde(default = "one")]
    pub repeat: u32,
    pub features: Vec<String>,
    pub routers: Vec<RouterRun>,
    pub rows: Vec<Row>,
}

fn one() -> u32 {
    1
}

fn read<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn read_jsonl<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", p.display(), i + 1))
        })
        .collect()
}

fn short(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(n).collect();
    if line.chars().count() > n {
        out.push_str("...");
    }
    out
}

/// A scenario's cell keyed by (feature, scenario name).
pub type KeyedCell = ((String, String), Cell);

/// The cells of one router's run folder, by (feature, scenario).
pub fn read_run(dir: &Path) -> Result<Vec<KeyedCell>, String> {
    let index: RunIndex = read(&dir.join(layout::RUN_INDEX))?;
    let mut out = Vec::new();
    for s in &index.scenarios {
        let sdir = dir.join(&s.dir);
        let verdicts: Vec<Verdict> = read(&sdir.join(layout::VERDICTS))?;
        let meta: ScenarioMeta = read(&sdir.join(layout::SCENARIO_META))?;
        let windows: BTreeMap<String, Summary> = read(&sdir.join(layout::WINDOWS))?;
        let records: Vec<RequestRecord> = read_jsonl(&sdir.join(layout::RECORDS))?;
        let timeline: Vec<TimelineEvent> = read_jsonl(&sdir.join(layout::TIMELINE))?;
        let expl: Option<Explanation> = windows::fault_window(&timeline)
            .map(|f| explain::explain(&records, f, &explain::faulted_nodes(&timeline)));
        let why = (!s.passed).then(|| {
            verdicts
                .iter()
                .find(|v| !v.passed)
                .map(|v| format!("{}: measured {}", v.expectation, v.measured))
                .or_else(|| meta.errors.first().map(|e| short(e, 200)))
                .unwrap_or_else(|| "failed (no verdict recorded)".into())
        });
        let cell = Cell {
            result: if s.passed { "pass" } else { "fail" }.into(),
            detect_ms: expl.as_ref().and_then(Explanation::detect_ms),
            recover_ms: expl.as_ref().and_then(|e| e.recovered_after_heal_ms),
            success_during_pct: expl
                .as_ref()
                .and_then(|_| windows.get("during"))
                .filter(|w| w.requests.total > 0)
                .map(|w| w.success_rate * 100.0),
            faulted: expl.is_some(),
            why,
            explanation: expl.filter(|_| !s.passed).map(|e| e.to_string()),
        };
        out.push(((s.feature.clone(), s.name.clone()), cell));
    }
    Ok(out)
}

/// Adds one run's cells of a router to the rows (appended to that router's earlier runs),
/// keeping the order in which scenarios were first seen; a scenario name seen twice in one run
/// (a Scenario Outline) gets ` #2`, ` #3`.
pub fn merge(rows: &mut Vec<Row>, router: &str, cells: Vec<KeyedCell>) {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for ((feature, name), cell) in cells {
        let n = seen.entry((feature.clone(), name.clone())).or_insert(0);
        *n += 1;
        let scenario = if *n > 1 { format!("{name} #{n}") } else { name };
        match rows
            .iter_mut()
            .find(|r| r.feature == feature && r.scenario == scenario)
        {
            Some(r) => r.cells.entry(router.into()).or_default().push(cell),
            None => rows.push(Row {
                feature,
                scenario,
                cells: BTreeMap::from([(router.to_string(), vec![cell])]),
            }),
        }
    }
}

/// A skipped scenario's cell.
pub fn skipped(why: &str) -> Cell {
    Cell {
        result: "skipped".into(),
        detect_ms: None,
        recover_ms: None,
        success_during_pct: None,
        faulted: false,
        why: Some(why.into()),
        explanation: None,
    }
}

fn secs(ms: Option<f64>, faulted: bool, never: &str) -> String {
    match ms {
        Some(m) => format!("{:.1} s", m / 1000.0),
        None if faulted => never.into(),
        None => "".into(),
    }
}

/// One figure over the runs: the value when every run agrees, else each run's in run order
/// (`1.1 / 1.4 / never s`), so a reader sees the spread rather than a median that hides it.
fn spread(runs: &[Cell], figure: impl Fn(&Cell) -> String) -> String {
    let all: Vec<String> = runs.iter().map(figure).collect();
    if all.windows(2).all(|w| w[0] == w[1]) {
        return all.into_iter().next().unwrap_or_default();
    }
    let unit = all.iter().any(|v| v.ends_with(" s"));
    let bare: Vec<String> = all
        .iter()
        .map(|v| {
            let v = if v.is_empty() { "-" } else { v.as_str() };
            v.strip_suffix(" s").unwrap_or(v).to_string()
        })
        .collect();
    format!("{}{}", bare.join(" / "), if unit { " s" } else { "" })
}

/// The result over the runs: `pass`, `**FAIL**`, `skipped`, or `**2/3 pass**` when the runs
/// disagree (the router's behaviour depends on timing).
fn combined_result(runs: &[Cell]) -> String {
    match outcome(runs) {
        "fail" => "**FAIL**".into(),
        "mixed" => {
            let passes = runs.iter().filter(|c| c.result == "pass").count();
            format!("**{passes}/{} pass**", runs.len())
        }
        word => word.into(),
    }
}

/// What [`combined_result`] says, as a plain word for counting: pass, fail, mixed, skipped.
pub fn outcome(runs: &[Cell]) -> &'static str {
    let passes = runs.iter().filter(|c| c.result == "pass").count();
    match runs.first().map(|c| c.result.as_str()) {
        None => "not run",
        Some("skipped") => "skipped",
        _ if passes == runs.len() => "pass",
        _ if passes == 0 => "fail",
        _ => "mixed",
    }
}

impl Scorecard {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "null".into()) + "\n"
    }

    /// The Markdown page (`docs/scorecard.md`).
    pub fn to_markdown(&self) -> String {
        let mut md = String::from("# Router scorecard\n\n");
        md.push_str(
            "Generated by `pdchaos scorecard`; do not edit. Every cell is one scenario of one \
             `pdchaos run` against the local stack (our prefill and decode workers, profile \
             `tiny`, 1P/1D unless the scenario asks for more) behind the router named in the \
             column, ",
        );
        md.push_str(&if self.repeat > 1 {
            format!(
                "run {} times on a shared 2-core machine. A result like **2/3 pass** means the \
                 runs disagreed (the router's behaviour depends on timing); a figure that \
                 differs between runs is given for each run in order (`1.1 / 1.4 / never s`).\n\n",
                self.repeat
            )
        } else {
            "one run each, on a shared 2-core machine: timings move by tenths of a second \
             between runs (`--repeat N` shows the spread).\n\n"
                .to_string()
        });
        md.push_str(&format!("Regenerate: `{}`\n\n", self.command));
        md.push_str(&format!(
            "pdchaos {}; features: {}\n\n",
            self.pdchaos_version,
            self.features.join(", ")
        ));
        md.push_str(
            "| router | version | command (flags as used; ports are the run's) |\n|---|---|---|\n",
        );
        for r in &self.routers {
            md.push_str(&format!(
                "| {} | {} | `{}` |\n",
                r.router, r.version, r.command
            ));
        }
        md.push_str(
            "\nColumns per router: **result**; **detect**: from the fault until the router \
             stopped sending requests to the faulted node (last request whose `x-pd-*` headers \
             name it, or that failed other than by a fast 503 refusal; 0.0 s: none went there; \
             `never`: not while the fault lasted); **recover**: from the heal until every \
             request sent was `ok` and disaggregated (`never`: not by the end of the run); \
             **ok during**: success rate of requests sent during the fault. Blank: the scenario \
             has no fault.\n\n",
        );
        let names: Vec<&str> = self.routers.iter().map(|r| r.router.as_str()).collect();
        md.push_str("| feature | scenario |");
        for n in &names {
            md.push_str(&format!(" {n} | detect | recover | ok during |"));
        }
        md.push_str("\n|---|---|");
        for _ in &names {
            md.push_str("---|---|---|---|");
        }
        md.push('\n');
        for row in &self.rows {
            md.push_str(&format!("| {} | {} |", row.feature, row.scenario));
            for n in &names {
                match row.cells.get(*n).filter(|runs| !runs.is_empty()) {
                    None => md.push_str(" not run |  |  |  |"),
                    Some(runs) => md.push_str(&format!(
                        " {} | {} | {} | {} |",
                        combined_result(runs),
                        spread(runs, |c| secs(c.detect_ms, c.faulted, "never")),
                        spread(runs, |c| secs(c.recover_ms, c.faulted, "never")),
                        spread(runs, |c| c
                            .success_during_pct
                            .map_or(String::new(), |p| format!("{p:.1}%"))),
                    )),
                }
            }
            md.push('\n');
        }
        md.push_str("\n## Why each failure failed\n\n");
        md.push_str(
            "The first failing check of the scenario, and what the router did (from the \
             records; the same text the failing step printed).\n",
        );
        for n in &names {
            md.push_str(&format!("\n### {n}\n\n"));
            let mut any = false;
            for r in &self.rows {
                let runs = r.cells.get(*n).map(Vec::as_slice).unwrap_or_default();
                let failed: Vec<(usize, &Cell)> = runs
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.result != "pass")
                    .collect();
                let Some((_, first)) = failed.first() else {
                    continue;
                };
                any = true;
                let how = if runs.len() > 1 && first.result != "skipped" {
                    format!(
                        "{} in {} of {} runs",
                        first.result,
                        failed.len(),
                        runs.len()
                    )
                } else {
                    first.result.clone()
                };
                md.push_str(&format!(
                    "- **{} / {}** ({how}): {}",
                    r.feature,
                    r.scenario,
                    first.why.as_deref().unwrap_or("")
                ));
                if let Some(e) = &first.explanation {
                    md.push_str(&format!(". {e}"));
                }
                // Later failing runs: only what differs from the first one.
                for (i, c) in failed.iter().skip(1) {
                    if c.why != first.why {
                        md.push_str(&format!(
                            ". Run {}: {}",
                            i + 1,
                            c.why.as_deref().unwrap_or("")
                        ));
                    }
                }
                md.push('\n');
            }
            if !any {
                md.push_str("Every scenario passed.\n");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(result: &str, detect: Option<f64>, faulted: bool) -> Cell {
        Cell {
            result: result.into(),
            detect_ms: detect,
            recover_ms: faulted.then_some(700.0),
            success_during_pct: faulted.then_some(12.5),
            faulted,
            why: (result == "fail").then(|| "success rate whole >= 97%: measured 16%".into()),
            explanation: None,
        }
    }

    #[test]
    fn rows_merge_by_scenario_and_render_every_router() {
        let mut rows = Vec::new();
        let k = |f: &str, s: &str| (f.to_string(), s.to_string());
        merge(
            &mut rows,
            "builtin",
            vec![
                (
                    k("Prefill failure", "Killed"),
                    cell("pass", Some(0.0), true),
                ),
                (k("Ratios", "Sizing"), cell("pass", None, false)),
                (k("Ratios", "Sizing"), cell("pass", None, false)),
            ],
        );
        merge(
            &mut rows,
            "sglang",
            vec![(k("Prefill failure", "Killed"), cell("fail", None, true))],
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].scenario, "Sizing #2");
        assert_eq!(rows[0].cells.len(), 2);
        assert_eq!(rows[0].cells["sglang"].len(), 1);
        let sc = Scorecard {
            command: "pdchaos scorecard".into(),
            pdchaos_version: "0.1.0".into(),
            repeat: 1,
            features: vec!["features/".into()],
            routers: ["builtin", "sglang"]
                .iter()
                .map(|r| RouterRun {
                    router: r.to_string(),
                    version: "v".into(),
                    command: "cmd".into(),
                    target_file: "t".into(),
                    run_dir: "d".into(),
                    skipped: vec![],
                })
                .collect(),
            rows,
        };
        let md = sc.to_markdown();
        assert!(
            md.contains("| Prefill failure | Killed | pass | 0.0 s | 0.7 s | 12.5% | **FAIL** | never | 0.7 s | 12.5% |"),
            "{md}"
        );
        assert!(
            md.contains("| Ratios | Sizing | pass |  |  |  | not run |  |  |  |"),
            "{md}"
        );
        assert!(
            md.contains("- **Prefill failure / Killed** (fail): success rate whole"),
            "{md}"
        );
        let back: Scorecard = serde_json::from_str(&sc.to_json()).unwrap();
        assert_eq!(back, sc);
    }

    /// Three runs that disagree: the result says how many passed, each figure that differs is
    /// shown run by run, one that agrees once; the why-section counts the failing runs and adds
    /// a later run's reason only where it differs.
    #[test]
    fn repeated_runs_show_their_spread() {
        let mut rows = Vec::new();
        let k = || ("Prefill failure".to_string(), "Killed".to_string());
        let mut third = cell("fail", None, true);
        third.why = Some("served decode-only within 1500 ms: measured never".into());
        for c in [
            cell("fail", Some(1100.0), true),
            cell("pass", Some(1400.0), true),
            third,
        ] {
            merge(&mut rows, "vllm", vec![(k(), c)]);
        }
        merge(&mut rows, "vllm", vec![]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cells["vllm"].len(), 3);
        assert_eq!(outcome(&rows[0].cells["vllm"]), "mixed");
        let sc = Scorecard {
            command: "pdchaos scorecard --repeat 3".into(),
            pdchaos_version: "0.1.0".into(),
            repeat: 3,
            features: vec![],
            routers: vec![RouterRun {
                router: "vllm".into(),
                version: "v".into(),
                command: "cmd".into(),
                target_file: "t".into(),
                run_dir: "d".into(),
                skipped: vec![],
            }],
            rows,
        };
        let md = sc.to_markdown();
        assert!(
            md.contains(
                "| Prefill failure | Killed | **1/3 pass** | 1.1 / 1.4 / never s | 0.7 s | 12.5% |"
            ),
            "{md}"
        );
        assert!(md.contains("run 3 times"), "{md}");
        assert!(
            md.contains("- **Prefill failure / Killed** (fail in 2 of 3 runs): success rate whole >= 97%: measured 16%. Run 3: served decode-only"),
            "{md}"
        );
        let back: Scorecard = serde_json::from_str(&sc.to_json()).unwrap();
        assert_eq!(back, sc);
        assert_eq!(outcome(&[cell("pass", None, false)]), "pass");
        assert_eq!(outcome(&[cell("fail", None, false)]), "fail");
    }
}
