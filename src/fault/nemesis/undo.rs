//! Undo actions: performing one, and reading the system back to prove it took. The nemesis
//! heals through these, and so does `pdchaos heal` from a journal alone, after the run that
//! applied the faults is gone.

use super::{FaultError, HealReport};
use crate::clock;
use crate::fault::control::NodeControl;
use crate::fault::journal::Journal;
use crate::fault::kube::KubeFaults;
use crate::fault::model::{FaultPhase, TimelineEvent, Undo};
use crate::fault::toxiproxy::ToxiproxyClient;
use crate::sim::proc;
use std::path::Path;

/// What healing may use: the stack that runs the nodes (to restart and scale them) and the
/// cluster (pods, workloads, NetworkPolicies). Toxiproxy and SIGCONT need neither.
#[derive(Clone, Copy, Default)]
pub struct Healers<'a> {
    pub control: Option<&'a dyn NodeControl>,
    pub kube: Option<&'a KubeFaults>,
}

async fn kube_undo(u: &Undo, kube: Option<&KubeFaults>, verify: bool) -> Result<(), String> {
    let k = kube.ok_or_else(|| {
        format!(
            "{} needs the cluster: run `pdchaos heal --target FILE`",
            serde_json::to_string(u).unwrap_or_default()
        )
    })?;
    let r = if verify {
        k.verify_undo(u).await
    } else {
        k.run_undo(u).await
    };
    r.map_err(|e| e.to_string())
}

/// Performs one undo action. Without `control`, only what needs no stack can be done.
pub async fn run_undo(u: &Undo, healers: Healers<'_>) -> Result<(), String> {
    let control = healers.control;
    match u {
        Undo::PodsReady { .. } | Undo::ScaleWorkload { .. } | Undo::DeleteNetworkPolicy { .. } => {
            kube_undo(u, healers.kube, false).await
        }
        Undo::Resume { node, pid } => {
            match control {
                Some(c)
                    if c.nodes()
                        .iter()
                        .any(|n| n.name == *node && n.pid == Some(*pid)) =>
                {
                    c.resume(node).await.map_err(|e| e.0)?
                }
                _ => {
                    if !proc::is_dead(*pid)
                        && !proc::signal(*pid, nix::sys::signal::Signal::SIGCONT)
                    {
                        return Err(format!("cannot SIGCONT {node} (pid {pid})"));
                    }
                }
            }
            Ok(())
        }
        Undo::Restart { node } => match control {
            Some(c) => c.restart(node).await.map_err(|e| e.0),
            None => Err(format!(
                "{node} was killed and only the stack that ran it can restart it"
            )),
        },
        Undo::Scale { role, replicas } => match control {
            Some(c) => c.scale(*role, *replicas).await.map_err(|e| e.0),
            None => Err(format!(
                "cannot scale {role} back to {replicas} without its stack"
            )),
        },
        Undo::EnableProxy { api, proxy } => ToxiproxyClient::new(api)
            .enable(proxy)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Undo::RemoveToxic { api, proxy, toxic } => {
            match ToxiproxyClient::new(api).remove_toxic(proxy, toxic).await {
                Ok(()) => Ok(()),
                // Already gone is healed.
                Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// Reads the system back after an undo.
pub async fn verify_undo(u: &Undo, healers: Healers<'_>) -> Result<(), String> {
    let control = healers.control;
    match u {
        Undo::PodsReady { .. } | Undo::ScaleWorkload { .. } | Undo::DeleteNetworkPolicy { .. } => {
            kube_undo(u, healers.kube, true).await
        }
        Undo::Resume { node, pid } => {
            if proc::is_stopped(*pid) {
                return Err(format!("{node} (pid {pid}) is still stopped"));
            }
            Ok(())
        }
        Undo::Restart { node } => match control {
            Some(c)
                if c.nodes()
                    .iter()
                    .any(|n| n.name == *node && n.pid.is_some_and(|p| !proc::is_dead(p))) =>
            {
                Ok(())
            }
            _ => Err(format!("{node} is not running")),
        },
        Undo::Scale { role, replicas } => {
            let running = control.map(|c| c.running(*role));
            if running == Some(*replicas) {
                Ok(())
            } else {
                Err(format!(
                    "{role} runs {running:?} nodes, expected {replicas}"
                ))
            }
        }
        Undo::EnableProxy { api, proxy } => ToxiproxyClient::new(api)
            .verify_enabled(proxy, true)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Undo::RemoveToxic { api, proxy, toxic } => match ToxiproxyClient::new(api)
            .verify_toxic_absent(proxy, toxic)
            .await
        {
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Ok(()),
            other => other.map_err(|e| e.to_string()),
        },
    }
}

/// Heals every fault a journal says is still open (`pdchaos heal`, and at start-up). Appends
/// the outcome to the journal.
pub async fn heal_journal(path: &Path, healers: Healers<'_>) -> Result<HealReport, FaultError> {
    let open = crate::fault::journal::unhealed(&crate::fault::journal::read(path)?);
    let mut journal = Journal::open(path)?;
    let mut report = HealReport::default();
    for f in open {
        let mut left = Vec::new();
        for u in &f.undo {
            if let Err(e) = run_undo(u, healers).await {
                left.push(e);
            } else if let Err(e) = verify_undo(u, healers).await {
                left.push(e);
            }
        }
        let phase = if left.is_empty() {
            FaultPhase::HealVerified
        } else {
            FaultPhase::HealFailed
        };
        let detail = (!left.is_empty()).then(|| left.join("; "));
        journal.write(&TimelineEvent {
            ts_us: clock::now_us(),
            fault: f.id.clone(),
            phase,
            spec: None,
            undo: vec![],
            detail,
        })?;
        if left.is_empty() {
            report.healed.push(f.id);
        } else {
            report
                .leftovers
                .extend(left.into_iter().map(|l| format!("{}: {l}", f.id)));
        }
    }
    Ok(report)
}
