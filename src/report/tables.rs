//! The report's tables as plain data, built once and rendered both as Markdown and as HTML, so
//! the two files can never disagree on a number.

use super::baseline::Delta;
use super::run_data::{RunData, ScenarioData, metric};
use super::timeline::{self as tl};

/// A table: a header row and body rows of cell text. `marks[i]` flags row `i` (a failed
/// verdict, a regression) so renderers can highlight it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub marks: Vec<bool>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            ..Table::default()
        }
    }

    fn push(&mut self, row: Vec<String>, mark: bool) {
        self.rows.push(row);
        self.marks.push(mark);
    }
}

pub fn pass_fail(passed: bool) -> &'static str {
    if passed { "PASS" } else { "FAIL" }
}

/// A duration in seconds as people read it: milliseconds under a second, else seconds with one
/// decimal; "—" when unknown.
pub fn fmt_s(v: Option<f64>) -> String {
    match v {
        None => "—".to_string(),
        Some(v) if v.abs() < 1.0 => format!("{:.0} ms", v * 1e3),
        Some(v) => format!("{v:.1} s"),
    }
}

/// A moment in seconds from the scenario start (two decimals, one unit for a whole column).
fn fmt_at(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2} s"))
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.digits$}"))
}

/// Time to detect and to recover of a scenario, in seconds.
pub fn detect_recover(s: &ScenarioData) -> (Option<f64>, Option<f64>) {
    let origin = s.meta.started_us;
    let windows = tl::fault_windows(&s.timeline, origin);
    tl::detect_and_recover(
        &windows,
        s.meta.degraded_at_us.map(|t| tl::secs(origin, t)),
        s.meta.recovered_at_us.map(|t| tl::secs(origin, t)),
    )
}

/// One row per scenario: result, verdicts passed, faults, time to detect and to recover.
pub fn scenarios(run: &RunData) -> Table {
    let mut t = Table::new(&[
        "scenario",
        "feature",
        "result",
        "expectations passed",
        "faults",
        "time to detect",
        "time to recover",
    ]);
    for s in &run.scenarios {
        let ok = s.verdicts.iter().filter(|v| v.passed).count();
        let faults = tl::fault_windows(&s.timeline, s.meta.started_us).len();
        let (detect, recover) = detect_recover(s);
        t.push(
            vec![
                s.meta.name.clone(),
                s.meta.feature.clone(),
                pass_fail(s.meta.passed).to_string(),
                format!("{ok}/{}", s.verdicts.len()),
                faults.to_string(),
                fmt_s(detect),
                fmt_s(recover),
            ],
            !s.meta.passed,
        );
    }
    t
}

/// Every expectation with its measured value against its bound.
pub fn verdicts(s: &ScenarioData) -> Table {
    let mut t = Table::new(&["expectation", "window", "measured", "bound", "result"]);
    for v in &s.verdicts {
        let mut result = pass_fail(v.passed).to_string();
        if let Some(d) = &v.detail {
            result = format!("{result}: {d}");
        }
        t.push(
            vec![
                v.expectation.clone(),
                v.window.clone(),
                v.measured.clone(),
                v.bound.clone(),
                result,
            ],
            !v.passed,
        );
    }
    t
}

/// The load engine's summary of every window, by its documented keys.
pub fn windows(s: &ScenarioData) -> Table {
    let mut t = Table::new(&[
        "window",
        "requests",
        "success",
        "QPM",
        "TTFT p50 (ms)",
        "TTFT p90 (ms)",
        "TTFT p99 (ms)",
        "decode p50 (tok/s)",
        "failures",
    ]);
    let mut names: Vec<&String> = s.windows.keys().collect();
    names.sort_by_key(|n| (window_rank(n), n.as_str()));
    for (name, w) in names.into_iter().map(|n| (n, &s.windows[n])) {
        let failures: Vec<String> = w
            .get("outcomes")
            .and_then(|o| o.as_object())
            .map(|o| {
                o.iter()
                    .filter(|(k, n)| *k != "ok" && n.as_u64().unwrap_or(0) > 0)
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect()
            })
            .unwrap_or_default();
        let success = metric(w, "success_rate").map(|r| r * 100.0);
        t.push(
            vec![
                name.clone(),
                fmt_num(metric(w, "requests.total"), 0),
                success.map_or_else(|| "—".into(), |p| format!("{p:.2}%")),
                fmt_num(metric(w, "qpm"), 1),
                fmt_num(metric(w, "ttft_ms.p50"), 1),
                fmt_num(metric(w, "ttft_ms.p90"), 1),
                fmt_num(metric(w, "ttft_ms.p99"), 1),
                fmt_num(metric(w, "decode_tps.p50"), 1),
                if failures.is_empty() {
                    "none".into()
                } else {
                    failures.join(", ")
                },
            ],
            !failures.is_empty(),
        );
    }
    t
}

/// Windows in time order: before, during, after, whole, then named windows.
fn window_rank(name: &str) -> usize {
    ["before", "during", "after", "whole"]
        .iter()
        .position(|w| *w == name)
        .unwrap_or(4)
}

/// Each fault's phases, in seconds from the scenario start.
pub fn faults(s: &ScenarioData) -> Table {
    let mut t = Table::new(&["fault", "applied", "verified", "healed", "heal verified"]);
    for w in tl::fault_windows(&s.timeline, s.meta.started_us) {
        let healed = if w.heal_failed {
            "HEAL FAILED".to_string()
        } else {
            fmt_at(w.healed_s)
        };
        t.push(
            vec![
                w.label.clone(),
                fmt_at(w.applied_s),
                fmt_at(w.verified_s),
                healed,
                fmt_at(w.heal_verified_s),
            ],
            w.heal_failed || w.healed_s.is_none(),
        );
    }
    t
}

/// The sizing table of a ratio sweep.
pub fn sweep(s: &ScenarioData) -> Table {
    let mut t = Table::new(&[
        "ratio",
        "concurrency",
        "TTFT p90 (ms)",
        "decode p50 (tok/s)",
        "success",
        "meets targets",
    ]);
    for r in &s.meta.sweep {
        t.push(
            vec![
                r.ratio.clone(),
                r.concurrency.to_string(),
                format!("{:.1}", r.ttft_p90_ms),
                format!("{:.1}", r.decode_tps_p50),
                format!("{:.2}%", r.success_rate * 100.0),
                if r.meets_targets { "yes" } else { "no" }.into(),
            ],
            !r.meets_targets,
        );
    }
    t
}

/// Baseline comparison: every metric that moved beyond the tolerance.
pub fn baseline(deltas: &[Delta]) -> Table {
    let mut t = Table::new(&[
        "scenario", "window", "metric", "baseline", "now", "change", "mark",
    ]);
    for d in deltas.iter().filter(|d| d.moved) {
        let mark = if d.regression {
            "REGRESSION"
        } else if d.metric == "requests.total" {
            "changed"
        } else {
            "improved"
        };
        t.push(
            vec![
                d.scenario.clone(),
                d.window.clone(),
                d.metric.to_string(),
                format!("{:.3}", d.old),
                format!("{:.3}", d.new),
                format!("{:+.1}%", d.change_pct),
                mark.into(),
            ],
            d.regression,
        );
    }
    t
}
