//! Model profiles: the simulated model is time and bytes, described in YAML.
//!
//! Two profiles are built in (`tiny` for fast tests, `thinking` shaped like a long-thinking
//! model); any other name is read as a YAML file path. Unknown keys are errors, and YAML errors
//! point at the line and column.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub prefill_tokens_per_s: f64,
    pub prefill_batch_tokens: u64,
    pub prefill_min_ms: u64,
    pub degraded_prefill_factor: f64,
    pub decode_step_ms: f64,
    pub decode_step_per_seq_us: f64,
    pub kv_bytes_per_token: u64,
    pub kv_budget_bytes: u64,
    pub kv_timeout_ms: u64,
    pub prefix_cache_bytes: u64,
    pub reasoning_tokens: u32,
    pub answer_tokens: u32,
}

/// A profile that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("profile {path}: {reason}")]
    Invalid { path: String, reason: String },
}

const TINY: &str = include_str!("../../profiles/tiny.yaml");
const THINKING: &str = include_str!("../../profiles/thinking.yaml");

impl Profile {
    /// `tiny`, `thinking`, or a path to a YAML file.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        match name_or_path {
            "tiny" => Profile::parse(TINY, "tiny"),
            "thinking" => Profile::parse(THINKING, "thinking"),
            path => {
                let text = std::fs::read_to_string(Path::new(path)).map_err(|source| {
                    ProfileError::Read {
                        path: path.into(),
                        source,
                    }
                })?;
                Profile::parse(&text, path)
            }
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let p: Profile = serde_saphyr::from_str(text).map_err(|e| ProfileError::Parse {
            path: origin.into(),
            reason: e.to_string().lines().collect::<Vec<_>>().join(" "),
        })?;
        let bad = |reason: &str| {
            Err(ProfileError::Invalid {
                path: origin.into(),
                reason: reason.into(),
            })
        };
        if p.prefill_tokens_per_s <= 0.0 || p.prefill_batch_tokens == 0 {
            return bad("prefill_tokens_per_s and prefill_batch_tokens must be positive");
        }
        if p.decode_step_ms <= 0.0 || p.degraded_prefill_factor < 1.0 {
            return bad("decode_step_ms must be positive and degraded_prefill_factor >= 1");
        }
        Ok(p)
    }

    /// Time to prefill `tokens` prompt tokens in one batch.
    pub fn prefill_time(&self, tokens: u64) -> std::time::Duration {
        let s = tokens as f64 / self.prefill_tokens_per_s + self.prefill_min_ms as f64 / 1e3;
        std::time::Duration::from_secs_f64(s)
    }

    /// One decode step with `running` sequences in the batch.
    pub fn decode_step(&self, running: usize) -> std::time::Duration {
        let us = self.decode_step_ms * 1e3 + self.decode_step_per_seq_us * running as f64;
        std::time::Duration::from_micros(us as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        assert_eq!(Profile::load("tiny").unwrap().name, "tiny");
        assert_eq!(Profile::load("thinking").unwrap().kv_bytes_per_token, 76800);
    }

    #[test]
    fn errors_name_the_line() {
        let text = TINY.replace("decode_step_ms: 8", "decode_step_ms: fast");
        let e = Profile::parse(&text, "p.yaml").unwrap_err().to_string();
        assert!(e.contains("p.yaml") && e.contains("line"), "{e}");
        let e = Profile::parse(&format!("{TINY}\nbogus: 1\n"), "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn step_time_grows_with_batch() {
        let p = Profile::load("tiny").unwrap();
        assert!(p.decode_step(100) > p.decode_step(1));
        assert!(p.prefill_time(10_000) > p.prefill_time(10));
    }
}
