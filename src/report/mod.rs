//! Reports built from a run's records, timeline and verdicts.

pub mod layout;
