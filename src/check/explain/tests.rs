//! Explanations of recorded runs shaped like the routers we test: one that errs then refuses,
//! one that never stops, one that degrades, and the edge cases.

use super::*;
use crate::check::windows::FaultWindow;
use crate::fault::model::{
    FaultId, FaultKind, FaultPhase, FaultSpec, FaultTarget, TimelineEvent, Undo,
};
use crate::load::record::{OutcomeKind, RequestRecord};
use crate::pd::PdMode;

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
