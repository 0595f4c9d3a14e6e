//! Checks: pure functions that judge recorded requests against the fault timeline.
//!
//! [`windows`] reads the before / during / after windows off the timeline; [`expect`] turns a
//! window of records into a [`Verdict`]; [`explain`] says what the serving side did during a
//! fault (appended to failing verdicts). The suite's `Then` steps only call these.

pub mod expect;
pub mod explain;
pub mod verdict;
pub mod windows;

pub use verdict::Verdict;
