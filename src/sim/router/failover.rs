//! How a request is served: the group and workers it goes to (by policy), the disaggregated
//! attempt (prefill and decode at once, KV between them), and the degraded paths it falls back
//! to when that attempt fails before any byte reached the client.

use crate::clock;
use crate::pd::{self, PdMode};
use crate::sim::health::{Group, Worker};
use crate::sim::metrics::Metrics;
use crate::sim::protocol::{self, Bootstrap};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use rand::Rng;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Policy, RouterState, error};

/// A failed upstream attempt, before any byte reached the client.
enum Attempt {
    Streaming(Response),
    PrefillFailed(String),
    DecodeFailed(String),
    KvFailed(String),
}

pub(super) async fn route(s: Arc<RouterState>, body: Value, path: &str) -> Response {
    let arrival = clock::now_us();
    Metrics::inc(&s.metrics.requests_total);
    let Some(req) = protocol::WorkerRequest::from_json(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "need `messages` or `prompt`".into(),
        );
    };
    let tokens = req.prompt_tokens();
    let b = s.cfg.breaks;
    let groups = s.groups.snapshot();
    for group in group_order(&groups, tokens) {
        let decodes: Vec<&Arc<Worker>> = group.decode.iter().filter(|d| d.is_healthy()).collect();
        let prefills: Vec<&Arc<Worker>> = if b.no_fallback_on_prefill_death {
            group.prefill.iter().collect()
        } else {
            group
                .prefill
                .iter()
                .filter(|p| p.is_healthy() && (b.ignore_kv_cut || p.link_ok()))
                .collect()
        };
        if let (Some(p), Some(d)) = (
            s.pick(0, &prefills, &req.prompt_text),
            s.pick(1, &decodes, ""),
        ) {
            match s.disaggregated(p, d, &body, path, arrival).await {
                Attempt::Streaming(resp) => return resp,
                Attempt::PrefillFailed(e) if b.no_fallback_on_prefill_death => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        format!("prefill {} failed: {e}", p.spec.name),
                    );
                }
                Attempt::KvFailed(e) if b.ignore_kv_cut => {
                    return error(StatusCode::BAD_GATEWAY, format!("kv transfer failed: {e}"));
                }
                Attempt::PrefillFailed(e) | Attempt::KvFailed(e) | Attempt::DecodeFailed(e) => {
                    tracing::info!(prefill = %p.spec.name, decode = %d.spec.name, "disaggregated attempt failed, degrading: {e}");
                    Metrics::inc(&s.metrics.fallbacks);
                }
            }
        } else if b.no_fallback_on_prefill_death && !group.prefill.is_empty() && !decodes.is_empty()
        {
            return error(
                StatusCode::BAD_GATEWAY,
                "no prefill node (fallback disabled)".into(),
            );
        }
        // Degraded: the decode side if any is up (it keeps the KV memory), else the prefill side.
        let decodes: Vec<&Arc<Worker>> = group.decode.iter().filter(|d| d.is_healthy()).collect();
        if let Some(d) = s.pick(1, &decodes, "")
            && let Some(resp) = s.single(d, PdMode::DecodeOnly, &body, path, arrival).await
        {
            return resp;
        }
        let prefills: Vec<&Arc<Worker>> = group.prefill.iter().filter(|p| p.is_healthy()).collect();
        if let Some(p) = s.pick(0, &prefills, &req.prompt_text)
            && let Some(resp) = s.single(p, PdMode::PrefillOnly, &body, path, arrival).await
        {
            return resp;
        }
    }
    Metrics::inc(&s.metrics.requests_failed);
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no healthy worker can serve this request".into(),
    )
}

/// The group whose bucket holds `tokens` first, then the others in order.
fn group_order(groups: &[Group], tokens: u64) -> Vec<&Group> {
    let mut order: Vec<&Group> = groups.iter().collect();
    order.sort_by_key(|g| !g.bucket.is_some_and(|(lo, hi)| tokens >= lo && tokens < hi));
    order
}

impl RouterState {
    fn pick<'a>(
        &self,
        side: usize,
        ws: &[&'a Arc<Worker>],
        prompt: &str,
    ) -> Option<&'a Arc<Worker>> {
        if ws.is_empty() {
            return None;
        }
        let i = match self.cfg.policy {
            Policy::RoundRobin => self.rr[side].fetch_add(1, Ordering::Relaxed) as usize,
            Policy::LeastLoad => (0..ws.len())
                .min_by_key(|&i| ws[i].inflight.load(Ordering::Relaxed))
                .unwrap_or(0),
            Policy::PrefixAffinity if !prompt.is_empty() => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                prompt.chars().take(256).collect::<String>().hash(&mut h);
                h.finish() as usize
            }
            Policy::PrefixAffinity => self.rr[side].fetch_add(1, Ordering::Relaxed) as usize,
        };
        Some(ws[i % ws.len()])
    }

    async fn disaggregated(
        &self,
        p: &Arc<Worker>,
        d: &Arc<Worker>,
        body: &Value,
        path: &str,
        arrival: u64,
    ) -> Attempt {
        let (Some(host), Some(port)) = (p.spec.kv_host.clone(), p.spec.kv_port) else {
            return Attempt::PrefillFailed("prefill node has no KV address".into());
        };
        let room = rand::rng().random::<u64>() >> 11;
        let fwd =
            protocol::with_bootstrap(body, &Bootstrap { host, port, room }, &p.spec.name, arrival);
        let prefill = self
            .client
            .post(format!("{}{path}", p.spec.url))
            .json(&fwd)
            .send();
        let decode = self
            .client
            .post(format!("{}{path}", d.spec.url))
            .json(&fwd)
            .send();
        tokio::pin!(prefill, decode);
        let mut prefill_done = false;
        let d_resp = loop {
            tokio::select! {
                r = &mut prefill, if !prefill_done => {
                    prefill_done = true;
                    match r {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => return Attempt::PrefillFailed(format!("HTTP {}", r.status())),
                        Err(e) => {
                            p.set_healthy(false, self.cfg.breaks.never_recover);
                            return Attempt::PrefillFailed(e.to_string());
                        }
                    }
                }
                r = &mut decode => break r,
                // A prefill node that hangs (paused, sockets open) never answers: give up on it
                // as soon as the health checks mark it down, instead of waiting for the KV timeout.
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if !prefill_done && !p.is_healthy() && !self.cfg.breaks.no_fallback_on_prefill_death {
                        return Attempt::PrefillFailed("prefill node stopped answering health checks".into());
                    }
                    // Same for a decode node paused after it was picked: its answer never comes.
                    if !d.is_healthy() {
                        return Attempt::DecodeFailed("decode node stopped answering health checks".into());
                    }
                }
            }
        };
        match d_resp {
            Err(e) => {
                d.set_healthy(false, self.cfg.breaks.never_recover);
                Attempt::DecodeFailed(e.to_string())
            }
            Ok(r) if r.headers().contains_key("x-pd-kv-failure") => {
                if !self.cfg.breaks.ignore_kv_cut {
                    p.set_link(false, self.cfg.breaks.never_recover);
                }
                Attempt::KvFailed(r.text().await.unwrap_or_default())
            }
            Ok(r) if !r.status().is_success() => {
                Attempt::DecodeFailed(format!("HTTP {}", r.status()))
            }
            Ok(r) => {
                Metrics::inc(&self.metrics.served_disaggregated);
                Attempt::Streaming(self.relay(r, PdMode::Disaggregated, Some(p), Some(d)))
            }
        }
    }

    async fn single(
        &self,
        w: &Arc<Worker>,
        mode: PdMode,
        body: &Value,
        path: &str,
        arrival: u64,
    ) -> Option<Response> {
        let fwd = protocol::with_arrival(body, arrival);
        let send = self
            .client
            .post(format!("{}{path}", w.spec.url))
            .json(&fwd)
            .send();
        tokio::pin!(send);
        // A worker paused after it was picked holds the connection open and never answers:
        // give up on it once the health checks mark it down, so the next side can serve.
        let sent = loop {
            tokio::select! {
                r = &mut send => break r,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if !w.is_healthy() {
                        return None;
                    }
                }
            }
        };
        match sent {
            Ok(r) if r.status().is_success() => {
                match mode {
                    PdMode::DecodeOnly => Metrics::inc(&self.metrics.served_decode_only),
                    _ => Metrics::inc(&self.metrics.served_prefill_only),
                }
                let (p, d) = if mode == PdMode::DecodeOnly {
                    (None, Some(w))
                } else {
                    (Some(w), None)
                };
                Some(self.relay(r, mode, p, d))
            }
            Ok(_) => None,
            Err(_) => {
                w.set_healthy(false, self.cfg.breaks.never_recover);
                None
            }
        }
    }

    /// Streams an upstream answer to the client; an upstream error cuts the client's stream.
    fn relay(
        &self,
        upstream: reqwest::Response,
        mode: PdMode,
        p: Option<&Arc<Worker>>,
        d: Option<&Arc<Worker>>,
    ) -> Response {
        let guards: Vec<InFlight> = p
            .into_iter()
            .chain(d)
            .map(|w| InFlight::new(w.clone()))
            .collect();
        let stream = upstream.bytes_stream().map(move |item| {
            let _keep = &guards;
            item.map_err(std::io::Error::other)
        });
        let mut resp = Response::new(Body::from_stream(stream));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(pd::HEADER_MODE, HeaderValue::from_static(mode.as_str()));
        if let Some(v) = p.and_then(|w| HeaderValue::from_str(&w.spec.name).ok()) {
            h.insert(pd::HEADER_PREFILL, v);
        }
        if let Some(v) = d.and_then(|w| HeaderValue::from_str(&w.spec.name).ok()) {
            h.insert(pd::HEADER_DECODE, v);
        }
        resp
    }
}

/// Counts a request against a worker while its stream lives (least-load routing).
struct InFlight(Arc<Worker>);

impl InFlight {
    fn new(w: Arc<Worker>) -> InFlight {
        w.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(w)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}
