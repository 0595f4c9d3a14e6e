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
//!
//! Files by concern: `failover` (picking workers, the disaggregated attempt and the degraded
//! paths), `workers` (the `/workers` admin API), `status` (`/status`, `/metrics`, group modes).

mod failover;
mod status;
mod workers;

use crate::sim::health::{self, Group, Pool, Worker, WorkerSpec};
use crate::sim::metrics::Metrics;
use axum::Router;
use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use failover::route;
use status::{metrics_text, status};
use workers::{add_worker, list_workers, remove_worker};

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
