//! Reading the records: which nodes a fault touched, which requests went toward them, how the
//! failures group, and when serving came back after the heal.

use super::{Explanation, FailureGroup, REFUSAL_MAX_US, ms, short};
use crate::check::windows::FaultWindow;
use crate::clock::Micros;
use crate::fault::model::{FaultTarget, TimelineEvent, Undo};
use crate::load::record::{OutcomeKind, RequestRecord};
use crate::pd::PdMode;
use std::collections::BTreeMap;

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
