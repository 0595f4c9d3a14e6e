//! The result of judging one expectation: what was asked, what was measured, pass or fail.

use serde::{Deserialize, Serialize};

/// One expectation's verdict, as printed on the terminal and written to `verdicts.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The expectation in the scenario's words, e.g. "success rate during the fault >= 99%".
    pub expectation: String,
    /// The window judged: `before`, `during`, `after`, `whole`, or a named window.
    pub window: String,
    /// The measured value as a number when there is one (for reports and baselines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Unit of `value` (`ms`, `tok/s`, `%`, `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The measured value as shown to people (e.g. "97.5% (195/200)").
    pub measured: String,
    /// The bound as shown to people (e.g. ">= 99%").
    pub bound: String,
    pub passed: bool,
    /// Why it failed, in words that say what the system did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
