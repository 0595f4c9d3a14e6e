//! What the router reports about itself: each group's serving mode, `/status` (JSON) and
//! `/metrics` (Prometheus text).

use crate::pd::PdMode;
use crate::sim::health::{Group, Worker};
use axum::extract::{Json, State};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::RouterState;

impl RouterState {
    /// The mode a new request to `group` would be served in now.
    fn group_mode(&self, g: &Group) -> &'static str {
        let d = g.decode.iter().any(|d| d.is_healthy());
        let p = g.prefill.iter().any(|p| p.is_healthy() && p.link_ok());
        let p_any = g.prefill.iter().any(|p| p.is_healthy());
        match (p, d, p_any) {
            (true, true, _) => PdMode::Disaggregated.as_str(),
            (_, true, _) => PdMode::DecodeOnly.as_str(),
            (_, false, true) => PdMode::PrefillOnly.as_str(),
            _ => "down",
        }
    }
}

pub(super) async fn metrics_text(State(s): State<Arc<RouterState>>) -> String {
    let mut out = s.metrics.prometheus("router", "router", &[]);
    for g in s.groups.snapshot().iter() {
        for (i, m) in ["disaggregated", "decode-only", "prefill-only", "down"]
            .iter()
            .enumerate()
        {
            let v = u8::from(s.group_mode(g) == *m);
            out.push_str(&format!(
                "pdchaos_sim_group_mode{{group=\"{}\",mode=\"{m}\",index=\"{i}\"}} {v}\n",
                g.name
            ));
        }
        for w in g.prefill.iter().chain(g.decode.iter()) {
            out.push_str(&format!(
                "pdchaos_sim_worker_healthy{{worker=\"{}\"}} {}\n",
                w.spec.name,
                u8::from(w.is_healthy())
            ));
        }
    }
    out
}

pub(super) async fn status(State(s): State<Arc<RouterState>>) -> Json<Value> {
    let worker = |w: &Arc<Worker>| {
        json!({
            "name": w.spec.name, "url": w.spec.url, "healthy": w.is_healthy(),
            "kv_link_ok": w.link_ok(), "inflight": w.inflight.load(Ordering::Relaxed),
        })
    };
    let groups: Vec<Value> = s
        .groups
        .snapshot()
        .iter()
        .map(|g| {
            json!({
                "name": g.name, "mode": s.group_mode(g), "bucket": g.bucket,
                "prefill": g.prefill.iter().map(worker).collect::<Vec<_>>(),
                "decode": g.decode.iter().map(worker).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(
        json!({"groups": groups, "policy": s.cfg.policy, "breaks": s.cfg.breaks, "metrics": &s.metrics}),
    )
}
