//! The streaming load instrument: client, load shapes, prompts, metrics and outcomes.

pub mod record;
