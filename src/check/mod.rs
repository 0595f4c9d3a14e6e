//! Checks: pure functions that judge recorded requests against the fault timeline.

pub mod verdict;

pub use verdict::Verdict;
