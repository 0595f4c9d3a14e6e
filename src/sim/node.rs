//! A worker process: a prefill or a decode node (`pdchaos sim prefill|decode`).
//!
//! Both roles serve OpenAI streaming requests alone when the router sends no bootstrap fields
//! (the degraded, non-disaggregated path). In PD mode a prefill node computes the KV and keeps
//! it for its room on the KV port; a decode node fetches it from there, then streams tokens.
//! The PD request comes in either dialect of [`crate::sim::protocol`] (SGLang's bootstrap
//! fields, vLLM's `kv_transfer_params`), so the real routers can front these workers; the
//! info routes they call at registration (`/server_info`, `/model_info`, `/v1/models`) answer
//! without a `model_path`, so no router tries to fetch a tokenizer from the internet.

use crate::clock;
use crate::pd::{PdMode, Role};
use crate::sim::cache::PrefixCache;
use crate::sim::engine::{DecodeBatch, KvBudget, PrefillEngine};
use crate::sim::kv::{self, KvStore};
use crate::sim::metrics::Metrics;
use crate::sim::profile::Profile;
use crate::sim::protocol::WorkerRequest;
use crate::sim::tokens::{self, GenBreaks, Generation};
use axum::Router;
use axum::extract::{Json, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How to run one worker.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub role: Role,
    pub listen: SocketAddr,
    /// Prefill only: the KV-transfer port.
    pub kv_listen: Option<SocketAddr>,
    /// Prefill only: the KV address decode nodes should use (a proxy in front of `kv_listen`);
    /// named in the `kv_transfer_params` answered to vLLM's router. Defaults to `kv_listen`.
    pub kv_advertise: Option<SocketAddr>,
    pub profile: Profile,
    pub breaks: GenBreaks,
}

struct Node {
    cfg: NodeConfig,
    profile: Arc<Profile>,
    metrics: Arc<Metrics>,
    prefill: PrefillEngine,
    batch: DecodeBatch,
    kv_budget: KvBudget,
    kv_store: Option<Arc<KvStore>>,
    cache: Mutex<PrefixCache>,
}

/// Binds the node's ports and serves until the process ends.
pub async fn run(cfg: NodeConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind(cfg.listen).await?;
    let profile = Arc::new(cfg.profile.clone());
    let metrics = Arc::new(Metrics::default());
    let factor = if cfg.role == Role::Decode {
        profile.degraded_prefill_factor
    } else {
        1.0
    };
    let kv_store = match cfg.kv_listen {
        Some(addr) => {
            let kv_listener = TcpListener::bind(addr).await?;
            let store = KvStore::named(
                Duration::from_millis(profile.kv_timeout_ms),
                metrics.clone(),
                &cfg.name,
            );
            tokio::spawn(store.clone().serve(kv_listener));
            Some(store)
        }
        None => None,
    };
    let node = Arc::new(Node {
        prefill: PrefillEngine::start(profile.clone(), factor, metrics.clone()),
        batch: DecodeBatch::default(),
        kv_budget: KvBudget::new(profile.kv_budget_bytes),
        cache: Mutex::new(PrefixCache::new(
            profile.prefix_cache_bytes,
            profile.kv_bytes_per_token,
        )),
        kv_store,
        profile,
        metrics,
        cfg,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(generate))
        .route("/v1/completions", post(generate))
        .route("/generate", post(generate))
        .route("/health", get(|| async { "ok" }))
        .route("/health_generate", get(|| async { "ok" }))
        .route("/v1/models", get(models))
        .route("/server_info", get(server_info))
        .route("/get_server_info", get(server_info))
        .route("/model_info", get(model_info))
        .route("/get_model_info", get(model_info))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/kv_probe", get(kv_probe))
        .with_state(node);
    crate::net::serve(listener, app).await
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind}})),
    )
        .into_response()
}

async fn generate(State(node): State<Arc<Node>>, Json(body): Json<Value>) -> Response {
    let arrival = clock::now_us();
    Metrics::inc(&node.metrics.requests_total);
    let Some(req) = WorkerRequest::from_json(&body) else {
        Metrics::inc(&node.metrics.requests_failed);
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "need `messages` or `prompt`".into(),
        );
    };
    let arrival_us = req.arrival_us.unwrap_or(arrival);
    if node.cfg.role == Role::Prefill && req.remote_decode {
        return node.prefill_for_remote_decode(&req).await;
    }
    match (node.cfg.role, req.bootstrap.clone()) {
        (Role::Prefill, Some(b)) => {
            let tokens = node.uncached_tokens(&req);
            node.prefill.prefill(tokens, &node.metrics).await;
            let bytes = req.prompt_tokens() * node.profile.kv_bytes_per_token;
            if let Some(store) = &node.kv_store {
                store.ready(b.room, bytes);
            }
            Json(json!({"room": b.room, "kv_bytes": bytes, "prefill_done_us": clock::now_us()}))
                .into_response()
        }
        (Role::Decode, Some(b)) => {
            let bytes = req.prompt_tokens() * node.profile.kv_bytes_per_token;
            let permit = node.kv_budget.admit(bytes).await;
            let t0 = std::time::Instant::now();
            let timeout = Duration::from_millis(node.profile.kv_timeout_ms);
            match kv::fetch_from(&b.host, b.port, b.room, timeout).await {
                Ok(got) => {
                    Metrics::add(
                        &node.metrics.kv_transfer_us_total,
                        t0.elapsed().as_micros() as u64,
                    );
                    Metrics::inc(&node.metrics.served_disaggregated);
                    let prefill = req.prefill_name.clone().or(got.source);
                    node.stream(&req, PdMode::Disaggregated, prefill, arrival_us, permit)
                }
                Err(e) => {
                    Metrics::inc(&node.metrics.kv_transfer_failures);
                    Metrics::inc(&node.metrics.requests_failed);
                    let mut resp = error(
                        StatusCode::BAD_GATEWAY,
                        "kv_transfer",
                        format!("kv transfer failed: {e}"),
                    );
                    resp.headers_mut()
                        .insert("x-pd-kv-failure", header::HeaderValue::from_static("1"));
                    resp
                }
            }
        }
        (role, None) => {
            let tokens = node.uncached_tokens(&req);
            node.prefill.prefill(tokens, &node.metrics).await;
            let (mode, prefill) = match role {
                Role::Prefill => {
                    Metrics::inc(&node.metrics.served_prefill_only);
                    (PdMode::PrefillOnly, Some(node.cfg.name.clone()))
                }
                _ => {
                    Metrics::inc(&node.metrics.served_decode_only);
                    (PdMode::DecodeOnly, None)
                }
            };
            node.stream(&req, mode, prefill, arrival_us, ())
        }
        (Role::Router, Some(_)) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not a worker".into(),
        ),
    }
}

impl Node {
    /// vLLM's dialect, prefill half: compute the KV, keep it under a new room, and answer a
    /// whole completion whose `kv_transfer_params` tell the decode worker where to fetch it.
    async fn prefill_for_remote_decode(&self, req: &WorkerRequest) -> Response {
        let Some(addr) = self.cfg.kv_advertise.or(self.cfg.kv_listen) else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "config",
                "this prefill node has no KV port".into(),
            );
        };
        let tokens = self.uncached_tokens(req);
        self.prefill.prefill(tokens, &self.metrics).await;
        let bytes = req.prompt_tokens() * self.profile.kv_bytes_per_token;
        let room = rand::random::<u64>() >> 11;
        if let Some(store) = &self.kv_store {
            store.ready(room, bytes);
        }
        let b = crate::sim::protocol::Bootstrap {
            host: addr.ip().to_string(),
            port: addr.port(),
            room,
        };
        let id = format!("pdchaos-{room:x}");
        let choice = if req.chat {
            json!({"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "length"})
        } else {
            json!({"index": 0, "text": "", "finish_reason": "length"})
        };
        Json(json!({
            "id": id,
            "object": if req.chat { "chat.completion" } else { "text_completion" },
            "created": clock::now_us() / 1_000_000,
            "model": req.model,
            "choices": [choice],
            "usage": {"prompt_tokens": req.prompt_tokens(), "completion_tokens": 0,
                      "total_tokens": req.prompt_tokens()},
            "kv_transfer_params": crate::sim::protocol::kv_transfer_params(&b, &self.cfg.name),
            "x_pd": {"room": room, "kv_bytes": bytes, "prefill_done_us": clock::now_us()},
        }))
        .into_response()
    }

    /// Prompt tokens left to compute after the prefix cache (prefill nodes keep a cache).
    fn uncached_tokens(&self, req: &WorkerRequest) -> u64 {
        let tokens = req.prompt_tokens();
        if self.cfg.role != Role::Prefill {
            return tokens;
        }
        let hit = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lookup_insert(&req.prompt_text);
        if hit > 0.0 {
            Metrics::inc(&self.metrics.prefix_cache_hits);
        } else {
            Metrics::inc(&self.metrics.prefix_cache_misses);
        }
        ((tokens as f64) * (1.0 - hit)).ceil().max(1.0) as u64
    }

    fn stream<H: Send + 'static>(
        &self,
        req: &WorkerRequest,
        mode: PdMode,
        prefill: Option<String>,
        arrival_us: u64,
        hold: H,
    ) -> Response {
        let (reasoning, answer) = Generation::budget(&self.profile, req.max_tokens);
        let decode = (self.cfg.role == Role::Decode).then(|| self.cfg.name.clone());
        let g = Generation {
            model: req.model.clone(),
            chat: req.chat,
            reasoning,
            answer,
            prompt_tokens: req.prompt_tokens(),
            mode,
            prefill: prefill.clone(),
            decode: decode.clone(),
            arrival_us,
            breaks: self.cfg.breaks,
        };
        let slot = self.batch.join();
        let body = tokens::stream(g, self.profile.clone(), self.batch.clone(), slot, hold);
        let mut builder = Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(crate::pd::HEADER_MODE, mode.as_str());
        if let Some(p) = prefill {
            builder = builder.header(crate::pd::HEADER_PREFILL, p);
        }
        if let Some(d) = decode {
            builder = builder.header(crate::pd::HEADER_DECODE, d);
        }
        builder
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

async fn metrics_text(State(node): State<Arc<Node>>) -> String {
    let running = node.batch.running() as f64;
    node.metrics.prometheus(
        &node.cfg.name,
        node.cfg.role.as_str(),
        &[("batch_running", running)],
    )
}

async fn status(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(json!({
        "name": node.cfg.name, "role": node.cfg.role, "profile": node.profile.name,
        "pid": std::process::id(), "batch_running": node.batch.running(), "metrics": &*node.metrics,
    }))
}

/// The model id every worker serves.
pub const MODEL_ID: &str = "pdchaos-sim";

async fn models() -> Json<Value> {
    Json(json!({"object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "owned_by": "pdchaos"}]}))
}

/// SGLang's `/server_info`, as much of it as a router reads. No `model_path` on purpose: the
/// SGLang gateway would try to download a tokenizer of that name from Hugging Face.
async fn server_info(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(json!({
        "served_model_name": MODEL_ID,
        "disaggregation_mode": node.cfg.role.as_str(),
        "pdchaos_node": node.cfg.name,
    }))
}

async fn model_info() -> Json<Value> {
    Json(json!({"is_generation": true, "served_model_name": MODEL_ID}))
}

async fn kv_probe(Query(q): Query<HashMap<String, String>>) -> StatusCode {
    let (Some(host), Some(port)) = (
        q.get("host"),
        q.get("port").and_then(|p| p.parse::<u16>().ok()),
    ) else {
        return StatusCode::BAD_REQUEST;
    };
    if kv::probe(host, port, Duration::from_millis(500)).await {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
