//! The step vocabulary, grouped by concept: deployment (Given), load and faults (When),
//! expectations (Then). Each step is a regex, an example for docs/steps.md, and a function.
//! Every step body runs under a timeout: a stuck step fails, it does not hang the run.//!
//! This file owns the step definition type, the argument parsers and the `step!` macro every
//! step is written with; `given`, `when` and `then` hold the step bodies, `table` the list of
//! steps (regex, example, function) and the docs/steps.md generated from it.

use crate::suite::world::PdWorld;
use std::time::Duration;

/// Longest any single step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Given,
    When,
    Then,
}

/// One step definition.
pub struct StepDef {
    pub kind: Kind,
    pub pattern: &'static str,
    pub example: &'static str,
    pub run: cucumber::Step<PdWorld>,
}

fn dur(s: &str) -> Duration {
    humantime::parse_duration(s.trim())
        .unwrap_or_else(|_| panic!("`{s}` is not a duration (e.g. 500ms, 3s)"))
}

fn num<T: std::str::FromStr>(s: &str) -> T {
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a number"))
}

/// Defines a step function `name(world, ctx)`: `m` holds the regex captures (as strings) and the
/// body runs under [`STEP_TIMEOUT`].
macro_rules! step {
    ($name:ident, |$w:ident, $m:ident| $body:block) => {
        pub(super) fn $name<'a>(
            $w: &'a mut $crate::suite::world::PdWorld,
            ctx: cucumber::step::Context,
        ) -> futures_util::future::LocalBoxFuture<'a, ()> {
            use $crate::suite::steps::STEP_TIMEOUT;
            Box::pin(async move {
                let $m: Vec<String> = ctx.matches.iter().skip(1).map(|(_, s)| s.clone()).collect();
                let _ = &$m;
                if tokio::time::timeout(STEP_TIMEOUT, async move { $body })
                    .await
                    .is_err()
                {
                    panic!("step timed out after {} s", STEP_TIMEOUT.as_secs());
                }
            })
        }
    };
}

mod given;
mod table;
mod then;
mod when;

pub use table::{all, markdown};
