//! The words: one paragraph saying what the system did during and after the fault, appended
//! to a failing verdict.

use super::Explanation;
use std::fmt;

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

impl fmt::Display for Explanation {
    /// One paragraph: what failed and how, when the router stopped routing to the faulted
    /// node, whether and when it served again after the heal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.nodes.is_empty() {
            "the faulted node".to_string()
        } else {
            self.nodes.join(", ")
        };
        let lasted = self
            .fault_ms
            .map_or("never healed".into(), |m| format!("{} long", secs(m)));
        write!(
            f,
            "what the system did: during the fault ({lasted}, on {who}) "
        )?;
        if self.during == 0 {
            write!(f, "no request was sent")?;
        } else {
            write!(
                f,
                "{} requests were sent, {} ok",
                self.during, self.during_ok
            )?;
            if !self.served_as.is_empty() {
                let modes: Vec<String> = self
                    .served_as
                    .iter()
                    .map(|(m, n)| format!("{n} {m}"))
                    .collect();
                write!(f, " (served {})", modes.join(", "))?;
            }
            let failed = self.during - self.during_ok;
            if failed > 0 {
                let kinds: Vec<String> = self
                    .failures
                    .iter()
                    .map(|g| format!("{} x{}", g.kind, g.count))
                    .collect();
                write!(f, ", {failed} failed: {}", kinds.join(", "))?;
                let examples: Vec<String> = self
                    .failures
                    .iter()
                    .filter(|g| !g.example.is_empty())
                    .map(|g| format!("{}: \"{}\"", g.kind, g.example))
                    .collect();
                if !examples.is_empty() {
                    write!(f, " [first of each: {}]", examples.join("; "))?;
                }
            }
        }
        if !self.in_flight_failed.is_empty() {
            let n: usize = self.in_flight_failed.iter().map(|g| g.count).sum();
            let kinds: Vec<String> = self
                .in_flight_failed
                .iter()
                .map(|g| format!("{} x{}", g.kind, g.count))
                .collect();
            write!(
                f,
                "; {n} requests already in flight when it began failed: {} [first: \"{}\"]",
                kinds.join(", "),
                self.in_flight_failed[0].example
            )?;
        }
        write!(f, ". ")?;
        match (self.to_faulted, self.last_to_faulted_sent_ms) {
            (0, _) | (_, None) => write!(
                f,
                "No request sent during the fault went to {who}'s path (none named it in x-pd-* \
                 headers or failed other than by a fast 503 refusal)"
            )?,
            (n, Some(sent)) => {
                write!(
                    f,
                    "{n} went to {who}'s path (x-pd-* headers naming it, or failures other than \
                     a fast 503 refusal); "
                )?;
                if self.stopped_routing {
                    write!(
                        f,
                        "the router stopped routing there {} after the fault",
                        secs(sent)
                    )?;
                } else {
                    write!(
                        f,
                        "the router never stopped routing there while the fault lasted (last sent {} after the fault)",
                        secs(sent)
                    )?;
                }
                if let Some(e) = self.last_to_faulted_ended_ms {
                    write!(f, " (that request ended {} after the fault)", secs(e))?;
                }
            }
        }
        write!(f, ". ")?;
        if self.fault_ms.is_none() {
            return write!(f, "The fault was not healed during the run.");
        }
        if self.after == 0 {
            return write!(f, "No request was sent after the heal.");
        }
        match self.first_ok_after_heal_ms {
            None => write!(
                f,
                "After the heal no request succeeded ({} sent, all failed).",
                self.after
            ),
            Some(first) => {
                write!(
                    f,
                    "After the heal the first ok request was sent {} after it",
                    secs(first)
                )?;
                match self.recovered_after_heal_ms {
                    Some(r) => write!(
                        f,
                        "; every request from {} on was ok and disaggregated ({} of {} sent after the heal failed, all before that).",
                        secs(r),
                        self.after_failed,
                        self.after
                    ),
                    None => write!(
                        f,
                        "; the last request still failed or was degraded ({} of {} failed after the heal).",
                        self.after_failed, self.after
                    ),
                }
            }
        }
    }
}
