//! The streaming HTTP client: sends one request, reads its SSE stream, returns its record.
//!
//! Built on reqwest + eventsource-stream and never reconnects: a re-sent POST would turn a cut
//! stream into a silent second request and hide exactly the faults this tool exists to see.

use crate::clock::{self, Micros};
use crate::load::record::{OutcomeKind, RequestRecord, ServerInfo};
use crate::load::tracker::{Flow, StreamEnd, Tracker};
use crate::pd;
use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;
use tokio::time::Instant;

/// Per-request time limits.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub first_token: Duration,
    pub total: Duration,
}

/// Where requests go and how they are authenticated; cheap to clone.
#[derive(Debug, Clone)]
pub struct Endpoint {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
}

/// Errors building an [`Endpoint`] from user input.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid header `{0}`: expected NAME:VALUE with a valid name and value")]
    Header(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl Endpoint {
    /// `url` is the full request URL (`{base}/chat/completions` or `{base}/completions`).
    pub fn new(
        url: String,
        api_key: Option<&str>,
        extra_headers: &[(String, String)],
        connect_timeout: Duration,
    ) -> Result<Self, EndpointError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| EndpointError::Header("Authorization".into()))?;
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in extra_headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| EndpointError::Header(name.clone()))?;
            let v =
                HeaderValue::from_str(value).map_err(|_| EndpointError::Header(name.clone()))?;
            headers.insert(n, v);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| EndpointError::Client(e.to_string()))?;
        Ok(Endpoint {
            client,
            url,
            headers,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// One request ready to send.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: u64,
    pub user: u32,
    pub bucket: Option<String>,
    pub intended_us: Micros,
    pub body: serde_json::Value,
    /// Prompt tokens as counted (or estimated) by the prompt source.
    pub input_tokens: u64,
    pub input_estimated: bool,
}

/// Sends `plan` and reads the stream to its end. Never fails: every failure is an outcome.
pub async fn execute(
    ep: &Endpoint,
    plan: Planned,
    t: Timeouts,
    require_usage: bool,
) -> RequestRecord {
    let started = Instant::now();
    let sent_us = clock::at(started.into_std());
    let total_deadline = started + t.total;
    let first_deadline = (started + t.first_token).min(total_deadline);
    let mut tracker = Tracker::new(sent_us);
    let mut status = None;
    let mut header_info = ServerInfo::default();

    let send = ep
        .client
        .post(&ep.url)
        .headers(ep.headers.clone())
        .json(&plan.body)
        .send();
    let end = match tokio::time::timeout_at(first_deadline, send).await {
        Err(_) => StreamEnd::FirstTokenDeadline,
        Ok(Err(e)) => {
            let mut rec = finish_record(&plan, sent_us, &tracker, OutcomeKind::ConnectError, None);
            rec.error = Some(describe(&e));
            return rec;
        }
        Ok(Ok(resp)) => {
            status = Some(resp.status().as_u16());
            header_info = server_from_headers(resp.headers());
            if !resp.status().is_success() {
                let body = tokio::time::timeout_at(total_deadline, resp.text()).await;
                let text = body.ok().and_then(Result::ok).unwrap_or_default();
                let mut rec =
                    finish_record(&plan, sent_us, &tracker, OutcomeKind::HttpError, status);
                rec.error = Some(format!("HTTP {}: {}", status.unwrap_or(0), snippet(&text)));
                rec.server = header_info;
                return rec;
            }
            let is_json = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/json"));
            if is_json {
                match tokio::time::timeout_at(total_deadline, resp.text()).await {
                    Err(_) => StreamEnd::TotalDeadline,
                    Ok(Err(e)) => StreamEnd::Transport(describe(&e)),
                    Ok(Ok(body)) => {
                        tracker.on_json_body(&body, clock::now_us());
                        StreamEnd::Eof
                    }
                }
            } else {
                read_stream(
                    resp.bytes_stream(),
                    &mut tracker,
                    first_deadline,
                    total_deadline,
                )
                .await
            }
        }
    };
    let ending = tracker.finish(&end);
    let mut rec = finish_record(&plan, sent_us, &tracker, ending.outcome, status);
    rec.error = ending.error;
    rec.server = merge_headers(tracker.server.clone(), header_info);
    if require_usage && rec.outcome == OutcomeKind::Ok && rec.missing_usage {
        rec.outcome = OutcomeKind::Malformed;
        rec.error = Some("the stream carried no usage object (usage is required)".into());
    }
    rec
}

/// Reads SSE events from `body` into `tracker` until the stream ends or a deadline passes.
pub async fn read_stream<S, E>(
    body: S,
    tracker: &mut Tracker,
    first_deadline: Instant,
    total_deadline: Instant,
) -> StreamEnd
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut events = body.eventsource();
    loop {
        let deadline = if tracker.has_first_token() {
            total_deadline
        } else {
            first_deadline
        };
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let now = clock::now_us();
        match next {
            Err(_) if !tracker.has_first_token() && deadline < total_deadline => {
                return StreamEnd::FirstTokenDeadline;
            }
            Err(_) => return StreamEnd::TotalDeadline,
            Ok(None) => return StreamEnd::Eof,
            Ok(Some(Err(EventStreamError::Transport(e)))) => {
                return StreamEnd::Transport(e.to_string());
            }
            Ok(Some(Err(e))) => {
                // Not valid UTF-8 or not an event stream: feed it as a payload that cannot parse.
                let _ = tracker.on_data(&format!("<{e}>"), now);
                return StreamEnd::Stopped;
            }
            Ok(Some(Ok(event))) => {
                if tracker.on_data(&event.data, now) == Flow::Stop {
                    return if event.data.trim() == crate::load::chunk::DONE {
                        StreamEnd::Done
                    } else {
                        StreamEnd::Stopped
                    };
                }
            }
        }
    }
}

fn finish_record(
    plan: &Planned,
    sent_us: Micros,
    t: &Tracker,
    outcome: OutcomeKind,
    http_status: Option<u16>,
) -> RequestRecord {
    let (input_tokens, output_tokens, estimated) = match t.usage {
        Some(u) => (u.prompt_tokens, u.completion_tokens, false),
        // Without usage, one content-bearing chunk is taken as one token (how OpenAI-compatible
        // servers stream), and the prompt count comes from our own tokenizer or estimate.
        None => (plan.input_tokens, t.content_chunks(), true),
    };
    RequestRecord {
        id: plan.id,
        user: plan.user,
        bucket: plan.bucket.clone(),
        intended_us: plan.intended_us.min(sent_us),
        sent_us,
        first_reasoning_us: t.first_reasoning_us,
        first_answer_us: t.first_answer_us,
        end_us: clock::now_us(),
        chunk_offsets_us: t.chunk_offsets_us.clone(),
        finish_reason: t.finish_reason.clone(),
        usage: t.usage,
        input_tokens,
        output_tokens,
        tokens_estimated: estimated || plan.input_estimated && t.usage.is_none(),
        http_status,
        outcome,
        error: None,
        reasoning_chars: t.reasoning_chars,
        answer_chars: t.answer_chars,
        server: ServerInfo::default(),
        missing_usage: t.usage.is_none(),
    }
}

fn server_from_headers(h: &HeaderMap) -> ServerInfo {
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ServerInfo {
        mode: text(pd::HEADER_MODE).and_then(|m| m.parse().ok()),
        prefill: text(pd::HEADER_PREFILL),
        decode: text(pd::HEADER_DECODE),
        ..ServerInfo::default()
    }
}

/// The stream's own `x_pd` wins over headers (it is written after the path is final).
fn merge_headers(from_stream: ServerInfo, from_headers: ServerInfo) -> ServerInfo {
    ServerInfo {
        mode: from_stream.mode.or(from_headers.mode),
        prefill: from_stream.prefill.or(from_headers.prefill),
        decode: from_stream.decode.or(from_headers.decode),
        ..from_stream
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    async fn read(parts: Vec<Result<&'static str, &'static str>>) -> (Tracker, StreamEnd) {
        let body = stream::iter(
            parts
                .into_iter()
                .map(|p| p.map(|s: &'static str| Bytes::from_static(s.as_bytes()))),
        );
        let mut t = Tracker::new(clock::now_us());
        let far = Instant::now() + Duration::from_secs(5);
        let end = read_stream(body, &mut t, far, far).await;
        (t, end)
    }

    const OK_TAIL: &str =
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

    #[tokio::test]
    async fn events_split_across_reads() {
        let (t, end) = read(vec![
            Ok("data: {\"choices\":[{\"del"),
            Ok("ta\":{\"content\":\"hel"),
            Ok("lo\"}}]}\n"),
            Ok("\n"),
            Ok(OK_TAIL),
        ])
        .await;
        assert_eq!(end, StreamEnd::Done);
        assert_eq!(t.answer_chars, 5);
        assert_eq!(t.finish(&end).outcome, OutcomeKind::Ok);
    }

    #[tokio::test]
    async fn crlf_comments_and_multiline_data() {
        let (t, end) = read(vec![
            Ok(": ping\r\n\r\n"),
            Ok("data: {\"choices\":[{\"delta\":\r\ndata: {\"content\":\"hi\"}}]}\r\n\r\n"),
            Ok(": keep-alive\r\n\r\n"),
            Ok("data: [DONE]\r\n\r\n"),
        ])
        .await;
        assert_eq!(end, StreamEnd::Done);
        assert_eq!(t.answer_chars, 2);
        assert_eq!(t.content_chunks(), 1);
    }

    #[tokio::test]
    async fn missing_done_is_cut() {
        let (t, end) = read(vec![Ok(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
        )])
        .await;
        assert_eq!(end, StreamEnd::Eof);
        assert_eq!(t.finish(&end).outcome, OutcomeKind::StreamCut);
    }

    #[tokio::test]
    async fn transport_error_mid_stream() {
        let (t, end) = read(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
            Err("connection reset"),
        ])
        .await;
        assert!(matches!(end, StreamEnd::Transport(_)));
        assert_eq!(t.finish(&end).outcome, OutcomeKind::StreamCut);
    }

    #[tokio::test]
    async fn error_object_mid_stream() {
        let (t, end) = read(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
            Ok("data: {\"error\":{\"message\":\"kv lost\"}}\n\n"),
            Ok(OK_TAIL),
        ])
        .await;
        assert_eq!(t.finish(&end).outcome, OutcomeKind::InBandError);
    }

    #[tokio::test]
    async fn reasoning_only_and_usage_with_empty_choices() {
        let (t, end) = read(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\n"),
            Ok("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n"),
            Ok(OK_TAIL),
        ])
        .await;
        assert_eq!(t.usage.unwrap().prompt_tokens, 3);
        assert_eq!(t.finish(&end).outcome, OutcomeKind::TruncatedReasoning);
    }

    #[tokio::test]
    async fn first_token_deadline_on_silent_stream() {
        let body = stream::pending::<Result<Bytes, String>>();
        let mut t = Tracker::new(clock::now_us());
        let first = Instant::now() + Duration::from_millis(30);
        let total = Instant::now() + Duration::from_secs(5);
        let end = read_stream(body, &mut t, first, total).await;
        assert_eq!(end, StreamEnd::FirstTokenDeadline);
    }
}
