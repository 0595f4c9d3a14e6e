//! A load split over several processes: `pdchaos load --shard I/N --save-shard` against the
//! scripted server, then `pdchaos merge`. The merged summary must be the summary of all the
//! shards' records taken together (the done-when of sharded load), and bad, mismatched or
//! missing shard files must be refused on one line with exit 2.

use pdchaos::load::metrics::{Tally, summarize};
use pdchaos::load::output::read_records;
use pdchaos::load::record::RequestRecord;
use pdchaos::load::scripted;
use pdchaos::load::shard::{Shard, ShardFile};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pdchaos(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdchaos"))
        .args(args)
        .env_remove("PDCHAOS_URL")
        .output()
        .expect("run pdchaos")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs every command at once (the scripted server lives on this test's runtime, so the
/// blocking children run off it), returning their outputs in order.
async fn all_at_once(commands: Vec<Vec<String>>) -> Vec<Output> {
    let handles: Vec<_> = commands
        .into_iter()
        .map(|args| tokio::task::spawn_blocking(move || pdchaos(&args)))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

#[tokio::test]
async fn two_shards_merge_into_the_summary_of_all_their_records() {
    let addr = scripted::serve().await.unwrap();
    let url = format!("http://{addr}/v1");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Shard 1 is given a script that cuts every stream, so that the two shards' outcomes differ
    // and the merged counts show they were added, not taken from one file.
    let shard = |i: usize, model: &str| -> Vec<String> {
        strings(&[
            "load",
            "--url",
            &url,
            "--model",
            model,
            "-c",
            "3",
            "-n",
            "21",
            "--shard",
            &format!("{i}/2"),
            "--save-shard",
            &p(d, &format!("shard-{i}.json")),
            "--records",
            &p(d, &format!("records-{i}.jsonl")),
            "--json",
            &p(d, &format!("summary-{i}.json")),
            "-q",
        ])
    };
    let outs = all_at_once(vec![
        shard(0, "scripted:ttft_ms=20,itl_ms=5,tokens=6"),
        shard(1, "scripted:ttft_ms=20,itl_ms=5,tokens=6,cut_after=3"),
    ])
    .await;
    for o in &outs {
        assert!(o.status.success(), "{}", stderr(o));
    }
    let recs: Vec<Vec<RequestRecord>> = (0..2)
        .map(|i| read_records(&d.join(format!("records-{i}.jsonl"))).unwrap())
        .collect();
    // 21 requests and 3 users split 11 + 10 and 2 + 1, with run-wide ids and user numbers.
    assert_eq!((recs[0].len(), recs[1].len()), (11, 10));
    let users = |i: usize| recs[i].iter().map(|r| r.user).collect::<BTreeSet<_>>();
    assert_eq!(users(0), BTreeSet::from([0, 2]));
    assert_eq!(users(1), BTreeSet::from([1]));
    let ids: BTreeSet<u64> = recs.iter().flatten().map(|r| r.id).collect();
    assert_eq!(ids, (0..21).collect::<BTreeSet<u64>>());
    assert!(recs[0].iter().all(|r| r.outcome.is_ok()));
    assert!(recs[1].iter().all(|r| r.outcome.as_str() == "stream_cut"));

    let merged = p(d, "merged.json");
    let out = pdchaos(&strings(&[
        "merge",
        &p(d, "shard-0.json"),
        &p(d, "shard-1.json"),
        "--json",
        &merged,
        "--csv",
        &p(d, "merged.csv"),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TTFT ms"));
    assert!(
        stderr(&out).contains("merged 2 of 2 shards"),
        "{}",
        stderr(&out)
    );
    let m = json(Path::new(&merged));
    let (s0, s1) = (
        json(&d.join("summary-0.json")),
        json(&d.join("summary-1.json")),
    );
    assert_eq!(m["requests"]["total"], 21);
    for (k, v) in m["outcomes"].as_object().unwrap() {
        let sum = s0["outcomes"][k].as_u64().unwrap() + s1["outcomes"][k].as_u64().unwrap();
        assert_eq!(v.as_u64().unwrap(), sum, "outcome {k}");
    }
    assert_eq!(m["outcomes"]["ok"], 11);
    assert_eq!(m["outcomes"]["stream_cut"], 10);
    assert_eq!(
        m["output_tokens"]["total"].as_u64().unwrap(),
        s0["output_tokens"]["total"].as_u64().unwrap()
            + s1["output_tokens"]["total"].as_u64().unwrap()
    );
    // The done-when: the merged figures are those of one summary over every record, exactly
    // (percentiles, means, window, QPM), as written by `pdchaos load --json`.
    let all: Vec<&RequestRecord> = recs.iter().flatten().collect();
    // (Both sides go through JSON text, so both see the same float parsing.)
    let whole: Value = serde_json::from_str(
        &serde_json::to_string(&summarize(all.iter().copied(), None)).unwrap(),
    )
    .unwrap();
    assert_eq!(m, whole);
    assert!(m["ttft_ms"]["p50"].as_f64().unwrap() >= 19.0, "{m}");
    assert_eq!(
        std::fs::read_to_string(d.join("merged.csv"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // A directory stands for its shard*.json files, and gives the same summary.
    let again = p(d, "again.json");
    let out = pdchaos(&strings(&["merge", d.to_str().unwrap(), "--json", &again]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(Path::new(&again)), m);
    // Thresholds work on the merged figures as on `pdchaos load`'s.
    let out = pdchaos(&strings(&[
        "merge",
        d.to_str().unwrap(),
        "--fail-under-success",
        "90",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("success rate 52.38% < 90%"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn shards_split_a_fifo_dataset_and_an_open_loop_rate() {
    let addr = scripted::serve().await.unwrap();
    let url = format!("http://{addr}/v1");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("d.jsonl");
    let lines: String = (0..5)
        .map(|i| format!("{{\"prompt\":\"p{i}\"}}\n"))
        .collect();
    std::fs::write(&data, lines).unwrap();
    let fifo = |i: usize| {
        strings(&[
            "load",
            "--url",
            &url,
            "--model",
            "scripted:ttft_ms=5,tokens=2",
            "-c",
            "2",
            "--dataset",
            data.to_str().unwrap(),
            "--dataset-order",
            "fifo",
            "--shard",
            &format!("{i}/2"),
            "--json",
            &p(d, &format!("fifo-{i}.json")),
            "-q",
        ])
    };
    // Open loop at 20/s for 1 s over 2 shards: 10 intended sends each (fewer only if the
    // process is starved), where an undivided rate would give 20.
    let open = strings(&[
        "load",
        "--url",
        &url,
        "--model",
        "scripted:ttft_ms=5,tokens=2",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--shard",
        "1/2",
        "--json",
        &p(d, "open.json"),
        "-q",
    ]);
    let outs = all_at_once(vec![fifo(0), fifo(1), open]).await;
    for o in &outs {
        assert!(o.status.success(), "{}", stderr(o));
    }
    // Lines 0, 2, 4 and 1, 3: every line once across the shards.
    assert_eq!(json(&d.join("fifo-0.json"))["requests"]["total"], 3);
    assert_eq!(json(&d.join("fifo-1.json"))["requests"]["total"], 2);
    let sent = json(&d.join("open.json"))["requests"]["total"]
        .as_u64()
        .unwrap();
    assert!((5..=10).contains(&sent), "open-loop shard sent {sent}");
}

/// A shard file made in-process from hand-made records.
fn write_shard(dir: &Path, name: &str, index: u32, count: u32) -> PathBuf {
    let now = pdchaos::clock::now_us();
    let rec = RequestRecord {
        id: u64::from(index),
        user: index,
        bucket: None,
        intended_us: now,
        sent_us: now,
        first_reasoning_us: None,
        first_answer_us: Some(now + 1_000),
        end_us: now + 9_000,
        chunk_offsets_us: vec![1_000, 5_000],
        finish_reason: Some("stop".into()),
        usage: None,
        input_tokens: 3,
        output_tokens: 2,
        tokens_estimated: false,
        http_status: Some(200),
        outcome: "ok".parse().unwrap(),
        error: None,
        reasoning_chars: 0,
        answer_chars: 4,
        server: Default::default(),
        missing_usage: false,
    };
    let file = ShardFile::new(Shard::new(index, count).unwrap(), Tally::of([&rec]));
    let path = dir.join(name);
    std::fs::write(&path, file.to_json().unwrap()).unwrap();
    path
}

#[test]
fn bad_mismatched_or_missing_shard_files_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write_shard(d, "a.json", 0, 2);
    let b = write_shard(d, "b.json", 1, 2);
    let c3 = write_shard(d, "c3.json", 2, 3);
    let dup = write_shard(d, "dup.json", 1, 2);
    let v2 = d.join("v2.json");
    let mut doc: Value = json(&a);
    doc["version"] = 2.into();
    std::fs::write(&v2, doc.to_string()).unwrap();
    let junk = d.join("junk.json");
    std::fs::write(&junk, "{\"format\": \"pdchaos-load-shard\", \"version\": 1").unwrap();
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![s(&a), s(&c3)],
            format!("{}: shard 2/3 is one of 3", s(&c3)),
        ),
        (
            vec![s(&a), s(&b), s(&dup)],
            format!("{}: shard 1/2 again", s(&dup)),
        ),
        (
            vec![s(&a), s(&v2)],
            format!("{}: shard file version 2", s(&v2)),
        ),
        (vec![s(&junk)], format!("{}: not JSON", s(&junk))),
        (vec![p(d, "absent.json")], "absent.json: cannot read".into()),
        (vec![s(&a)], "no file carries shard 1/2".into()),
        (vec![p(d, "sub")], "sub".into()),
    ];
    std::fs::create_dir(d.join("sub")).unwrap();
    for (files, needle) in cases {
        let mut args = vec!["merge".to_string()];
        args.extend(files);
        let out = pdchaos(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The same pair that was refused for a missing shard merges with --allow-missing.
    let out = pdchaos(&[
        "merge".to_string(),
        s(&a),
        "--allow-missing".into(),
        "--json".into(),
        p(d, "m.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: no file carries shard 1/2"));
    assert_eq!(json(&d.join("m.json"))["requests"]["total"], 1);
    let out = pdchaos(&[
        "merge".to_string(),
        s(&a),
        s(&b),
        "--json".into(),
        p(d, "m.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&d.join("m.json"))["requests"]["total"], 2);
}

#[test]
fn bad_shard_flags_exit_2_naming_the_flag() {
    let base = [
        "load",
        "--url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "-n",
        "4",
    ];
    for (extra, needle) in [
        (vec!["--shard", "2/2"], "--shard `2/2`"),
        (vec!["--shard", "x"], "--shard `x`"),
        (vec!["--shard", "1/0"], "--shard `1/0`"),
        (
            vec!["--shard", "3/4", "-c", "2"],
            "--shard 3/4: shard 3/4 gets none of 2 users",
        ),
        (vec!["--shard", "4/5", "-c", "9"], "none of 4 requests"),
    ] {
        let mut args = strings(&base);
        args.extend(strings(&extra));
        let out = pdchaos(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
