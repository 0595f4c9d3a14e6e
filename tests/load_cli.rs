//! `pdchaos load` as a user runs it: the binary against a real local server, its files and exit
//! codes, and one-line errors for bad input.

use pdchaos::load::scripted;
use std::process::{Command, Output};

fn pdchaos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .args(args)
        .env_remove("PDCHAOS_URL")
        .output()
        .expect("run pdchaos")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn load_writes_json_csv_and_records() {
    let addr = scripted::serve().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let csv = dir.path().join("out.csv");
    let recs = dir.path().join("records.jsonl");
    let url = format!("http://{addr}/v1");
    let args: Vec<String> = [
        "load",
        "--url",
        &url,
        "--model",
        "scripted:ttft_ms=30,tokens=5",
        "--concurrency",
        "8",
        "--requests",
        "100",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--records",
        recs.to_str().unwrap(),
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    // The server runs on this test's runtime: run the blocking child off it.
    let out = tokio::task::spawn_blocking(move || {
        pdchaos(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["requests"]["total"], 100);
    assert_eq!(v["requests"]["ok"], 100);
    assert_eq!(v["outcomes"]["stream_cut"], 0);
    assert_eq!(v["success_rate"], 1.0);
    let p50 = v["ttft_ms"]["p50"].as_f64().unwrap();
    assert!((29.0..120.0).contains(&p50), "ttft p50 {p50}");
    assert!(v["decode_tps"]["min"].as_f64().unwrap() > 0.0);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert_eq!(std::fs::read_to_string(&recs).unwrap().lines().count(), 100);
    assert!(String::from_utf8_lossy(&out.stdout).contains("TTFT ms"));
}

#[tokio::test]
async fn thresholds_exit_1_when_broken() {
    let addr = scripted::serve().await.unwrap();
    let url = format!("http://{addr}/v1");
    let out = tokio::task::spawn_blocking(move || {
        pdchaos(&[
            "load",
            "--url",
            &url,
            "--model",
            "scripted:tokens=3,cut_after=1",
            "-n",
            "4",
            "--fail-under-success",
            "99",
            "-q",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("success rate 0.00% < 99%"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.jsonl");
    std::fs::write(&data, "{\"prompt\":\"a\"}\n{\"oops\":true}\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "load",
                "--url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "-n",
                "1",
                "--ramp",
                "x",
            ],
            "--ramp",
        ),
        (
            vec!["load", "--url", "http://127.0.0.1:9/v1", "--model", "m"],
            "--requests",
        ),
        (
            vec!["load", "--url", "127.0.0.1:9", "--model", "m", "-n", "1"],
            "--url",
        ),
        (
            vec![
                "load",
                "--url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "-n",
                "1",
                "--dataset",
                data.to_str().unwrap(),
            ],
            "d.jsonl:2:",
        ),
        (
            vec![
                "load",
                "--url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "-n",
                "1",
                "-c",
                "2",
                "--rate",
                "3",
            ],
            "--rate",
        ),
    ];
    for (args, needle) in cases {
        let out = pdchaos(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `pdchaos bench-client` end to end at a small size: every stream completes, every chunk is
/// counted, the error figures are printed. (Its speed is a benchmark, in docs/bench.md, not a
/// test: this machine is shared.)
#[test]
fn bench_client_runs_its_own_server_and_reports() {
    let out = pdchaos(&[
        "bench-client",
        "--streams",
        "40",
        "--tokens",
        "10",
        "--duration",
        "2s",
        "--ramp",
        "20/100ms",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("requests"))
        .unwrap();
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(nums[0] >= 40 && nums[0] == nums[1], "all ok: {line}");
    assert!(text.contains("TTFT error     p50"), "{text}");
    assert!(text.contains("users join 20 every 100 ms"), "{text}");
    let out = pdchaos(&["bench-client", "--ramp", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ramp"));
}
