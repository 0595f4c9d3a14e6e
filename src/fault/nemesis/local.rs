//! The local backend of the nemesis: faults on processes the stack runs (signals, restart,
//! scale through [`NodeControl`]) and on the Toxiproxy proxies that carry its links. For each
//! fault kind: the undo plan journalled before acting, the act, and the read-back that proves
//! the fault is in effect.

use super::{FaultError, Nemesis, refused};
use crate::fault::control::NodeControl;
use crate::fault::model::{FaultId, FaultKind, FaultPhase, FaultSpec, FaultTarget, Undo};
use crate::fault::toxiproxy::ToxiproxyClient;
use crate::fault::toxiproxy::api::ToxicInfo;
use crate::pd::Role;
use crate::sim::proc;
use std::sync::Arc;
use std::time::Duration;

impl Nemesis {
    pub(super) fn control(&self, id: &FaultId) -> Result<&Arc<dyn NodeControl>, FaultError> {
        self.inner.control.as_ref().ok_or_else(|| {
            refused(
                id,
                "no process control for this target (local stack or --pid needed)",
            )
        })
    }

    pub(super) fn toxi(&self, id: &FaultId) -> Result<&ToxiproxyClient, FaultError> {
        self.inner
            .toxi
            .as_ref()
            .ok_or_else(|| refused(id, "no Toxiproxy for this target: link faults need one"))
    }

    /// Node names a target resolves to (running nodes for one-of-role targets).
    pub(super) fn nodes(
        &self,
        id: &FaultId,
        target: &FaultTarget,
    ) -> Result<Vec<(String, Option<u32>)>, FaultError> {
        let all = self.control(id)?.nodes();
        let pick: Vec<_> = match target {
            FaultTarget::Role { role } => all
                .iter()
                .filter(|n| n.role == *role && n.pid.is_some())
                .take(1)
                .collect(),
            FaultTarget::AllOf { role } => all.iter().filter(|n| n.role == *role).collect(),
            FaultTarget::Node { name } => all.iter().filter(|n| n.name == *name).collect(),
            FaultTarget::Link { .. } => {
                return Err(refused(
                    id,
                    "a process fault needs a node or role target, not a link",
                ));
            }
        };
        if pick.is_empty() {
            return Err(refused(id, &format!("no running node matches {target:?}")));
        }
        Ok(pick.into_iter().map(|n| (n.name.clone(), n.pid)).collect())
    }

    pub(super) fn proxies(
        &self,
        id: &FaultId,
        target: &FaultTarget,
    ) -> Result<Vec<String>, FaultError> {
        let FaultTarget::Link { link, node } = target else {
            return Err(refused(id, "a network fault needs a link target"));
        };
        let found: Vec<String> = self
            .inner
            .links
            .iter()
            .filter(|l| l.link == *link && node.as_ref().is_none_or(|n| *n == l.node))
            .map(|l| l.proxy.clone())
            .collect();
        if found.is_empty() {
            return Err(refused(
                id,
                &format!(
                    "no Toxiproxy proxy carries {link:?}{}",
                    node.as_ref()
                        .map(|n| format!(" of {n}"))
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(found)
    }

    pub(super) async fn plan(&self, spec: &FaultSpec) -> Result<Vec<Undo>, FaultError> {
        let id = &spec.id;
        Ok(match &spec.kind {
            FaultKind::Kill | FaultKind::Stop { .. } => self
                .nodes(id, &spec.target)?
                .into_iter()
                .map(|(node, _)| Undo::Restart { node })
                .collect(),
            FaultKind::Restart => Vec::new(),
            FaultKind::Pause => self
                .nodes(id, &spec.target)?
                .into_iter()
                .filter_map(|(node, pid)| pid.map(|pid| Undo::Resume { node, pid }))
                .collect(),
            FaultKind::Scale { .. } => {
                let role = role_of(id, &spec.target)?;
                let running = self.control(id)?.running(role);
                vec![Undo::Scale {
                    role,
                    replicas: running,
                }]
            }
            FaultKind::Partition => {
                let api = self.toxi(id)?.base_url().to_string();
                self.proxies(id, &spec.target)?
                    .into_iter()
                    .map(|proxy| Undo::EnableProxy {
                        api: api.clone(),
                        proxy,
                    })
                    .collect()
            }
            FaultKind::Toxic { .. } => {
                let api = self.toxi(id)?.base_url().to_string();
                self.proxies(id, &spec.target)?
                    .into_iter()
                    .map(|proxy| Undo::RemoveToxic {
                        api: api.clone(),
                        proxy,
                        toxic: toxic_name(id),
                    })
                    .collect()
            }
            FaultKind::Evict => return Err(refused(id, "eviction needs a Kubernetes target")),
        })
    }

    pub(super) async fn act(&self, spec: &FaultSpec) -> Result<(), FaultError> {
        let id = &spec.id;
        let fail = |e: String| FaultError::Failed {
            id: id.clone(),
            reason: e,
        };
        match &spec.kind {
            FaultKind::Kill | FaultKind::Stop { .. } | FaultKind::Pause | FaultKind::Restart => {
                let c = self.control(id)?;
                for (node, _) in self.nodes(id, &spec.target)? {
                    let r = match &spec.kind {
                        FaultKind::Kill => c.kill(&node).await,
                        FaultKind::Stop { grace } => c.stop(&node, *grace).await,
                        FaultKind::Pause => c.pause(&node).await,
                        _ => c.restart(&node).await,
                    };
                    r.map_err(|e| fail(e.0))?;
                }
            }
            FaultKind::Scale { replicas } => {
                let role = role_of(id, &spec.target)?;
                self.control(id)?
                    .scale(role, *replicas as usize)
                    .await
                    .map_err(|e| fail(e.0))?;
            }
            FaultKind::Partition | FaultKind::Toxic { .. } => self.link_calls(spec, false).await?,
            FaultKind::Evict => return Err(refused(id, "eviction needs a Kubernetes target")),
        }
        Ok(())
    }

    /// Reads the system back: is the fault really in effect?
    pub(super) async fn verify(&self, spec: &FaultSpec) -> Result<(), FaultError> {
        let id = &spec.id;
        let not = |reason: String| FaultError::NotInEffect {
            id: id.clone(),
            reason,
        };
        let planned = self
            .timeline()
            .into_iter()
            .find(|e| e.fault == *id && e.phase == FaultPhase::Planned);
        match &spec.kind {
            FaultKind::Kill | FaultKind::Stop { .. } => {
                for n in self.control(id)?.nodes() {
                    if planned.as_ref().is_some_and(|p| {
                        p.undo.contains(&Undo::Restart {
                            node: n.name.clone(),
                        })
                    }) && n.pid.is_some()
                    {
                        return Err(not(format!("{} still has a process", n.name)));
                    }
                }
            }
            FaultKind::Pause => {
                for u in planned.map(|p| p.undo).unwrap_or_default() {
                    if let Undo::Resume { node, pid } = u
                        && !wait_for(|| proc::is_stopped(pid)).await
                    {
                        return Err(not(format!("{node} (pid {pid}) is not stopped")));
                    }
                }
            }
            FaultKind::Restart => {
                for (node, pid) in self.nodes(id, &spec.target)? {
                    if pid.is_none_or(proc::is_dead) {
                        return Err(not(format!("{node} is not running after restart")));
                    }
                }
            }
            FaultKind::Scale { replicas } => {
                let role = role_of(id, &spec.target)?;
                let running = self.control(id)?.running(role);
                if running != *replicas as usize {
                    return Err(not(format!(
                        "{running} {role} nodes run, expected {replicas}"
                    )));
                }
            }
            FaultKind::Partition | FaultKind::Toxic { .. } => self.link_calls(spec, true).await?,
            FaultKind::Evict => {}
        }
        Ok(())
    }

    /// The Toxiproxy half of `act` (`verify` false: disable the proxies or add the toxic) and
    /// of `verify` (read the same state back), one call per proxy the target names.
    async fn link_calls(&self, spec: &FaultSpec, verify: bool) -> Result<(), FaultError> {
        let id = &spec.id;
        let toxi = self.toxi(id)?;
        let toxic = match &spec.kind {
            FaultKind::Toxic {
                toxic,
                stream,
                toxicity,
            } => Some(toxic_info(id, toxic, *stream, *toxicity)),
            _ => None,
        };
        for p in self.proxies(id, &spec.target)? {
            let r = match (&toxic, verify) {
                (None, false) => toxi.disable(&p).await.map(drop),
                (None, true) => toxi.verify_enabled(&p, false).await.map(drop),
                (Some(t), false) => toxi.add_toxic(&p, t).await.map(drop),
                (Some(t), true) => toxi.verify_toxic(&p, t).await.map(drop),
            };
            r.map_err(|e| {
                let (id, reason) = (id.clone(), e.to_string());
                if verify {
                    FaultError::NotInEffect { id, reason }
                } else {
                    FaultError::Failed { id, reason }
                }
            })?;
        }
        Ok(())
    }

    /// The signals and Toxiproxy calls `apply` would make (`--dry-run`).
    pub(super) fn local_steps(&self, spec: &FaultSpec) -> Result<Vec<String>, FaultError> {
        let id = &spec.id;
        let mut steps = Vec::new();
        match &spec.kind {
            FaultKind::Kill | FaultKind::Stop { .. } | FaultKind::Pause | FaultKind::Restart => {
                let signal = match &spec.kind {
                    FaultKind::Kill => "SIGKILL".to_string(),
                    FaultKind::Stop { grace } => format!(
                        "SIGTERM, then SIGKILL after {}",
                        humantime::format_duration(*grace)
                    ),
                    FaultKind::Pause => "SIGSTOP".to_string(),
                    _ => "SIGKILL, then start again".to_string(),
                };
                for (node, pid) in self.nodes(id, &spec.target)? {
                    steps.push(format!(
                        "{signal} -> {node} (pid {})",
                        pid.map_or("-".into(), |p| p.to_string())
                    ));
                }
            }
            FaultKind::Scale { replicas } => {
                steps.push(format!("scale {:?} to {replicas}", spec.target))
            }
            FaultKind::Partition => {
                for p in self.proxies(id, &spec.target)? {
                    steps.push(format!(
                        "POST {}/proxies/{p} {{\"enabled\": false}}",
                        self.toxi(id)?.base_url()
                    ));
                }
            }
            FaultKind::Toxic {
                toxic,
                stream,
                toxicity,
            } => {
                let body = serde_json::to_string(&toxic_info(id, toxic, *stream, *toxicity))
                    .unwrap_or_default();
                for p in self.proxies(id, &spec.target)? {
                    steps.push(format!(
                        "POST {}/proxies/{p}/toxics {body}",
                        self.toxi(id)?.base_url()
                    ));
                }
            }
            FaultKind::Evict => return Err(refused(id, "eviction needs a Kubernetes target")),
        }
        Ok(steps)
    }
}

pub(super) fn role_of(id: &FaultId, t: &FaultTarget) -> Result<Role, FaultError> {
    match t {
        FaultTarget::Role { role } | FaultTarget::AllOf { role } => Ok(*role),
        _ => Err(refused(id, "scale needs a role target")),
    }
}

/// The toxic a fault adds, as the API shows it (named after the fault).
pub(super) fn toxic_info(
    id: &FaultId,
    toxic: &crate::fault::model::Toxic,
    stream: crate::fault::model::Stream,
    toxicity: f32,
) -> ToxicInfo {
    ToxicInfo {
        name: toxic_name(id),
        toxic: toxic.clone(),
        stream,
        toxicity,
    }
}

/// Toxics are named after their fault, so heal can remove exactly what it added.
pub fn toxic_name(id: &FaultId) -> String {
    format!("pdchaos-{id}")
}

pub(super) async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
