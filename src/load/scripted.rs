//! A scripted OpenAI-compatible streaming server with known timings and chosen misbehaviour.
//!
//! It is the reference the load client is checked against (integration tests) and the fast
//! server `pdchaos bench-client` drives. The script is chosen per request by the model name,
//! `scripted[:key=value,...]`, so one server can produce every outcome kind:
//!
//! | key | effect |
//! |---|---|
//! | `ttft_ms=N` | delay before the first token (default 50) |
//! | `itl_ms=N` | gap between tokens (default 10) |
//! | `tokens=N` | answer tokens (default 10) |
//! | `reasoning=N` | reasoning tokens before the answer (default 0) |
//! | `status=N` | answer with this HTTP status and a JSON error body |
//! | `json_error` | answer 200 with a JSON error body instead of a stream |
//! | `error_after=N` | an in-band `error` object after N tokens |
//! | `cut_after=N` | abort the connection after N tokens |
//! | `no_done` | end the body without `[DONE]` or a finish_reason |
//! | `no_usage` | no usage chunk |
//! | `malformed_after=N` | an unparsable chunk after N tokens |
//! | `stall` | send headers, then nothing |

use crate::clock;
use axum::Router;
use axum::body::Body;
use axum::extract::{Json, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// The parsed script of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub ttft: Duration,
    pub itl: Duration,
    pub tokens: u32,
    pub reasoning: u32,
    pub status: Option<u16>,
    pub json_error: bool,
    pub error_after: Option<u32>,
    pub cut_after: Option<u32>,
    pub no_done: bool,
    pub no_usage: bool,
    pub malformed_after: Option<u32>,
    pub stall: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            tokens: 10,
            reasoning: 0,
            status: None,
            json_error: false,
            error_after: None,
            cut_after: None,
            no_done: false,
            no_usage: false,
            malformed_after: None,
            stall: false,
        }
    }
}

impl Script {
    /// Parses `scripted:ttft_ms=200,tokens=5`; unknown keys are ignored.
    pub fn from_model(model: &str) -> Script {
        let mut s = Script::default();
        let Some((_, spec)) = model.split_once(':') else {
            return s;
        };
        for item in spec.split(',') {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            let n = v.parse::<u64>().ok();
            match (k.trim(), n) {
                ("ttft_ms", Some(n)) => s.ttft = Duration::from_millis(n),
                ("itl_ms", Some(n)) => s.itl = Duration::from_millis(n),
                ("itl_us", Some(n)) => s.itl = Duration::from_micros(n),
                ("tokens", Some(n)) => s.tokens = n as u32,
                ("reasoning", Some(n)) => s.reasoning = n as u32,
                ("status", Some(n)) => s.status = Some(n as u16),
                ("error_after", Some(n)) => s.error_after = Some(n as u32),
                ("cut_after", Some(n)) => s.cut_after = Some(n as u32),
                ("malformed_after", Some(n)) => s.malformed_after = Some(n as u32),
                ("json_error", _) => s.json_error = true,
                ("no_done", _) => s.no_done = true,
                ("no_usage", _) => s.no_usage = true,
                ("stall", _) => s.stall = true,
                _ => {}
            }
        }
        s
    }
}

/// Starts the server on `127.0.0.1:0` in the current runtime; returns its address.
pub async fn serve() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/v1/chat/completions", post(handle))
        .route("/v1/completions", post(handle))
        .with_state(());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

async fn handle(State(()): State<()>, Json(body): Json<Value>) -> Response {
    let arrival_us = clock::now_us();
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted");
    let script = Script::from_model(model);
    if let Some(code) = script.status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            status,
            Json(json!({"error": {"message": "scripted failure", "code": code}})),
        )
            .into_response();
    }
    if script.json_error {
        return Json(json!({"error": {"message": "scripted json error"}})).into_response();
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(stream_tokens(script, arrival_us, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn event(v: &Value) -> Result<Bytes, std::io::Error> {
    Ok(Bytes::from(format!("data: {v}\n\n")))
}

async fn stream_tokens(
    s: Script,
    arrival_us: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let _: Result<(), mpsc::error::SendError<_>> = async {
        if s.stall {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        let start = tokio::time::Instant::now();
        let total = s.reasoning + s.tokens;
        let mut first_token_us = None;
        for i in 0..total {
            tokio::time::sleep_until(start + s.ttft + s.itl * i).await;
            if s.cut_after == Some(i) {
                tx.send(Err(std::io::Error::other("scripted cut"))).await?;
                return Ok(());
            }
            if s.error_after == Some(i) {
                tx.send(event(&json!({"error": {"message": "scripted in-band error"}}))).await?;
                return Ok(());
            }
            if s.malformed_after == Some(i) {
                tx.send(Ok(Bytes::from_static(b"data: {not json\n\n"))).await?;
                continue;
            }
            let delta = if i < s.reasoning { json!({"reasoning_content": "t "}) } else { json!({"content": "w "}) };
            first_token_us.get_or_insert_with(clock::now_us);
            tx.send(event(&json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}))).await?;
        }
        if s.no_done {
            return Ok(());
        }
        tx.send(event(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))).await?;
        if !s.no_usage {
            let usage = json!({"prompt_tokens": 8, "completion_tokens": total, "reasoning_tokens": s.reasoning});
            let x_pd = json!({"arrival_us": arrival_us, "first_token_us": first_token_us, "last_token_us": clock::now_us()});
            tx.send(event(&json!({"choices": [], "usage": usage, "x_pd": x_pd}))).await?;
        }
        tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await?;
        Ok(())
    }
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_from_model_name() {
        let s = Script::from_model("scripted:ttft_ms=200,tokens=5,no_done,cut_after=2");
        assert_eq!(s.ttft, Duration::from_millis(200));
        assert_eq!(s.tokens, 5);
        assert!(s.no_done);
        assert_eq!(s.cut_after, Some(2));
        assert_eq!(Script::from_model("plain"), Script::default());
    }
}
