//! A realistic recorded run, written in the run-folder layout, for the report tests: a prefill
//! kill with degraded-mode requests and a connect-error burst, a KV-link cut with a stream_cut
//! burst plus a latency toxic, and a ratio sweep. Deterministic (seeded).
#![allow(dead_code)]

use pdchaos::check::Verdict;
use pdchaos::clock::Micros;
use pdchaos::fault::model::{
    FaultId, FaultKind, FaultPhase, FaultSpec, FaultTarget, Link, Stream, TimelineEvent, Toxic,
};
use pdchaos::load::record::{OutcomeKind, RequestRecord, ServerInfo};
use pdchaos::pd::{PdMode, Role};
use pdchaos::report::layout::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

pub const T0: Micros = 1_790_000_000_000_000;
const S: u64 = 1_000_000;

/// Knobs to make a run better or worse than another (for baseline tests).
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Multiplies every TTFT.
    pub ttft_scale: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs { ttft_scale: 1.0 }
    }
}

/// How the system behaves at a moment: (ttft ms, tok/s, outcome, mode) drawn by the scenario.
type Behaviour<'a> = &'a dyn Fn(f64, &mut StdRng) -> (f64, f64, OutcomeKind, PdMode);

/// A closed loop of `users` over `secs`, each request shaped by `behave(t_s)`.
fn closed_loop(
    start: Micros,
    secs: f64,
    users: u32,
    rng: &mut StdRng,
    k: Knobs,
    behave: Behaviour,
) -> Vec<RequestRecord> {
    let mut out = Vec::new();
    let mut id = 0;
    for user in 0..users {
        let mut t = start + rng.random_range(0..200_000);
        while t < start + (secs * S as f64) as u64 {
            let t_s = (t - start) as f64 / S as f64;
            let (ttft_ms, tps, outcome, mode) = behave(t_s, rng);
            let ttft_us = (ttft_ms * 1e3) as u64;
            let tokens: u64 = rng.random_range(60..140);
            let (first, end, out_tokens) = match outcome {
                OutcomeKind::Ok => {
                    let first = t + ttft_us;
                    (
                        Some(first),
                        first + (tokens as f64 / tps * 1e6) as u64,
                        tokens,
                    )
                }
                OutcomeKind::StreamCut => {
                    let first = t + ttft_us;
                    (
                        Some(first),
                        first + (tokens as f64 / 3.0 / tps * 1e6) as u64,
                        tokens / 3,
                    )
                }
                OutcomeKind::TimeoutFirstToken => (None, t + 5 * S, 0),
                _ => (None, t + rng.random_range(2_000..30_000), 0),
            };
            id += 1;
            out.push(RequestRecord {
                id,
                user,
                bucket: None,
                intended_us: t,
                sent_us: t,
                first_reasoning_us: None,
                first_answer_us: first,
                end_us: end,
                chunk_offsets_us: Vec::new(),
                finish_reason: outcome.is_ok().then(|| "stop".into()),
                usage: None,
                input_tokens: 512,
                output_tokens: out_tokens,
                tokens_estimated: false,
                http_status: match outcome {
                    OutcomeKind::HttpError => Some(503),
                    OutcomeKind::ConnectError => None,
                    _ => Some(200),
                },
                outcome,
                error: (!outcome.is_ok()).then(|| outcome.as_str().to_string()),
                reasoning_chars: 0,
                answer_chars: out_tokens * 4,
                missing_usage: false,
                server: ServerInfo {
                    mode: first.map(|_| mode),
                    ..ServerInfo::default()
                },
            });
            t = end + rng.random_range(20_000..80_000);
        }
    }
    // The knob changes TTFT alone: sends and outcomes stay those of the unscaled run, so a
    // baseline comparison sees exactly one thing move.
    for r in &mut out {
        if let Some(first) = r.first_answer_us {
            let scaled = r.sent_us + ((first - r.sent_us) as f64 * k.ttft_scale) as u64;
            r.end_us = r.end_us + scaled - first;
            r.first_answer_us = Some(scaled);
        }
    }
    out.sort_by_key(|r| r.sent_us);
    out
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A window summary with the load engine's documented keys, computed from the records.
pub fn summary(records: &[&RequestRecord]) -> Value {
    let total = records.len() as f64;
    let ok = records.iter().filter(|r| r.outcome.is_ok()).count() as f64;
    let mut ttft: Vec<f64> = records
        .iter()
        .filter_map(|r| r.ttft_us())
        .map(|u| u as f64 / 1e3)
        .collect();
    ttft.sort_by(f64::total_cmp);
    let mut tps: Vec<f64> = records
        .iter()
        .filter(|r| r.outcome.is_ok())
        .filter_map(|r| {
            let f = r.first_token_us()?;
            Some((r.output_tokens - 1) as f64 / ((r.end_us - f) as f64 / 1e6))
        })
        .collect();
    tps.sort_by(f64::total_cmp);
    let first = records.iter().map(|r| r.intended_us).min().unwrap_or(0);
    let last = records.iter().map(|r| r.end_us).max().unwrap_or(0);
    let dur = (last.saturating_sub(first)) as f64 / 1e6;
    let mut outcomes = BTreeMap::new();
    for k in OutcomeKind::ALL {
        outcomes.insert(
            k.as_str(),
            records.iter().filter(|r| r.outcome == k).count(),
        );
    }
    json!({
        "requests": {"total": total as u64, "ok": ok as u64, "failed": (total - ok) as u64},
        "outcomes": outcomes,
        "success_rate": if total > 0.0 { ok / total } else { 0.0 },
        "qpm": if dur > 0.0 { ok / dur * 60.0 } else { 0.0 },
        "ttft_ms": {"p50": pct(&ttft, 0.5), "p90": pct(&ttft, 0.9), "p99": pct(&ttft, 0.99)},
        "decode_tps": {"p50": pct(&tps, 0.5)},
        "e2e_ms": {"p90": 0.0},
    })
}

fn ev(ts: Micros, id: &str, phase: FaultPhase, spec: Option<FaultSpec>) -> TimelineEvent {
    TimelineEvent {
        ts_us: ts,
        fault: FaultId(id.into()),
        phase,
        spec,
        undo: Vec::new(),
        detail: None,
    }
}

/// The life of one fault: planned, applied, verified, healed, heal verified.
fn fault_life(spec: FaultSpec, start_s: f64, end_s: f64, base: Micros) -> Vec<TimelineEvent> {
    let at = |s: f64| base + (s * S as f64) as u64;
    let id = spec.id.0.clone();
    vec![
        ev(at(start_s - 0.05), &id, FaultPhase::Planned, Some(spec)),
        ev(at(start_s), &id, FaultPhase::Applied, None),
        ev(at(start_s + 0.3), &id, FaultPhase::Verified, None),
        ev(at(end_s), &id, FaultPhase::Healed, None),
        ev(at(end_s + 1.0), &id, FaultPhase::HealVerified, None),
    ]
}

fn verdict(exp: &str, window: &str, value: f64, bound: &str, passed: bool) -> Verdict {
    Verdict {
        expectation: exp.into(),
        window: window.into(),
        value: Some(value),
        unit: Some("%".into()),
        measured: format!("{value:.2}%"),
        bound: bound.into(),
        passed,
        detail: (!passed).then(|| "requests failed while the fault was in effect".into()),
    }
}

struct Written {
    entry: ScenarioEntry,
}

#[allow(clippy::too_many_arguments)]
fn write_scenario(
    run: &Path,
    dir: &str,
    feature: &str,
    name: &str,
    start: Micros,
    secs: f64,
    records: &[RequestRecord],
    timeline: &[TimelineEvent],
    windows: &[(&str, f64, f64)],
    extra: impl FnOnce(&mut ScenarioMeta, &BTreeMap<String, Value>) -> Vec<Verdict>,
) -> Written {
    let sdir = run.join(dir);
    std::fs::create_dir_all(&sdir).unwrap();
    let mut summaries = BTreeMap::new();
    for (w, a, b) in windows {
        let lo = start + (*a * S as f64) as u64;
        let hi = start + (*b * S as f64) as u64;
        let sel: Vec<&RequestRecord> = records
            .iter()
            .filter(|r| r.intended_us >= lo && r.intended_us < hi)
            .collect();
        summaries.insert(w.to_string(), summary(&sel));
    }
    let mut meta = ScenarioMeta {
        feature: feature.into(),
        name: name.into(),
        passed: true,
        started_us: start,
        ended_us: start + (secs * S as f64) as u64,
        degraded_at_us: None,
        recovered_at_us: None,
        sweep: Vec::new(),
        sweep_targets: None,
        errors: Vec::new(),
    };
    let verdicts = extra(&mut meta, &summaries);
    meta.passed = verdicts.iter().all(|v| v.passed);
    let jsonl = |items: Vec<String>| items.join("\n") + "\n";
    std::fs::write(
        sdir.join(RECORDS),
        jsonl(
            records
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect(),
        ),
    )
    .unwrap();
    std::fs::write(
        sdir.join(TIMELINE),
        jsonl(
            timeline
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect(),
        ),
    )
    .unwrap();
    std::fs::write(
        sdir.join(WINDOWS),
        serde_json::to_string_pretty(&summaries).unwrap(),
    )
    .unwrap();
    std::fs::write(
        sdir.join(VERDICTS),
        serde_json::to_string_pretty(&verdicts).unwrap(),
    )
    .unwrap();
    std::fs::write(
        sdir.join(SCENARIO_META),
        serde_json::to_string_pretty(&meta).unwrap(),
    )
    .unwrap();
    Written {
        entry: ScenarioEntry {
            feature: feature.into(),
            name: name.into(),
            dir: dir.into(),
            passed: meta.passed,
        },
    }
}

fn success(s: &Value) -> f64 {
    s["success_rate"].as_f64().unwrap() * 100.0
}

/// Writes the whole run into `dir`.
pub fn write_run(dir: &Path, k: Knobs) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut entries = Vec::new();

    // 1. Prefill node killed at 20 s, healed at 40 s: a connect-error burst, then degraded mode.
    let s1 = T0;
    let recs = closed_loop(s1, 60.0, 8, &mut rng, k, &|t, rng| {
        let base = 180.0 + rng.random_range(0.0..60.0);
        if (20.0..21.2).contains(&t) {
            let o = if rng.random_bool(0.5) {
                OutcomeKind::ConnectError
            } else {
                OutcomeKind::HttpError
            };
            (base, 40.0, o, PdMode::DecodeOnly)
        } else if (21.2..42.5).contains(&t) {
            (
                base * 3.0,
                25.0 + rng.random_range(0.0..5.0),
                OutcomeKind::Ok,
                PdMode::DecodeOnly,
            )
        } else {
            (
                base,
                40.0 + rng.random_range(0.0..8.0),
                OutcomeKind::Ok,
                PdMode::Disaggregated,
            )
        }
    });
    let spec = FaultSpec {
        id: FaultId("kill-prefill".into()),
        kind: FaultKind::Kill,
        target: FaultTarget::Role {
            role: Role::Prefill,
        },
        duration: Some(std::time::Duration::from_secs(20)),
    };
    let tl1 = fault_life(spec, 20.0, 40.0, s1);
    entries.push(write_scenario(
        dir,
        "prefill-dies",
        "prefill failure",
        "A prefill node dies under load",
        s1,
        60.0,
        &recs,
        &tl1,
        &[
            ("before", 0.0, 20.0),
            ("during", 20.0, 40.0),
            ("after", 40.0, 60.0),
        ],
        |m, w| {
            m.degraded_at_us = Some(s1 + 21_200_000);
            m.recovered_at_us = Some(s1 + 42_500_000);
            vec![
                verdict(
                    "success rate before the fault >= 99%",
                    "before",
                    success(&w["before"]),
                    ">= 99%",
                    success(&w["before"]) >= 99.0,
                ),
                verdict(
                    "success rate during the fault >= 99%",
                    "during",
                    success(&w["during"]),
                    ">= 99%",
                    success(&w["during"]) >= 99.0,
                ),
                verdict(
                    "success rate after the fault >= 99%",
                    "after",
                    success(&w["after"]),
                    ">= 99%",
                    success(&w["after"]) >= 99.0,
                ),
            ]
        },
    ));

    // 2. KV link partitioned 15–25 s (streams cut), then 200 ms latency on it 35–45 s.
    let s2 = T0 + 70 * S;
    let recs = closed_loop(s2, 55.0, 6, &mut rng, k, &|t, rng| {
        let base = 200.0 + rng.random_range(0.0..50.0);
        if (15.0..25.0).contains(&t) {
            let o = if rng.random_bool(0.6) {
                OutcomeKind::StreamCut
            } else {
                OutcomeKind::TimeoutFirstToken
            };
            (base, 35.0, o, PdMode::Disaggregated)
        } else if (35.0..45.0).contains(&t) {
            (base + 400.0, 38.0, OutcomeKind::Ok, PdMode::Disaggregated)
        } else {
            (
                base,
                40.0 + rng.random_range(0.0..6.0),
                OutcomeKind::Ok,
                PdMode::Disaggregated,
            )
        }
    });
    let cut = FaultSpec {
        id: FaultId("kv-cut".into()),
        kind: FaultKind::Partition,
        target: FaultTarget::Link {
            link: Link::DecodePrefillKv,
            node: None,
        },
        duration: None,
    };
    let slow = FaultSpec {
        id: FaultId("kv-slow".into()),
        kind: FaultKind::Toxic {
            toxic: Toxic::Latency {
                latency: 200,
                jitter: 20,
            },
            stream: Stream::Downstream,
            toxicity: 1.0,
        },
        target: FaultTarget::Link {
            link: Link::DecodePrefillKv,
            node: None,
        },
        duration: None,
    };
    let mut tl2 = fault_life(cut, 15.0, 25.0, s2);
    tl2.extend(fault_life(slow, 35.0, 45.0, s2));
    entries.push(write_scenario(
        dir,
        "kv-link-cut",
        "kv link",
        "The KV link is cut mid-stream",
        s2,
        55.0,
        &recs,
        &tl2,
        &[
            ("before", 0.0, 15.0),
            ("during", 15.0, 25.0),
            ("after", 25.0, 55.0),
        ],
        |_, w| {
            vec![verdict(
                "success rate after the heal >= 99%",
                "after",
                success(&w["after"]),
                ">= 99%",
                success(&w["after"]) >= 99.0,
            )]
        },
    ));

    // 3. Ratio sweep: no timeline, a sizing table.
    let s3 = T0 + 130 * S;
    entries.push(write_scenario(
        dir,
        "ratio-sweep",
        "sizing",
        "Find the P:D ratio for the target",
        s3,
        120.0,
        &[],
        &[],
        &[],
        |m, _| {
            m.sweep_targets = Some(SweepTargets {
                ttft_p90_ms_max: Some(1000.0),
                decode_tps_p50_min: Some(30.0),
            });
            for (ratio, p_cap, d_cap) in [
                ("1P/1D", 12.0, 10.0),
                ("1P/2D", 10.0, 20.0),
                ("2P/1D", 24.0, 10.0),
                ("2P/2D", 24.0, 24.0),
            ] {
                for c in [4u32, 8, 16, 32] {
                    let ttft = 200.0 * k.ttft_scale * (1.0 + (c as f64 / p_cap).powi(2));
                    let tps = 50.0 / (1.0 + (c as f64 / d_cap).powi(2) * 0.5);
                    m.sweep.push(SweepRow {
                        ratio: ratio.into(),
                        concurrency: c,
                        ttft_p90_ms: ttft,
                        decode_tps_p50: tps,
                        success_rate: 1.0,
                        meets_targets: ttft <= 1000.0 && tps >= 30.0,
                    });
                }
            }
            vec![verdict(
                "some ratio meets the targets at 16 streams",
                "whole",
                100.0,
                "any",
                true,
            )]
        },
    ));

    let index = RunIndex {
        pdchaos_version: "0.1.0".into(),
        target: "local stack 1P/1D, profile tiny".into(),
        started_us: T0,
        ended_us: T0 + 250 * S,
        scenarios: entries.into_iter().map(|w| w.entry).collect(),
    };
    std::fs::write(
        dir.join(RUN_INDEX),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
}
