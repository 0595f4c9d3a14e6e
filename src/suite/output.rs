//! What a run leaves behind: a folder per scenario (records, timeline, windows, verdicts), the
//! run index, a Markdown summary, and optional JUnit XML / JSON for CI.

use crate::check::windows::Span;
use crate::load::metrics::summarize;
use crate::report::layout::{self, RunIndex, ScenarioEntry, ScenarioMeta};
use crate::suite::world::PdWorld;
use crate::suite::{RunOptions, RunResult, context};
use cucumber::event::ScenarioFinished;
use cucumber::gherkin;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// A folder name from a feature and scenario name.
pub fn slug(feature: &str, scenario: &str) -> String {
    let raw = format!("{feature}--{scenario}").to_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(100).collect()
}

/// The After hook: heal, then write the scenario's evidence and its line in the run.
pub async fn after_scenario(
    feature: &gherkin::Feature,
    scenario: &gherkin::Scenario,
    finished: &ScenarioFinished,
    world: Option<&mut PdWorld>,
) {
    let mut passed = matches!(finished, ScenarioFinished::StepPassed);
    let mut errors = Vec::new();
    match finished {
        ScenarioFinished::StepFailed(_, _, e) => errors.push(e.to_string()),
        ScenarioFinished::StepSkipped => {
            errors.push("a step is undefined (no step definition matches it)".into())
        }
        ScenarioFinished::BeforeHookFailed(_) => errors.push("before hook failed".into()),
        ScenarioFinished::StepPassed => {}
    }
    let dir_name = slug(&feature.name, &scenario.name);
    let dir = context().out_dir.join(&dir_name);
    if let Some(w) = world {
        if let Some(n) = &w.nemesis {
            let report = n.heal_all().await;
            if !report.is_clean() {
                passed = false;
                let msg = format!("FAULTS LEFT BEHIND: {}", report.leftovers.join("; "));
                eprintln!("{msg}");
                errors.push(msg);
            }
        }
        if let Err(e) = write_scenario(&dir, feature, scenario, passed, &errors, w) {
            errors.push(format!("cannot write {}: {e}", dir.display()));
        }
    }
    let mark = if passed { "PASS" } else { "FAIL" };
    eprintln!("{mark}  {} / {}", feature.name, scenario.name);
    for e in &errors {
        eprintln!("      {}", e.lines().next().unwrap_or(""));
    }
    if let Ok(mut r) = context().results.lock() {
        r.push(ScenarioEntry {
            feature: feature.name.clone(),
            name: scenario.name.clone(),
            dir: dir_name,
            passed,
        });
    }
}

fn jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in items {
        serde_json::to_writer(&mut f, i).map_err(std::io::Error::other)?;
        f.write_all(b"\n")?;
    }
    f.flush()
}

fn write_scenario(
    dir: &Path,
    feature: &gherkin::Feature,
    scenario: &gherkin::Scenario,
    passed: bool,
    errors: &[String],
    w: &PdWorld,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    jsonl(&dir.join(layout::RECORDS), &w.records)?;
    let timeline = w.nemesis.as_ref().map(|n| n.timeline()).unwrap_or_default();
    jsonl(&dir.join(layout::TIMELINE), &timeline)?;
    let mut windows = BTreeMap::new();
    for span in [Span::Whole, Span::Before, Span::During, Span::After] {
        let end = w
            .records
            .iter()
            .map(|r| r.end_us)
            .max()
            .unwrap_or(w.ended_us);
        if let Some(win) =
            crate::check::windows::window(span, (w.started_us, end + 1), w.fault_window())
        {
            windows.insert(span.to_string(), summarize(&w.records, Some(win)));
        }
    }
    let json = |v: &dyn erased::Json| v.to_json();
    std::fs::write(dir.join(layout::WINDOWS), json(&windows))?;
    std::fs::write(dir.join(layout::VERDICTS), json(&w.verdicts))?;
    let meta = ScenarioMeta {
        feature: feature.name.clone(),
        name: scenario.name.clone(),
        passed,
        started_us: w.started_us,
        ended_us: w.ended_us.max(w.started_us),
        degraded_at_us: w.degraded_at_us,
        recovered_at_us: w.recovered_at_us,
        sweep: w.sweep.clone(),
        sweep_targets: w.sweep_targets,
        errors: errors.to_vec(),
    };
    std::fs::write(dir.join(layout::SCENARIO_META), json(&meta))
}

mod erased {
    /// Pretty JSON of any serialisable value, without generics at the call site.
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_else(|_| "null".into())
        }
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// run.json, summary.md, and the optional JUnit / JSON files.
pub fn write_run(opts: &RunOptions, result: &RunResult) -> std::io::Result<()> {
    let index = RunIndex {
        pdchaos_version: env!("CARGO_PKG_VERSION").into(),
        target: opts.target.clone(),
        started_us: context().started_us,
        ended_us: crate::clock::now_us(),
        scenarios: result.scenarios.clone(),
    };
    std::fs::write(
        opts.out_dir.join(layout::RUN_INDEX),
        serde_json::to_string_pretty(&index).map_err(std::io::Error::other)?,
    )?;
    let mut md = format!(
        "# pdchaos run\n\nTarget: {}  \nScenarios: {} passed, {} failed  \nDuration: {:.0} s\n\n| result | feature | scenario |\n|---|---|---|\n",
        index.target,
        result.passed(),
        result.failed(),
        (index.ended_us - index.started_us) as f64 / 1e6
    );
    for s in &result.scenarios {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            if s.passed { "PASS" } else { "**FAIL**" },
            s.feature,
            s.name
        ));
    }
    std::fs::write(opts.out_dir.join(layout::SUMMARY_MD), md)?;
    if let Some(p) = &opts.junit {
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"pdchaos\" tests=\"{}\" failures=\"{}\">\n",
            result.scenarios.len(),
            result.failed()
        );
        for s in &result.scenarios {
            x.push_str(&format!(
                "  <testcase classname=\"{}\" name=\"{}\">",
                xml(&s.feature),
                xml(&s.name)
            ));
            if !s.passed {
                x.push_str(&format!("<failure message=\"see {}/\"/>", xml(&s.dir)));
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("</testsuite>\n");
        std::fs::write(p, x)?;
    }
    if let Some(p) = &opts.json {
        std::fs::write(
            p,
            serde_json::to_string_pretty(&index).map_err(std::io::Error::other)?,
        )?;
    }
    Ok(())
}
