//! The streaming load instrument: client, load shapes, prompts, metrics and outcomes.
//!
//! - [`client`] sends one request and reads its stream; [`tracker`] decides its outcome;
//! - [`prompts`] supplies prompts (inline, dataset, synthetic) with token counts and buckets;
//! - [`engine`] schedules requests (closed loop with ramp-up, or open loop at a rate);
//! - [`metrics`] summarises any window of records; [`output`] prints and writes them.
//!
//! Record first, judge afterwards: the engine only produces [`record::RequestRecord`]s.

pub mod bench;
pub mod bench_server;
pub mod chunk;
pub mod client;
pub mod engine;
pub mod metrics;
pub mod output;
pub mod prompts;
pub mod record;
pub mod scripted;
pub mod shard;
pub mod tracker;

pub use engine::{LoadConfig, LoadError, run};
pub use metrics::{Summary, Tally, Window, summarize};
