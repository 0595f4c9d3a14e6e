//! Expectations as pure functions of records (and the fault window): each returns a [`Verdict`]
//! that says what was measured against what bound. Nothing here does I/O.

use crate::check::Verdict;
use crate::clock::Micros;
use crate::load::metrics::{Window, summarize};
use crate::load::record::{OutcomeKind, RequestRecord};
use crate::pd::PdMode;

// One argument per field of `Verdict`: a struct literal at each call site would only repeat the
// field names.
#[allow(clippy::too_many_arguments)]
fn verdict(
    expectation: String,
    window: &str,
    value: f64,
    unit: &str,
    measured: String,
    bound: String,
    passed: bool,
    detail: Option<String>,
) -> Verdict {
    Verdict {
        expectation,
        window: window.into(),
        value: Some(value),
        unit: Some(unit.into()),
        measured,
        bound,
        passed,
        detail,
    }
}

fn failures(records: &[&RequestRecord]) -> Option<String> {
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    for r in records.iter().filter(|r| !r.outcome.is_ok()) {
        *kinds.entry(r.outcome.as_str()).or_default() += 1;
    }
    let first = records
        .iter()
        .find(|r| !r.outcome.is_ok())
        .and_then(|r| r.error.clone());
    (!kinds.is_empty()).then(|| format!("failures {kinds:?}; first: {}", first.unwrap_or_default()))
}

fn select(records: &[RequestRecord], w: Window) -> Vec<&RequestRecord> {
    records.iter().filter(|r| w.contains(r)).collect()
}

/// Success rate in `w` at least `min_pct`. An empty window fails: no evidence is not a pass.
pub fn success_rate(records: &[RequestRecord], w: Window, name: &str, min_pct: f64) -> Verdict {
    let sel = select(records, w);
    let s = summarize(sel.iter().copied(), None);
    let pct = s.success_rate * 100.0;
    let passed = s.requests.total > 0 && pct >= min_pct;
    let detail = if s.requests.total == 0 {
        Some("no request was sent in this window".into())
    } else {
        failures(&sel)
    };
    verdict(
        format!("success rate {name} >= {min_pct}%"),
        name,
        pct,
        "%",
        format!("{pct:.2}% ({}/{})", s.requests.ok, s.requests.total),
        format!(">= {min_pct}%"),
        passed,
        detail,
    )
}

/// Count of `outcome` in `w` within `[min, max]`.
pub fn outcome_count(
    records: &[RequestRecord],
    w: Window,
    name: &str,
    outcome: OutcomeKind,
    min: u64,
    max: u64,
) -> Verdict {
    let n = select(records, w)
        .iter()
        .filter(|r| r.outcome == outcome)
        .count() as u64;
    let bound = match (min, max) {
        (0, m) => format!("<= {m}"),
        (m, u64::MAX) => format!(">= {m}"),
        (a, b) => format!("{a}..={b}"),
    };
    verdict(
        format!("{outcome} requests {name} {bound}"),
        name,
        n as f64,
        "count",
        n.to_string(),
        bound,
        n >= min && n <= max,
        None,
    )
}

/// TTFT percentile (of successful requests) in `w` below `max_ms`.
pub fn ttft_below(
    records: &[RequestRecord],
    w: Window,
    name: &str,
    pct: u8,
    max_ms: f64,
) -> Verdict {
    let s = summarize(select(records, w).iter().copied(), None);
    let v = match pct {
        50 => s.ttft_ms.p50,
        90 => s.ttft_ms.p90,
        95 => s.ttft_ms.p95,
        _ => s.ttft_ms.p99,
    };
    let passed = s.ttft_ms.count > 0 && v < max_ms;
    let detail = (s.ttft_ms.count == 0).then(|| "no successful request in this window".to_string());
    verdict(
        format!("TTFT p{pct} {name} < {max_ms} ms"),
        name,
        v,
        "ms",
        format!("{v:.1} ms"),
        format!("< {max_ms} ms"),
        passed,
        detail,
    )
}

/// Decode-rate p50 (per-request rates) in `w` at least `min_tps`.
pub fn decode_rate_at_least(
    records: &[RequestRecord],
    w: Window,
    name: &str,
    min_tps: f64,
) -> Verdict {
    let s = summarize(select(records, w).iter().copied(), None);
    let v = s.decode_tps.p50;
    let passed = s.decode_tps.count > 0 && v >= min_tps;
    verdict(
        format!("decode rate p50 {name} >= {min_tps} tok/s"),
        name,
        v,
        "tok/s",
        format!("{v:.1} tok/s"),
        format!(">= {min_tps} tok/s"),
        passed,
        None,
    )
}

/// Time to detect: from `fault_us` to the first request sent after it that was served in
/// `mode` successfully. Fails when that never happened or took longer than `within_us`.
pub fn served_in_mode_within(
    records: &[RequestRecord],
    fault_us: Micros,
    mode: PdMode,
    within_us: u64,
) -> (Verdict, Option<Micros>) {
    let first = records
        .iter()
        .filter(|r| r.sent_us >= fault_us && r.outcome.is_ok() && r.server.mode == Some(mode))
        .map(|r| r.sent_us)
        .min();
    let took = first.map(|t| t - fault_us);
    let passed = took.is_some_and(|t| t <= within_us);
    let seen: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r.sent_us >= fault_us)
        .map(|r| {
            r.server
                .mode
                .map_or(r.outcome.to_string(), |m| m.to_string())
        })
        .collect();
    let detail =
        (!passed).then(|| format!("after the fault requests were served as / ended in: {seen:?}"));
    let v = verdict(
        format!("served {mode} within {} ms of the fault", within_us / 1000),
        "during",
        took.map_or(f64::INFINITY, |t| t as f64 / 1000.0),
        "ms",
        took.map_or("never".into(), |t| format!("{:.0} ms", t as f64 / 1000.0)),
        format!("<= {} ms", within_us / 1000),
        passed,
        detail,
    );
    (v, first)
}

/// Time to recover: from `heal_us` to the point from which every successful request was
/// served disaggregated again.
pub fn disaggregated_again_within(
    records: &[RequestRecord],
    heal_us: Micros,
    within_us: u64,
) -> (Verdict, Option<Micros>) {
    let mut after: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.sent_us >= heal_us && r.outcome.is_ok())
        .collect();
    after.sort_by_key(|r| r.sent_us);
    let last_degraded = after
        .iter()
        .rposition(|r| r.server.mode != Some(PdMode::Disaggregated));
    let recovered = match last_degraded {
        None => after.first().map(|r| r.sent_us),
        Some(i) => after.get(i + 1).map(|r| r.sent_us),
    };
    let took = recovered.map(|t| t - heal_us);
    let passed = took.is_some_and(|t| t <= within_us);
    let detail = (!passed).then(|| match last_degraded {
        Some(i) => format!(
            "still served {:?} {} ms after the heal",
            after[i].server.mode,
            (after[i].sent_us - heal_us) / 1000
        ),
        None => "no successful request after the heal".into(),
    });
    let v = verdict(
        format!(
            "disaggregated again within {} ms of the heal",
            within_us / 1000
        ),
        "after",
        took.map_or(f64::INFINITY, |t| t as f64 / 1000.0),
        "ms",
        took.map_or("never".into(), |t| format!("{:.0} ms", t as f64 / 1000.0)),
        format!("<= {} ms", within_us / 1000),
        passed,
        detail,
    );
    (v, recovered)
}

/// Every request that completed its stream carried a whole answer: no truncated thinking, no
/// empty answer.
pub fn answers_complete(records: &[RequestRecord]) -> Verdict {
    let bad: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                OutcomeKind::EmptyAnswer | OutcomeKind::TruncatedReasoning
            )
        })
        .collect();
    let n = bad.len() as f64;
    let detail = bad.first().map(|r| {
        format!(
            "e.g. request {}: {} ({})",
            r.id,
            r.outcome,
            r.error.clone().unwrap_or_default()
        )
    });
    verdict(
        "every completed answer is complete".into(),
        "whole",
        n,
        "count",
        format!("{n} incomplete"),
        "0".into(),
        bad.is_empty(),
        detail,
    )
}

/// No request (successful or not) took longer than `max_us` end to end.
pub fn none_hung(records: &[RequestRecord], max_us: u64) -> Verdict {
    let worst = records.iter().map(RequestRecord::e2e_us).max().unwrap_or(0);
    let ms = worst as f64 / 1000.0;
    verdict(
        format!("no request took longer than {} ms", max_us / 1000),
        "whole",
        ms,
        "ms",
        format!("longest {ms:.0} ms"),
        format!("<= {} ms", max_us / 1000),
        worst <= max_us,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::record::ServerInfo;

    fn rec(sent: u64, outcome: OutcomeKind, mode: Option<PdMode>) -> RequestRecord {
        RequestRecord {
            server: ServerInfo {
                mode,
                ..ServerInfo::default()
            },
            ..RequestRecord::fixture(sent, outcome)
        }
    }

    const ALL: Window = Window {
        start_us: 0,
        end_us: u64::MAX,
    };

    #[test]
    fn success_rate_fails_below_bound_and_on_empty_windows() {
        let rs = vec![
            rec(1, OutcomeKind::Ok, None),
            rec(2, OutcomeKind::StreamCut, None),
        ];
        assert!(!success_rate(&rs, ALL, "whole", 99.0).passed);
        assert!(success_rate(&rs, ALL, "whole", 50.0).passed);
        assert!(
            !success_rate(&[], ALL, "whole", 0.0).passed,
            "no evidence is not a pass"
        );
    }

    #[test]
    fn time_to_detect_and_recover() {
        let d = Some(PdMode::Disaggregated);
        let o = Some(PdMode::DecodeOnly);
        let rs = vec![
            rec(0, OutcomeKind::Ok, d),
            rec(1_000_000, OutcomeKind::StreamCut, None),
            rec(1_300_000, OutcomeKind::Ok, o),
            rec(3_100_000, OutcomeKind::Ok, o),
            rec(3_400_000, OutcomeKind::Ok, d),
        ];
        let (v, at) = served_in_mode_within(&rs, 1_000_000, PdMode::DecodeOnly, 500_000);
        assert!(v.passed && at == Some(1_300_000), "{v:?}");
        assert!(
            !served_in_mode_within(&rs, 1_000_000, PdMode::DecodeOnly, 200_000)
                .0
                .passed
        );
        assert!(
            !served_in_mode_within(&rs, 1_000_000, PdMode::PrefillOnly, 5_000_000)
                .0
                .passed
        );
        let (v, at) = disaggregated_again_within(&rs, 3_000_000, 500_000);
        assert!(v.passed && at == Some(3_400_000), "{v:?}");
        assert!(!disaggregated_again_within(&rs, 3_000_000, 300_000).0.passed);
        let never = vec![rec(3_100_000, OutcomeKind::Ok, o)];
        assert!(
            !disaggregated_again_within(&never, 3_000_000, 10_000_000)
                .0
                .passed
        );
    }

    #[test]
    fn completeness_and_hangs() {
        let rs = vec![
            rec(1, OutcomeKind::Ok, None),
            rec(2, OutcomeKind::TruncatedReasoning, None),
        ];
        assert!(!answers_complete(&rs).passed);
        assert!(answers_complete(&rs[..1]).passed);
        assert!(none_hung(&rs, 60_000).passed);
        assert!(!none_hung(&rs, 10_000).passed);
    }

    #[test]
    fn outcome_counts_and_latency_bounds() {
        let rs = vec![
            rec(1, OutcomeKind::Ok, None),
            rec(2, OutcomeKind::StreamCut, None),
        ];
        assert!(outcome_count(&rs, ALL, "whole", OutcomeKind::StreamCut, 0, 1).passed);
        assert!(!outcome_count(&rs, ALL, "whole", OutcomeKind::StreamCut, 0, 0).passed);
        assert!(ttft_below(&rs, ALL, "whole", 90, 20.0).passed);
        assert!(!ttft_below(&rs, ALL, "whole", 90, 5.0).passed);
        assert!(!decode_rate_at_least(&rs, ALL, "whole", 1000.0).passed);
    }
}
