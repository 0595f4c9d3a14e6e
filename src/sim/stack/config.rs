//! Which configuration a local stack starts from: its shape ([`StackConfig`]), the deliberate
//! defects it can carry ([`Breaks`]), and why starting or controlling it failed ([`SimError`]).

use crate::sim::router::{Policy, RouterBreaks};
use crate::sim::tokens::GenBreaks;
use std::path::PathBuf;
use std::time::Duration;

use super::RouterKind;

/// Deliberate defects of the whole stack, for the suite's honesty tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaks {
    pub router: RouterBreaks,
    pub decode: GenBreaks,
}

impl Breaks {
    /// Parses a `--break` name (see `pdchaos sim up --help`).
    pub fn set(&mut self, name: &str) -> Result<(), String> {
        match name {
            "no-fallback-on-prefill-death" => self.router.no_fallback_on_prefill_death = true,
            "ignore-kv-cut" => self.router.ignore_kv_cut = true,
            "never-recover" => self.router.never_recover = true,
            "drop-answer-after-thinking" => self.decode.drop_answer = true,
            "no-done" => self.decode.no_done = true,
            other => {
                return Err(format!(
                    "unknown break `{other}` (known: {})",
                    Breaks::NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub const NAMES: [&'static str; 5] = [
        "no-fallback-on-prefill-death",
        "ignore-kv-cut",
        "never-recover",
        "drop-answer-after-thinking",
        "no-done",
    ];
}

/// The shape of a local deployment.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Prefill and decode nodes per group.
    pub prefill: usize,
    pub decode: usize,
    pub groups: usize,
    /// Profile name (`tiny`, `thinking`) or YAML path.
    pub profile: String,
    pub policy: Policy,
    pub health_interval: Duration,
    /// Route the links through an embedded Toxiproxy, so link faults can be injected.
    pub toxiproxy: bool,
    pub breaks: Breaks,
    /// The router in front of the workers.
    pub router: RouterKind,
    /// The pdchaos executable to start nodes with.
    pub binary: PathBuf,
}

impl StackConfig {
    pub fn new(binary: impl Into<PathBuf>) -> StackConfig {
        StackConfig {
            prefill: 1,
            decode: 1,
            groups: 1,
            profile: "tiny".into(),
            policy: Policy::RoundRobin,
            health_interval: Duration::from_millis(200),
            toxiproxy: true,
            breaks: Breaks::default(),
            router: RouterKind::Builtin,
            binary: binary.into(),
        }
    }
}

/// Why the stack could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot start {node}: {reason}")]
    Spawn { node: String, reason: String },
    #[error("{node} did not become healthy within {secs} s")]
    Unhealthy { node: String, secs: u64 },
    #[error("invalid stack: {0}")]
    Invalid(String),
    #[error("toxiproxy: {0}")]
    Proxy(String),
    #[error("--router {0}: {1}")]
    RouterMissing(&'static str, String),
}
