//! Token generation: the decode loop that streams thinking then answer tokens in the OpenAI
//! chunk format, then a usage chunk carrying the server's own timings, then `[DONE]`.

use crate::clock;
use crate::pd::PdMode;
use crate::sim::engine::{DecodeBatch, InBatch};
use crate::sim::profile::Profile;
use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Deliberate defects of a decode loop, used to prove the suite catches them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenBreaks {
    /// Stream the thinking, then finish without an answer.
    pub drop_answer: bool,
    /// End the stream with neither a finish_reason nor `[DONE]`.
    pub no_done: bool,
}

/// One generation: what to stream and how to label it.
#[derive(Debug, Clone)]
pub struct Generation {
    pub model: String,
    pub chat: bool,
    pub reasoning: u32,
    pub answer: u32,
    pub prompt_tokens: u64,
    pub mode: PdMode,
    pub prefill: Option<String>,
    pub decode: Option<String>,
    pub arrival_us: u64,
    pub breaks: GenBreaks,
}

impl Generation {
    /// Splits `max_tokens` between thinking and answer: thinking first, as a model would.
    pub fn budget(profile: &Profile, max_tokens: Option<u32>) -> (u32, u32) {
        let total = profile.reasoning_tokens + profile.answer_tokens;
        let cap = max_tokens.unwrap_or(total).min(total).max(1);
        let reasoning = profile.reasoning_tokens.min(cap.saturating_sub(1));
        (reasoning, cap - reasoning)
    }
}

/// Streams `g` as SSE. `slot` keeps the sequence in the batch until the stream ends (or the
/// client goes away). `_hold` is dropped at the end (e.g. a KV memory permit).
pub fn stream<H: Send + 'static>(
    g: Generation,
    profile: Arc<Profile>,
    batch: DecodeBatch,
    slot: InBatch,
    hold: H,
) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let _slot = slot;
        let _hold = hold;
        let _ = run(g, &profile, &batch, &tx).await;
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn chunk(g: &Generation, delta: Value, finish: Option<&str>) -> Bytes {
    let v = if g.chat {
        json!({"id": "pdchaos-sim", "object": "chat.completion.chunk", "model": g.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    } else {
        let text = delta
            .get("content")
            .or_else(|| delta.get("reasoning_content"))
            .cloned()
            .unwrap_or(json!(""));
        json!({"id": "pdchaos-sim", "object": "text_completion", "model": g.model,
               "choices": [{"index": 0, "text": text, "finish_reason": finish}]})
    };
    Bytes::from(format!("data: {v}\n\n"))
}

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

async fn run(
    g: Generation,
    profile: &Profile,
    batch: &DecodeBatch,
    tx: &Tx,
) -> Result<(), mpsc::error::SendError<Result<Bytes, std::io::Error>>> {
    let mut first_token_us = None;
    let answer = if g.breaks.drop_answer { 0 } else { g.answer };
    for i in 0..g.reasoning + answer {
        if i > 0 {
            tokio::time::sleep(batch.step(profile)).await;
        }
        let delta = if i < g.reasoning {
            json!({"reasoning_content": "think "})
        } else {
            json!({"content": "word "})
        };
        first_token_us.get_or_insert_with(clock::now_us);
        tx.send(Ok(chunk(&g, delta, None))).await?;
    }
    if g.breaks.no_done {
        return Ok(());
    }
    let finish = if g.breaks.drop_answer {
        "stop"
    } else {
        "length"
    };
    tx.send(Ok(chunk(&g, json!({}), Some(finish)))).await?;
    let usage = json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.reasoning + answer,
        "completion_tokens_details": {"reasoning_tokens": g.reasoning},
    });
    let x_pd = json!({
        "mode": g.mode.as_str(), "prefill": g.prefill, "decode": g.decode,
        "arrival_us": g.arrival_us, "first_token_us": first_token_us, "last_token_us": clock::now_us(),
    });
    let last = json!({"id": "pdchaos-sim", "choices": [], "usage": usage, "x_pd": x_pd});
    tx.send(Ok(Bytes::from(format!("data: {last}\n\n"))))
        .await?;
    tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tokens_caps_thinking_first() {
        let p = Profile::load("tiny").unwrap();
        assert_eq!(Generation::budget(&p, None), (8, 16));
        assert_eq!(Generation::budget(&p, Some(5)), (4, 1));
        assert_eq!(Generation::budget(&p, Some(1)), (0, 1));
    }
}
