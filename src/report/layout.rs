//! The run folder: what `pdchaos run` writes and `pdchaos report` reads.
//!
//! ```text
//! OUT/
//!   run.json                       RunIndex
//!   summary.md                     Markdown summary of the run
//!   <scenario-slug>/
//!     scenario.json                ScenarioMeta
//!     records.jsonl                one RequestRecord per line
//!     timeline.jsonl               one TimelineEvent per line
//!     windows.json                 {"<window name>": load::metrics::Summary, ...}
//!     verdicts.json                [check::Verdict]
//! ```
//! Writers and readers share these types so the layout has one definition.

use crate::clock::Micros;
use serde::{Deserialize, Serialize};

pub const RUN_INDEX: &str = "run.json";
pub const SUMMARY_MD: &str = "summary.md";
pub const SCENARIO_META: &str = "scenario.json";
pub const RECORDS: &str = "records.jsonl";
pub const TIMELINE: &str = "timeline.jsonl";
pub const WINDOWS: &str = "windows.json";
pub const VERDICTS: &str = "verdicts.json";

/// `run.json`: the run as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIndex {
    pub pdchaos_version: String,
    /// Human description of the target ("local stack 1P/1D, profile tiny" or a target file).
    pub target: String,
    pub started_us: Micros,
    pub ended_us: Micros,
    pub scenarios: Vec<ScenarioEntry>,
}

/// One scenario's line in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioEntry {
    pub feature: String,
    pub name: String,
    /// Folder name under the run folder.
    pub dir: String,
    pub passed: bool,
}

/// `scenario.json`: one scenario's facts beyond its verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioMeta {
    pub feature: String,
    pub name: String,
    pub passed: bool,
    pub started_us: Micros,
    pub ended_us: Micros,
    /// When the degraded mode was first seen after a fault (absolute µs), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_at_us: Option<Micros>,
    /// When the disaggregated mode was seen again after the heal (absolute µs), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at_us: Option<Micros>,
    /// Rows of a ratio sweep (empty for other scenarios).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepRow>,
    /// The targets the sweep rows were judged against (absent for other scenarios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_targets: Option<SweepTargets>,
    /// Failure messages of steps that did not get as far as a verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One (ratio, concurrency) point of a sizing sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// e.g. "1P/3D".
    pub ratio: String,
    pub concurrency: u32,
    pub ttft_p90_ms: f64,
    pub decode_tps_p50: f64,
    pub success_rate: f64,
    /// Whether this point meets every stated target.
    pub meets_targets: bool,
}

/// Targets a sizing sweep is judged against, drawn as bounds on the sweep plot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepTargets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p90_ms_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_tps_p50_min: Option<f64>,
}
