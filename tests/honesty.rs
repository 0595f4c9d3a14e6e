//! A resilience suite that passes a broken system is worse than none. Each defect of the local
//! stack is switched on and the scenario that should catch it must FAIL, five runs in a row;
//! the same scenario against the healthy stack must PASS, five runs in a row.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());
const RUNS: usize = 5;

/// Runs one scenario; returns whether it passed, and its output for the failure message.
fn scenario(file: &str, name: &str, breaks: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pdchaos"));
    cmd.current_dir(root)
        .args(["run", file, "--name", name, "--out"])
        .arg(out.path());
    for b in breaks {
        cmd.args(["--break", b]);
    }
    let o = cmd.output().expect("run pdchaos");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains(name),
        "scenario `{name}` did not run:\n{text}"
    );
    match o.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!("pdchaos run exited {other:?}:\n{text}"),
    }
}

fn fails_when_broken_passes_when_healthy(file: &str, name: &str, defect: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..RUNS {
        let (passed, text) = scenario(file, name, &[defect]);
        assert!(
            !passed,
            "run {i}: `{name}` PASSED against a stack with `{defect}`:\n{text}"
        );
        let (passed, text) = scenario(file, name, &[]);
        assert!(
            passed,
            "run {i}: `{name}` FAILED against the healthy stack:\n{text}"
        );
    }
}

#[test]
fn no_fallback_when_prefill_dies_is_caught() {
    fails_when_broken_passes_when_healthy(
        "features/prefill_failure.feature",
        "The only prefill node is killed",
        "no-fallback-on-prefill-death",
    );
}

#[test]
fn a_router_that_ignores_a_cut_kv_link_is_caught() {
    fails_when_broken_passes_when_healthy(
        "features/link_faults.feature",
        "The KV link between decode and prefill is cut",
        "ignore-kv-cut",
    );
}

#[test]
fn dropping_the_answer_after_thinking_is_caught() {
    fails_when_broken_passes_when_healthy(
        "features/completeness.feature",
        "A healthy deployment answers completely",
        "drop-answer-after-thinking",
    );
}

#[test]
fn streams_without_done_are_caught() {
    fails_when_broken_passes_when_healthy(
        "features/completeness.feature",
        "A healthy deployment answers completely",
        "no-done",
    );
}

#[test]
fn a_stack_that_never_recovers_is_caught() {
    fails_when_broken_passes_when_healthy(
        "features/recovery.feature",
        "Prefill returns and the metrics return to the baseline",
        "never-recover",
    );
}
