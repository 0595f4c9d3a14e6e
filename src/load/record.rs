//! The per-request record: what the load client writes and every check reads.
//!
//! A record is written once, when its request has ended, and never changed. It keeps raw times
//! (absolute microseconds on [`crate::clock`]) rather than derived metrics, so that a metric whose
//! definition changes can be recomputed from old records. One record serialises to one JSONL line.

use crate::clock::Micros;
use crate::pd::PdMode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a request ended. Exactly one per request; only [`OutcomeKind::Ok`] counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Complete stream: `[DONE]` or a finish_reason, a non-empty answer.
    Ok,
    /// Non-2xx status (the status is in [`RequestRecord::http_status`]).
    HttpError,
    /// The connection could not be made (refused, reset before response, DNS).
    ConnectError,
    /// No token of any kind arrived within the first-token timeout.
    TimeoutFirstToken,
    /// The request as a whole outlived its total timeout.
    TimeoutTotal,
    /// Transport error or EOF before `[DONE]`/finish_reason.
    StreamCut,
    /// An `error` object inside a 200 stream (or a 200 whose body is a JSON error).
    InBandError,
    /// The stream completed but carried no answer text.
    EmptyAnswer,
    /// Reasoning began but no answer followed before the stream ended.
    TruncatedReasoning,
    /// A chunk that could not be parsed.
    Malformed,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 10] = [
        OutcomeKind::Ok,
        OutcomeKind::HttpError,
        OutcomeKind::ConnectError,
        OutcomeKind::TimeoutFirstToken,
        OutcomeKind::TimeoutTotal,
        OutcomeKind::StreamCut,
        OutcomeKind::InBandError,
        OutcomeKind::EmptyAnswer,
        OutcomeKind::TruncatedReasoning,
        OutcomeKind::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::HttpError => "http_error",
            OutcomeKind::ConnectError => "connect_error",
            OutcomeKind::TimeoutFirstToken => "timeout_first_token",
            OutcomeKind::TimeoutTotal => "timeout_total",
            OutcomeKind::StreamCut => "stream_cut",
            OutcomeKind::InBandError => "in_band_error",
            OutcomeKind::EmptyAnswer => "empty_answer",
            OutcomeKind::TruncatedReasoning => "truncated_reasoning",
            OutcomeKind::Malformed => "malformed",
        }
    }

    pub fn is_ok(self) -> bool {
        self == OutcomeKind::Ok
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OutcomeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        OutcomeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .ok_or_else(|| format!("unknown outcome `{s}`"))
    }
}

/// Token usage as the server reported it (the `usage` object of the final chunk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// What the serving side said about how it served the request (headers and the `x_pd` field of
/// the last chunk, both written by `pdchaos sim`; absent for servers that do not send them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PdMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<String>,
    /// Server's own clock: request arrival, first token sent, last token sent (Unix µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_us: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_us: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_token_us: Option<Micros>,
}

/// One request, from intended send to end. All times are absolute Unix microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Sequence number within the run (unique per load process).
    pub id: u64,
    /// Which virtual user sent it (closed loop), or 0 (open loop).
    pub user: u32,
    /// Length bucket of the prompt, when buckets were configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// When the schedule meant to send it (open loop); equals `sent_us` in a closed loop.
    pub intended_us: Micros,
    pub sent_us: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reasoning_us: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_answer_us: Option<Micros>,
    pub end_us: Micros,
    /// Arrival of every content-bearing chunk, as offsets from `sent_us` in µs.
    #[serde(default)]
    pub chunk_offsets_us: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Prompt and completion tokens used for metrics: from `usage`, or estimated.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// True when `input_tokens`/`output_tokens` are estimates (the server sent no usage).
    pub tokens_estimated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub outcome: OutcomeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub reasoning_chars: u64,
    pub answer_chars: u64,
    #[serde(default)]
    pub server: ServerInfo,
    /// The stream completed without a `usage` object (a warning unless usage is required).
    #[serde(default)]
    pub missing_usage: bool,
}

impl RequestRecord {
    /// A test fixture: request `sent_us` (its id too) that ended `outcome` 50 ms later, with a
    /// first answer token at +10 ms, 1 input and 5 output tokens, 3 answer characters. Tests
    /// change what they are about with struct update syntax.
    #[cfg(test)]
    pub(crate) fn fixture(sent_us: Micros, outcome: OutcomeKind) -> RequestRecord {
        RequestRecord {
            id: sent_us,
            user: 0,
            bucket: None,
            intended_us: sent_us,
            sent_us,
            first_reasoning_us: None,
            first_answer_us: Some(sent_us + 10_000),
            end_us: sent_us + 50_000,
            chunk_offsets_us: vec![],
            finish_reason: None,
            usage: None,
            input_tokens: 1,
            output_tokens: 5,
            tokens_estimated: false,
            http_status: None,
            outcome,
            error: None,
            reasoning_chars: 0,
            answer_chars: 3,
            server: ServerInfo::default(),
            missing_usage: false,
        }
    }

    /// First token of any kind (reasoning or answer).
    pub fn first_token_us(&self) -> Option<Micros> {
        match (self.first_reasoning_us, self.first_answer_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// TTFT in µs: intended send to first token of any kind. In a closed loop the intended and
    /// actual send times are equal; in an open loop a late send counts against the latency, so
    /// a stalled client cannot hide a slow server (coordinated omission).
    pub fn ttft_us(&self) -> Option<u64> {
        self.first_token_us()
            .map(|t| t.saturating_sub(self.intended_us))
    }

    /// TTFT-answer in µs: intended send to the first answer (non-reasoning) token.
    pub fn ttft_answer_us(&self) -> Option<u64> {
        self.first_answer_us
            .map(|t| t.saturating_sub(self.intended_us))
    }

    /// End-to-end latency in µs (from the intended send time, so open-loop stalls count).
    pub fn e2e_us(&self) -> u64 {
        self.end_us.saturating_sub(self.intended_us)
    }
}
