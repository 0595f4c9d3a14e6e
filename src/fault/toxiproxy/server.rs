//! `pdchaos toxiproxy`: Toxiproxy's REST API over the `noxious` proxy engine.
//!
//! Each proxy runs in this process. Disabling a proxy stops its listener and closes its
//! connections (as Toxiproxy does); enabling starts it again with its toxics. The engine's
//! gaps are worked around here: "remove all toxics" is done by name in both directions, and
//! `POST /reset` re-enables every proxy as Toxiproxy does. `reset_peer` is refused with a 400
//! (the engine cannot send an RST); see docs/toxiproxy.md.

use crate::fault::model::{Stream, Toxic};
use crate::fault::toxiproxy::api::{ProxyJson, ProxyUpdate, ToxicJson};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::toxic::{StreamDirection, ToxicEvent, ToxicEventKind, ToxicEventResult, ToxicKind};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

struct Running {
    stopper: Stopper,
    events: bmrng::RequestSender<ToxicEvent, ToxicEventResult>,
    closed: Close,
}

struct Entry {
    json: ProxyJson,
    running: Option<Running>,
}

type Proxies = Arc<Mutex<BTreeMap<String, Entry>>>;

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": message.into(), "status": status.as_u16()})),
    )
        .into_response()
}

fn engine_toxic(t: &ToxicJson) -> Result<noxious::toxic::Toxic, String> {
    let kind = match t.toxic.clone() {
        Toxic::Latency { latency, jitter } => ToxicKind::Latency { latency, jitter },
        Toxic::Bandwidth { rate } => ToxicKind::Bandwidth { rate },
        Toxic::SlowClose { delay } => ToxicKind::SlowClose { delay },
        Toxic::Timeout { timeout } => ToxicKind::Timeout { timeout },
        Toxic::Slicer {
            average_size,
            size_variation,
            delay,
        } => ToxicKind::Slicer {
            average_size,
            size_variation,
            delay,
        },
        Toxic::LimitData { bytes } => ToxicKind::LimitData { bytes },
        Toxic::ResetPeer { .. } => {
            return Err(
                "reset_peer is not supported by the embedded engine (see docs/toxiproxy.md)".into(),
            );
        }
    };
    Ok(noxious::toxic::Toxic {
        kind,
        name: t.name.clone(),
        toxicity: t.toxicity,
        direction: match t.stream {
            Stream::Upstream => StreamDirection::Upstream,
            Stream::Downstream => StreamDirection::Downstream,
        },
    })
}

async fn start(json: &ProxyJson) -> Result<Running, String> {
    let mut toxics = Toxics {
        upstream: vec![],
        downstream: vec![],
    };
    for t in &json.toxics {
        let e = engine_toxic(t)?;
        match e.direction {
            StreamDirection::Upstream => toxics.upstream.push(e),
            StreamDirection::Downstream => toxics.downstream.push(e),
        }
    }
    let config = ProxyConfig {
        name: json.name.clone(),
        listen: json.listen.clone(),
        upstream: json.upstream.clone(),
        enabled: true,
        rand_seed: None,
    };
    let (listener, info) =
        ProxyRunner::initialize_proxy::<noxious::socket::TcpListener>(config, toxics)
            .await
            .map_err(|e| format!("listen {}: {e}", json.listen))?;
    let (stop, stopper) = Stop::new();
    let (closed, closer) = Close::new();
    let (events, receiver) = bmrng::channel(16);
    tokio::spawn(ProxyRunner::run_proxy(
        listener, info, receiver, stop, closer,
    ));
    Ok(Running {
        stopper,
        events,
        closed,
    })
}

async fn halt(r: Running) {
    r.stopper.stop();
    let closed = r.closed;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), closed.recv()).await;
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let proxies: Proxies = Arc::new(Mutex::new(BTreeMap::new()));
    let app = Router::new()
        .route(
            "/version",
            get(|| async { concat!("pdchaos-", env!("CARGO_PKG_VERSION")) }),
        )
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route("/reset", post(reset))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(list_toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .with_state(proxies);
    axum::serve(listener, app).await
}

/// Binds `addr` and serves.
pub async fn run(addr: SocketAddr) -> std::io::Result<()> {
    serve(tokio::net::TcpListener::bind(addr).await?).await
}

async fn list(State(p): State<Proxies>) -> Json<BTreeMap<String, ProxyJson>> {
    Json(
        p.lock()
            .await
            .iter()
            .map(|(k, e)| (k.clone(), e.json.clone()))
            .collect(),
    )
}

async fn create_one(p: &Proxies, mut json: ProxyJson) -> Result<ProxyJson, Response> {
    if json.name.is_empty() || json.listen.is_empty() || json.upstream.is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "proxy needs name, listen and upstream",
        ));
    }
    let mut map = p.lock().await;
    if map.contains_key(&json.name) {
        return Err(err(StatusCode::CONFLICT, "proxy already exists"));
    }
    json.toxics.clear();
    // Toxiproxy accepts port 0 and reports the port it bound; pick a free one the same way.
    if json.listen.ends_with(":0") {
        let free = std::net::TcpListener::bind(json.listen.as_str()).and_then(|l| l.local_addr());
        match free {
            Ok(a) => json.listen = a.to_string(),
            Err(e) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("listen {}: {e}", json.listen),
                ));
            }
        }
    }
    let running = if json.enabled {
        Some(
            start(&json)
                .await
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?,
        )
    } else {
        None
    };
    map.insert(
        json.name.clone(),
        Entry {
            json: json.clone(),
            running,
        },
    );
    Ok(json)
}

async fn create(State(p): State<Proxies>, Json(json): Json<ProxyJson>) -> Response {
    match create_one(&p, json).await {
        Ok(j) => (StatusCode::CREATED, Json(j)).into_response(),
        Err(r) => r,
    }
}

async fn populate(State(p): State<Proxies>, Json(list): Json<Vec<ProxyJson>>) -> Response {
    let mut out = Vec::new();
    for json in list {
        // Populate replaces a proxy of the same name, as Toxiproxy does.
        if let Some(old) = p.lock().await.remove(&json.name)
            && let Some(r) = old.running
        {
            halt(r).await;
        }
        match create_one(&p, json).await {
            Ok(j) => out.push(j),
            Err(r) => return r,
        }
    }
    (StatusCode::CREATED, Json(json!({"proxies": out}))).into_response()
}

async fn show(State(p): State<Proxies>, Path(name): Path<String>) -> Response {
    match p.lock().await.get(&name) {
        Some(e) => Json(e.json.clone()).into_response(),
        None => err(StatusCode::NOT_FOUND, "proxy not found"),
    }
}

async fn update(
    State(p): State<Proxies>,
    Path(name): Path<String>,
    Json(u): Json<ProxyUpdate>,
) -> Response {
    let mut map = p.lock().await;
    let Some(e) = map.get_mut(&name) else {
        return err(StatusCode::NOT_FOUND, "proxy not found");
    };
    let moved = u.listen.as_ref().is_some_and(|l| *l != e.json.listen)
        || u.upstream.as_ref().is_some_and(|l| *l != e.json.upstream);
    let want = u.enabled.unwrap_or(e.json.enabled);
    if let Some(l) = u.listen {
        e.json.listen = l;
    }
    if let Some(up) = u.upstream {
        e.json.upstream = up;
    }
    if (!want || moved)
        && let Some(r) = e.running.take()
    {
        halt(r).await;
    }
    if want && e.running.is_none() {
        match start(&e.json).await {
            Ok(r) => e.running = Some(r),
            Err(m) => return err(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
    e.json.enabled = want;
    Json(e.json.clone()).into_response()
}

async fn delete(State(p): State<Proxies>, Path(name): Path<String>) -> Response {
    let Some(e) = p.lock().await.remove(&name) else {
        return err(StatusCode::NOT_FOUND, "proxy not found");
    };
    if let Some(r) = e.running {
        halt(r).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(p): State<Proxies>) -> Response {
    let mut map = p.lock().await;
    for e in map.values_mut() {
        // By name and in both directions: the engine's own remove-all clears only upstream.
        for t in std::mem::take(&mut e.json.toxics) {
            if let Some(r) = &e.running {
                let _ = r
                    .events
                    .send_receive(ToxicEvent::new(
                        e.json.name.clone(),
                        ToxicEventKind::RemoveToxic(t.name),
                    ))
                    .await;
            }
        }
        if e.running.is_none() {
            match start(&e.json).await {
                Ok(r) => e.running = Some(r),
                Err(m) => return err(StatusCode::INTERNAL_SERVER_ERROR, m),
            }
        }
        e.json.enabled = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_toxics(State(p): State<Proxies>, Path(name): Path<String>) -> Response {
    match p.lock().await.get(&name) {
        Some(e) => Json(e.json.toxics.clone()).into_response(),
        None => err(StatusCode::NOT_FOUND, "proxy not found"),
    }
}

async fn send(e: &Entry, kind: ToxicEventKind) -> Result<(), Response> {
    let Some(r) = &e.running else { return Ok(()) };
    match r
        .events
        .send_receive(ToxicEvent::new(e.json.name.clone(), kind))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(x)) => Err(err(StatusCode::BAD_REQUEST, x.to_string())),
        Err(_) => Err(err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "proxy engine is gone",
        )),
    }
}

async fn add_toxic(
    State(p): State<Proxies>,
    Path(name): Path<String>,
    Json(mut t): Json<ToxicJson>,
) -> Response {
    let mut map = p.lock().await;
    let Some(e) = map.get_mut(&name) else {
        return err(StatusCode::NOT_FOUND, "proxy not found");
    };
    if t.name.is_empty() {
        t.name = t.default_name();
    }
    if !(0.0..=1.0).contains(&t.toxicity) {
        return err(StatusCode::BAD_REQUEST, "toxicity must be between 0 and 1");
    }
    if e.json.toxics.iter().any(|x| x.name == t.name) {
        return err(StatusCode::CONFLICT, "toxic already exists");
    }
    let engine = match engine_toxic(&t) {
        Ok(x) => x,
        Err(m) => return err(StatusCode::BAD_REQUEST, m),
    };
    if let Err(r) = send(e, ToxicEventKind::AddToxic(engine)).await {
        return r;
    }
    e.json.toxics.push(t.clone());
    Json(t).into_response()
}

async fn show_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Response {
    let map = p.lock().await;
    match map
        .get(&name)
        .and_then(|e| e.json.toxics.iter().find(|t| t.name == toxic))
    {
        Some(t) => Json(t.clone()).into_response(),
        None => err(StatusCode::NOT_FOUND, "toxic not found"),
    }
}

async fn update_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    let mut map = p.lock().await;
    let Some(e) = map.get_mut(&name) else {
        return err(StatusCode::NOT_FOUND, "proxy not found");
    };
    let Some(i) = e.json.toxics.iter().position(|t| t.name == toxic) else {
        return err(StatusCode::NOT_FOUND, "toxic not found");
    };
    // Merge the given fields (attributes key by key) over the existing toxic.
    let mut cur = serde_json::to_value(&e.json.toxics[i]).unwrap_or_default();
    if let (Some(obj), Some(new)) = (cur.as_object_mut(), v.as_object()) {
        for (k, val) in new {
            match (k.as_str(), obj.get_mut("attributes"), val.as_object()) {
                ("attributes", Some(serde_json::Value::Object(attrs)), Some(new_attrs)) => {
                    attrs.extend(new_attrs.clone());
                }
                _ => {
                    obj.insert(k.clone(), val.clone());
                }
            }
        }
    }
    let Ok(mut t) = serde_json::from_value::<ToxicJson>(cur) else {
        return err(StatusCode::BAD_REQUEST, "invalid toxic");
    };
    t.name = toxic;
    let engine = match engine_toxic(&t) {
        Ok(x) => x,
        Err(m) => return err(StatusCode::BAD_REQUEST, m),
    };
    if let Err(r) = send(e, ToxicEventKind::UpdateToxic(engine)).await {
        return r;
    }
    e.json.toxics[i] = t.clone();
    Json(t).into_response()
}

async fn remove_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Response {
    let mut map = p.lock().await;
    let Some(e) = map.get_mut(&name) else {
        return err(StatusCode::NOT_FOUND, "proxy not found");
    };
    let Some(i) = e.json.toxics.iter().position(|t| t.name == toxic) else {
        return err(StatusCode::NOT_FOUND, "toxic not found");
    };
    if let Err(r) = send(e, ToxicEventKind::RemoveToxic(toxic)).await {
        return r;
    }
    e.json.toxics.remove(i);
    StatusCode::NO_CONTENT.into_response()
}
