//! Then steps: the expectations, each judged over the recorded requests of a window, and the
//! sizing report of a concurrency sweep.

use super::{dur, num};
use crate::check::expect;
use crate::check::windows::Span;
use crate::load::record::OutcomeKind;
use crate::pd::PdMode;

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
