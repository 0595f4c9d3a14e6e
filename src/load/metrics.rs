//! Metrics over any window of request records. Definitions: `docs/metrics.md`.
//!
//! Every figure is computed here and only here, from records, so the terminal table, the JSON
//! summary, the suite's windowed verdicts and a merged multi-process run all agree.
//! Percentiles come from HDR histograms at microsecond resolution (3 significant digits).

use crate::clock::Micros;
use crate::load::record::{OutcomeKind, RequestRecord};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A half-open window `[start_us, end_us)` selecting records by their intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_us: Micros,
    pub end_us: Micros,
}

impl Window {
    pub fn contains(&self, r: &RequestRecord) -> bool {
        r.intended_us >= self.start_us && r.intended_us < self.end_us
    }
}

/// Request counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
}

/// Distribution of a latency (milliseconds) or a rate (tokens/s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Token counts per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub mean: f64,
    pub total: u64,
    /// True when any counted request had no `usage` and was estimated.
    pub estimated: bool,
}

/// The summary of a window: the article's figures plus outcome counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: Requests,
    /// Count per outcome kind; every kind is present, zero or not.
    pub outcomes: BTreeMap<String, u64>,
    /// Count per HTTP status of `http_error` outcomes.
    pub http_statuses: BTreeMap<String, u64>,
    /// Count per serving path reported by the server (`disaggregated`, `prefill-only`, ...).
    pub modes: BTreeMap<String, u64>,
    /// ok / total, in [0, 1]; 0 when there were no requests.
    pub success_rate: f64,
    pub failure_rate: f64,
    /// Requests that missed usage (a warning unless usage was required).
    pub missing_usage: u64,
    /// Span of the window in seconds: first intended send to last end.
    pub duration_s: f64,
    /// Successful requests per minute and per second over `duration_s`.
    pub qpm: f64,
    pub qps: f64,
    pub ttft_ms: Stats,
    pub ttft_answer_ms: Stats,
    pub e2e_ms: Stats,
    pub decode_tps: Stats,
    pub tpot_ms: Stats,
    pub itl_ms: Stats,
    pub input_tokens: Tokens,
    pub output_tokens: Tokens,
    /// The same summary per length bucket (when buckets were configured).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_bucket: BTreeMap<String, Summary>,
}

/// Summarises the records inside `window` (all of them when `None`).
pub fn summarize<'a>(
    records: impl IntoIterator<Item = &'a RequestRecord>,
    window: Option<Window>,
) -> Summary {
    Tally::of(
        records
            .into_iter()
            .filter(|r| window.is_none_or(|w| w.contains(r))),
    )
    .summary()
}

/// What a [`Summary`] is computed from: counts, sums, the span of send and end times, and one
/// HDR histogram per distribution. Unlike a summary it can be merged: tallies of disjoint sets
/// of records merge into exactly the tally of their union, so a run split over several processes
/// summarises to the same figures as one process would (`crate::load::shard`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    /// Count per outcome kind (kinds never seen are absent).
    pub outcomes: BTreeMap<String, u64>,
    /// Count per HTTP status of `http_error` outcomes.
    pub http_statuses: BTreeMap<String, u64>,
    /// Count per serving path reported by the server.
    pub modes: BTreeMap<String, u64>,
    pub missing_usage: u64,
    /// Earliest intended send to latest end, absolute µs; `None` before the first record.
    pub window: Option<Window>,
    /// Prompt and completion tokens summed over successful requests.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// True when any successful request's tokens were estimated.
    pub tokens_estimated: bool,
    pub histograms: Histograms,
    /// The same tally per length bucket (empty inside a bucket's own tally).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_bucket: BTreeMap<String, Tally>,
}

/// The distributions of a [`Tally`], over successful requests. Latencies in µs; the decode rate
/// in milli-tokens/s so that integer buckets keep 3 significant digits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histograms {
    pub ttft_us: Hist,
    pub ttft_answer_us: Hist,
    pub e2e_us: Hist,
    pub tpot_us: Hist,
    pub itl_us: Hist,
    pub decode_mtok_s: Hist,
}

impl Histograms {
    fn each_mut(&mut self) -> [&mut Hist; 6] {
        [
            &mut self.ttft_us,
            &mut self.ttft_answer_us,
            &mut self.e2e_us,
            &mut self.tpot_us,
            &mut self.itl_us,
            &mut self.decode_mtok_s,
        ]
    }

    fn each(&self) -> [&Hist; 6] {
        [
            &self.ttft_us,
            &self.ttft_answer_us,
            &self.e2e_us,
            &self.tpot_us,
            &self.itl_us,
            &self.decode_mtok_s,
        ]
    }
}

impl Tally {
    /// Requests counted, of every outcome.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Requests whose outcome is `ok`.
    pub fn ok(&self) -> u64 {
        self.outcomes
            .get(OutcomeKind::Ok.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// The tally of `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a RequestRecord>) -> Tally {
        let mut t = Tally::default();
        for r in records {
            t.add(r);
        }
        t
    }

    /// Counts one record, in the whole and in its bucket.
    pub fn add(&mut self, r: &RequestRecord) {
        self.add_one(r);
        if let Some(b) = &r.bucket {
            self.by_bucket.entry(b.clone()).or_default().add_one(r);
        }
    }

    fn add_one(&mut self, r: &RequestRecord) {
        *self
            .outcomes
            .entry(r.outcome.as_str().to_string())
            .or_default() += 1;
        if let (OutcomeKind::HttpError, Some(code)) = (r.outcome, r.http_status) {
            *self.http_statuses.entry(code.to_string()).or_default() += 1;
        }
        if let Some(m) = r.server.mode {
            *self.modes.entry(m.as_str().to_string()).or_default() += 1;
        }
        self.missing_usage += u64::from(r.missing_usage);
        self.widen(Window {
            start_us: r.intended_us,
            end_us: r.end_us,
        });
        if !r.outcome.is_ok() {
            return;
        }
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.tokens_estimated |= r.tokens_estimated;
        let h = &mut self.histograms;
        h.e2e_us.record(r.e2e_us());
        if let Some(t) = r.ttft_us() {
            h.ttft_us.record(t);
        }
        if let Some(t) = r.ttft_answer_us() {
            h.ttft_answer_us.record(t);
        }
        if let Some(first_tok) = r.first_token_us() {
            let span_us = r.end_us.saturating_sub(first_tok);
            if span_us > 0 && r.output_tokens > 0 {
                let tps = r.output_tokens as f64 / (span_us as f64 / 1e6);
                h.decode_mtok_s.record((tps * 1000.0).round() as u64);
            }
            if r.output_tokens >= 2 {
                h.tpot_us.record(span_us / (r.output_tokens - 1));
            }
        }
        for pair in r.chunk_offsets_us.windows(2) {
            h.itl_us.record(pair[1].saturating_sub(pair[0]));
        }
    }

    fn widen(&mut self, w: Window) {
        self.window = Some(match self.window {
            None => w,
            Some(s) => Window {
                start_us: s.start_us.min(w.start_us),
                end_us: s.end_us.max(w.end_us),
            },
        });
    }

    /// Adds `other` to this tally: counts and sums add, spans widen to cover both on the
    /// absolute time axis, histograms add bucket by bucket (exact, no resampling).
    pub fn merge(&mut self, other: &Tally) -> Result<(), hdrhistogram::AdditionError> {
        let add = |into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>| {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        };
        add(&mut self.outcomes, &other.outcomes);
        add(&mut self.http_statuses, &other.http_statuses);
        add(&mut self.modes, &other.modes);
        self.missing_usage += other.missing_usage;
        if let Some(w) = other.window {
            self.widen(w);
        }
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.tokens_estimated |= other.tokens_estimated;
        for (into, from) in self
            .histograms
            .each_mut()
            .into_iter()
            .zip(other.histograms.each())
        {
            into.merge(from)?;
        }
        for (b, t) in &other.by_bucket {
            self.by_bucket.entry(b.clone()).or_default().merge(t)?;
        }
        Ok(())
    }

    /// The figures: the only place a [`Summary`] is computed.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for k in OutcomeKind::ALL {
            s.outcomes.insert(k.as_str().to_string(), 0);
        }
        for (k, v) in &self.outcomes {
            *s.outcomes.entry(k.clone()).or_default() += v;
        }
        s.http_statuses = self.http_statuses.clone();
        s.modes = self.modes.clone();
        s.missing_usage = self.missing_usage;
        s.requests.total = self.total();
        s.requests.ok = self.ok();
        s.requests.failed = s.requests.total - s.requests.ok;
        if s.requests.total > 0 {
            s.success_rate = s.requests.ok as f64 / s.requests.total as f64;
            s.failure_rate = 1.0 - s.success_rate;
        }
        if let Some(w) = self.window {
            s.duration_s = w.end_us.saturating_sub(w.start_us) as f64 / 1e6;
        }
        if s.duration_s > 0.0 {
            s.qps = s.requests.ok as f64 / s.duration_s;
            s.qpm = s.qps * 60.0;
        }
        if s.requests.ok > 0 {
            s.input_tokens.mean = self.input_tokens as f64 / s.requests.ok as f64;
            s.output_tokens.mean = self.output_tokens as f64 / s.requests.ok as f64;
        }
        s.input_tokens.total = self.input_tokens;
        s.output_tokens.total = self.output_tokens;
        s.input_tokens.estimated = self.tokens_estimated;
        s.output_tokens.estimated = self.tokens_estimated;
        let h = &self.histograms;
        s.ttft_ms = h.ttft_us.stats(1e3);
        s.ttft_answer_ms = h.ttft_answer_us.stats(1e3);
        s.e2e_ms = h.e2e_us.stats(1e3);
        s.tpot_ms = h.tpot_us.stats(1e3);
        s.itl_ms = h.itl_us.stats(1e3);
        s.decode_tps = h.decode_mtok_s.stats(1e3);
        s.by_bucket = self
            .by_bucket
            .iter()
            .map(|(b, t)| (b.clone(), t.summary()))
            .collect();
        s
    }
}

/// An auto-resizing HDR histogram of non-negative integers (µs, or milli-tokens/s).
///
/// It serialises as the base64 text of HdrHistogram's V2 deflate encoding (`crate::load::shard`).
#[derive(Debug, Clone)]
pub struct Hist(pub(crate) Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

/// Equal when they hold the same counts at the same values (whatever their allocated range).
impl PartialEq for Hist {
    fn eq(&self, other: &Self) -> bool {
        let cells = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        self.0.len() == other.0.len() && cells(&self.0) == cells(&other.0)
    }
}

impl Hist {
    pub fn new() -> Self {
        Hist::from_histogram(Histogram::new(3).expect("3 significant digits is a valid precision"))
    }

    /// Wraps a histogram (e.g. a deserialised one), turning auto-resizing on.
    pub(crate) fn from_histogram(mut h: Histogram<u64>) -> Self {
        h.auto(true);
        Hist(h)
    }

    pub fn record(&mut self, v: u64) {
        // An auto-resizing histogram grows to fit; `saturating_record` would clamp at its
        // current top instead, so it is only the fallback for values beyond any range.
        if self.0.record(v).is_err() {
            self.0.saturating_record(v);
        }
    }

    /// Adds every count of `other` at its value: exact, the histogram of both sets of values.
    pub fn merge(&mut self, other: &Hist) -> Result<(), hdrhistogram::AdditionError> {
        self.0.add(&other.0)
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Stats with every value divided by `scale` (µs -> ms with 1e3).
    pub fn stats(&self, scale: f64) -> Stats {
        let h = &self.0;
        if h.is_empty() {
            return Stats::default();
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / scale;
        Stats {
            count: h.len(),
            mean: h.mean() / scale,
            min: h.min() as f64 / scale,
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            max: h.max() as f64 / scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        id: u64,
        sent: u64,
        ttft: u64,
        end: u64,
        out: u64,
        outcome: OutcomeKind,
    ) -> RequestRecord {
        RequestRecord {
            id,
            first_answer_us: Some(sent + ttft),
            end_us: end,
            chunk_offsets_us: vec![ttft, ttft + 10_000, ttft + 30_000],
            finish_reason: Some("stop".into()),
            input_tokens: 10,
            output_tokens: out,
            http_status: Some(200),
            answer_chars: 5,
            ..RequestRecord::fixture(sent, outcome)
        }
    }

    #[test]
    fn decode_rate_percentiles_come_from_per_request_rates() {
        // Request A: 100 tokens over 1 s after the first token = 100 tok/s, short latency.
        // Request B: 10 tokens over 1 s = 10 tok/s, long latency. If the rates were copied from
        // the latency percentiles (the article's script bug), p50 and min would not be these.
        let a = rec(1, 0, 100_000, 1_100_000, 100, OutcomeKind::Ok);
        let b = rec(2, 0, 4_000_000, 5_000_000, 10, OutcomeKind::Ok);
        let s = summarize([&a, &b], None);
        assert!((s.decode_tps.min - 10.0).abs() < 0.05, "{:?}", s.decode_tps);
        assert!((s.decode_tps.max - 100.0).abs() < 0.1, "{:?}", s.decode_tps);
        assert!((s.ttft_ms.min - 100.0).abs() < 0.1);
        assert!((s.ttft_ms.max - 4000.0).abs() < 4.0);
        // TPOT = (end - first) / (tokens - 1).
        assert!(
            (s.tpot_ms.min - 1000.0 / 99.0).abs() < 0.05,
            "{:?}",
            s.tpot_ms
        );
    }

    #[test]
    fn success_rate_counts_only_ok_and_every_kind_is_listed() {
        let a = rec(1, 0, 1_000, 60_000_000, 5, OutcomeKind::Ok);
        let b = rec(2, 0, 1_000, 2_000, 5, OutcomeKind::StreamCut);
        let mut c = rec(3, 0, 1_000, 2_000, 5, OutcomeKind::HttpError);
        c.http_status = Some(503);
        let s = summarize([&a, &b, &c], None);
        assert_eq!(s.requests.total, 3);
        assert_eq!(s.requests.ok, 1);
        assert!((s.success_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.outcomes.len(), OutcomeKind::ALL.len());
        assert_eq!(s.outcomes["stream_cut"], 1);
        assert_eq!(s.http_statuses["503"], 1);
        // One ok request over 60 s = 1 QPM.
        assert!((s.qpm - 1.0).abs() < 1e-6, "{}", s.qpm);
    }

    #[test]
    fn window_selects_by_intended_send_time() {
        let a = rec(1, 1_000, 10, 5_000, 5, OutcomeKind::Ok);
        let b = rec(2, 9_000, 10, 12_000, 5, OutcomeKind::StreamCut);
        let s = summarize(
            [&a, &b],
            Some(Window {
                start_us: 5_000,
                end_us: 10_000,
            }),
        );
        assert_eq!(s.requests.total, 1);
        assert_eq!(s.requests.ok, 0);
        assert_eq!(s.success_rate, 0.0);
    }

    #[test]
    fn itl_from_chunk_gaps() {
        let a = rec(1, 0, 1_000, 100_000, 3, OutcomeKind::Ok);
        let s = summarize([&a], None);
        assert_eq!(s.itl_ms.count, 2);
        assert!((s.itl_ms.min - 10.0).abs() < 0.05);
        assert!((s.itl_ms.max - 20.0).abs() < 0.05);
    }
}
