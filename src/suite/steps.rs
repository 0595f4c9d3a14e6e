//! The step vocabulary, grouped by concept: deployment (Given), load and faults (When),
//! expectations (Then). Each step is a regex, an example for docs/steps.md, and a function.
//! Every step body runs under a timeout: a stuck step fails, it does not hang the run.

use crate::check::expect;
use crate::check::windows::Span;
use crate::load::engine::Ramp;
use crate::load::record::OutcomeKind;
use crate::pd::PdMode;
use crate::report::layout::SweepRow;
use crate::suite::faults;
use crate::suite::world::{PdWorld, Scheduled};
use cucumber::step::Context;
use futures_util::future::LocalBoxFuture;
use std::time::Duration;

/// Longest any single step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Given,
    When,
    Then,
}

/// One step definition.
pub struct StepDef {
    pub kind: Kind,
    pub pattern: &'static str,
    pub example: &'static str,
    pub run: cucumber::Step<PdWorld>,
}

fn dur(s: &str) -> Duration {
    humantime::parse_duration(s.trim())
        .unwrap_or_else(|_| panic!("`{s}` is not a duration (e.g. 500ms, 3s)"))
}

fn num<T: std::str::FromStr>(s: &str) -> T {
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a number"))
}

macro_rules! step {
    ($name:ident, |$w:ident, $m:ident| $body:block) => {
        fn $name<'a>($w: &'a mut PdWorld, ctx: Context) -> LocalBoxFuture<'a, ()> {
            Box::pin(async move {
                let $m: Vec<String> = ctx.matches.iter().skip(1).map(|(_, s)| s.clone()).collect();
                let _ = &$m;
                if tokio::time::timeout(STEP_TIMEOUT, async move { $body })
                    .await
                    .is_err()
                {
                    panic!("step timed out after {} s", STEP_TIMEOUT.as_secs());
                }
            })
        }
    };
}

// ---- deployment -------------------------------------------------------------------------

step!(given_layout, |w, m| {
    w.layout.prefill = num(&m[0]);
    w.layout.decode = num(&m[1]);
    w.layout.groups = m.get(2).filter(|g| !g.is_empty()).map_or(1, |g| num(g));
    w.layout_asked = true;
});

step!(given_defect, |w, m| {
    let name = match m[0].as_str() {
        "drops the answer after thinking" => "drop-answer-after-thinking",
        "ends streams without [DONE]" => "no-done",
        "never falls back when prefill dies" => "no-fallback-on-prefill-death",
        "ignores a cut KV link" => "ignore-kv-cut",
        "never recovers" => "never-recover",
        other => panic!("unknown defect `{other}`"),
    };
    w.layout.breaks.push(name.to_string());
});

// ---- load ---------------------------------------------------------------------------------

step!(given_users, |w, m| {
    w.load.users = num(&m[0]);
});

step!(given_ramp, |w, m| {
    w.load.ramp = Some(Ramp {
        users: num(&m[0]),
        every: dur(&m[1]),
    });
});

step!(given_max_tokens, |w, m| {
    w.load.max_tokens = Some(num(&m[0]));
});

step!(given_same_prompt, |w, _m| {
    w.load.unique_prefix = false;
    w.load.prompt = Some("Summarise the following report. ".repeat(300));
});

step!(given_unique_long_prompt, |w, _m| {
    w.load.unique_prefix = true;
    w.load.prompt = Some("Summarise the following report. ".repeat(300));
});

step!(when_load_runs, |w, m| {
    let users = w.load.users;
    let name = m
        .get(1)
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| "main".into());
    w.run_load(&name, users, dur(&m[0])).await;
});

step!(when_load_steps, |w, m| {
    let levels: Vec<u32> = m[0].split(',').map(num::<u32>).collect();
    let each = dur(&m[1]);
    let ratio = format!("{}P/{}D", w.layout.prefill, w.layout.decode);
    for c in levels {
        let recs = w.run_load(&format!("c{c}"), c, each).await;
        let s = crate::load::summarize(&recs, None);
        w.sweep.push(SweepRow {
            ratio: ratio.clone(),
            concurrency: c,
            ttft_p90_ms: s.ttft_ms.p90,
            decode_tps_p50: s.decode_tps.p50,
            success_rate: s.success_rate,
            meets_targets: false,
        });
    }
});

// ---- faults -------------------------------------------------------------------------------

fn schedule(
    w: &mut PdWorld,
    phrase: &str,
    at: Duration,
    duration: Option<Duration>,
    d: &crate::suite::world::Deployment,
) {
    let mut ids = |what: &str| w.next_fault_id(what);
    let specs =
        faults::parse(phrase, &mut ids, duration, &d.nodes()).unwrap_or_else(|e| panic!("{e}"));
    w.scheduled.push(Scheduled { at, specs });
}

step!(when_fault_after, |w, m| {
    let d = w.deployment().await;
    let duration = m.get(2).filter(|d| !d.is_empty()).map(|d| dur(d));
    schedule(w, &m[0], dur(&m[1]), duration, &d);
});

step!(when_fault_flaps, |w, m| {
    let d = w.deployment().await;
    let (times, every) = (num::<u32>(&m[1]), dur(&m[2]));
    for i in 0..times {
        schedule(w, &m[0], every * (2 * i + 1), Some(every), &d);
    }
});

step!(when_fault_now, |w, m| {
    let d = w.deployment().await;
    let mut ids = |what: &str| w.next_fault_id(what);
    let specs = faults::parse(&m[0], &mut ids, None, &d.nodes()).unwrap_or_else(|e| panic!("{e}"));
    for s in specs {
        w.nemesis().apply(s).await.unwrap_or_else(|e| panic!("{e}"));
    }
});

step!(when_healed, |w, _m| {
    let report = w.nemesis().heal_all().await;
    assert!(
        report.is_clean(),
        "healing left: {}",
        report.leftovers.join("; ")
    );
});

// ---- expectations -------------------------------------------------------------------------

step!(then_success_rate, |w, m| {
    let span: Span = m[0].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let v = expect::success_rate(&w.records, w.window(span), &span.to_string(), num(&m[1]));
    w.judge_explained(v);
});

step!(then_outcome_at_most, |w, m| {
    let (bound, min, max) = match m[0].as_str() {
        "no" => (0, 0, 0),
        n => (num::<u64>(n), 0, num::<u64>(n)),
    };
    let _ = bound;
    let span: Span = m[1].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let kind: OutcomeKind = m[2].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let v = expect::outcome_count(
        &w.records,
        w.window(span),
        &span.to_string(),
        kind,
        min,
        max,
    );
    w.judge(v);
});

step!(then_outcome_at_least, |w, m| {
    let span: Span = m[1].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let kind: OutcomeKind = m[2].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let v = expect::outcome_count(
        &w.records,
        w.window(span),
        &span.to_string(),
        kind,
        num(&m[0]),
        u64::MAX,
    );
    w.judge(v);
});

step!(then_ttft, |w, m| {
    let span: Span = m[1].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let v = expect::ttft_below(
        &w.records,
        w.window(span),
        &span.to_string(),
        num(&m[0]),
        num(&m[2]),
    );
    w.judge(v);
});

step!(then_decode_rate, |w, m| {
    let span: Span = m[0].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let v = expect::decode_rate_at_least(&w.records, w.window(span), &span.to_string(), num(&m[1]));
    w.judge(v);
});

step!(then_detect, |w, m| {
    if let Some(why) = crate::suite::world::mode_unobservable() {
        panic!("{why}");
    }
    let mode: PdMode = m[0].parse().unwrap_or_else(|e: String| panic!("{e}"));
    let f = w.fault_window().expect("a fault was applied");
    let (v, at) =
        expect::served_in_mode_within(&w.records, f.start_us, mode, dur(&m[1]).as_micros() as u64);
    w.degraded_at_us = at;
    w.judge_explained(v);
});

step!(then_recover, |w, m| {
    if let Some(why) = crate::suite::world::mode_unobservable() {
        panic!("{why}");
    }
    let heal = w
        .fault_window()
        .and_then(|f| f.end_us)
        .expect("the fault was healed during the run");
    let (v, at) =
        expect::disaggregated_again_within(&w.records, heal, dur(&m[0]).as_micros() as u64);
    w.recovered_at_us = at;
    w.judge_explained(v);
});

step!(then_back_to_baseline, |w, m| {
    let tol: f64 = num(&m[0]);
    let before = crate::load::summarize(&w.records, Some(w.window(Span::Before)))
        .ttft_ms
        .p90;
    let after = crate::load::summarize(&w.records, Some(w.window(Span::After)))
        .ttft_ms
        .p90;
    let bound = before * (1.0 + tol / 100.0);
    let v = crate::check::Verdict {
        expectation: format!("TTFT p90 after the fault within {tol}% of before"),
        window: "after".into(),
        value: Some(after),
        unit: Some("ms".into()),
        measured: format!("{after:.1} ms (before: {before:.1} ms)"),
        bound: format!("<= {bound:.1} ms"),
        passed: before > 0.0 && after > 0.0 && after <= bound,
        detail: None,
    };
    w.judge(v);
});

step!(then_complete, |w, _m| {
    let v = expect::answers_complete(&w.records);
    w.judge(v);
});

step!(then_none_hung, |w, m| {
    let v = expect::none_hung(&w.records, dur(&m[0]).as_micros() as u64);
    w.judge(v);
});

step!(then_ttft_compare, |w, m| {
    let a = crate::load::summarize(w.run_records(&m[1]), None).ttft_ms;
    let b = crate::load::summarize(w.run_records(&m[2]), None).ttft_ms;
    let pick = |s: &crate::load::metrics::Stats| if m[0] == "50" { s.p50 } else { s.p90 };
    let (va, vb) = (pick(&a), pick(&b));
    let v = crate::check::Verdict {
        expectation: format!("TTFT p{} of \"{}\" < of \"{}\"", m[0], m[1], m[2]),
        window: "runs".into(),
        value: Some(va),
        unit: Some("ms".into()),
        measured: format!("{va:.1} ms vs {vb:.1} ms"),
        bound: format!("< {vb:.1} ms"),
        passed: a.count > 0 && b.count > 0 && va < vb,
        detail: None,
    };
    w.judge(v);
});

step!(then_sizing, |w, m| {
    let (ttft_max, tps_min, success_min): (f64, f64, f64) = (num(&m[0]), num(&m[1]), num(&m[2]));
    w.sweep_targets = Some(crate::report::layout::SweepTargets {
        ttft_p90_ms_max: Some(ttft_max),
        decode_tps_p50_min: Some(tps_min),
    });
    for r in &mut w.sweep {
        r.meets_targets = r.ttft_p90_ms < ttft_max
            && r.decode_tps_p50 >= tps_min
            && r.success_rate * 100.0 >= success_min;
    }
    let best = w
        .sweep
        .iter()
        .filter(|r| r.meets_targets)
        .map(|r| r.concurrency)
        .max();
    let (first, last) = (w.sweep.first().cloned(), w.sweep.last().cloned());
    let saturates = match (first, last) {
        (Some(f), Some(l)) if f.ttft_p90_ms > 0.0 && l.decode_tps_p50 > 0.0 => {
            let ttft_growth = l.ttft_p90_ms / f.ttft_p90_ms;
            let decode_drop = f.decode_tps_p50 / l.decode_tps_p50;
            if ttft_growth >= decode_drop {
                format!("prefill first (TTFT p90 x{ttft_growth:.1})")
            } else {
                format!("decode first (decode rate /{decode_drop:.1})")
            }
        }
        _ => "unknown".into(),
    };
    let table: Vec<String> = w
        .sweep
        .iter()
        .map(|r| {
            format!(
                "c={} ttft_p90={:.0}ms decode_p50={:.1} ok={:.1}%{}",
                r.concurrency,
                r.ttft_p90_ms,
                r.decode_tps_p50,
                r.success_rate * 100.0,
                if r.meets_targets { " *" } else { "" }
            )
        })
        .collect();
    eprintln!(
        "  sizing {}: {}; highest concurrency meeting targets: {best:?}; saturates {saturates}",
        w.sweep.first().map(|r| r.ratio.clone()).unwrap_or_default(),
        table.join(" | ")
    );
    let v = crate::check::Verdict {
        expectation: format!(
            "some concurrency meets TTFT p90 < {ttft_max} ms, decode p50 >= {tps_min} tok/s, success >= {success_min}%"
        ),
        window: "sweep".into(),
        value: best.map(f64::from),
        unit: Some("users".into()),
        measured: format!(
            "highest meeting targets: {}; saturates {saturates}",
            best.map_or("none".into(), |b| b.to_string())
        ),
        bound: "at least the lowest level".into(),
        passed: best.is_some(),
        detail: Some(table.join(" | ")),
    };
    w.judge(v);
});

/// Every step, in the order docs/steps.md lists them.
pub fn all() -> Vec<StepDef> {
    use Kind::*;
    let w = r"(before the fault|during the fault|after the fault|over the whole run)";
    let _ = w;
    vec![
        StepDef {
            kind: Given,
            pattern: r"^a local P/D deployment with (\d+) prefill and (\d+) decode nodes?(?: in (\d+) groups)?$",
            example: "Given a local P/D deployment with 1 prefill and 3 decode nodes",
            run: given_layout,
        },
        StepDef {
            kind: Given,
            pattern: r"^the deployment (drops the answer after thinking|ends streams without \[DONE\]|never falls back when prefill dies|ignores a cut KV link|never recovers)$",
            example: "Given the deployment drops the answer after thinking",
            run: given_defect,
        },
        StepDef {
            kind: Given,
            pattern: r"^a load of (\d+) concurrent users$",
            example: "Given a load of 8 concurrent users",
            run: given_users,
        },
        StepDef {
            kind: Given,
            pattern: r"^the users ramp up (\d+) at a time every (\S+)$",
            example: "Given the users ramp up 1 at a time every 200ms",
            run: given_ramp,
        },
        StepDef {
            kind: Given,
            pattern: r"^requests ask for at most (\d+) tokens$",
            example: "Given requests ask for at most 10 tokens",
            run: given_max_tokens,
        },
        StepDef {
            kind: Given,
            pattern: r"^every request sends the same long prompt without a unique prefix$",
            example: "Given every request sends the same long prompt without a unique prefix",
            run: given_same_prompt,
        },
        StepDef {
            kind: Given,
            pattern: r"^every request sends a long prompt with a unique prefix$",
            example: "Given every request sends a long prompt with a unique prefix",
            run: given_unique_long_prompt,
        },
        StepDef {
            kind: When,
            pattern: r#"^the load runs for (\S+)(?: as "([^"]+)")?$"#,
            example: "When the load runs for 6s",
            run: when_load_runs,
        },
        StepDef {
            kind: When,
            pattern: r"^the load steps through concurrency ([\d, ]+) for (\S+) each$",
            example: "When the load steps through concurrency 2, 8, 32 for 2s each",
            run: when_load_steps,
        },
        StepDef {
            kind: When,
            pattern: r"^(.+) (\d+) times?, for (\S+) each time$",
            example: "When the KV link is cut 3 times, for 700ms each time",
            run: when_fault_flaps,
        },
        StepDef {
            kind: When,
            pattern: r"^(.+) after (\S+)(?: for (\S+))?$",
            example: "When the prefill node is killed after 2s for 3s",
            run: when_fault_after,
        },
        StepDef {
            kind: When,
            pattern: r"^the faults are healed$",
            example: "When the faults are healed",
            run: when_healed,
        },
        StepDef {
            kind: When,
            pattern: r"^(.+) now$",
            example: "When the decode node is killed now",
            run: when_fault_now,
        },
        StepDef {
            kind: Then,
            pattern: r"^the success rate (before the fault|during the fault|after the fault|over the whole run) is at least ([\d.]+)%$",
            example: "Then the success rate during the fault is at least 99%",
            run: then_success_rate,
        },
        StepDef {
            kind: Then,
            pattern: r"^(no|at most \d+) requests? (before the fault|during the fault|after the fault|over the whole run) ended as (\w+)$",
            example: "Then no request over the whole run ended as stream_cut",
            run: then_outcome_at_most,
        },
        StepDef {
            kind: Then,
            pattern: r"^at least (\d+) requests? (before the fault|during the fault|after the fault|over the whole run) ended as (\w+)$",
            example: "Then at least 1 request over the whole run ended as truncated_reasoning",
            run: then_outcome_at_least,
        },
        StepDef {
            kind: Then,
            pattern: r"^TTFT p(50|90|95|99) (before the fault|during the fault|after the fault|over the whole run) is below (\d+) ms$",
            example: "Then TTFT p90 during the fault is below 1500 ms",
            run: then_ttft,
        },
        StepDef {
            kind: Then,
            pattern: r"^the decode rate p50 (before the fault|during the fault|after the fault|over the whole run) is at least ([\d.]+) tokens/s$",
            example: "Then the decode rate p50 after the fault is at least 20 tokens/s",
            run: then_decode_rate,
        },
        StepDef {
            kind: Then,
            pattern: r"^requests are served (decode-only|prefill-only|disaggregated) within (\S+) of the fault$",
            example: "Then requests are served decode-only within 2s of the fault",
            run: then_detect,
        },
        StepDef {
            kind: Then,
            pattern: r"^requests are served disaggregated again within (\S+) of the heal$",
            example: "Then requests are served disaggregated again within 2s of the heal",
            run: then_recover,
        },
        StepDef {
            kind: Then,
            pattern: r"^TTFT p90 after the fault is within (\d+)% of before the fault$",
            example: "Then TTFT p90 after the fault is within 50% of before the fault",
            run: then_back_to_baseline,
        },
        StepDef {
            kind: Then,
            pattern: r"^every completed answer is complete$",
            example: "Then every completed answer is complete",
            run: then_complete,
        },
        StepDef {
            kind: Then,
            pattern: r"^no request took longer than (\S+)$",
            example: "Then no request took longer than 10s",
            run: then_none_hung,
        },
        StepDef {
            kind: Then,
            pattern: r#"^TTFT p(50|90) of "([^"]+)" is below that of "([^"]+)"$"#,
            example: r#"Then TTFT p50 of "warm" is below that of "cold""#,
            run: then_ttft_compare,
        },
        StepDef {
            kind: Then,
            pattern: r"^the sizing for TTFT p90 below (\d+) ms, decode rate p50 of at least ([\d.]+) tokens/s and a success rate of ([\d.]+)% is reported$",
            example: "Then the sizing for TTFT p90 below 1000 ms, decode rate p50 of at least 20 tokens/s and a success rate of 99% is reported",
            run: then_sizing,
        },
    ]
}

/// docs/steps.md, generated from [`all`] (a test keeps the committed file up to date).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Steps\n\nGenerated from `src/suite/steps.rs` (`pdchaos run --list-steps`). Windows are `before the fault`, `during the fault`, `after the fault`, `over the whole run`. Every step times out after ",
    );
    out.push_str(&format!("{} s.\n\n", STEP_TIMEOUT.as_secs()));
    for (kind, title) in [
        (Kind::Given, "Given: the deployment and the load"),
        (Kind::When, "When: load and faults"),
        (Kind::Then, "Then: expectations"),
    ] {
        out.push_str(&format!("## {title}\n\n| pattern | example |\n|---|---|\n"));
        for s in all().into_iter().filter(|s| s.kind == kind) {
            out.push_str(&format!(
                "| `{}` | `{}` |\n",
                s.pattern.replace('|', "\\|"),
                s.example.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out.push_str("## Fault phrases\n\nUsed in the `When` fault steps:\n\n");
    for p in faults::PHRASES {
        out.push_str(&format!("- `{p}`\n"));
    }
    out
}
