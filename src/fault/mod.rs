//! The fault layer (the nemesis): one fault model, several backends, a journal that makes every
//! fault healable even after the runner is killed.
//!
//! - [`model`]: what a fault is (kind, target, parameters, duration, id) and its timeline;
//! - [`nemesis`]: applies, verifies and heals faults over the local stack's processes
//!   ([`control::NodeControl`]) and Toxiproxy ([`toxiproxy`]);
//! - [`journal`]: the fsync'd JSONL journal `pdchaos heal` reads.

pub mod control;
pub mod journal;
pub mod kube;
pub mod model;
pub mod nemesis;
pub mod pids;
pub mod toxiproxy;

pub use nemesis::{FaultError, HealReport, Nemesis};
