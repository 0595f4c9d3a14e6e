//! `pdchaos report` as a user runs it: the files it writes, the baseline marks, and one-line
//! errors with exit 2 for bad input.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn pdchaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .arg("report")
        .args(args)
        .output()
        .unwrap()
}

fn run_in(dir: &Path, ttft_scale: f64) {
    support::write_run(dir, support::Knobs { ttft_scale });
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn writes_the_files_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), 1.0);
    let out = pdchaos(&[s(dir.path())]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "report.html",
        "report.md",
        "figures/prefill-dies-timeline.svg",
        "figures/ratio-sweep-sweep.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("report.html"), "{stdout}");
}

#[test]
fn baseline_marks_a_regression_and_not_an_improvement() {
    let base = tempfile::tempdir().unwrap();
    let slow = tempfile::tempdir().unwrap();
    let fast = tempfile::tempdir().unwrap();
    run_in(base.path(), 1.0);
    run_in(slow.path(), 1.5);
    run_in(fast.path(), 0.6);

    // 50% slower TTFT against the baseline: a regression, and the gate fails.
    let out = pdchaos(&[
        s(slow.path()),
        "--baseline",
        s(base.path()),
        "--tolerance",
        "10",
        "--fail-on-regression",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(slow.path().join("report.md")).unwrap();
    let line = md
        .lines()
        .find(|l| {
            l.contains("A prefill node dies under load") && l.contains("| before | ttft_ms.p90 |")
        })
        .unwrap_or_else(|| panic!("no ttft p90 row:\n{md}"));
    // TTFT ×1.5 (µs are truncated, so about +50%).
    assert!(
        line.contains("REGRESSION") && (line.contains("+49.") || line.contains("+50.")),
        "{line}"
    );
    let html = std::fs::read_to_string(slow.path().join("report.html")).unwrap();
    assert!(html.contains("<tr class=\"mark\"><td>A prefill node dies under load</td><td>before</td><td>ttft_ms.p90</td>"));

    // 40% faster: moved, marked as an improvement, never as a regression.
    let out = pdchaos(&[
        s(fast.path()),
        "--baseline",
        s(base.path()),
        "--fail-on-regression",
    ]);
    let md = std::fs::read_to_string(fast.path().join("report.md")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{md}");
    assert!(!md.contains("REGRESSION"), "{md}");
    assert!(md.contains("| before | ttft_ms.p90 |") && md.contains("improved"));
    assert!(md.contains("0 regression(s)"));

    // The same run against itself: nothing moved.
    let out = pdchaos(&[s(base.path()), "--baseline", s(base.path())]);
    assert_eq!(out.status.code(), Some(0));
    let md = std::fs::read_to_string(base.path().join("report.md")).unwrap();
    assert!(
        !md.contains("REGRESSION") && !md.contains("improved"),
        "{md}"
    );
}

fn one_line_exit_2(out: &Output, must_name: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(must_name), "`{must_name}` not named in: {err}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    one_line_exit_2(&pdchaos(&[s(&missing)]), "no-such-run");

    // A folder without run.json.
    one_line_exit_2(&pdchaos(&[s(dir.path())]), "run.json");

    // A broken record line: named by file and line.
    run_in(dir.path(), 1.0);
    let records = dir.path().join("kv-link-cut/records.jsonl");
    let mut text = std::fs::read_to_string(&records).unwrap();
    text.insert_str(text.find('\n').unwrap() + 1, "{\"id\": oops}\n");
    std::fs::write(&records, text).unwrap();
    one_line_exit_2(&pdchaos(&[s(dir.path())]), "records.jsonl:2");

    // A bad baseline folder and a bad tolerance.
    let good = tempfile::tempdir().unwrap();
    run_in(good.path(), 1.0);
    one_line_exit_2(
        &pdchaos(&[s(good.path()), "--baseline", s(&missing)]),
        "no-such-run",
    );
    one_line_exit_2(&pdchaos(&[s(good.path()), "--tolerance=-5"]), "--tolerance");
}
