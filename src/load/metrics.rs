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
    let selected: Vec<&RequestRecord> = records
        .into_iter()
        .filter(|r| window.is_none_or(|w| w.contains(r)))
        .collect();
    let mut summary = summarize_selected(&selected);
    let mut buckets: BTreeMap<String, Vec<&RequestRecord>> = BTreeMap::new();
    for r in &selected {
        if let Some(b) = &r.bucket {
            buckets.entry(b.clone()).or_default().push(r);
        }
    }
    summary.by_bucket = buckets
        .into_iter()
        .map(|(b, rs)| (b, summarize_selected(&rs)))
        .collect();
    summary
}

fn summarize_selected(records: &[&RequestRecord]) -> Summary {
    let mut s = Summary::default();
    for k in OutcomeKind::ALL {
        s.outcomes.insert(k.as_str().to_string(), 0);
    }
    let mut ttft = Hist::new();
    let mut ttft_answer = Hist::new();
    let mut e2e = Hist::new();
    let mut tpot = Hist::new();
    let mut itl = Hist::new();
    // Rates are recorded in milli-tokens/s so that integer buckets keep 3 significant digits.
    let mut decode = Hist::new();
    let (mut first, mut last) = (u64::MAX, 0u64);
    let (mut in_tok, mut out_tok) = (0u64, 0u64);
    for r in records {
        s.requests.total += 1;
        *s.outcomes
            .entry(r.outcome.as_str().to_string())
            .or_default() += 1;
        if let (OutcomeKind::HttpError, Some(code)) = (r.outcome, r.http_status) {
            *s.http_statuses.entry(code.to_string()).or_default() += 1;
        }
        if let Some(m) = r.server.mode {
            *s.modes.entry(m.as_str().to_string()).or_default() += 1;
        }
        s.missing_usage += u64::from(r.missing_usage);
        first = first.min(r.intended_us);
        last = last.max(r.end_us);
        if !r.outcome.is_ok() {
            continue;
        }
        s.requests.ok += 1;
        in_tok += r.input_tokens;
        out_tok += r.output_tokens;
        s.input_tokens.estimated |= r.tokens_estimated;
        s.output_tokens.estimated |= r.tokens_estimated;
        e2e.record(r.e2e_us());
        if let Some(t) = r.ttft_us() {
            ttft.record(t);
        }
        if let Some(t) = r.ttft_answer_us() {
            ttft_answer.record(t);
        }
        if let Some(first_tok) = r.first_token_us() {
            let span_us = r.end_us.saturating_sub(first_tok);
            if span_us > 0 && r.output_tokens > 0 {
                let tps = r.output_tokens as f64 / (span_us as f64 / 1e6);
                decode.record((tps * 1000.0).round() as u64);
            }
            if r.output_tokens >= 2 {
                tpot.record(span_us / (r.output_tokens - 1));
            }
        }
        for pair in r.chunk_offsets_us.windows(2) {
            itl.record(pair[1].saturating_sub(pair[0]));
        }
    }
    s.requests.failed = s.requests.total - s.requests.ok;
    if s.requests.total > 0 {
        s.success_rate = s.requests.ok as f64 / s.requests.total as f64;
        s.failure_rate = 1.0 - s.success_rate;
        s.duration_s = last.saturating_sub(first) as f64 / 1e6;
    }
    if s.duration_s > 0.0 {
        s.qps = s.requests.ok as f64 / s.duration_s;
        s.qpm = s.qps * 60.0;
    }
    if s.requests.ok > 0 {
        s.input_tokens.mean = in_tok as f64 / s.requests.ok as f64;
        s.output_tokens.mean = out_tok as f64 / s.requests.ok as f64;
    }
    s.input_tokens.total = in_tok;
    s.output_tokens.total = out_tok;
    s.ttft_ms = ttft.stats(1e3);
    s.ttft_answer_ms = ttft_answer.stats(1e3);
    s.e2e_ms = e2e.stats(1e3);
    s.tpot_ms = tpot.stats(1e3);
    s.itl_ms = itl.stats(1e3);
    s.decode_tps = decode.stats(1e3);
    s
}

/// An auto-resizing HDR histogram of non-negative integers (µs, or milli-tokens/s).
pub(crate) struct Hist(Histogram<u64>);

impl Hist {
    pub(crate) fn new() -> Self {
        let mut h = Histogram::new(3).expect("3 significant digits is a valid precision");
        h.auto(true);
        Hist(h)
    }

    pub(crate) fn record(&mut self, v: u64) {
        // An auto-resizing histogram grows to fit; `saturating_record` would clamp at its
        // current top instead, so it is only the fallback for values beyond any range.
        if self.0.record(v).is_err() {
            self.0.saturating_record(v);
        }
    }

    /// Stats with every value divided by `scale` (µs -> ms with 1e3).
    pub(crate) fn stats(&self, scale: f64) -> Stats {
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
    use crate::load::record::ServerInfo;

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
            user: 0,
            bucket: None,
            intended_us: sent,
            sent_us: sent,
            first_reasoning_us: None,
            first_answer_us: Some(sent + ttft),
            end_us: end,
            chunk_offsets_us: vec![ttft, ttft + 10_000, ttft + 30_000],
            finish_reason: Some("stop".into()),
            usage: None,
            input_tokens: 10,
            output_tokens: out,
            tokens_estimated: false,
            http_status: Some(200),
            outcome,
            error: None,
            reasoning_chars: 0,
            answer_chars: 5,
            server: ServerInfo::default(),
            missing_usage: false,
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
