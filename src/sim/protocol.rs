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
//! vLLM's router (`vllm-router --vllm-pd-disaggregation`) speaks a second dialect: it first sends
//! the prefill worker the request with `max_tokens: 1` and `kv_transfer_params:
//! {"do_remote_decode": true, ...}`; the prefill worker answers a whole (non-streamed) completion
//! whose `kv_transfer_params` say where the KV waits (`remote_host`, `remote_port`, and our
//! `pd_room`); the router then sends the decode worker the original request carrying those
//! `kv_transfer_params` verbatim. Both dialects end in the same place: a [`Bootstrap`] on the
//! decode side. See docs/routers.md for what each router sends, as observed.
//!
//! KV transfer runs on its own TCP port as a real byte stream, line-framed:
//! `KV <room>\n` -> `OK <bytes> [<prefill name>]\n<bytes...>` or `ERR <reason>\n`;
//! `PING\n` -> `PONG\n`.

use serde_json::Value;

/// The parts of a request the workers act on.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRequest {
    pub model: String,
    pub chat: bool,
    pub prompt_text: String,
    pub max_tokens: Option<u32>,
    /// Whether the client asked for a stream (vLLM's router asks the prefill side for none).
    pub stream: bool,
    /// SGLang dialect, or the decode half of vLLM's: where this request's KV waits.
    pub bootstrap: Option<Bootstrap>,
    /// vLLM dialect, prefill half: compute the KV and keep it for a remote decode worker.
    pub remote_decode: bool,
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
        let sglang = bootstrap_from(
            body.get("bootstrap_host"),
            body.get("bootstrap_port"),
            body.get("bootstrap_room"),
        );
        let kv = body.get("kv_transfer_params").filter(|v| v.is_object());
        let flag = |name: &str| {
            kv.and_then(|k| k.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let vllm = if flag("do_remote_prefill") {
            kv.and_then(|k| {
                bootstrap_from(k.get("remote_host"), k.get("remote_port"), k.get("pd_room"))
            })
        } else {
            None
        };
        let prefill_name = body
            .get("pd_prefill_name")
            .or_else(|| kv.and_then(|k| k.get("pd_prefill_name")))
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(WorkerRequest {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("pdchaos-sim")
                .to_string(),
            chat,
            prompt_text,
            // SGLang's gateway rewrites a chat request's `max_tokens` to `max_completion_tokens`.
            max_tokens: body
                .get("max_tokens")
                .or_else(|| body.get("max_completion_tokens"))
                .and_then(Value::as_u64)
                .map(|v| v as u32),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            bootstrap: sglang.or(vllm),
            remote_decode: flag("do_remote_decode"),
            prefill_name,
            arrival_us: body.get("pd_arrival_us").and_then(Value::as_u64),
        })
    }

    /// Prompt tokens, by the same estimate the load client uses without a tokenizer.
    pub fn prompt_tokens(&self) -> u64 {
        crate::load::prompts::estimate_tokens(&self.prompt_text).max(1)
    }
}

/// Reads host, port and room; the port may be a number or a numeric string.
fn bootstrap_from(
    host: Option<&Value>,
    port: Option<&Value>,
    room: Option<&Value>,
) -> Option<Bootstrap> {
    let host = host?.as_str()?.to_string();
    let port = match port? {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(Bootstrap {
        host,
        port,
        room: room?.as_u64()?,
    })
}

/// The `kv_transfer_params` a prefill worker returns to vLLM's router: where the decode worker
/// fetches this request's KV. The router copies the object into the decode request verbatim.
pub fn kv_transfer_params(b: &Bootstrap, prefill_name: &str) -> Value {
    serde_json::json!({
        "do_remote_prefill": true,
        "do_remote_decode": false,
        "remote_engine_id": prefill_name,
        "remote_block_ids": [],
        "remote_host": b.host,
        "remote_port": b.port,
        "pd_room": b.room,
        "pd_prefill_name": prefill_name,
    })
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

    /// The body `sglang-router 0.3.2` sent a worker (recorded; docs/routers.md): the room is a
    /// full 64-bit integer and `max_tokens` arrives as `max_completion_tokens`.
    #[test]
    fn reads_the_body_sglang_router_sends() {
        let body = json!({"messages":[{"role":"user","content":"hello there"}],"model":"sim",
            "max_completion_tokens":8,"stream":true,"separate_reasoning":true,
            "bootstrap_host":"127.0.0.1","bootstrap_port":51879,"bootstrap_room":7491766454816804049u64});
        let req = WorkerRequest::from_json(&body).unwrap();
        assert_eq!(req.max_tokens, Some(8));
        assert!(req.stream);
        assert_eq!(
            req.bootstrap,
            Some(Bootstrap {
                host: "127.0.0.1".into(),
                port: 51879,
                room: 7491766454816804049
            })
        );
        assert!(!req.remote_decode);
    }

    /// Both halves of what `vllm-router 0.1.17` sends (recorded; docs/routers.md).
    #[test]
    fn reads_the_two_requests_vllm_router_sends() {
        let prefill = json!({"model":"sim","messages":[{"role":"user","content":"hi"}],"stream":false,
            "max_tokens":1,"min_tokens":1,"kv_transfer_params":{"do_remote_decode":true,
            "do_remote_prefill":false,"remote_engine_id":null,"remote_block_ids":null,
            "remote_host":null,"remote_port":null}});
        let req = WorkerRequest::from_json(&prefill).unwrap();
        assert!(req.remote_decode);
        assert_eq!(req.bootstrap, None);
        let b = Bootstrap {
            host: "127.0.0.1".into(),
            port: 9100,
            room: 5,
        };
        let mut decode = json!({"model":"sim","messages":[{"role":"user","content":"hi"}],
            "stream":true,"max_tokens":8});
        decode["kv_transfer_params"] = kv_transfer_params(&b, "prefill-0");
        let req = WorkerRequest::from_json(&decode).unwrap();
        assert!(!req.remote_decode);
        assert_eq!(req.bootstrap, Some(b));
        assert_eq!(req.prefill_name.as_deref(), Some("prefill-0"));
        assert_eq!(req.max_tokens, Some(8));
    }
}
