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
//!
//! This file owns the [`Explanation`] type and its figures; `analysis` reads the records into
//! it, `display` words it.

mod analysis;
mod display;
#[cfg(test)]
mod tests;

pub use analysis::{explain, faulted_nodes, is_refusal};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
