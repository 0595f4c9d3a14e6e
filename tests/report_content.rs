//! The report's content, read back from a recorded run: tables equal the summaries, every fault
//! is drawn and labelled, the page is self-contained.
//!
//! Set `PDCHAOS_REPORT_KEEP=/some/dir` to also write the fixture run and its report there, to
//! look at the figures.

mod support;

use pdchaos::fault::model::{FaultPhase, TimelineEvent};
use pdchaos::report::layout::{ScenarioMeta, TIMELINE, WINDOWS};
use pdchaos::report::{ReportFiles, ReportOptions, write_report};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn report(dir: &Path) -> ReportFiles {
    support::write_run(dir, support::Knobs::default());
    write_report(dir, None, &ReportOptions::default()).unwrap()
}

/// The cells of the Markdown table row starting with `first`, inside the `## name` section.
fn md_row(md: &str, scenario: &str, first: &str) -> Vec<String> {
    let section = md
        .split("\n## ")
        .find(|s| s.trim_start_matches("# ").starts_with(scenario))
        .unwrap_or_else(|| panic!("no section for {scenario}"));
    let line = section
        .lines()
        .find(|l| {
            let cell = l.trim_start_matches('|').split('|').next().unwrap_or("");
            cell.trim().trim_matches('*') == first
        })
        .unwrap_or_else(|| panic!("no row {first} in {scenario}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn num(cell: &str) -> f64 {
    cell.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {cell}"))
}

#[test]
fn window_tables_equal_the_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let files = report(dir.path());
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    let mut checked = 0;
    for (sdir, name) in [
        ("prefill-dies", "A prefill node dies under load"),
        ("kv-link-cut", "The KV link is cut mid-stream"),
    ] {
        let text = std::fs::read_to_string(dir.path().join(sdir).join(WINDOWS)).unwrap();
        let windows: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        for (w, s) in &windows {
            let row = md_row(&md, name, w);
            let get = |k: &str| k.split('.').fold(s, |v, p| &v[p]).as_f64().unwrap();
            assert_eq!(num(&row[1]), get("requests.total"), "{name}/{w} requests");
            assert!(
                (num(&row[2]) - get("success_rate") * 100.0).abs() < 0.006,
                "{name}/{w} success"
            );
            assert!((num(&row[3]) - get("qpm")).abs() < 0.051, "{name}/{w} qpm");
            for (i, key) in [
                (4, "ttft_ms.p50"),
                (5, "ttft_ms.p90"),
                (6, "ttft_ms.p99"),
                (7, "decode_tps.p50"),
            ] {
                assert!(
                    (num(&row[i]) - get(key)).abs() < 0.051,
                    "{name}/{w} {key}: {} vs {}",
                    row[i],
                    get(key)
                );
            }
            // Every failure kind with a count shows with that count.
            for (kind, n) in s["outcomes"].as_object().unwrap() {
                let n = n.as_u64().unwrap();
                if kind != "ok" && n > 0 {
                    assert!(
                        row[8].contains(&format!("{kind}: {n}")),
                        "{name}/{w}: {}",
                        row[8]
                    );
                }
            }
            // The HTML carries the same row.
            assert!(
                html.contains(&format!("<td>{}</td><td>{}</td>", row[4], row[5])),
                "{name}/{w} html"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    // The failing expectation is marked failed with its measured value, in both files.
    let row = md_row(
        &md,
        "A prefill node dies under load",
        "success rate during the fault >= 99%",
    );
    assert!(row[4].starts_with("FAIL"), "{row:?}");
    assert!(html.contains(&format!("<td>{}</td>", row[2])));
    assert!(md.contains("**1/3 scenarios passed**") || md.contains("**2/3 scenarios passed**"));
}

#[test]
fn every_fault_in_the_timeline_is_shaded_and_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let files = report(dir.path());
    for sdir in ["prefill-dies", "kv-link-cut"] {
        let svg_path = files
            .figures
            .iter()
            .find(|f| f.ends_with(format!("figures/{sdir}-timeline.svg")))
            .unwrap_or_else(|| panic!("no timeline figure for {sdir}: {:?}", files.figures));
        let svg = std::fs::read_to_string(svg_path).unwrap();
        let text = std::fs::read_to_string(dir.path().join(sdir).join(TIMELINE)).unwrap();
        let events: Vec<TimelineEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let faults: Vec<&TimelineEvent> = events
            .iter()
            .filter(|e| e.phase == FaultPhase::Planned)
            .collect();
        assert!(!faults.is_empty());
        for f in &faults {
            use pdchaos::report::timeline::{describe, short_id};
            let label = format!(
                "{}: {}",
                short_id(&f.fault.0),
                describe(f.spec.as_ref().unwrap())
            );
            assert!(
                svg.contains(&label),
                "{sdir}: label `{label}` missing from the figure"
            );
        }
        // One shaded band per fault in each of the five panels.
        let bands = svg.matches(r##"opacity="0.15" fill="#E6503C""##).count();
        assert_eq!(bands, faults.len() * 5, "{sdir}");
        // Phases are named on the figure.
        assert_eq!(svg.matches("\nverified\n").count(), faults.len(), "{sdir}");
        assert_eq!(svg.matches("\nhealed\n").count(), faults.len(), "{sdir}");
        let meta: ScenarioMeta = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(sdir).join("scenario.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            svg.contains("degraded mode seen"),
            meta.degraded_at_us.is_some(),
            "{sdir}"
        );
        assert_eq!(
            svg.contains("\nrecovered\n"),
            meta.recovered_at_us.is_some(),
            "{sdir}"
        );
        // Axes say what they measure and in which unit.
        for axis in [
            "TTFT (ms)",
            "time since scenario start (s)",
            "requests in flight",
            "output tokens/s",
        ] {
            assert!(svg.contains(axis), "{sdir}: axis `{axis}`");
        }
    }
}

#[test]
fn detect_and_recover_are_read_off_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let files = report(dir.path());
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    // Fault applied at 20.0 s, degraded seen at 21.2 s; healed at 40.0 s, recovered at 42.5 s.
    let row = md_row(&md, "pdchaos report", "A prefill node dies under load");
    assert_eq!(row[5], "1.2 s", "{row:?}");
    assert_eq!(row[6], "2.5 s", "{row:?}");
}

#[test]
fn sweep_table_and_plot_show_every_ratio_and_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let files = report(dir.path());
    // Rows that miss a target are bold; the numbers are what is checked here.
    let md = std::fs::read_to_string(&files.markdown)
        .unwrap()
        .replace("**", "");
    let svg = std::fs::read_to_string(dir.path().join("figures/ratio-sweep-sweep.svg")).unwrap();
    let meta: ScenarioMeta = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ratio-sweep/scenario.json")).unwrap(),
    )
    .unwrap();
    for r in &meta.sweep {
        assert!(
            md.contains(&format!(
                "| {} | {} | {:.1} | {:.1} |",
                r.ratio, r.concurrency, r.ttft_p90_ms, r.decode_tps_p50
            )),
            "sweep row {r:?}"
        );
        assert!(
            svg.contains(&format!("\n{}\n", r.ratio)),
            "legend for {}",
            r.ratio
        );
    }
    assert!(svg.contains("target max 1000") && svg.contains("target min 30"));
    assert!(svg.contains("concurrency (streams)") && svg.contains("TTFT p90 (ms)"));
}

#[test]
fn html_is_self_contained_and_inlines_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let files = report(dir.path());
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
    let without_ns = html.replace("http://www.w3.org/2000/svg", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    assert_eq!(html.matches("<svg ").count(), files.figures.len());
    if let Ok(out) = std::env::var("PDCHAOS_REPORT_KEEP") {
        let out = Path::new(&out);
        let _ = std::fs::remove_dir_all(out);
        std::fs::create_dir_all(out).unwrap();
        report(out);
    }
}

#[test]
fn sweeps_of_several_scenarios_share_one_figure() {
    use pdchaos::report::layout::{RUN_INDEX, RunIndex, SCENARIO_META};
    let dir = tempfile::tempdir().unwrap();
    support::write_run(dir.path(), support::Knobs::default());
    // A second sizing scenario, as the suite writes one per ratio.
    let src = dir.path().join("ratio-sweep");
    let dst = dir.path().join("ratio-sweep-4p");
    std::fs::create_dir_all(&dst).unwrap();
    let mut meta: ScenarioMeta =
        serde_json::from_str(&std::fs::read_to_string(src.join(SCENARIO_META)).unwrap()).unwrap();
    meta.sweep.retain(|r| r.ratio == "1P/1D");
    for r in &mut meta.sweep {
        r.ratio = "4P/4D".into();
    }
    std::fs::write(
        dst.join(SCENARIO_META),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();
    let mut index: RunIndex =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(RUN_INDEX)).unwrap())
            .unwrap();
    let mut entry = index.scenarios.last().unwrap().clone();
    entry.dir = "ratio-sweep-4p".into();
    index.scenarios.push(entry);
    std::fs::write(
        dir.path().join(RUN_INDEX),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();

    let files = write_report(dir.path(), None, &ReportOptions::default()).unwrap();
    let combined = dir.path().join("figures/sweep.svg");
    assert!(files.figures.contains(&combined), "{:?}", files.figures);
    let svg = std::fs::read_to_string(combined).unwrap();
    for ratio in ["1P/1D", "1P/2D", "2P/1D", "2P/2D", "4P/4D"] {
        assert!(
            svg.contains(&format!("\n{ratio}\n")),
            "{ratio} missing from the combined sweep"
        );
    }
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert_eq!(html.matches("<svg ").count(), files.figures.len());
}
