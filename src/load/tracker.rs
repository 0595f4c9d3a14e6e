//! The per-request state machine: fed with stream events as they arrive, it decides the outcome.
//!
//! It is pure (no I/O, times passed in), so every outcome rule is unit-tested on hand-made
//! streams. Precedence, when several things went wrong, is documented in `docs/metrics.md`:
//! malformed > in-band error > timeout > stream cut > truncated reasoning > empty answer > ok.

use crate::clock::Micros;
use crate::load::chunk::{self, Chunk};
use crate::load::record::{OutcomeKind, ServerInfo, Usage};

/// How reading the stream stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// `[DONE]` was read.
    Done,
    /// The body ended without `[DONE]`.
    Eof,
    /// The transport failed mid-body.
    Transport(String),
    /// The first-token deadline passed with no token.
    FirstTokenDeadline,
    /// The total deadline passed.
    TotalDeadline,
    /// The tracker itself asked to stop (malformed chunk or in-band error).
    Stopped,
}

/// Whether the reader should keep reading after a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Everything measured about one stream so far.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    sent_us: Micros,
    pub first_reasoning_us: Option<Micros>,
    pub first_answer_us: Option<Micros>,
    pub chunk_offsets_us: Vec<u64>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub reasoning_chars: u64,
    pub answer_chars: u64,
    pub server: ServerInfo,
    in_band_error: Option<String>,
    malformed: Option<String>,
    saw_done: bool,
}

/// The verdict on a finished stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub outcome: OutcomeKind,
    pub error: Option<String>,
}

impl Tracker {
    pub fn new(sent_us: Micros) -> Self {
        Tracker {
            sent_us,
            ..Tracker::default()
        }
    }

    /// True once a token of any kind has arrived.
    pub fn has_first_token(&self) -> bool {
        self.first_reasoning_us.is_some() || self.first_answer_us.is_some()
    }

    /// Number of chunks that carried reasoning or answer text.
    pub fn content_chunks(&self) -> u64 {
        self.chunk_offsets_us.len() as u64
    }

    /// Feeds one SSE `data:` payload that arrived at `now_us`.
    pub fn on_data(&mut self, data: &str, now_us: Micros) -> Flow {
        let data = data.trim();
        if data == chunk::DONE {
            self.saw_done = true;
            return Flow::Stop;
        }
        if data.is_empty() {
            return Flow::Continue;
        }
        match chunk::parse(data) {
            Ok(c) => self.absorb(c, now_us),
            Err(e) => {
                self.malformed = Some(e.to_string());
                Flow::Stop
            }
        }
    }

    /// Feeds a whole non-SSE body (a 200 answered with JSON instead of a stream).
    pub fn on_json_body(&mut self, body: &str, now_us: Micros) {
        match chunk::parse(body) {
            Ok(c) if c.error.is_some() => self.in_band_error = c.error,
            Ok(_) => self.malformed = Some("200 response is JSON, not an event stream".into()),
            Err(e) => self.malformed = Some(e.to_string()),
        }
        let _ = now_us;
    }

    fn absorb(&mut self, c: Chunk, now_us: Micros) -> Flow {
        let mut content_bearing = false;
        if let Some(r) = &c.reasoning {
            self.first_reasoning_us.get_or_insert(now_us);
            self.reasoning_chars += r.chars().count() as u64;
            content_bearing = true;
        }
        if let Some(a) = &c.content {
            self.first_answer_us.get_or_insert(now_us);
            self.answer_chars += a.chars().count() as u64;
            content_bearing = true;
        }
        if content_bearing {
            self.chunk_offsets_us
                .push(now_us.saturating_sub(self.sent_us));
        }
        if c.finish_reason.is_some() {
            self.finish_reason = c.finish_reason;
        }
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        if let Some(s) = c.server {
            self.server = merge_server(std::mem::take(&mut self.server), s);
        }
        if let Some(e) = c.error {
            self.in_band_error = Some(e);
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Decides the outcome once reading stopped for `end`.
    pub fn finish(&self, end: &StreamEnd) -> Ending {
        let fail = |outcome, error: String| Ending {
            outcome,
            error: Some(error),
        };
        if let Some(m) = &self.malformed {
            return fail(OutcomeKind::Malformed, m.clone());
        }
        if let Some(e) = &self.in_band_error {
            return fail(OutcomeKind::InBandError, e.clone());
        }
        match end {
            StreamEnd::FirstTokenDeadline => {
                return fail(
                    OutcomeKind::TimeoutFirstToken,
                    "no token before the first-token timeout".into(),
                );
            }
            StreamEnd::TotalDeadline => {
                return fail(
                    OutcomeKind::TimeoutTotal,
                    "stream outlived the total timeout".into(),
                );
            }
            StreamEnd::Transport(e) if !self.saw_done => {
                return fail(
                    OutcomeKind::StreamCut,
                    format!("transport error mid-stream: {e}"),
                );
            }
            StreamEnd::Eof | StreamEnd::Stopped
                if !self.saw_done && self.finish_reason.is_none() =>
            {
                return fail(
                    OutcomeKind::StreamCut,
                    "stream ended before [DONE] or a finish_reason".into(),
                );
            }
            _ => {}
        }
        if self.answer_chars == 0 {
            if self.reasoning_chars > 0 {
                return fail(
                    OutcomeKind::TruncatedReasoning,
                    format!(
                        "{} chars of reasoning, no answer followed",
                        self.reasoning_chars
                    ),
                );
            }
            return fail(
                OutcomeKind::EmptyAnswer,
                "the stream completed with no answer text".into(),
            );
        }
        Ending {
            outcome: OutcomeKind::Ok,
            error: None,
        }
    }
}

fn merge_server(mut old: ServerInfo, new: ServerInfo) -> ServerInfo {
    old.mode = new.mode.or(old.mode);
    old.prefill = new.prefill.or(old.prefill);
    old.decode = new.decode.or(old.decode);
    old.arrival_us = new.arrival_us.or(old.arrival_us);
    old.first_token_us = new.first_token_us.or(old.first_token_us);
    old.last_token_us = new.last_token_us.or(old.last_token_us);
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Tracker {
        let mut t = Tracker::new(1_000);
        for (i, l) in lines.iter().enumerate() {
            if t.on_data(l, 2_000 + i as u64 * 100) == Flow::Stop {
                break;
            }
        }
        t
    }

    const R: &str = r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#;
    const A: &str = r#"{"choices":[{"delta":{"content":"answer"}}]}"#;
    const FIN: &str = r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#;
    const USAGE: &str = r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;

    #[test]
    fn complete_stream_is_ok_with_times() {
        let t = feed(&[R, A, FIN, USAGE, "[DONE]"]);
        assert_eq!(t.finish(&StreamEnd::Done).outcome, OutcomeKind::Ok);
        assert_eq!(t.first_reasoning_us, Some(2_000));
        assert_eq!(t.first_answer_us, Some(2_100));
        assert_eq!(t.chunk_offsets_us, vec![1_000, 1_100]);
        assert_eq!(t.usage.unwrap().completion_tokens, 2);
    }

    #[test]
    fn eof_without_done_or_finish_is_cut() {
        let t = feed(&[R, A]);
        assert_eq!(t.finish(&StreamEnd::Eof).outcome, OutcomeKind::StreamCut);
    }

    #[test]
    fn eof_after_finish_reason_is_complete() {
        let t = feed(&[A, FIN]);
        assert_eq!(t.finish(&StreamEnd::Eof).outcome, OutcomeKind::Ok);
    }

    #[test]
    fn transport_error_is_cut() {
        let t = feed(&[A]);
        let e = t.finish(&StreamEnd::Transport("reset".into()));
        assert_eq!(e.outcome, OutcomeKind::StreamCut);
        assert!(e.error.unwrap().contains("reset"));
    }

    #[test]
    fn reasoning_only_is_truncated_reasoning() {
        let t = feed(&[R, R, FIN, "[DONE]"]);
        assert_eq!(
            t.finish(&StreamEnd::Done).outcome,
            OutcomeKind::TruncatedReasoning
        );
    }

    #[test]
    fn no_text_is_empty_answer() {
        let t = feed(&[FIN, USAGE, "[DONE]"]);
        assert_eq!(t.finish(&StreamEnd::Done).outcome, OutcomeKind::EmptyAnswer);
    }

    #[test]
    fn error_object_mid_stream_beats_everything_but_malformed() {
        let t = feed(&[A, r#"{"error":{"message":"decode died"}}"#, A, "[DONE]"]);
        let e = t.finish(&StreamEnd::Stopped);
        assert_eq!(e.outcome, OutcomeKind::InBandError);
        assert_eq!(e.error.as_deref(), Some("decode died"));
    }

    #[test]
    fn malformed_chunk() {
        let t = feed(&[A, "{oops", "[DONE]"]);
        assert_eq!(
            t.finish(&StreamEnd::Stopped).outcome,
            OutcomeKind::Malformed
        );
    }

    #[test]
    fn deadlines() {
        let t = feed(&[]);
        assert_eq!(
            t.finish(&StreamEnd::FirstTokenDeadline).outcome,
            OutcomeKind::TimeoutFirstToken
        );
        let t = feed(&[A]);
        assert_eq!(
            t.finish(&StreamEnd::TotalDeadline).outcome,
            OutcomeKind::TimeoutTotal
        );
    }

    #[test]
    fn json_error_body_instead_of_sse() {
        let mut t = Tracker::new(0);
        t.on_json_body(r#"{"error":{"message":"overloaded"}}"#, 10);
        assert_eq!(t.finish(&StreamEnd::Eof).outcome, OutcomeKind::InBandError);
        let mut t = Tracker::new(0);
        t.on_json_body(r#"{"id":"x","choices":[]}"#, 10);
        assert_eq!(t.finish(&StreamEnd::Eof).outcome, OutcomeKind::Malformed);
    }
}
