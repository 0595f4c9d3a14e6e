//! The REST layer: Toxiproxy's routes, status codes and JSON bodies on axum. Bodies are parsed
//! here (not by axum's extractor) so a bad body gets Toxiproxy's `{"error","status":400}` shape.

use super::registry::{ApiError, Registry};
use crate::fault::model::Stream;
use crate::fault::toxiproxy::api::{
    ApiErrorBody, NewProxy, ProxyPatch, ToxicInfo, parse_toxic, toxic_attributes, toxic_type,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The version string `GET /version` reports: Toxiproxy's API level, marked as ours.
pub const VERSION: &str = "2.5.0-pdchaos";

type Shared = Arc<Registry>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ApiErrorBody {
            error: self.message,
            status: self.status,
        };
        (status, axum::Json(body)).into_response()
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, format!("bad request body: {e}")))
}

pub fn router(registry: Shared) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list).post(create))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(remove),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .with_state(registry)
}

async fn version() -> &'static str {
    VERSION
}

async fn reset(State(reg): State<Shared>) -> Result<StatusCode, ApiError> {
    reg.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn populate(State(reg): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let proxies: Vec<NewProxy> = parse(&body)?;
    let created = reg.populate(proxies).await?;
    Ok(json(
        StatusCode::CREATED,
        serde_json::json!({ "proxies": created }),
    ))
}

async fn list(State(reg): State<Shared>) -> Response {
    json(StatusCode::OK, reg.list().await)
}

async fn create(State(reg): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewProxy = parse(&body)?;
    Ok(json(StatusCode::CREATED, reg.create(new).await?))
}

async fn show(State(reg): State<Shared>, Path(proxy): Path<String>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, reg.get(&proxy).await?))
}

async fn update(
    State(reg): State<Shared>,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch: ProxyPatch = parse(&body)?;
    Ok(json(StatusCode::OK, reg.update(&proxy, patch).await?))
}

async fn remove(
    State(reg): State<Shared>,
    Path(proxy): Path<String>,
) -> Result<StatusCode, ApiError> {
    reg.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics(
    State(reg): State<Shared>,
    Path(proxy): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, reg.toxics(&proxy).await?))
}

/// A toxic body as clients send it; every field but `type` optional.
#[derive(Debug, Deserialize)]
struct ToxicBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    stream: Option<Stream>,
    #[serde(default)]
    toxicity: Option<f32>,
    #[serde(default)]
    attributes: Value,
}

fn check_toxicity(t: f32) -> Result<f32, ApiError> {
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(ApiError::new(
            400,
            format!("toxicity must be in 0..1, got {t}"),
        ))
    }
}

async fn add_toxic(
    State(reg): State<Shared>,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ToxicBody = parse(&body)?;
    let kind = body
        .kind
        .ok_or_else(|| ApiError::new(400, "missing required field: type"))?;
    let toxic = parse_toxic(&kind, &body.attributes).map_err(|e| ApiError::new(400, e))?;
    let stream = body.stream.unwrap_or_default();
    let stream_name = match stream {
        Stream::Upstream => "upstream",
        Stream::Downstream => "downstream",
    };
    let info = ToxicInfo {
        name: body
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{kind}_{stream_name}")),
        toxic,
        stream,
        toxicity: check_toxicity(body.toxicity.unwrap_or(1.0))?,
    };
    Ok(json(StatusCode::OK, reg.add_toxic(&proxy, info).await?))
}

async fn show_toxic(
    State(reg): State<Shared>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, reg.toxic(&proxy, &toxic).await?))
}

/// Merges the given attributes, toxicity and stream into the existing toxic (type is fixed).
async fn update_toxic(
    State(reg): State<Shared>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ToxicBody = parse(&body)?;
    let current = reg.toxic(&proxy, &toxic).await?;
    let kind = toxic_type(&current.toxic);
    let mut attrs = toxic_attributes(&current.toxic);
    if let (Value::Object(into), Value::Object(from)) = (&mut attrs, &body.attributes) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
    let next = ToxicInfo {
        name: current.name.clone(),
        toxic: parse_toxic(kind, &attrs).map_err(|e| ApiError::new(400, e))?,
        stream: body.stream.unwrap_or(current.stream),
        toxicity: check_toxicity(body.toxicity.unwrap_or(current.toxicity))?,
    };
    Ok(json(StatusCode::OK, reg.replace_toxic(&proxy, next).await?))
}

async fn remove_toxic(
    State(reg): State<Shared>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    reg.remove_toxic(&proxy, &toxic).await?;
    Ok(StatusCode::NO_CONTENT)
}
