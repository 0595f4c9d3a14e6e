//! `report.html`: one self-contained page (inline CSS and SVG, nothing fetched) with the run
//! summary, the baseline comparison, and per scenario its verdicts, timeline and tables.

use super::baseline::Delta;
use super::run_data::RunData;
use super::tables::{self, Table};
use super::timeline::secs;
use std::collections::BTreeMap;
use std::fmt::Write;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:4px 8px;\
text-align:left;font-size:14px}th{background:#f0f0f0}tr.mark td{background:#fde2e0}\
.pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}\
figure{margin:0 0 2em}svg{max-width:100%;height:auto}section{border-top:2px solid #ddd;margin-top:2em}";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn table(t: &Table) -> String {
    let mut out = String::from("<table><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for (row, mark) in t.rows.iter().zip(&t.marks) {
        out.push_str(if *mark { "<tr class=\"mark\">" } else { "<tr>" });
        for c in row {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// The page. `figures` maps a scenario folder to its SVGs (caption, SVG text) to inline;
/// `run_figures` are figures of the run as a whole (the combined sweep).
pub fn render(
    run: &RunData,
    deltas: Option<(&[Delta], f64)>,
    figures: &BTreeMap<String, Vec<(String, String)>>,
    run_figures: &[(String, String)],
) -> String {
    let passed = run.scenarios.iter().filter(|s| s.meta.passed).count();
    let all = run.scenarios.len();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>pdchaos report</title><style>{STYLE}</style></head><body>\n<h1>pdchaos report</h1>\n"
    );
    let class = if passed == all { "pass" } else { "fail" };
    let _ = writeln!(
        out,
        "<p><span class=\"{class}\">{passed}/{all} scenarios passed</span> · target: {} · \
         pdchaos {} · duration {:.1} s</p>",
        esc(&run.index.target),
        esc(&run.index.pdchaos_version),
        secs(run.index.started_us, run.index.ended_us)
    );
    out.push_str(&table(&tables::scenarios(run)));
    for (caption, svg) in run_figures {
        let _ = writeln!(
            out,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            esc(caption)
        );
    }
    if let Some((deltas, tol)) = deltas {
        let regressions = deltas.iter().filter(|d| d.regression).count();
        let _ = writeln!(
            out,
            "<h2>Against the baseline (tolerance {tol}%): {regressions} regression(s)</h2>"
        );
        out.push_str(&table(&tables::baseline(deltas)));
    }
    for s in &run.scenarios {
        let class = if s.meta.passed { "pass" } else { "fail" };
        let _ = writeln!(
            out,
            "<section id=\"{}\"><h2>{} <span class=\"{class}\">{}</span></h2><p>feature: {}</p>",
            esc(&s.entry.dir),
            esc(&s.meta.name),
            tables::pass_fail(s.meta.passed),
            esc(&s.meta.feature)
        );
        for e in &s.meta.errors {
            let _ = writeln!(out, "<p class=\"fail\">error: {}</p>", esc(e));
        }
        let (detect, recover) = tables::detect_recover(s);
        let _ = writeln!(
            out,
            "<p>time to detect: <b>{}</b> · time to recover: <b>{}</b></p>",
            tables::fmt_s(detect),
            tables::fmt_s(recover)
        );
        for (title, t) in [
            ("Expectations", tables::verdicts(s)),
            ("Windows", tables::windows(s)),
        ] {
            if !t.rows.is_empty() {
                let _ = writeln!(out, "<h3>{title}</h3>");
                out.push_str(&table(&t));
            }
        }
        for (caption, svg) in figures.get(&s.entry.dir).into_iter().flatten() {
            let _ = writeln!(
                out,
                "<figure>{svg}<figcaption>{}</figcaption></figure>",
                esc(caption)
            );
        }
        for (title, t) in [
            ("Faults (seconds from scenario start)", tables::faults(s)),
            ("Sizing sweep", tables::sweep(s)),
        ] {
            if !t.rows.is_empty() {
                let _ = writeln!(out, "<h3>{title}</h3>");
                out.push_str(&table(&t));
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}
