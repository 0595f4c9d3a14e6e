//! The wire protocol between the simulator's router and workers. Documented in docs/protocol.md.
//!
//! Requests are OpenAI requests plus the fields SGLang's model gateway adds in PD mode
//! (`bootstrap_host`, `bootstrap_port`, `bootstrap_room`): the router sends the same request to
//! a prefill and a decode worker; the decode worker fetches the KV for `bootstrap_room` from
//! `bootstrap_host:bootstrap_port`. A worker that gets no bootstrap fields serves the request
//! alone (the degraded path). Two fields of our own are optional: `pd_prefill_name` (so the
//! decode worker can name the prefill node in its answer) and `pd_arrival_us` (the router's
//! arrival stamp, so server timings start where the client's request entered the system).
//!
//! KV transfer runs on its own TCP port as a real byte stream, line-framed:
//! `KV <room>\n` -> `OK <bytes>\n<bytes...>` or `ERR <reason>\n`; `PING\n` -> `PONG\n`.

use serde_json::Value;

/// The parts of a request the workers act on.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRequest {
    pub model: String,
    pub chat: bool,
    pub prompt_text: String,
    pub max_tokens: Option<u32>,
    pub bootstrap: Option<Bootstrap>,
    pub prefill_name: Option<String>,
    pub arrival_us: Option<u64>,
}

/// Where the decode worker fetches this request's KV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub host: String,
    pub port: u16,
    pub room: u64,
}

impl WorkerRequest {
    /// Reads a request body; `None` when it has neither `messages` nor `prompt`.
    pub fn from_json(body: &Value) -> Option<WorkerRequest> {
        let (chat, prompt_text) = if let Some(msgs) = body.get("messages").and_then(Value::as_array)
        {
            let text = msgs
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n");
            (true, text)
        } else {
            (false, body.get("prompt")?.as_str()?.to_string())
        };
        let bootstrap = match (
            body.get("bootstrap_host").and_then(Value::as_str),
            body.get("bootstrap_port").and_then(Value::as_u64),
            body.get("bootstrap_room").and_then(Value::as_u64),
        ) {
            (Some(h), Some(p), Some(r)) => Some(Bootstrap {
                host: h.to_string(),
                port: p as u16,
                room: r,
            }),
            _ => None,
        };
        Some(WorkerRequest {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("pdchaos-sim")
                .to_string(),
            chat,
            prompt_text,
            max_tokens: body
                .get("max_tokens")
                .and_then(Value::as_u64)
                .map(|v| v as u32),
            bootstrap,
            prefill_name: body
                .get("pd_prefill_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            arrival_us: body.get("pd_arrival_us").and_then(Value::as_u64),
        })
    }

    /// Prompt tokens, by the same estimate the load client uses without a tokenizer.
    pub fn prompt_tokens(&self) -> u64 {
        crate::load::prompts::estimate_tokens(&self.prompt_text).max(1)
    }
}

/// Adds the PD fields to a request body the router forwards.
pub fn with_bootstrap(body: &Value, b: &Bootstrap, prefill_name: &str, arrival_us: u64) -> Value {
    let mut v = body.clone();
    if let Value::Object(o) = &mut v {
        o.insert("bootstrap_host".into(), Value::from(b.host.clone()));
        o.insert("bootstrap_port".into(), Value::from(b.port));
        o.insert("bootstrap_room".into(), Value::from(b.room));
        o.insert("pd_prefill_name".into(), Value::from(prefill_name));
        o.insert("pd_arrival_us".into(), Value::from(arrival_us));
    }
    v
}

/// Adds only the arrival stamp (degraded single-worker path).
pub fn with_arrival(body: &Value, arrival_us: u64) -> Value {
    let mut v = body.clone();
    if let Value::Object(o) = &mut v {
        o.insert("pd_arrival_us".into(), Value::from(arrival_us));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_sglang_bootstrap_fields() {
        let body = json!({"model":"m","messages":[{"role":"user","content":"hi there"}]});
        let b = Bootstrap {
            host: "127.0.0.1".into(),
            port: 9000,
            room: 42,
        };
        let req = WorkerRequest::from_json(&with_bootstrap(&body, &b, "prefill-0", 7)).unwrap();
        assert_eq!(req.bootstrap, Some(b));
        assert_eq!(req.prefill_name.as_deref(), Some("prefill-0"));
        assert!(req.chat);
        assert!(WorkerRequest::from_json(&json!({"model":"m"})).is_none());
    }
}
