//! Comparing a run against a baseline run: every window metric present in both, with the ones
//! that moved beyond the tolerance marked, and regressions told apart from improvements.

use super::run_data::{RunData, metric};

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Neither (e.g. a request count): a move is reported but is not a regression.
    Neither,
}

/// The window metrics compared, by their documented keys in the load engine's summary.
pub const METRICS: [(&str, Better); 8] = [
    ("success_rate", Better::Higher),
    ("qpm", Better::Higher),
    ("ttft_ms.p50", Better::Lower),
    ("ttft_ms.p90", Better::Lower),
    ("ttft_ms.p99", Better::Lower),
    ("decode_tps.p50", Better::Higher),
    ("e2e_ms.p90", Better::Lower),
    ("requests.total", Better::Neither),
];

/// One metric of one window of one scenario, old against new.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub scenario: String,
    pub window: String,
    pub metric: &'static str,
    pub old: f64,
    pub new: f64,
    /// Relative change in percent of the old value (infinite when old is 0 and new is not).
    pub change_pct: f64,
    /// Moved by more than the tolerance, either way.
    pub moved: bool,
    /// Moved beyond the tolerance in the worse direction.
    pub regression: bool,
}

/// Every metric present in both runs, matched by scenario folder and window name.
pub fn compare(run: &RunData, base: &RunData, tolerance_pct: f64) -> Vec<Delta> {
    let mut out = Vec::new();
    for s in &run.scenarios {
        let Some(b) = base.scenarios.iter().find(|b| b.entry.dir == s.entry.dir) else {
            continue;
        };
        for (window, summary) in &s.windows {
            let Some(old_summary) = b.windows.get(window) else {
                continue;
            };
            for (key, better) in METRICS {
                let (Some(new), Some(old)) = (metric(summary, key), metric(old_summary, key))
                else {
                    continue;
                };
                out.push(delta(
                    &s.meta.name,
                    window,
                    key,
                    better,
                    old,
                    new,
                    tolerance_pct,
                ));
            }
        }
    }
    out
}

fn delta(
    scenario: &str,
    window: &str,
    metric: &'static str,
    better: Better,
    old: f64,
    new: f64,
    tolerance_pct: f64,
) -> Delta {
    let change_pct = if old == new {
        0.0
    } else if old == 0.0 {
        f64::INFINITY.copysign(new)
    } else {
        (new - old) / old.abs() * 100.0
    };
    let moved = change_pct.abs() > tolerance_pct;
    let worse = match better {
        Better::Higher => new < old,
        Better::Lower => new > old,
        Better::Neither => false,
    };
    Delta {
        scenario: scenario.to_string(),
        window: window.to_string(),
        metric,
        old,
        new,
        change_pct,
        moved,
        regression: moved && worse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_decides_regression() {
        let d = delta(
            "s",
            "during",
            "ttft_ms.p90",
            Better::Lower,
            100.0,
            130.0,
            10.0,
        );
        assert!(d.moved && d.regression);
        let d = delta(
            "s",
            "during",
            "ttft_ms.p90",
            Better::Lower,
            100.0,
            70.0,
            10.0,
        );
        assert!(d.moved && !d.regression);
        let d = delta(
            "s",
            "during",
            "success_rate",
            Better::Higher,
            1.0,
            0.95,
            10.0,
        );
        assert!(!d.moved && !d.regression, "{d:?}");
        let d = delta(
            "s",
            "w",
            "requests.total",
            Better::Neither,
            100.0,
            10.0,
            10.0,
        );
        assert!(d.moved && !d.regression);
        let d = delta("s", "w", "qpm", Better::Higher, 0.0, 5.0, 10.0);
        assert!(d.moved && !d.regression && d.change_pct.is_infinite());
    }
}
