//! The P/D vocabulary shared by every layer: node roles and serving modes.
//!
//! The simulator stamps these on responses (`x-pd-mode`), the load client reads them back into
//! each request record, the fault layer targets nodes by [`Role`], and the checks judge windows by
//! [`PdMode`]. Keeping one definition here is what lets a record written by `pdchaos load` be
//! judged by a check without any string matching in between.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// HTTP response header naming the path that served a request.
pub const HEADER_MODE: &str = "x-pd-mode";
/// HTTP response header naming the prefill node that served a request (absent when none did).
pub const HEADER_PREFILL: &str = "x-pd-prefill";
/// HTTP response header naming the decode node that served a request (absent when none did).
pub const HEADER_DECODE: &str = "x-pd-decode";

/// The role a node plays in a P/D deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Prefill,
    Decode,
    Router,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Prefill => "prefill",
            Role::Decode => "decode",
            Role::Router => "router",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "prefill" | "p" => Ok(Role::Prefill),
            "decode" | "d" => Ok(Role::Decode),
            "router" => Ok(Role::Router),
            other => Err(format!(
                "unknown role `{other}` (expected prefill, decode or router)"
            )),
        }
    }
}

/// Which path served a request. Serialised as in the header: `prefill-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdMode {
    /// Prefill on a P node, KV handed to a D node, decode there: the normal path.
    Disaggregated,
    /// A P node served the whole request alone (no decode node used): degraded.
    PrefillOnly,
    /// A D node served the whole request alone (it did its own prefill): degraded.
    DecodeOnly,
}

impl PdMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PdMode::Disaggregated => "disaggregated",
            PdMode::PrefillOnly => "prefill-only",
            PdMode::DecodeOnly => "decode-only",
        }
    }

    /// True for the non-disaggregated fallback paths.
    pub fn is_degraded(self) -> bool {
        !matches!(self, PdMode::Disaggregated)
    }
}

impl fmt::Display for PdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PdMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disaggregated" => Ok(PdMode::Disaggregated),
            "prefill-only" => Ok(PdMode::PrefillOnly),
            "decode-only" => Ok(PdMode::DecodeOnly),
            other => Err(format!(
                "unknown P/D mode `{other}` (expected disaggregated, prefill-only or decode-only)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips_through_header_text() {
        for m in [
            PdMode::Disaggregated,
            PdMode::PrefillOnly,
            PdMode::DecodeOnly,
        ] {
            assert_eq!(m.as_str().parse::<PdMode>().unwrap(), m);
        }
        assert!("prefill_only".parse::<PdMode>().unwrap().is_degraded());
        assert!("bogus".parse::<PdMode>().is_err());
    }
}
