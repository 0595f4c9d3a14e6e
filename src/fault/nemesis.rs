//! The nemesis: applies faults, verifies them, heals them, and keeps the timeline.
//!
//! Every fault is journalled (`Planned`, with the actions that undo it) before anything is
//! done; applying returns only once the effect is read back from the system (process state in
//! `/proc`, proxy state from the Toxiproxy API); healing likewise. A fault with a duration heals
//! itself from its own task when the duration ends, even if the caller is stuck.

use crate::clock;
use crate::fault::control::NodeControl;
use crate::fault::journal::{Journal, JournalError};
use crate::fault::kube::{KubeError, KubeFaults, KubePlan};
use crate::fault::model::{
    FaultId, FaultKind, FaultPhase, FaultSpec, FaultTarget, LinkProxy, TimelineEvent, Undo,
};
use crate::fault::toxiproxy::ToxiproxyClient;
use crate::fault::toxiproxy::api::ToxicInfo;
use crate::pd::Role;
use crate::sim::proc;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a fault could not be applied or healed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("fault {id}: {reason}")]
    Refused { id: FaultId, reason: String },
    #[error("fault {id} was applied but is not in effect: {reason}")]
    NotInEffect { id: FaultId, reason: String },
    #[error("fault {id}: {reason}")]
    Failed { id: FaultId, reason: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What healing left behind. Empty `leftovers` means the system is back as it was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealReport {
    pub healed: Vec<FaultId>,
    pub leftovers: Vec<String>,
}

impl HealReport {
    pub fn is_clean(&self) -> bool {
        self.leftovers.is_empty()
    }
}

struct Inner {
    journal: Mutex<Journal>,
    timeline: Mutex<Vec<TimelineEvent>>,
    control: Option<Arc<dyn NodeControl>>,
    toxi: Option<ToxiproxyClient>,
    links: Vec<LinkProxy>,
    kube: Option<KubeFaults>,
    active: tokio::sync::Mutex<BTreeMap<FaultId, Vec<Undo>>>,
}

/// Applies and heals faults. Cheap to clone.
#[derive(Clone)]
pub struct Nemesis {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nemesis")
            .field("links", &self.inner.links.len())
            .finish_non_exhaustive()
    }
}

impl Nemesis {
    /// A nemesis over a local (or process-level) deployment and its Toxiproxy, if any.
    pub fn new(
        journal: &Path,
        control: Option<Arc<dyn NodeControl>>,
    ) -> Result<Nemesis, FaultError> {
        let (toxi, links) = match &control {
            Some(c) => (
                c.toxiproxy_api().map(ToxiproxyClient::new),
                c.link_proxies(),
            ),
            None => (None, Vec::new()),
        };
        Ok(Nemesis {
            inner: Arc::new(Inner {
                journal: Mutex::new(Journal::open(journal)?),
                timeline: Mutex::new(Vec::new()),
                control,
                toxi,
                links,
                kube: None,
                active: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// Adds a Toxiproxy reached directly (the CLI's `--toxiproxy URL --proxy NAME`).
    pub fn with_toxiproxy(mut self, api: &str, links: Vec<LinkProxy>) -> Nemesis {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.toxi = Some(ToxiproxyClient::new(api));
            inner.links.extend(links);
        }
        self
    }

    /// Adds the Kubernetes backend: pod, workload and NetworkPolicy faults go to the cluster.
    pub fn with_kube(mut self, kube: KubeFaults) -> Nemesis {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.kube = Some(kube);
        }
        self
    }

    /// What healing may use: this nemesis's stack and cluster.
    fn healers(&self) -> Healers<'_> {
        Healers {
            control: self.inner.control.as_deref(),
            kube: self.inner.kube.as_ref(),
        }
    }

    /// The Kubernetes plan for `spec`, when the Kubernetes backend acts on it.
    async fn kube_plan(&self, spec: &FaultSpec) -> Result<Option<KubePlan>, FaultError> {
        let Some(k) = &self.inner.kube else {
            return Ok(None);
        };
        let has_proxy = match &spec.target {
            FaultTarget::Link { link, node } => self
                .inner
                .links
                .iter()
                .any(|l| l.link == *link && node.as_ref().is_none_or(|n| *n == l.node)),
            _ => false,
        };
        if !KubeFaults::handles(spec, has_proxy) {
            return Ok(None);
        }
        k.plan(spec)
            .await
            .map(Some)
            .map_err(|e| kube_error(&spec.id, e, false))
    }

    /// Every phase of every fault so far, in order.
    pub fn timeline(&self) -> Vec<TimelineEvent> {
        self.inner
            .timeline
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    fn record(
        &self,
        id: &FaultId,
        phase: FaultPhase,
        spec: Option<&FaultSpec>,
        undo: &[Undo],
        detail: Option<String>,
    ) -> Result<(), FaultError> {
        let ev = TimelineEvent {
            ts_us: clock::now_us(),
            fault: id.clone(),
            phase,
            spec: spec.cloned(),
            undo: undo.to_vec(),
            detail,
        };
        self.inner
            .journal
            .lock()
            .map_err(|_| refused(id, "journal lock poisoned"))?
            .write(&ev)?;
        if let Ok(mut t) = self.inner.timeline.lock() {
            t.push(ev);
        }
        Ok(())
    }

    fn control(&self, id: &FaultId) -> Result<&Arc<dyn NodeControl>, FaultError> {
        self.inner.control.as_ref().ok_or_else(|| {
            refused(
                id,
                "no process control for this target (local stack or --pid needed)",
            )
        })
    }

    fn toxi(&self, id: &FaultId) -> Result<&ToxiproxyClient, FaultError> {
        self.inner
            .toxi
            .as_ref()
            .ok_or_else(|| refused(id, "no Toxiproxy for this target: link faults need one"))
    }

    /// Node names a target resolves to (running nodes for one-of-role targets).
    fn nodes(
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

    fn proxies(&self, id: &FaultId, target: &FaultTarget) -> Result<Vec<String>, FaultError> {
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

    /// Applies `spec` and returns once it is verified in effect.
    pub async fn apply(&self, spec: FaultSpec) -> Result<(), FaultError> {
        let id = spec.id.clone();
        if self.inner.active.lock().await.contains_key(&id) {
            return Err(refused(&id, "a fault with this id is already active"));
        }
        let kube_plan = self.kube_plan(&spec).await?;
        let undo = match &kube_plan {
            Some(p) => p.undo.clone(),
            None => self.plan(&spec).await?,
        };
        self.record(&id, FaultPhase::Planned, Some(&spec), &undo, None)?;
        self.inner
            .active
            .lock()
            .await
            .insert(id.clone(), undo.clone());
        let result = async {
            match (&kube_plan, &self.inner.kube) {
                (Some(p), Some(k)) => k.act(p).await.map_err(|e| kube_error(&id, e, false))?,
                _ => self.act(&spec).await?,
            }
            self.record(&id, FaultPhase::Applied, None, &[], None)?;
            match (&kube_plan, &self.inner.kube) {
                (Some(p), Some(k)) => k.verify(p).await.map_err(|e| kube_error(&id, e, true))?,
                _ => self.verify(&spec).await?,
            }
            self.record(&id, FaultPhase::Verified, None, &[], None)
        }
        .await;
        if let Err(e) = result {
            // Never leave a half-applied fault behind.
            let _ = self.heal(&id).await;
            return Err(e);
        }
        if matches!(spec.kind, FaultKind::Restart) {
            self.heal(&id).await?;
        } else if let Some(d) = spec.duration {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                let _ = me.heal(&id).await;
            });
        }
        Ok(())
    }

    /// What `apply` would do, step by step, without doing anything (`--dry-run`).
    pub async fn dry_run(&self, spec: &FaultSpec) -> Result<Vec<String>, FaultError> {
        let id = &spec.id;
        let mut steps = vec![format!("journal {:?}: planned {}", self.journal_path(), id)];
        if let Some(p) = self.kube_plan(spec).await? {
            steps.extend(p.actions.iter().map(|a| a.describe()));
            steps.push("read back: verify the fault is in effect".into());
            steps.extend(
                p.undo
                    .iter()
                    .map(|u| format!("heal: {}", serde_json::to_string(u).unwrap_or_default())),
            );
            if let Some(d) = spec.duration {
                steps.push(format!("heal after {}", humantime::format_duration(d)));
            }
            return Ok(steps);
        }
        let undo = self.plan(spec).await?;
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
        steps.push("read back: verify the fault is in effect".into());
        for u in undo {
            steps.push(format!(
                "heal: {}",
                serde_json::to_string(&u).unwrap_or_default()
            ));
        }
        if let Some(d) = spec.duration {
            steps.push(format!("heal after {}", humantime::format_duration(d)));
        }
        Ok(steps)
    }

    fn journal_path(&self) -> std::path::PathBuf {
        self.inner
            .journal
            .lock()
            .map(|j| j.path().to_path_buf())
            .unwrap_or_default()
    }

    async fn plan(&self, spec: &FaultSpec) -> Result<Vec<Undo>, FaultError> {
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
                let running = self
                    .control(id)?
                    .nodes()
                    .iter()
                    .filter(|n| n.role == role && n.pid.is_some())
                    .count();
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

    async fn act(&self, spec: &FaultSpec) -> Result<(), FaultError> {
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
            FaultKind::Partition => {
                for p in self.proxies(id, &spec.target)? {
                    self.toxi(id)?
                        .disable(&p)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            FaultKind::Toxic {
                toxic,
                stream,
                toxicity,
            } => {
                let t = toxic_info(id, toxic, *stream, *toxicity);
                for p in self.proxies(id, &spec.target)? {
                    self.toxi(id)?
                        .add_toxic(&p, &t)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            FaultKind::Evict => return Err(refused(id, "eviction needs a Kubernetes target")),
        }
        Ok(())
    }

    /// Reads the system back: is the fault really in effect?
    async fn verify(&self, spec: &FaultSpec) -> Result<(), FaultError> {
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
                let running = self
                    .control(id)?
                    .nodes()
                    .iter()
                    .filter(|n| n.role == role && n.pid.is_some())
                    .count();
                if running != *replicas as usize {
                    return Err(not(format!(
                        "{running} {role} nodes run, expected {replicas}"
                    )));
                }
            }
            FaultKind::Partition => {
                for p in self.proxies(id, &spec.target)? {
                    self.toxi(id)?
                        .verify_enabled(&p, false)
                        .await
                        .map_err(|e| not(e.to_string()))?;
                }
            }
            FaultKind::Toxic {
                toxic,
                stream,
                toxicity,
            } => {
                let t = toxic_info(id, toxic, *stream, *toxicity);
                for p in self.proxies(id, &spec.target)? {
                    self.toxi(id)?
                        .verify_toxic(&p, &t)
                        .await
                        .map_err(|e| not(e.to_string()))?;
                }
            }
            FaultKind::Evict => {}
        }
        Ok(())
    }

    /// Heals one fault and verifies the system is back. Healing a healed fault is a no-op.
    pub async fn heal(&self, id: &FaultId) -> Result<HealReport, FaultError> {
        let Some(undo) = self.inner.active.lock().await.remove(id) else {
            return Ok(HealReport::default());
        };
        let mut report = HealReport::default();
        let healers = self.healers();
        for u in &undo {
            if let Err(e) = run_undo(u, healers).await {
                report.leftovers.push(format!("{id}: {e}"));
            }
        }
        self.record(id, FaultPhase::Healed, None, &[], None)?;
        for u in &undo {
            if let Err(e) = verify_undo(u, healers).await {
                report.leftovers.push(format!("{id}: {e}"));
            }
        }
        if report.is_clean() {
            self.record(id, FaultPhase::HealVerified, None, &[], None)?;
            report.healed.push(id.clone());
        } else {
            self.record(
                id,
                FaultPhase::HealFailed,
                None,
                &[],
                Some(report.leftovers.join("; ")),
            )?;
        }
        Ok(report)
    }

    /// Heals every active fault.
    pub async fn heal_all(&self) -> HealReport {
        let ids: Vec<FaultId> = self.inner.active.lock().await.keys().cloned().collect();
        let mut report = HealReport::default();
        for id in ids {
            match self.heal(&id).await {
                Ok(r) => {
                    report.healed.extend(r.healed);
                    report.leftovers.extend(r.leftovers);
                }
                Err(e) => report.leftovers.push(e.to_string()),
            }
        }
        report
    }
}

/// A Kubernetes refusal stays a refusal; other errors fail the apply (or its verification).
fn kube_error(id: &FaultId, e: KubeError, verifying: bool) -> FaultError {
    match e {
        KubeError::Refused(reason) => FaultError::Refused {
            id: id.clone(),
            reason,
        },
        e if verifying => FaultError::NotInEffect {
            id: id.clone(),
            reason: e.to_string(),
        },
        e => FaultError::Failed {
            id: id.clone(),
            reason: e.to_string(),
        },
    }
}

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

fn refused(id: &FaultId, reason: &str) -> FaultError {
    FaultError::Refused {
        id: id.clone(),
        reason: reason.to_string(),
    }
}

fn role_of(id: &FaultId, t: &FaultTarget) -> Result<Role, FaultError> {
    match t {
        FaultTarget::Role { role } | FaultTarget::AllOf { role } => Ok(*role),
        _ => Err(refused(id, "scale needs a role target")),
    }
}

/// The toxic a fault adds, as the API shows it (named after the fault).
fn toxic_info(
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

async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
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
            let running = control.map(|c| {
                c.nodes()
                    .iter()
                    .filter(|n| n.role == *role && n.pid.is_some())
                    .count()
            });
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
