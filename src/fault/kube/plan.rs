//! From a fault to Kubernetes actions: [`KubeFaults::plan`] reads the cluster (which pods,
//! how many replicas now) and returns the writes to make and the undo to journal first;
//! `act`, `verify` and the undo functions carry them out and read the result back.

use super::{KubeError, KubeFaults};
use crate::fault::model::{FaultKind, FaultSpec, FaultTarget, Link, PodRef, Undo};
use crate::pd::Role;
use crate::target::{WorkloadKind, WorkloadRef};

/// One write to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    DeletePod {
        ns: String,
        pod: PodRef,
        grace: u32,
    },
    EvictPod {
        ns: String,
        pod: PodRef,
    },
    Scale {
        ns: String,
        workload: WorkloadRef,
        replicas: u32,
    },
    Partition {
        ns: String,
        name: String,
        to: String,
        from: String,
    },
}

/// What a fault will do on the cluster, and how to undo it.
#[derive(Debug, Clone, PartialEq)]
pub struct KubePlan {
    pub actions: Vec<Action>,
    pub undo: Vec<Undo>,
}

/// NetworkPolicy names must be DNS-1123 labels; fault ids may hold other characters.
pub fn policy_name(id: &str) -> String {
    let mut s: String = format!("pdchaos-{id}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(63);
    s.trim_end_matches('-').to_string()
}

impl Action {
    /// The HTTP call this action makes, for `--dry-run`.
    pub fn describe(&self) -> String {
        match self {
            Action::DeletePod { ns, pod, grace } => format!(
                "DELETE /api/v1/namespaces/{ns}/pods/{} gracePeriodSeconds={grace}",
                pod.name
            ),
            Action::EvictPod { ns, pod } => {
                format!("POST /api/v1/namespaces/{ns}/pods/{}/eviction", pod.name)
            }
            Action::Scale {
                ns,
                workload,
                replicas,
            } => {
                let path = match workload.kind {
                    WorkloadKind::Deployment => format!(
                        "apps/v1/namespaces/{ns}/deployments/{}/scale",
                        workload.name
                    ),
                    WorkloadKind::StatefulSet => format!(
                        "apps/v1/namespaces/{ns}/statefulsets/{}/scale",
                        workload.name
                    ),
                    WorkloadKind::LeaderWorkerSet => format!(
                        "leaderworkerset.x-k8s.io/v1/namespaces/{ns}/leaderworkersets/{}",
                        workload.name
                    ),
                };
                format!("PATCH /apis/{path} {{\"spec\":{{\"replicas\":{replicas}}}}}")
            }
            Action::Partition { ns, name, to, from } => format!(
                "POST /apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies {name}: ingress to `{to}` from every pod but `{from}`"
            ),
        }
    }
}

impl KubeFaults {
    /// True when this backend acts on the fault: pod and workload faults always, a partition
    /// when no Toxiproxy proxy carries the link (then a NetworkPolicy cuts it).
    pub fn handles(spec: &FaultSpec, link_has_proxy: bool) -> bool {
        match spec.kind {
            FaultKind::Partition => !link_has_proxy,
            FaultKind::Toxic { .. } => false,
            _ => true,
        }
    }

    fn selector(&self, role: Role) -> Result<String, KubeError> {
        let s = &self.target().selectors;
        match role {
            Role::Prefill => Ok(s.prefill.clone()),
            Role::Decode => Ok(s.decode.clone()),
            Role::Router => s.router.clone().ok_or_else(|| {
                KubeError::Refused("the target file has no selectors.router".into())
            }),
        }
    }

    /// The pods a target names, with the selector whose readiness heals them.
    async fn pods_for(
        &self,
        target: &FaultTarget,
    ) -> Result<(String, Vec<PodRef>, String), KubeError> {
        let ns = self.namespace(None)?;
        let (sel, pods) = match target {
            FaultTarget::Role { role } | FaultTarget::AllOf { role } => {
                let sel = self.selector(*role)?;
                let mut pods = self.ready_pods(&ns, &sel).await?;
                if matches!(target, FaultTarget::Role { .. }) {
                    pods.truncate(1);
                }
                (sel, pods)
            }
            FaultTarget::Node { name } => {
                let mut found = None;
                for role in [Role::Prefill, Role::Decode, Role::Router] {
                    let Ok(sel) = self.selector(role) else {
                        continue;
                    };
                    let pods = self.ready_pods(&ns, &sel).await?;
                    if let Some(p) = pods.into_iter().find(|p| p.name == *name) {
                        found = Some((sel, vec![p]));
                        break;
                    }
                }
                found.ok_or_else(|| {
                    KubeError::Refused(format!("no ready pod `{name}` of any role in {ns}"))
                })?
            }
            FaultTarget::Link { .. } => {
                return Err(KubeError::Refused(
                    "a pod fault needs a role or node target, not a link".into(),
                ));
            }
        };
        if pods.is_empty() {
            return Err(KubeError::Refused(format!(
                "no ready pod matches `{sel}` in {ns}"
            )));
        }
        Ok((ns, pods, sel))
    }

    fn workload(&self, target: &FaultTarget) -> Result<(String, WorkloadRef), KubeError> {
        let role = match target {
            FaultTarget::Role { role } | FaultTarget::AllOf { role } => *role,
            _ => return Err(KubeError::Refused("scale needs a role target".into())),
        };
        let w = match role {
            Role::Prefill => &self.target().workloads.prefill,
            Role::Decode => &self.target().workloads.decode,
            Role::Router => &None,
        };
        let w = w.clone().ok_or_else(|| {
            KubeError::Refused(format!(
                "the target file names no workloads.{role} to scale"
            ))
        })?;
        Ok((self.namespace(w.namespace.as_deref())?, w))
    }

    /// Reads the cluster and returns what the fault will do. Makes no writes.
    pub async fn plan(&self, spec: &FaultSpec) -> Result<KubePlan, KubeError> {
        let grace = match &spec.kind {
            FaultKind::Kill | FaultKind::Restart => Some(0),
            FaultKind::Stop { grace } => Some(grace.as_secs().min(u32::MAX as u64) as u32),
            _ => None,
        };
        match &spec.kind {
            FaultKind::Kill | FaultKind::Stop { .. } | FaultKind::Restart | FaultKind::Evict => {
                let (ns, pods, sel) = self.pods_for(&spec.target).await?;
                let ready = self.ready_pods(&ns, &sel).await?.len();
                let actions = pods
                    .iter()
                    .map(|pod| match grace {
                        Some(grace) => Action::DeletePod {
                            ns: ns.clone(),
                            pod: pod.clone(),
                            grace,
                        },
                        None => Action::EvictPod {
                            ns: ns.clone(),
                            pod: pod.clone(),
                        },
                    })
                    .collect();
                Ok(KubePlan {
                    actions,
                    undo: vec![Undo::PodsReady {
                        namespace: ns,
                        selector: sel,
                        ready,
                        removed: pods,
                    }],
                })
            }
            FaultKind::Scale { replicas } => {
                let (ns, w) = self.workload(&spec.target)?;
                let now = self.replicas(&ns, &w).await?;
                Ok(KubePlan {
                    actions: vec![Action::Scale {
                        ns: ns.clone(),
                        workload: w.clone(),
                        replicas: *replicas,
                    }],
                    undo: vec![Undo::ScaleWorkload {
                        namespace: ns,
                        kind: w.kind,
                        name: w.name,
                        replicas: now.wanted,
                    }],
                })
            }
            FaultKind::Partition => {
                let FaultTarget::Link { link, node } = &spec.target else {
                    return Err(KubeError::Refused("a partition needs a link target".into()));
                };
                if node.is_some() {
                    return Err(KubeError::Refused(
                        "a NetworkPolicy partition cuts a whole role; narrowing to one node needs a Toxiproxy proxy for it".into(),
                    ));
                }
                let (to, from) = match link {
                    Link::RouterPrefill => (Role::Prefill, Role::Router),
                    Link::RouterDecode => (Role::Decode, Role::Router),
                    Link::DecodePrefillKv => (Role::Prefill, Role::Decode),
                };
                let ns = self.namespace(None)?;
                let name = policy_name(&spec.id.0);
                Ok(KubePlan {
                    actions: vec![Action::Partition {
                        ns: ns.clone(),
                        name: name.clone(),
                        to: self.selector(to)?,
                        from: self.selector(from)?,
                    }],
                    undo: vec![Undo::DeleteNetworkPolicy {
                        namespace: ns,
                        name,
                    }],
                })
            }
            FaultKind::Pause => Err(KubeError::Refused(
                "Kubernetes cannot SIGSTOP a pod; for a hung node use a Toxiproxy timeout toxic (blackhole) on its link".into(),
            )),
            FaultKind::Toxic { .. } => Err(KubeError::Refused(
                "toxics go through Toxiproxy, not the Kubernetes API".into(),
            )),
        }
    }

    /// Makes the plan's writes.
    pub async fn act(&self, plan: &KubePlan) -> Result<(), KubeError> {
        for a in &plan.actions {
            match a {
                Action::DeletePod { ns, pod, grace } => {
                    self.delete_pod(ns, &pod.name, *grace).await?
                }
                Action::EvictPod { ns, pod } => self.evict_pod(ns, &pod.name).await?,
                Action::Scale {
                    ns,
                    workload,
                    replicas,
                } => self.set_replicas(ns, workload, *replicas).await?,
                Action::Partition { ns, name, to, from } => {
                    self.create_partition(ns, name, to, from).await?
                }
            }
        }
        Ok(())
    }

    /// Reads the cluster back until every action is in effect (or the wait times out).
    pub async fn verify(&self, plan: &KubePlan) -> Result<(), KubeError> {
        for a in &plan.actions {
            match a {
                Action::DeletePod { ns, pod, .. } | Action::EvictPod { ns, pod } => {
                    self.wait_until(&format!("pod {ns}/{} removed", pod.name), || async {
                        Ok(
                            (!self.pod_removed(ns, pod).await?)
                                .then(|| "still running".to_string()),
                        )
                    })
                    .await?
                }
                Action::Scale {
                    ns,
                    workload,
                    replicas,
                } => self.wait_replicas(ns, workload, *replicas).await?,
                Action::Partition { ns, name, .. } => {
                    if !self.policy_exists(ns, name).await? {
                        return Err(KubeError::NotReady(format!(
                            "networkpolicy {ns}/{name} is not there after creating it"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    async fn wait_replicas(&self, ns: &str, w: &WorkloadRef, n: u32) -> Result<(), KubeError> {
        self.wait_until(
            &format!("{:?} {ns}/{} at {n} ready", w.kind, w.name),
            || async {
                let r = self.replicas(ns, w).await?;
                Ok((r.wanted != n || r.current != n || r.ready != n).then(|| format!("{r:?}")))
            },
        )
        .await
    }

    /// The allow-listed namespace and workload an undo names.
    fn undo_workload(
        &self,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
    ) -> Result<(String, WorkloadRef), KubeError> {
        let ns = self.namespace(Some(namespace))?;
        let w = WorkloadRef {
            kind,
            name: name.to_string(),
            namespace: Some(ns.clone()),
        };
        Ok((ns, w))
    }

    /// Heals one Kubernetes undo; other kinds are not this backend's and do nothing.
    pub async fn run_undo(&self, u: &Undo) -> Result<(), KubeError> {
        match u {
            Undo::PodsReady { .. } => self.verify_undo(u).await,
            Undo::ScaleWorkload {
                namespace,
                kind,
                name,
                replicas,
            } => {
                let (ns, w) = self.undo_workload(namespace, *kind, name)?;
                self.set_replicas(&ns, &w, *replicas).await?;
                self.wait_replicas(&ns, &w, *replicas).await
            }
            Undo::DeleteNetworkPolicy { namespace, name } => {
                let ns = self.namespace(Some(namespace))?;
                self.delete_policy(&ns, name).await
            }
            _ => Ok(()),
        }
    }

    /// Reads back that an undo holds: pods ready again, replicas restored, policy gone. Waits
    /// for pods (a controller needs time to replace them); the others are read once.
    pub async fn verify_undo(&self, u: &Undo) -> Result<(), KubeError> {
        match u {
            Undo::PodsReady {
                namespace,
                selector,
                ready,
                removed,
            } => {
                let ns = self.namespace(Some(namespace))?;
                self.wait_until(
                    &format!("{ready} ready pods for `{selector}` in {ns}"),
                    || async {
                        let now: Vec<PodRef> = self
                            .ready_pods(&ns, selector)
                            .await?
                            .into_iter()
                            .filter(|p| !removed.iter().any(|r| r.uid == p.uid))
                            .collect();
                        Ok((now.len() < *ready).then(|| format!("{} ready", now.len())))
                    },
                )
                .await
            }
            Undo::ScaleWorkload {
                namespace,
                kind,
                name,
                replicas,
            } => {
                let (ns, w) = self.undo_workload(namespace, *kind, name)?;
                let r = self.replicas(&ns, &w).await?;
                if r.wanted != *replicas || r.ready != *replicas {
                    return Err(KubeError::NotReady(format!(
                        "{kind:?} {ns}/{name} is at {r:?}, expected {replicas}"
                    )));
                }
                Ok(())
            }
            Undo::DeleteNetworkPolicy { namespace, name } => {
                let ns = self.namespace(Some(namespace))?;
                if self.policy_exists(&ns, name).await? {
                    return Err(KubeError::NotReady(format!(
                        "networkpolicy {ns}/{name} is still there"
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_dns_labels() {
        let n = policy_name("1700000000000-Cut KV_link-3");
        assert_eq!(n, "pdchaos-1700000000000-cut-kv-link-3");
        assert!(policy_name(&"x".repeat(100)).len() <= 63);
    }
}
