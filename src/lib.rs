//! # pdchaos: resilience tests for prefill/decode disaggregated LLM serving
//!
//! pdchaos proves, before a release and every night after, that a P/D-disaggregated deployment
//! (SGLang PD, vLLM with a KV connector, llm-d, Dynamo, or the embedded simulator) survives
//! failure. It follows the split that Jepsen made familiar:
//!
//! | part | module | what it does |
//! |---|---|---|
//! | client + generator | [`load`] | drives streaming chat completions, writes one [`load::record::RequestRecord`] per request |
//! | system under test | [`sim`] | a local P/D stack of real processes (router, prefill, decode) to break |
//! | nemesis | [`fault`] | applies and heals faults (processes, Toxiproxy, Kubernetes), journals every step |
//! | deployment | [`target`] | where the system is: the local stack or a cluster described by a target file |
//! | checker | [`check`] | pure functions that judge windows of records against the fault timeline |
//! | report | [`report`] | summaries and timelines people read after a run |
//!
//! Record first, judge afterwards: the load and the fault layer only record; every verdict is
//! computed later from those records, so a check can be unit-tested on hand-made histories.
//!
//! Shared vocabulary lives in [`pd`] (roles and serving modes) and [`clock`] (one time axis).

pub mod check;
pub mod cli;
pub mod clock;
pub mod fault;
pub mod load;
pub mod pd;
pub mod report;
pub mod sim;
pub mod suite;
pub mod target;
