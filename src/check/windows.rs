//! Time windows of a run, read off the fault timeline: before, during and after the faults.

use crate::clock::Micros;
use crate::fault::model::{FaultPhase, TimelineEvent};
use crate::load::metrics::Window;
use std::fmt;
use std::str::FromStr;

/// A named window of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Before,
    During,
    After,
    Whole,
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "before the fault" | "before" => Ok(Span::Before),
            "during the fault" | "during" => Ok(Span::During),
            "after the fault" | "after" => Ok(Span::After),
            "over the whole run" | "whole" => Ok(Span::Whole),
            other => Err(format!("unknown window `{other}`")),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Span::Before => "before",
            Span::During => "during",
            Span::After => "after",
            Span::Whole => "whole",
        })
    }
}

/// When the faults of a run were in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWindow {
    /// First fault verified in effect (or applied, if never verified).
    pub start_us: Micros,
    /// Last fault healed and verified; `None` while a fault was never healed.
    pub end_us: Option<Micros>,
}

/// Reads the fault window off a timeline; `None` when no fault was applied.
pub fn fault_window(timeline: &[TimelineEvent]) -> Option<FaultWindow> {
    let start = timeline
        .iter()
        .filter(|e| matches!(e.phase, FaultPhase::Verified))
        .map(|e| e.ts_us)
        .min()
        .or_else(|| {
            timeline
                .iter()
                .filter(|e| e.phase == FaultPhase::Applied)
                .map(|e| e.ts_us)
                .min()
        })?;
    let applied: std::collections::BTreeSet<_> = timeline
        .iter()
        .filter(|e| e.phase == FaultPhase::Applied)
        .map(|e| e.fault.clone())
        .collect();
    let healed: std::collections::BTreeSet<_> = timeline
        .iter()
        .filter(|e| matches!(e.phase, FaultPhase::HealVerified | FaultPhase::Healed))
        .map(|e| e.fault.clone())
        .collect();
    let end = applied
        .is_subset(&healed)
        .then(|| {
            timeline
                .iter()
                .filter(|e| matches!(e.phase, FaultPhase::Healed | FaultPhase::HealVerified))
                .map(|e| e.ts_us)
                .max()
        })
        .flatten();
    Some(FaultWindow {
        start_us: start,
        end_us: end,
    })
}

/// The record window for `span` of a run from `run_start` to `run_end`.
pub fn window(span: Span, run: (Micros, Micros), fault: Option<FaultWindow>) -> Option<Window> {
    let (s, e) = run;
    let whole = Window {
        start_us: s,
        end_us: e.max(s + 1),
    };
    match (span, fault) {
        (Span::Whole, _) => Some(whole),
        (_, None) => None,
        (Span::Before, Some(f)) => Some(Window {
            start_us: s,
            end_us: f.start_us,
        }),
        (Span::During, Some(f)) => Some(Window {
            start_us: f.start_us,
            end_us: f.end_us.unwrap_or(e),
        }),
        (Span::After, Some(f)) => f.end_us.map(|h| Window {
            start_us: h,
            end_us: e.max(h + 1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::model::FaultId;

    fn ev(ts: u64, id: &str, phase: FaultPhase) -> TimelineEvent {
        TimelineEvent {
            ts_us: ts,
            fault: FaultId(id.into()),
            phase,
            spec: None,
            undo: vec![],
            detail: None,
        }
    }

    #[test]
    fn windows_split_at_verified_and_heal() {
        let t = [
            ev(10, "a", FaultPhase::Planned),
            ev(11, "a", FaultPhase::Applied),
            ev(12, "a", FaultPhase::Verified),
            ev(50, "a", FaultPhase::Healed),
            ev(51, "a", FaultPhase::HealVerified),
        ];
        let f = fault_window(&t).unwrap();
        assert_eq!(
            f,
            FaultWindow {
                start_us: 12,
                end_us: Some(51)
            }
        );
        assert_eq!(window(Span::Before, (0, 100), Some(f)).unwrap().end_us, 12);
        assert_eq!(window(Span::After, (0, 100), Some(f)).unwrap().start_us, 51);
    }

    #[test]
    fn an_unhealed_fault_has_no_after_window() {
        let t = [
            ev(11, "a", FaultPhase::Applied),
            ev(12, "a", FaultPhase::Verified),
        ];
        let f = fault_window(&t).unwrap();
        assert_eq!(f.end_us, None);
        assert!(window(Span::After, (0, 100), Some(f)).is_none());
        assert_eq!(window(Span::During, (0, 100), Some(f)).unwrap().end_us, 100);
        assert!(fault_window(&[]).is_none());
    }
}
