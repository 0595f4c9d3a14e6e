//! One SSE `data:` payload of an OpenAI-compatible stream, reduced to what measurement needs.
//!
//! Servers differ in small ways: thinking text arrives as `delta.reasoning_content` (SGLang,
//! vLLM) or `delta.reasoning` (some others); `/completions` streams put text in `choices[].text`;
//! the usage chunk has an empty `choices` array; errors arrive as a top-level `error` object. This
//! module accepts all of them and nothing else: anything that is not JSON is `Malformed`.

use crate::load::record::{ServerInfo, Usage};
use serde_json::Value;

/// What one data payload said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    pub reasoning: Option<String>,
    pub content: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// The message of an in-band `error` object.
    pub error: Option<String>,
    /// The simulator's `x_pd` object (server-side timings and path).
    pub server: Option<ServerInfo>,
}

/// A payload that is not a JSON object, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparsable chunk: {0}")]
pub struct MalformedChunk(pub String);

/// The sentinel that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

/// Parses one `data:` payload (not `[DONE]`).
pub fn parse(data: &str) -> Result<Chunk, MalformedChunk> {
    let value: Value = serde_json::from_str(data).map_err(|e| {
        let shown: String = data.chars().take(80).collect();
        MalformedChunk(format!("{e} in `{shown}`"))
    })?;
    let Value::Object(obj) = &value else {
        return Err(MalformedChunk("payload is not a JSON object".into()));
    };
    let mut chunk = Chunk {
        error: obj.get("error").and_then(error_message),
        usage: obj.get("usage").and_then(parse_usage),
        server: obj
            .get("x_pd")
            .and_then(|v| serde_json::from_value(v.clone()).ok()),
        ..Chunk::default()
    };
    if let Some(choices) = obj.get("choices").and_then(Value::as_array) {
        for choice in choices {
            absorb_choice(&mut chunk, choice);
        }
    }
    Ok(chunk)
}

fn absorb_choice(chunk: &mut Chunk, choice: &Value) {
    let delta = choice.get("delta");
    let text_of = |key: &str| -> Option<&str> {
        delta
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(r) = text_of("reasoning_content").or_else(|| text_of("reasoning")) {
        chunk.reasoning.get_or_insert_with(String::new).push_str(r);
    }
    let content = text_of("content").or_else(|| {
        choice
            .get("text")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    });
    if let Some(c) = content {
        chunk.content.get_or_insert_with(String::new).push_str(c);
    }
    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
        chunk.finish_reason = Some(reason.to_string());
    }
}

fn error_message(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => Some(
            o.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        ),
        other => Some(other.to_string()),
    }
}

fn parse_usage(v: &Value) -> Option<Usage> {
    let obj = v.as_object()?;
    let get = |k: &str| obj.get(k).and_then(Value::as_u64);
    let reasoning_tokens = get("reasoning_tokens").or_else(|| {
        obj.get("completion_tokens_details")
            .and_then(|d| d.get("reasoning_tokens"))
            .and_then(Value::as_u64)
    });
    Some(Usage {
        prompt_tokens: get("prompt_tokens")?,
        completion_tokens: get("completion_tokens")?,
        reasoning_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reasoning_under_either_name() {
        let a = parse(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#).unwrap();
        let b = parse(r#"{"choices":[{"delta":{"reasoning":"hm"}}]}"#).unwrap();
        assert_eq!(a.reasoning.as_deref(), Some("hm"));
        assert_eq!(b.reasoning.as_deref(), Some("hm"));
        assert_eq!(a.content, None);
    }

    #[test]
    fn usage_chunk_with_empty_choices() {
        let c = parse(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,
                "completion_tokens_details":{"reasoning_tokens":10}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 30,
                reasoning_tokens: Some(10)
            })
        );
    }

    #[test]
    fn completions_text_and_finish_reason() {
        let c = parse(r#"{"choices":[{"text":"hi","finish_reason":"length"}]}"#).unwrap();
        assert_eq!(c.content.as_deref(), Some("hi"));
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn error_object_is_reported() {
        let c = parse(r#"{"error":{"message":"kv transfer failed","code":500}}"#).unwrap();
        assert_eq!(c.error.as_deref(), Some("kv transfer failed"));
    }

    #[test]
    fn not_json_is_malformed() {
        assert!(parse("{not json").is_err());
        assert!(parse("[1,2]").is_err());
    }

    #[test]
    fn server_info_from_x_pd() {
        let c = parse(
            r#"{"choices":[],"x_pd":{"mode":"decode-only","decode":"decode-0","arrival_us":5}}"#,
        )
        .unwrap();
        let s = c.server.unwrap();
        assert_eq!(s.mode, Some(crate::pd::PdMode::DecodeOnly));
        assert_eq!(s.arrival_us, Some(5));
    }
}
