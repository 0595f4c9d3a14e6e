//! One process-wide clock for every timestamp pdchaos records.
//!
//! Request records and the fault timeline must sit on the same axis, or "was this request sent
//! during the fault?" has no answer. Timestamps are absolute Unix microseconds (so records from
//! several load processes can be aligned), but they advance with the monotonic clock from a single
//! anchor taken at first use, so a wall-clock step (NTP) during a run cannot reorder events.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Absolute time in microseconds since the Unix epoch.
pub type Micros = u64;

struct Anchor {
    instant: Instant,
    unix_us: Micros,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        instant: Instant::now(),
        unix_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as Micros)
            .unwrap_or(0),
    })
}

/// Now, as absolute Unix microseconds on the monotonic axis.
pub fn now_us() -> Micros {
    at(Instant::now())
}

/// Converts a monotonic instant to the absolute axis.
pub fn at(instant: Instant) -> Micros {
    let a = anchor();
    match instant.checked_duration_since(a.instant) {
        Some(d) => a.unix_us + d.as_micros() as Micros,
        None => a
            .unix_us
            .saturating_sub(a.instant.duration_since(instant).as_micros() as Micros),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_absolute() {
        let a = now_us();
        let b = now_us();
        assert!(b >= a);
        // After 2020-01-01: the axis is absolute, not relative to process start.
        assert!(a > 1_577_836_800_000_000);
    }
}
