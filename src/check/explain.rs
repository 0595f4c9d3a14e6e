//! What the serving side did during a fault, read off the records: the words a failing mode or
//! success-rate check appends to its verdict, and the figures `pdchaos scorecard` tabulates.
//!
//! A pure function of the records, the fault window and the names of the faulted nodes:
//!
//! - **failures during the fault**: requests sent while the fault was in effect that did not end
//!   `ok`, grouped as `HTTP <status>` or by outcome (`connect_error`, `timeout_first_token`, ...),
//!   with the first error text of each group;
//! - **sent to the faulted node's path**: a request sent during the fault whose `x-pd-prefill` /
//!   `x-pd-decode` header names a faulted node, or that failed *other than by a fast refusal*
//!   (HTTP 503 within [`REFUSAL_MAX_US`] of sending: the router answering "no worker" itself,
//!   without trying one). The last such request's send time is when the router stopped
//!   routing there (or it never did, while the fault lasted);
//! - **after the heal**: the first `ok` request, and the point from which every request was `ok`
//!   (and disaggregated, when the server reports a mode).
//!
//! The classification is a reading of the evidence, not the router's own account: the text says
//! what it is based on.

use crate::check::windows::FaultWindow;
use crate::clock::Micros;
use crate::fault::model::{FaultTarget, TimelineEvent, Undo};
use crate::load::record::{OutcomeKind, RequestRecord};
use crate::pd::PdMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A 503 answered this fast is the router refusing on its own (no healthy worker), not a
/// request that reached a node.
pub const REFUSAL_MAX_US: u64 = 1_000_000;

/// One kind of failure during the fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// `HTTP 503`, `connect_error`, `timeout_first_token`, `stream_cut`, ...
    pub kind: String,
    pub count: usize,
    /// The first error text of this kind (shortened).
    pub example: String,
}

/// What the records say the serving side did during and after a fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The faulted nodes (from the timeline), e.g. `["prefill-0"]`.
    pub nodes: Vec<String>,
    /// How long the fault lasted (ms); `None` when it was never healed.
    pub fault_ms: Option<f64>,
    /// Requests sent during the fault, and how many ended `ok`.
    pub during: usize,
    pub during_ok: usize,
    /// `ok` requests during the fault by the mode the server reported (`unreported` without).
    pub served_as: BTreeMap<String, usize>,
    /// Failures during the fault, most frequent first.
    pub failures: Vec<FailureGroup>,
    /// Requests sent before the fault, still running when it began, that failed.
    #[serde(default)]
    pub in_flight_failed: Vec<FailureGroup>,
    /// Requests sent during the fault toward a faulted node (see the module docs).
    pub to_faulted: usize,
    /// Milliseconds from the fault to the send of the last of those, and to its end.
    pub last_to_faulted_sent_ms: Option<f64>,
    pub last_to_faulted_ended_ms: Option<f64>,
    /// Requests sent during the fault after that one, none of them toward a faulted node: the
    /// router stopped routing there (`false`: it kept on until the fault ended).
    pub stopped_routing: bool,
    /// Requests sent after the heal, failures among them, and timings from the heal (ms).
    pub after: usize,
    pub after_failed: usize,
    pub first_ok_after_heal_ms: Option<f64>,
    /// From this point every request sent was `ok` (and disaggregated where a mode is reported).
    pub recovered_after_heal_ms: Option<f64>,
}

impl Explanation {
    /// Time to detect, as the scorecard counts it: from the fault until the router stopped
    /// sending requests to the faulted node (0 when none was sent there). `None` when it never
    /// stopped while the fault lasted.
    pub fn detect_ms(&self) -> Option<f64> {
        if self.to_faulted == 0 {
            Some(0.0)
        } else if self.stopped_routing {
            self.last_to_faulted_sent_ms
        } else {
            None
        }
    }

    /// Success rate during the fault, 0..=1 (`None` without requests).
    pub fn success_rate(&self) -> Option<f64> {
        (self.during > 0).then(|| self.during_ok as f64 / self.during as f64)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn short(s: &str) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    let mut out: String = one_line.chars().take(120).collect();
    if one_line.chars().count() > 120 {
        out.push_str("...");
    }
    out
}

/// The node names a fault timeline touched: node targets, the nodes named by undo actions, and
/// the nodes behind Toxiproxy proxies (`router-<node>`, `kv-<node>`).
pub fn faulted_nodes(timeline: &[TimelineEvent]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for e in timeline {
        if let Some(spec) = &e.spec {
            match &spec.target {
                FaultTarget::Node { name } => {
                    out.insert(name.clone());
                }
                FaultTarget::Link {
                    node: Some(name), ..
                } => {
                    out.insert(name.clone());
                }
                _ => {}
            }
        }
        for u in &e.undo {
            match u {
                Undo::Resume { node, .. } | Undo::Restart { node } => {
                    out.insert(node.clone());
                }
                Undo::EnableProxy { proxy, .. } | Undo::RemoveToxic { proxy, .. } => {
                    let node = proxy
                        .strip_prefix("router-")
                        .or_else(|| proxy.strip_prefix("kv-"))
                        .unwrap_or(proxy);
                    out.insert(node.to_string());
                }
                _ => {}
            }
        }
    }
    out.into_iter().collect()
}

fn names_faulted(r: &RequestRecord, nodes: &[String]) -> bool {
    [&r.server.prefill, &r.server.decode]
        .into_iter()
        .flatten()
        .any(|n| nodes.iter().any(|f| f == n))
}

/// A fast 503: the router's own refusal.
pub fn is_refusal(r: &RequestRecord) -> bool {
    r.outcome == OutcomeKind::HttpError
        && r.http_status == Some(503)
        && r.end_us.saturating_sub(r.sent_us) < REFUSAL_MAX_US
}

/// Failures grouped by kind, most frequent first, with the first error text of each.
fn group_failures<'a>(records: impl Iterator<Item = &'a RequestRecord>) -> Vec<FailureGroup> {
    let mut groups: Vec<FailureGroup> = Vec::new();
    for r in records {
        let kind = failure_kind(r);
        match groups.iter_mut().find(|g| g.kind == kind) {
            Some(g) => g.count += 1,
            None => groups.push(FailureGroup {
                kind,
                count: 1,
                example: short(r.error.as_deref().unwrap_or("")),
            }),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
    groups
}

fn failure_kind(r: &RequestRecord) -> String {
    match (r.outcome, r.http_status) {
        (OutcomeKind::HttpError, Some(s)) => format!("HTTP {s}"),
        (o, _) => o.as_str().to_string(),
    }
}

/// Reads what happened during `fault` (to `nodes`) and after its heal off `records`.
pub fn explain(records: &[RequestRecord], fault: FaultWindow, nodes: &[String]) -> Explanation {
    let start = fault.start_us;
    let end = fault.end_us.unwrap_or(Micros::MAX);
    let mut during: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.sent_us >= start && r.sent_us < end)
        .collect();
    during.sort_by_key(|r| r.sent_us);
    let mut served_as = BTreeMap::new();
    for r in during.iter().filter(|r| r.outcome.is_ok()) {
        let mode = r.server.mode.map_or("unreported".into(), |m| m.to_string());
        *served_as.entry(mode).or_insert(0) += 1;
    }
    let groups = group_failures(during.iter().copied().filter(|r| !r.outcome.is_ok()));
    let in_flight_failed = group_failures(
        records
            .iter()
            .filter(|r| r.sent_us < start && r.end_us >= start && !r.outcome.is_ok()),
    );
    let toward =
        |r: &RequestRecord| names_faulted(r, nodes) || (!r.outcome.is_ok() && !is_refusal(r));
    let to_faulted = during.iter().filter(|r| toward(r)).count();
    let last = during.iter().rposition(|r| toward(r));
    let last_rec = last.map(|i| during[i]);
    let mut after: Vec<&RequestRecord> = match fault.end_us {
        Some(h) => records.iter().filter(|r| r.sent_us >= h).collect(),
        None => Vec::new(),
    };
    after.sort_by_key(|r| r.sent_us);
    let heal = fault.end_us.unwrap_or(0);
    let bad = |r: &RequestRecord| {
        !r.outcome.is_ok() || r.server.mode.is_some_and(|m| m != PdMode::Disaggregated)
    };
    let recovered = match after.iter().rposition(|r| bad(r)) {
        None => after.first(),
        Some(i) => after.get(i + 1),
    };
    Explanation {
        nodes: nodes.to_vec(),
        fault_ms: fault.end_us.map(|e| ms(e.saturating_sub(start))),
        during: during.len(),
        during_ok: during.iter().filter(|r| r.outcome.is_ok()).count(),
        served_as,
        failures: groups,
        in_flight_failed,
        to_faulted,
        last_to_faulted_sent_ms: last_rec.map(|r| ms(r.sent_us.saturating_sub(start))),
        last_to_faulted_ended_ms: last_rec.map(|r| ms(r.end_us.saturating_sub(start))),
        stopped_routing: last.is_some_and(|i| i + 1 < during.len()),
        after: after.len(),
        after_failed: after.iter().filter(|r| !r.outcome.is_ok()).count(),
        first_ok_after_heal_ms: after
            .iter()
            .find(|r| r.outcome.is_ok())
            .map(|r| ms(r.sent_us.saturating_sub(heal))),
        recovered_after_heal_ms: recovered.map(|r| ms(r.sent_us.saturating_sub(heal))),
    }
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

impl fmt::Display for Explanation {
    /// One paragraph: what failed and how, when the router stopped routing to the faulted
    /// node, whether and when it served again after the heal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.nodes.is_empty() {
            "the faulted node".to_string()
        } else {
            self.nodes.join(", ")
        };
        let lasted = self
            .fault_ms
            .map_or("never healed".into(), |m| format!("{} long", secs(m)));
        write!(
            f,
            "what the system did: during the fault ({lasted}, on {who}) "
        )?;
        if self.during == 0 {
            write!(f, "no request was sent")?;
        } else {
            write!(
                f,
                "{} requests were sent, {} ok",
                self.during, self.during_ok
            )?;
            if !self.served_as.is_empty() {
                let modes: Vec<String> = self
                    .served_as
                    .iter()
                    .map(|(m, n)| format!("{n} {m}"))
                    .collect();
                write!(f, " (served {})", modes.join(", "))?;
            }
            let failed = self.during - self.during_ok;
            if failed > 0 {
                let kinds: Vec<String> = self
                    .failures
                    .iter()
                    .map(|g| format!("{} x{}", g.kind, g.count))
                    .collect();
                write!(f, ", {failed} failed: {}", kinds.join(", "))?;
                let examples: Vec<String> = self
                    .failures
                    .iter()
                    .filter(|g| !g.example.is_empty())
                    .map(|g| format!("{}: \"{}\"", g.kind, g.example))
                    .collect();
                if !examples.is_empty() {
                    write!(f, " [first of each: {}]", examples.join("; "))?;
                }
            }
        }
        if !self.in_flight_failed.is_empty() {
            let n: usize = self.in_flight_failed.iter().map(|g| g.count).sum();
            let kinds: Vec<String> = self
                .in_flight_failed
                .iter()
                .map(|g| format!("{} x{}", g.kind, g.count))
                .collect();
            write!(
                f,
                "; {n} requests already in flight when it began failed: {} [first: \"{}\"]",
                kinds.join(", "),
                self.in_flight_failed[0].example
            )?;
        }
        write!(f, ". ")?;
        match (self.to_faulted, self.last_to_faulted_sent_ms) {
            (0, _) | (_, None) => write!(
                f,
                "No request sent during the fault went to {who}'s path (none named it in x-pd-* \
                 headers or failed other than by a fast 503 refusal)"
            )?,
            (n, Some(sent)) => {
                write!(
                    f,
                    "{n} went to {who}'s path (x-pd-* headers naming it, or failures other than \
                     a fast 503 refusal); "
                )?;
                if self.stopped_routing {
                    write!(
                        f,
                        "the router stopped routing there {} after the fault",
                        secs(sent)
                    )?;
                } else {
                    write!(
                        f,
                        "the router never stopped routing there while the fault lasted (last sent {} after the fault)",
                        secs(sent)
                    )?;
                }
                if let Some(e) = self.last_to_faulted_ended_ms {
                    write!(f, " (that request ended {} after the fault)", secs(e))?;
                }
            }
        }
        write!(f, ". ")?;
        if self.fault_ms.is_none() {
            return write!(f, "The fault was not healed during the run.");
        }
        if self.after == 0 {
            return write!(f, "No request was sent after the heal.");
        }
        match self.first_ok_after_heal_ms {
            None => write!(
                f,
                "After the heal no request succeeded ({} sent, all failed).",
                self.after
            ),
            Some(first) => {
                write!(
                    f,
                    "After the heal the first ok request was sent {} after it",
                    secs(first)
                )?;
                match self.recovered_after_heal_ms {
                    Some(r) => write!(
                        f,
                        "; every request from {} on was ok and disaggregated ({} of {} sent after the heal failed, all before that).",
                        secs(r),
                        self.after_failed,
                        self.after
                    ),
                    None => write!(
                        f,
                        "; the last request still failed or was degraded ({} of {} failed after the heal).",
                        self.after_failed, self.after
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::model::{FaultId, FaultKind, FaultPhase, FaultSpec};

    const S: u64 = 1_000_000;

    fn rec(sent: u64, took: u64, outcome: OutcomeKind, status: Option<u16>) -> RequestRecord {
        RequestRecord {
            first_answer_us: outcome.is_ok().then_some(sent + 10_000),
            end_us: sent + took,
            http_status: status,
            error: status.map(|s| format!("HTTP {s}: body of {s}")),
            ..RequestRecord::fixture(sent, outcome)
        }
    }

    fn ok(sent: u64, prefill: &str) -> RequestRecord {
        let mut r = rec(sent, 50_000, OutcomeKind::Ok, None);
        r.server.mode = Some(PdMode::Disaggregated);
        r.server.prefill = Some(prefill.into());
        r.server.decode = Some("decode-0".into());
        r
    }

    const FAULT: FaultWindow = FaultWindow {
        start_us: 10 * S,
        end_us: Some(12 * S),
    };

    /// vLLM-like: 500s from the dead node for 1.9 s, then fast 503 refusals, then back.
    #[test]
    fn a_router_that_errs_then_refuses_then_recovers() {
        let mut rs = vec![ok(9 * S, "prefill-0")];
        for i in 0..19 {
            rs.push(rec(
                10 * S + i * 100_000,
                5_000,
                OutcomeKind::HttpError,
                Some(500),
            ));
        }
        for i in 19..20 {
            rs.push(rec(
                10 * S + i * 100_000,
                2_000,
                OutcomeKind::HttpError,
                Some(503),
            ));
        }
        rs.push(rec(
            12 * S + 100_000,
            2_000,
            OutcomeKind::HttpError,
            Some(503),
        ));
        rs.push(ok(12 * S + 900_000, "prefill-0"));
        rs.push(ok(13 * S, "prefill-0"));
        rs.push(rec(
            9 * S + 900_000,
            200_000,
            OutcomeKind::HttpError,
            Some(502),
        ));
        let e = explain(&rs, FAULT, &["prefill-0".into()]);
        assert_eq!(e.in_flight_failed.len(), 1);
        assert_eq!(e.in_flight_failed[0].kind, "HTTP 502");
        assert_eq!((e.during, e.during_ok), (20, 0));
        assert_eq!(e.failures[0].kind, "HTTP 500");
        assert_eq!(e.failures[0].count, 19);
        assert_eq!(e.failures[1].kind, "HTTP 503");
        assert_eq!(e.to_faulted, 19);
        assert!(e.stopped_routing);
        assert_eq!(e.last_to_faulted_sent_ms, Some(1800.0));
        assert_eq!(e.detect_ms(), Some(1800.0));
        assert_eq!(e.first_ok_after_heal_ms, Some(900.0));
        assert_eq!(e.recovered_after_heal_ms, Some(900.0));
        assert_eq!((e.after, e.after_failed), (3, 1));
        assert_eq!(e.success_rate(), Some(0.0));
        let text = e.to_string();
        for want in [
            "20 requests were sent, 0 ok",
            "20 failed: HTTP 500 x19, HTTP 503 x1",
            "HTTP 500: \"HTTP 500: body of 500\"",
            "stopped routing there 1.80 s after the fault",
            "first ok request was sent 0.90 s after it",
            "every request from 0.90 s on was ok",
            "1 requests already in flight when it began failed: HTTP 502 x1",
        ] {
            assert!(text.contains(want), "missing `{want}` in: {text}");
        }
    }

    /// A router that keeps sending to the dead node (slow 503s are held requests, not
    /// refusals), and never serves again.
    #[test]
    fn a_router_that_never_stops_and_never_recovers() {
        let mut rs = Vec::new();
        for i in 0..10 {
            rs.push(rec(
                10 * S + i * 200_000,
                1_500_000,
                OutcomeKind::HttpError,
                Some(503),
            ));
        }
        rs.push(rec(12 * S + 10, 1, OutcomeKind::ConnectError, None));
        rs.push(rec(13 * S, 1, OutcomeKind::TimeoutFirstToken, None));
        let e = explain(&rs, FAULT, &["decode-0".into()]);
        assert_eq!(e.to_faulted, 10);
        assert!(!e.stopped_routing);
        assert_eq!(e.detect_ms(), None);
        assert_eq!(e.first_ok_after_heal_ms, None);
        assert_eq!(e.recovered_after_heal_ms, None);
        let text = e.to_string();
        assert!(text.contains("never stopped routing there"), "{text}");
        assert!(
            text.contains("After the heal no request succeeded (2 sent, all failed)"),
            "{text}"
        );
    }

    /// Our router: degraded serving, nothing fails, nothing names the dead node after the
    /// fault; recovery counts from the first disaggregated request after the last degraded one.
    #[test]
    fn a_router_that_degrades_and_comes_back() {
        let mut rs = Vec::new();
        for i in 0..5 {
            let mut r = rec(10 * S + i * 300_000, 50_000, OutcomeKind::Ok, None);
            r.server.mode = Some(PdMode::DecodeOnly);
            rs.push(r);
        }
        let mut late = rec(12 * S + 200_000, 50_000, OutcomeKind::Ok, None);
        late.server.mode = Some(PdMode::DecodeOnly);
        rs.push(late);
        rs.push(ok(12 * S + 400_000, "prefill-0"));
        let e = explain(&rs, FAULT, &["prefill-0".into()]);
        assert_eq!(e.served_as.get("decode-only"), Some(&5));
        assert_eq!(e.to_faulted, 0);
        assert_eq!(e.detect_ms(), Some(0.0));
        assert_eq!(e.first_ok_after_heal_ms, Some(200.0));
        assert_eq!(e.recovered_after_heal_ms, Some(400.0));
        assert!(e.to_string().contains("served 5 decode-only"), "{e}");
        assert!(
            e.to_string()
                .contains("No request sent during the fault went to prefill-0")
        );
    }

    #[test]
    fn an_unhealed_fault_and_an_empty_window() {
        let f = FaultWindow {
            start_us: 10 * S,
            end_us: None,
        };
        let e = explain(&[], f, &[]);
        assert_eq!(e.during, 0);
        assert_eq!(e.success_rate(), None);
        let text = e.to_string();
        assert!(text.contains("never healed"), "{text}");
        assert!(text.contains("no request was sent"), "{text}");
        assert!(text.contains("not healed during the run"), "{text}");
    }

    #[test]
    fn faulted_nodes_come_from_targets_undo_and_proxies() {
        let ev = |spec: Option<FaultSpec>, undo: Vec<Undo>| TimelineEvent {
            ts_us: 1,
            fault: FaultId("f".into()),
            phase: FaultPhase::Planned,
            spec,
            undo,
            detail: None,
        };
        let t = [
            ev(
                Some(FaultSpec {
                    id: FaultId("a".into()),
                    kind: FaultKind::Kill,
                    target: FaultTarget::Node {
                        name: "decode-2".into(),
                    },
                    duration: None,
                }),
                vec![Undo::Restart {
                    node: "prefill-0".into(),
                }],
            ),
            ev(
                None,
                vec![Undo::EnableProxy {
                    api: "x".into(),
                    proxy: "kv-prefill-1".into(),
                }],
            ),
        ];
        assert_eq!(
            faulted_nodes(&t),
            ["decode-2", "prefill-0", "prefill-1"].map(String::from)
        );
    }
}
