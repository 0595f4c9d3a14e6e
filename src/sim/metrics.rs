//! Counters and gauges every simulator process exposes on `/metrics` (Prometheus text) and
//! `/status` (JSON). Plain atomics: the hot path only increments.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default, Serialize)]
pub struct Metrics {
    pub requests_total: AtomicU64,
    pub requests_failed: AtomicU64,
    pub queue_depth: AtomicU64,
    pub running: AtomicU64,
    pub kv_bytes_held: AtomicU64,
    pub kv_bytes_transferred: AtomicU64,
    pub kv_transfers: AtomicU64,
    pub kv_transfer_failures: AtomicU64,
    pub kv_transfer_us_total: AtomicU64,
    pub kv_stranded: AtomicU64,
    pub prefix_cache_hits: AtomicU64,
    pub prefix_cache_misses: AtomicU64,
    pub served_disaggregated: AtomicU64,
    pub served_prefill_only: AtomicU64,
    pub served_decode_only: AtomicU64,
    pub fallbacks: AtomicU64,
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Ordering::Relaxed);
    }

    pub fn sub(c: &AtomicU64, v: u64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
            Some(x.saturating_sub(v))
        });
    }

    /// Prometheus text exposition, every series labelled with the node name and role.
    pub fn prometheus(&self, node: &str, role: &str, extra: &[(&str, f64)]) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        if let Some(obj) = v.as_object() {
            for (k, val) in obj {
                out.push_str(&format!(
                    "pdchaos_sim_{k}{{node=\"{node}\",role=\"{role}\"}} {}\n",
                    val.as_u64().unwrap_or(0)
                ));
            }
        }
        for (k, val) in extra {
            out.push_str(&format!(
                "pdchaos_sim_{k}{{node=\"{node}\",role=\"{role}\"}} {val}\n"
            ));
        }
        out
    }
}
