//! `cargo test` runs every feature of the suite against the local stack, one feature per test,
//! through the real `pdchaos run` binary. Each test prints the scenario verdicts; together they
//! count every scenario (the closing `N passed, N failed` line of each run is checked here).

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// Feature runs start real process stacks: one at a time, so timings stay meaningful.
static SERIAL: Mutex<()> = Mutex::new(());

fn run_feature(file: &str) {
    let _guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let o = Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .current_dir(root)
        .args(["run", file, "--out"])
        .arg(out.path())
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("run pdchaos");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    print!("{stdout}");
    let closing = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or("")
        .to_string();
    assert!(o.status.success(), "{file}: {closing}\n{stderr}");
    assert!(
        closing.ends_with(", 0 failed") && !closing.starts_with("0 passed"),
        "{file}: {closing}"
    );
    // Every scenario left its evidence and JUnit counts it.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("run.json")).unwrap()).unwrap();
    for s in index["scenarios"].as_array().unwrap() {
        let dir = out.path().join(s["dir"].as_str().unwrap());
        for f in [
            "records.jsonl",
            "timeline.jsonl",
            "windows.json",
            "verdicts.json",
            "scenario.json",
        ] {
            assert!(dir.join(f).exists(), "{} missing {f}", dir.display());
        }
    }
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("failures=\"0\""), "{x}");
}

#[test]
fn prefill_failure() {
    run_feature("features/prefill_failure.feature");
}

#[test]
fn decode_failure() {
    run_feature("features/decode_failure.feature");
}

#[test]
fn link_faults() {
    run_feature("features/link_faults.feature");
}

#[test]
fn recovery() {
    run_feature("features/recovery.feature");
}

#[test]
fn degraded_load() {
    run_feature("features/degraded_load.feature");
}

#[test]
fn ratios() {
    run_feature("features/ratios.feature");
}

#[test]
fn groups() {
    run_feature("features/groups.feature");
}

#[test]
fn cache() {
    run_feature("features/cache.feature");
}

#[test]
fn ramp() {
    run_feature("features/ramp.feature");
}

#[test]
fn completeness() {
    run_feature("features/completeness.feature");
}

#[test]
fn every_feature_file_has_a_test_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let me = std::fs::read_to_string(root.join("tests/features.rs")).unwrap();
    for e in std::fs::read_dir(root.join("features")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            me.contains(&format!("\"features/{name}\"")),
            "features/{name} is not run by cargo test"
        );
    }
}

#[test]
fn an_undefined_step_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("typo.feature");
    std::fs::write(&f, "Feature: Typo\n  Scenario: A typo in a step\n    Given a local P/D deployment with 1 prefill and 1 decode node\n    When the lod runs for 1s\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .args(["run"])
        .arg(&f)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn docs_steps_md_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("docs/steps.md")).unwrap_or_default();
    assert_eq!(
        committed,
        pdchaos::suite::steps::markdown(),
        "regenerate: pdchaos run --list-steps > docs/steps.md"
    );
}
