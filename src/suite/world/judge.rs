//! Judging a scenario: the fault window and the record windows it defines, verdicts recorded
//! (a failed one fails the step), and the explanation a failed fault check gets.

use super::PdWorld;
use crate::check::Verdict;
use crate::check::windows::{self, FaultWindow, Span};
use crate::fault::nemesis::Nemesis;
use crate::load::metrics::Window;
use crate::load::record::RequestRecord;

impl PdWorld {
    pub fn fault_window(&self) -> Option<FaultWindow> {
        windows::fault_window(
            &self
                .nemesis
                .as_ref()
                .map(Nemesis::timeline)
                .unwrap_or_default(),
        )
    }

    /// What the serving side did during the fault and after its heal (`None` without a fault).
    pub fn explanation(&self) -> Option<crate::check::explain::Explanation> {
        let f = self.fault_window()?;
        let timeline = self
            .nemesis
            .as_ref()
            .map(Nemesis::timeline)
            .unwrap_or_default();
        let nodes = crate::check::explain::faulted_nodes(&timeline);
        Some(crate::check::explain::explain(&self.records, f, &nodes))
    }

    /// Records a verdict like [`PdWorld::judge`]; a failed one first gets the explanation of
    /// what the serving side did during the fault appended to its detail.
    pub fn judge_explained(&mut self, mut v: Verdict) {
        if !v.passed
            && let Some(e) = self.explanation()
        {
            v.detail = Some(match v.detail.take() {
                Some(d) => format!("{d}; {e}"),
                None => e.to_string(),
            });
        }
        self.judge(v);
    }

    /// The records window for a span; panics with a clear message when the span has no meaning.
    pub fn window(&self, span: Span) -> Window {
        let end = self
            .records
            .iter()
            .map(|r| r.end_us)
            .max()
            .unwrap_or(self.ended_us)
            .max(self.ended_us);
        windows::window(span, (self.started_us, end + 1), self.fault_window()).unwrap_or_else(
            || panic!("there is no `{span}` window: no fault was applied, or it was never healed"),
        )
    }

    /// Records a verdict; a failed one fails the step with what was measured.
    pub fn judge(&mut self, v: Verdict) {
        let passed = v.passed;
        let msg = format!(
            "{}: measured {}, expected {}{}",
            v.expectation,
            v.measured,
            v.bound,
            v.detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        self.verdicts.push(v);
        assert!(passed, "{msg}");
    }

    pub fn run_records(&self, name: &str) -> &[RequestRecord] {
        self.runs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_slice())
            .unwrap_or_else(|| panic!("no load run named \"{name}\""))
    }
}
