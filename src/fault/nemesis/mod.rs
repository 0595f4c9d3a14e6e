//! The nemesis: applies faults, verifies them, heals them, and keeps the timeline.
//!
//! Every fault is journalled (`Planned`, with the actions that undo it) before anything is
//! done; applying returns only once the effect is read back from the system (process state in
//! `/proc`, proxy state from the Toxiproxy API); healing likewise. A fault with a duration heals
//! itself from its own task when the duration ends, even if the caller is stuck.
//!
//! This file owns the fault's life (journal, timeline, apply -> verify -> heal) and hands the
//! cluster's faults to [`crate::fault::kube`]; [`local`] acts on local processes and Toxiproxy
//! proxies; [`undo`] performs and verifies the undo actions, also from a journal alone
//! (`pdchaos heal`).

mod local;
mod undo;

pub use local::toxic_name;
pub use undo::{Healers, heal_journal, run_undo, verify_undo};

use crate::clock;
use crate::fault::control::NodeControl;
use crate::fault::journal::{Journal, JournalError};
use crate::fault::kube::{KubeError, KubeFaults, KubePlan};
use crate::fault::model::{
    FaultId, FaultKind, FaultPhase, FaultSpec, FaultTarget, LinkProxy, TimelineEvent, Undo,
};
use crate::fault::toxiproxy::ToxiproxyClient;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
        steps.extend(self.local_steps(spec)?);
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

fn refused(id: &FaultId, reason: &str) -> FaultError {
    FaultError::Refused {
        id: id.clone(),
        reason: reason.to_string(),
    }
}
