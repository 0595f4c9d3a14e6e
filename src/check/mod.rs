//! Checks: pure functions that judge recorded requests against the fault timeline.
