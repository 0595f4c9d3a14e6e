//! `report.md`: the run's tables in GitHub/GitLab-flavoured Markdown, for CI job summaries.

use super::baseline::Delta;
use super::run_data::RunData;
use super::tables::{self, Table};
use super::timeline::secs;
use std::fmt::Write;

/// One table as Markdown; pipes in cells are escaped so a message cannot break the table.
pub fn table(t: &Table) -> String {
    let cell = |c: &str| c.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", t.headers.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(t.headers.len()));
    for (row, mark) in t.rows.iter().zip(&t.marks) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            // A flagged row shows in bold in its first cell, so it stands out in a CI summary.
            .map(|(i, c)| {
                if i == 0 && *mark {
                    format!("**{}**", cell(c))
                } else {
                    cell(c)
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// The whole Markdown report, with the baseline table when a comparison was made.
pub fn render(run: &RunData, deltas: Option<(&[Delta], f64)>) -> String {
    let passed = run.scenarios.iter().filter(|s| s.meta.passed).count();
    let mut out = String::new();
    let _ = writeln!(out, "# pdchaos report\n");
    let _ = writeln!(
        out,
        "**{passed}/{} scenarios passed** · target: {} · pdchaos {} · duration {:.1} s\n",
        run.scenarios.len(),
        run.index.target,
        run.index.pdchaos_version,
        secs(run.index.started_us, run.index.ended_us),
    );
    out.push_str(&table(&tables::scenarios(run)));
    if let Some((deltas, tol)) = deltas {
        let regressions = deltas.iter().filter(|d| d.regression).count();
        let _ = writeln!(
            out,
            "\n## Against the baseline (tolerance {tol}%): {regressions} regression(s)\n"
        );
        out.push_str(&table(&tables::baseline(deltas)));
    }
    for s in &run.scenarios {
        let _ = writeln!(
            out,
            "\n## {} — {}\n",
            s.meta.name,
            tables::pass_fail(s.meta.passed)
        );
        for e in &s.meta.errors {
            let _ = writeln!(out, "- error: {e}");
        }
        for (title, t) in [
            ("Expectations", tables::verdicts(s)),
            ("Windows", tables::windows(s)),
            ("Faults (seconds from scenario start)", tables::faults(s)),
            ("Sizing sweep", tables::sweep(s)),
        ] {
            if !t.rows.is_empty() {
                let _ = writeln!(out, "\n### {title}\n");
                out.push_str(&table(&t));
            }
        }
    }
    out
}
