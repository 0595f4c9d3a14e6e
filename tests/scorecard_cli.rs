//! `pdchaos scorecard --repeat` as a user runs it, behind our own router (the real routers'
//! runs are in tests/router_features.rs): every run of every scenario is a real `pdchaos run`
//! against a real local stack, and each cell keeps every run.

use std::path::Path;
use std::process::{Command, Output};

const FEATURE: &str = "Feature: Scorecard probe
  Scenario: The only prefill node is killed briefly
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 2 concurrent users
    When the prefill node is killed after 500ms for 1s
    And the load runs for 3s
    Then the success rate over the whole run is at least 90%
";

fn scorecard(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .args(["scorecard", "--routers", "builtin", "--features"])
        .arg(dir.join("probe.feature"))
        .arg("--out")
        .arg(dir.join("card"))
        .arg("--work")
        .arg(dir.join("work"))
        .args(extra)
        .output()
        .unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn repeated_runs_each_leave_a_run_folder_and_a_cell() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.feature"), FEATURE).unwrap();
    let out = scorecard(dir.path(), &["--repeat", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for run in ["run-1", "run-2"] {
        assert!(
            dir.path()
                .join("work/builtin")
                .join(run)
                .join("run.json")
                .is_file(),
            "{run} left no run folder: {stderr}"
        );
    }
    let card = json(&dir.path().join("card.json"));
    assert_eq!(card["repeat"], 2);
    let runs = card["rows"][0]["cells"]["builtin"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{card}");
    for r in runs {
        // Each run saw its own fault and measured the router against it.
        assert_eq!(r["faulted"], true, "{r}");
        assert!(r["recover_ms"].is_number(), "{r}");
        assert!(
            ["pass", "fail"].contains(&r["result"].as_str().unwrap()),
            "{r}"
        );
    }
    let md = std::fs::read_to_string(dir.path().join("card.md")).unwrap();
    assert!(md.contains("run 2 times"), "{md}");
    assert!(md.contains("--repeat 2"), "{md}");
    assert!(
        md.contains("| Scorecard probe | The only prefill node is killed briefly |"),
        "{md}"
    );

    // The table is rebuilt from the folders alone, identically.
    let again = scorecard(dir.path(), &["--repeat", "2", "--no-run"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(json(&dir.path().join("card.json")), card);

    // Asking for a run that was never made names --work, in one line, exit 2.
    let missing = scorecard(dir.path(), &["--repeat", "3", "--no-run"]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--work") && err.contains("run-3"), "{err}");
}

#[test]
fn repeat_zero_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.feature"), FEATURE).unwrap();
    let out = scorecard(dir.path(), &["--repeat", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--repeat"), "{err}");
}
