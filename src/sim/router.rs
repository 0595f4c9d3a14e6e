//! The P/D router (`pdchaos sim router`): OpenAI front, P/D routing, and the failover rules.
//!
//! Rules, from the source article: P down -> the decode side serves alone (decode-only); D down
//! -> the prefill side serves alone (prefill-only); both up but the KV link cut -> degrade to
//! the decode side; back to disaggregated when health returns. A request whose disaggregated
//! attempt fails before any byte reached the client is retried once on the degraded path, so
//! clients see latency, not errors. Once streaming began, a failure cuts the client's stream:
//! the router never pretends a broken answer was whole.
//!
//! Workers can be added and removed while it runs (`GET`/`POST /workers`, `DELETE
//! /workers/{name}?drain_ms=N`, docs/protocol.md): that is how the local stack scales a role
//! beyond the layout it started with.

use crate::clock;
use crate::pd::{self, PdMode};
use crate::sim::health::{self, Group, Pool, Worker, WorkerSpec};
use crate::sim::metrics::Metrics;
use crate::sim::protocol::{self, Bootstrap};
use axum::Router;
use axum::body::Body;
use axum::extract::{Json, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How workers are chosen within a role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    #[default]
    RoundRobin,
    LeastLoad,
    /// Same prompt prefix -> same prefill node (prefix-cache hits).
    PrefixAffinity,
}

/// Deliberate router defects, to prove the suite catches them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterBreaks {
    /// Keep routing to prefill nodes that fail health checks, and never fall back.
    pub no_fallback_on_prefill_death: bool,
    /// Ignore KV-link probes and KV-transfer failures (errors reach the client).
    pub ignore_kv_cut: bool,
    /// A node or link once seen down is never trusted again.
    pub never_recover: bool,
}

/// One group in the router's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    pub prefill: Vec<WorkerSpec>,
    pub decode: Vec<WorkerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<(u64, u64)>,
}

/// The router's whole configuration (`pdchaos sim router --config FILE`, YAML or JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    pub listen: SocketAddr,
    pub groups: Vec<GroupSpec>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default = "default_interval", with = "ms")]
    pub health_interval: Duration,
    #[serde(default)]
    pub breaks: RouterBreaks,
}

fn default_interval() -> Duration {
    Duration::from_millis(250)
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

struct RouterState {
    cfg: RouterConfig,
    groups: Arc<Pool>,
    client: reqwest::Client,
    /// Round-robin position per role (prefill, decode): one shared counter would step twice per
    /// request and pin every request to the same decode node when there are two.
    rr: [AtomicU64; 2],
    metrics: Metrics,
}

/// Serves the router until the process ends.
pub async fn run(cfg: RouterConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let groups: Vec<Group> = cfg
        .groups
        .iter()
        .map(|g| Group {
            name: g.name.clone(),
            prefill: g.prefill.iter().cloned().map(Worker::new).collect(),
            decode: g.decode.iter().cloned().map(Worker::new).collect(),
            bucket: g.bucket,
        })
        .collect();
    let groups = Arc::new(Pool::new(groups));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .pool_idle_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .map_err(std::io::Error::other)?;
    tokio::spawn(health::watch(
        groups.clone(),
        client.clone(),
        cfg.health_interval,
        cfg.breaks.never_recover,
    ));
    let state = Arc::new(RouterState {
        cfg,
        groups,
        client,
        rr: [AtomicU64::new(0), AtomicU64::new(0)],
        metrics: Metrics::default(),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/workers", get(list_workers).post(add_worker))
        .route("/workers/{name}", delete(remove_worker))
        .with_state(state);
    crate::net::serve(listener, app).await
}

async fn chat(State(s): State<Arc<RouterState>>, Json(body): Json<Value>) -> Response {
    route(s, body, "/v1/chat/completions").await
}

async fn completions(State(s): State<Arc<RouterState>>, Json(body): Json<Value>) -> Response {
    route(s, body, "/v1/completions").await
}

async fn models() -> Json<Value> {
    Json(
        json!({"object": "list", "data": [{"id": "pdchaos-sim", "object": "model", "owned_by": "pdchaos"}]}),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "router"}})),
    )
        .into_response()
}

/// A failed upstream attempt, before any byte reached the client.
enum Attempt {
    Streaming(Response),
    PrefillFailed(String),
    DecodeFailed(String),
    KvFailed(String),
}

async fn route(s: Arc<RouterState>, body: Value, path: &str) -> Response {
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

async fn metrics_text(State(s): State<Arc<RouterState>>) -> String {
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

async fn status(State(s): State<Arc<RouterState>>) -> Json<Value> {
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

/// One worker as `GET /workers` and `/status` show it.
fn worker_json(group: &str, role: &str, w: &Arc<Worker>) -> Value {
    json!({
        "group": group, "role": role, "name": w.spec.name, "url": w.spec.url,
        "healthy": w.is_healthy(), "kv_link_ok": w.link_ok(),
        "inflight": w.inflight.load(Ordering::Relaxed),
    })
}

/// `GET /workers`: every worker the router routes to now, with its group and role.
async fn list_workers(State(s): State<Arc<RouterState>>) -> Json<Value> {
    let groups = s.groups.snapshot();
    let mut out = Vec::new();
    for g in groups.iter() {
        out.extend(g.prefill.iter().map(|w| worker_json(&g.name, "prefill", w)));
        out.extend(g.decode.iter().map(|w| worker_json(&g.name, "decode", w)));
    }
    Json(json!({ "workers": out }))
}

/// Which side of a group a worker joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Side {
    Prefill,
    Decode,
}

/// The body of `POST /workers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddWorker {
    /// The group's name; the first group when absent.
    #[serde(default)]
    group: Option<String>,
    role: Side,
    worker: WorkerSpec,
}

/// `POST /workers`: routes to one more worker from now on. Its first health check runs before
/// the answer, so a healthy worker takes requests at once; 201 with the worker as listed.
async fn add_worker(State(s): State<Arc<RouterState>>, Json(req): Json<AddWorker>) -> Response {
    if req.worker.name.is_empty() || !req.worker.url.starts_with("http") {
        return error(
            StatusCode::BAD_REQUEST,
            "a worker needs a name and an http URL".into(),
        );
    }
    if req.role == Side::Prefill && (req.worker.kv_host.is_none() || req.worker.kv_port.is_none()) {
        return error(
            StatusCode::BAD_REQUEST,
            "a prefill worker needs kv_host and kv_port".into(),
        );
    }
    let added = s.groups.change(|groups| {
        let name = &req.worker.name;
        if groups
            .iter()
            .flat_map(|g| g.prefill.iter().chain(g.decode.iter()))
            .any(|w| w.spec.name == *name)
        {
            return Err((
                StatusCode::CONFLICT,
                format!("a worker named `{name}` exists"),
            ));
        }
        let group = match &req.group {
            Some(n) => groups.iter_mut().find(|g| g.name == *n),
            None => groups.first_mut(),
        }
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("no group `{}`", req.group.as_deref().unwrap_or("")),
            )
        })?;
        let w = Worker::new(req.worker.clone());
        match req.role {
            Side::Prefill => group.prefill.push(w.clone()),
            Side::Decode => group.decode.push(w.clone()),
        }
        Ok((group.name.clone(), w))
    });
    let (group, w) = match added {
        Ok(x) => x,
        Err((status, message)) => return error(status, message),
    };
    let ok = matches!(
        tokio::time::timeout(
            s.cfg.health_interval,
            s.client.get(format!("{}/health", w.spec.url)).send()
        )
        .await,
        Ok(Ok(r)) if r.status().is_success()
    );
    w.set_healthy(ok, s.cfg.breaks.never_recover);
    tracing::info!(worker = %w.spec.name, %group, healthy = ok, "worker added");
    let role = match req.role {
        Side::Prefill => "prefill",
        Side::Decode => "decode",
    };
    (StatusCode::CREATED, Json(worker_json(&group, role, &w))).into_response()
}

/// The query of `DELETE /workers/{name}`.
#[derive(Debug, Deserialize)]
struct Drain {
    /// Wait up to this long for the worker's streams in flight to end (at most 60 s).
    #[serde(default)]
    drain_ms: u64,
}

/// `DELETE /workers/{name}`: no new request goes to the worker; then waits up to `drain_ms` for
/// the streams it serves to end. 200 with how many were still in flight.
async fn remove_worker(
    State(s): State<Arc<RouterState>>,
    Path(name): Path<String>,
    Query(q): Query<Drain>,
) -> Response {
    let removed = s.groups.change(|groups| {
        for g in groups.iter_mut() {
            for side in [&mut g.prefill, &mut g.decode] {
                if let Some(i) = side.iter().position(|w| w.spec.name == name) {
                    return Ok(side.remove(i));
                }
            }
        }
        Err(())
    });
    let Ok(w) = removed else {
        return error(StatusCode::NOT_FOUND, format!("no worker named `{name}`"));
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.drain_ms.min(60_000));
    while w.inflight.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = w.inflight.load(Ordering::Relaxed);
    tracing::info!(worker = %name, inflight = left, "worker removed");
    Json(json!({"removed": name, "inflight": left})).into_response()
}
