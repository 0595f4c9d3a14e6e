//! The `/workers` admin API: list, add (`POST`, first health check before the answer) and
//! remove (`DELETE ...?drain_ms=N`, drains the worker's streams) workers while the router
//! runs. The local stack scales a role through it (docs/protocol.md).

use crate::sim::health::{Worker, WorkerSpec};
use axum::extract::{Json, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{RouterState, error};

/// One worker as `GET /workers` and `/status` show it.
fn worker_json(group: &str, role: &str, w: &Arc<Worker>) -> Value {
    json!({
        "group": group, "role": role, "name": w.spec.name, "url": w.spec.url,
        "healthy": w.is_healthy(), "kv_link_ok": w.link_ok(),
        "inflight": w.inflight.load(Ordering::Relaxed),
    })
}

/// `GET /workers`: every worker the router routes to now, with its group and role.
pub(super) async fn list_workers(State(s): State<Arc<RouterState>>) -> Json<Value> {
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
pub(super) struct AddWorker {
    /// The group's name; the first group when absent.
    #[serde(default)]
    group: Option<String>,
    role: Side,
    worker: WorkerSpec,
}

/// `POST /workers`: routes to one more worker from now on. Its first health check runs before
/// the answer, so a healthy worker takes requests at once; 201 with the worker as listed.
pub(super) async fn add_worker(
    State(s): State<Arc<RouterState>>,
    Json(req): Json<AddWorker>,
) -> Response {
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
pub(super) struct Drain {
    /// Wait up to this long for the worker's streams in flight to end (at most 60 s).
    #[serde(default)]
    drain_ms: u64,
}

/// `DELETE /workers/{name}`: no new request goes to the worker; then waits up to `drain_ms` for
/// the streams it serves to end. 200 with how many were still in flight.
pub(super) async fn remove_worker(
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
