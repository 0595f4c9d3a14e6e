//! Pure functions from records and fault events to what the timeline plot draws: fault windows,
//! per-request points, binned outcomes, concurrency, throughput, rolling percentiles, and the
//! times to detect and to recover.

use crate::clock::Micros;
use crate::fault::model::{FaultKind, FaultPhase, FaultSpec, FaultTarget, TimelineEvent};
use crate::load::record::{OutcomeKind, RequestRecord};
use crate::pd::PdMode;
use std::collections::BTreeMap;

/// One fault's life on the scenario's time axis (seconds from the scenario start).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub id: String,
    /// Short human label: id, kind and target.
    pub label: String,
    pub planned_s: Option<f64>,
    pub applied_s: Option<f64>,
    pub verified_s: Option<f64>,
    pub healed_s: Option<f64>,
    pub heal_verified_s: Option<f64>,
    pub heal_failed: bool,
}

impl FaultWindow {
    /// Where the shading starts: applied, else planned.
    pub fn start_s(&self) -> Option<f64> {
        self.applied_s.or(self.planned_s)
    }

    /// Where the shading ends: healed (or verified healed); `None` if it never healed.
    pub fn end_s(&self) -> Option<f64> {
        self.healed_s.or(self.heal_verified_s)
    }
}

/// Seconds from `origin` to `t` (negative if `t` is earlier).
pub fn secs(origin: Micros, t: Micros) -> f64 {
    (t as f64 - origin as f64) / 1e6
}

/// Groups timeline events by fault id, in order of first appearance.
pub fn fault_windows(events: &[TimelineEvent], origin: Micros) -> Vec<FaultWindow> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, FaultWindow> = BTreeMap::new();
    for ev in events {
        let id = ev.fault.0.clone();
        let w = by_id.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            FaultWindow {
                id: id.clone(),
                label: id.clone(),
                planned_s: None,
                applied_s: None,
                verified_s: None,
                healed_s: None,
                heal_verified_s: None,
                heal_failed: false,
            }
        });
        if let Some(spec) = &ev.spec {
            w.label = format!("{}: {}", short_id(&id), describe(spec));
        }
        let t = Some(secs(origin, ev.ts_us));
        // The first event of each phase counts: a retried heal keeps its first attempt's time.
        match ev.phase {
            FaultPhase::Planned => w.planned_s = w.planned_s.or(t),
            FaultPhase::Applied => w.applied_s = w.applied_s.or(t),
            FaultPhase::Verified => w.verified_s = w.verified_s.or(t),
            FaultPhase::Healed => w.healed_s = w.healed_s.or(t),
            FaultPhase::HealVerified => w.heal_verified_s = w.heal_verified_s.or(t),
            FaultPhase::HealFailed => w.heal_failed = true,
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

/// A fault id without the run's numeric prefix (`1795917590422-kv-cut-3` -> `kv-cut-3`): the
/// prefix is the same for every fault of a run and only crowds the figure.
pub fn short_id(id: &str) -> &str {
    match id.split_once('-') {
        Some((head, rest)) if head.len() >= 6 && head.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => id,
    }
}

/// "kill prefill", "toxic latency on decode_prefill_kv", ...
pub fn describe(spec: &FaultSpec) -> String {
    let kind = match &spec.kind {
        FaultKind::Kill => "kill".to_string(),
        FaultKind::Stop { .. } => "stop".to_string(),
        FaultKind::Pause => "pause".to_string(),
        FaultKind::Restart => "restart".to_string(),
        FaultKind::Scale { replicas } => format!("scale to {replicas}"),
        FaultKind::Evict => "evict".to_string(),
        FaultKind::Partition => "partition".to_string(),
        FaultKind::Toxic { toxic, .. } => {
            let v = serde_json::to_value(toxic).unwrap_or_default();
            let name = v.get("type").and_then(|t| t.as_str()).unwrap_or("toxic");
            name.replace('_', " ")
        }
    };
    let target = match &spec.target {
        FaultTarget::Role { role } => format!("{role:?}").to_lowercase(),
        FaultTarget::AllOf { role } => format!("all {role:?}").to_lowercase(),
        FaultTarget::Node { name } => name.clone(),
        FaultTarget::Link { link, node } => {
            let l = serde_json::to_value(link)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match node {
                Some(n) => format!("{l} of {n}"),
                None => l,
            }
        }
    };
    format!("{kind} {target}")
}

/// A request as a point on the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Send time, seconds from the origin.
    pub t_s: f64,
    pub value: f64,
    /// Served in a degraded mode (prefill-only or decode-only), as the server said.
    pub degraded: bool,
}

fn degraded(r: &RequestRecord) -> bool {
    matches!(
        r.server.mode,
        Some(PdMode::PrefillOnly | PdMode::DecodeOnly)
    )
}

/// TTFT in ms of every request that got a first token, at its send time.
pub fn ttft_points(records: &[RequestRecord], origin: Micros) -> Vec<Point> {
    records
        .iter()
        .filter_map(|r| {
            r.ttft_us().map(|t| Point {
                t_s: secs(origin, r.sent_us),
                value: t as f64 / 1e3,
                degraded: degraded(r),
            })
        })
        .collect()
}

/// Decode rate in tokens/s (output tokens after the first, over first token to end) per request.
pub fn decode_points(records: &[RequestRecord], origin: Micros) -> Vec<Point> {
    records
        .iter()
        .filter_map(|r| {
            let first = r.first_token_us()?;
            let span = r.end_us.checked_sub(first)? as f64 / 1e6;
            if r.output_tokens < 2 || span <= 0.0 {
                return None;
            }
            Some(Point {
                t_s: secs(origin, r.sent_us),
                value: (r.output_tokens - 1) as f64 / span,
                degraded: degraded(r),
            })
        })
        .collect()
}

/// A width for time bins: about 60 bins over the span, at least 0.1 s.
pub fn bin_width(span_s: f64) -> f64 {
    let raw = (span_s / 60.0).max(0.1);
    // Round to a readable step.
    [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
    .find(|s| *s >= raw)
    .unwrap_or(600.0)
}

/// Requests that ended in each bin, by outcome (bin index -> kind -> count).
pub fn outcome_bins(
    records: &[RequestRecord],
    origin: Micros,
    width: f64,
    bins: usize,
) -> Vec<BTreeMap<OutcomeKind, u32>> {
    let mut out = vec![BTreeMap::new(); bins];
    for r in records {
        let i = (secs(origin, r.end_us) / width).floor();
        if i >= 0.0 && (i as usize) < bins {
            *out[i as usize].entry(r.outcome).or_insert(0) += 1;
        }
    }
    out
}

/// Requests in flight at `t_s`, for each sample time.
pub fn concurrency(records: &[RequestRecord], origin: Micros, samples: &[f64]) -> Vec<u32> {
    samples
        .iter()
        .map(|&t| {
            records
                .iter()
                .filter(|r| secs(origin, r.sent_us) <= t && t < secs(origin, r.end_us))
                .count() as u32
        })
        .collect()
}

/// Successful requests per second and output tokens per second, per bin (by end time).
pub fn throughput(
    records: &[RequestRecord],
    origin: Micros,
    width: f64,
    bins: usize,
) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0); bins];
    for r in records.iter().filter(|r| r.outcome.is_ok()) {
        let i = (secs(origin, r.end_us) / width).floor();
        if i >= 0.0 && (i as usize) < bins {
            out[i as usize].0 += 1.0 / width;
            out[i as usize].1 += r.output_tokens as f64 / width;
        }
    }
    out
}

/// Rolling p50 and p90 of the points within `window_s` centred on each sample time; samples
/// with no point are skipped. Centred rather than trailing so a step does not appear late.
pub fn rolling_percentiles(
    points: &[Point],
    samples: &[f64],
    window_s: f64,
) -> Vec<(f64, f64, f64)> {
    samples
        .iter()
        .filter_map(|&t| {
            let mut v: Vec<f64> = points
                .iter()
                .filter(|p| (p.t_s - t).abs() <= window_s / 2.0)
                .map(|p| p.value)
                .collect();
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            Some((t, percentile(&v, 0.5), percentile(&v, 0.9)))
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Time to detect (first fault applied -> degraded mode seen) and time to recover (last heal
/// -> disaggregated mode seen again), in seconds, when the moments are known.
pub fn detect_and_recover(
    windows: &[FaultWindow],
    degraded_s: Option<f64>,
    recovered_s: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let first_applied = windows
        .iter()
        .filter_map(FaultWindow::start_s)
        .min_by(f64::total_cmp);
    let last_healed = windows
        .iter()
        .filter_map(FaultWindow::end_s)
        .max_by(f64::total_cmp);
    let detect = match (first_applied, degraded_s) {
        (Some(a), Some(d)) if d >= a => Some(d - a),
        _ => None,
    };
    let recover = match (last_healed, recovered_s) {
        (Some(h), Some(r)) if r >= h => Some(r - h),
        _ => None,
    };
    (detect, recover)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::model::FaultId;

    fn ev(ts_s: f64, id: &str, phase: FaultPhase) -> TimelineEvent {
        TimelineEvent {
            ts_us: 1_000_000 + (ts_s * 1e6) as u64,
            fault: FaultId(id.into()),
            phase,
            spec: None,
            undo: Vec::new(),
            detail: None,
        }
    }

    #[test]
    fn faults_are_grouped_by_id_with_first_time_of_each_phase() {
        let events = [
            ev(1.0, "a", FaultPhase::Applied),
            ev(2.0, "b", FaultPhase::Applied),
            ev(1.5, "a", FaultPhase::Verified),
            ev(5.0, "a", FaultPhase::Healed),
            ev(6.0, "a", FaultPhase::Healed),
            ev(7.0, "b", FaultPhase::HealFailed),
        ];
        let w = fault_windows(&events, 1_000_000);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].id.as_str(), w[0].start_s(), w[0].end_s()),
            ("a", Some(1.0), Some(5.0))
        );
        assert_eq!(w[0].verified_s, Some(1.5));
        assert!(w[1].heal_failed && w[1].end_s().is_none());
        let (detect, recover) = detect_and_recover(&w, Some(1.75), Some(8.0));
        assert_eq!(detect, Some(0.75));
        assert_eq!(recover, Some(3.0));
        // A degraded mode seen before any fault is not a detection.
        assert_eq!(detect_and_recover(&w, Some(0.5), None), (None, None));
    }

    #[test]
    fn short_ids_drop_only_a_numeric_run_prefix() {
        assert_eq!(short_id("1795917590422-kv-cut-3"), "kv-cut-3");
        assert_eq!(short_id("kv-cut"), "kv-cut");
        assert_eq!(short_id("12-a"), "12-a");
    }

    #[test]
    fn percentiles_and_bins() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 5.0);
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(bin_width(60.0), 1.0);
        assert_eq!(bin_width(10.0), 0.2);
        assert_eq!(bin_width(2.0), 0.1);
        assert_eq!(bin_width(600.0), 10.0);
    }
}
