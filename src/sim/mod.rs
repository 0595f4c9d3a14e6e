//! The local P/D serving stack (router, prefill and decode as separate processes) to break.
//!
//! Every node is an OS process of the pdchaos binary (`pdchaos sim prefill|decode|router`), so
//! faults are real: SIGKILL, SIGSTOP, a cut TCP link. The model is time and bytes: a batched
//! prefill queue, a decode batch whose step grows with its size, KV moved as bytes over its own
//! TCP port. [`stack::Stack`] starts and controls a whole deployment.
//!
//! - [`profile`]: model profiles (YAML); [`engine`]: prefill queue, decode batch, KV budget;
//! - [`kv`]: KV store, transfer and probe; [`cache`]: prefix cache; [`tokens`]: token streaming;
//! - [`node`]: a worker process; [`router`]: the P/D router and its failover rules;
//! - [`protocol`]: the wire protocol (SGLang PD fields); [`stack`]: the orchestrator.

pub mod cache;
pub mod engine;
pub mod health;
pub mod kv;
pub mod metrics;
pub mod node;
pub mod proc;
pub mod profile;
pub mod protocol;
pub mod router;
pub mod stack;
pub mod tokens;
pub mod wiring;
