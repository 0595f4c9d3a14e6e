//! What the router believes about its workers, and the loop that keeps it current.
//!
//! Every interval the router GETs each worker's `/health` (a timeout counts as down: a paused
//! process accepts connections but never answers) and asks a healthy decode node of each group
//! to probe each prefill node's KV port (`/kv_probe`), so a cut KV link is noticed even when both
//! sides answer their health checks. Request failures mark state at once; probes restore it.
//!
//! The worker lists can change while the router runs (its `POST /workers` and `DELETE
//! /workers/{name}`): they live in a [`Pool`], which readers snapshot and writers swap whole, so
//! a request in flight keeps the workers it saw and a worker keeps its state across a change.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A worker as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    pub name: String,
    /// Base URL of the worker's HTTP API (no `/v1`).
    pub url: String,
    /// Prefill only: the KV (bootstrap) address decode nodes fetch from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_port: Option<u16>,
}

/// A worker and the router's view of it.
#[derive(Debug)]
pub struct Worker {
    pub spec: WorkerSpec,
    pub healthy: AtomicBool,
    /// Prefill only: can the group's decode nodes fetch KV from it?
    pub kv_link_ok: AtomicBool,
    pub inflight: AtomicU64,
    /// Once marked down, never marked up again (a broken variant for honesty tests).
    pub latched_down: AtomicBool,
    /// Has a health check ever succeeded? (A node still booting is not "down" for the latch.)
    pub seen_up: AtomicBool,
}

impl Worker {
    pub fn new(spec: WorkerSpec) -> Arc<Worker> {
        Arc::new(Worker {
            spec,
            // Unknown until the first health check answers.
            healthy: AtomicBool::new(false),
            kv_link_ok: AtomicBool::new(true),
            inflight: AtomicU64::new(0),
            latched_down: AtomicBool::new(false),
            seen_up: AtomicBool::new(false),
        })
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn link_ok(&self) -> bool {
        self.kv_link_ok.load(Ordering::Relaxed)
    }

    /// Records a health observation; `latch` keeps a node down forever once seen down.
    pub fn set_healthy(&self, up: bool, latch: bool) {
        if up {
            self.seen_up.store(true, Ordering::Relaxed);
        }
        if !up && latch && self.seen_up.load(Ordering::Relaxed) {
            self.latched_down.store(true, Ordering::Relaxed);
        }
        let up = up && !self.latched_down.load(Ordering::Relaxed);
        self.healthy.store(up, Ordering::Relaxed);
    }

    pub fn set_link(&self, ok: bool, latch: bool) {
        if !ok && latch && self.seen_up.load(Ordering::Relaxed) {
            self.latched_down.store(true, Ordering::Relaxed);
        }
        let ok = ok && !self.latched_down.load(Ordering::Relaxed);
        self.kv_link_ok.store(ok, Ordering::Relaxed);
    }
}

/// One group of prefill and decode workers.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub prefill: Vec<Arc<Worker>>,
    pub decode: Vec<Arc<Worker>>,
    /// Prompt-token range `[min, max)` this group serves first.
    pub bucket: Option<(u64, u64)>,
}

/// The router's groups as they are now. Cheap snapshots for readers; changes build a new list.
#[derive(Debug)]
pub struct Pool(std::sync::RwLock<Arc<Vec<Group>>>);

impl Pool {
    pub fn new(groups: Vec<Group>) -> Pool {
        Pool(std::sync::RwLock::new(Arc::new(groups)))
    }

    /// The groups at this moment; later changes do not alter a snapshot already taken.
    pub fn snapshot(&self) -> Arc<Vec<Group>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `f` to a copy of the groups and swaps the copy in if `f` succeeds. Workers are
    /// shared between the old and the new list, so their health and in-flight counts carry over.
    pub fn change<T, E>(&self, f: impl FnOnce(&mut Vec<Group>) -> Result<T, E>) -> Result<T, E> {
        let mut guard = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next: Vec<Group> = guard.as_ref().clone();
        let out = f(&mut next)?;
        *guard = Arc::new(next);
        Ok(out)
    }
}

/// Polls health and KV links every `interval` until the process ends.
pub async fn watch(pool: Arc<Pool>, client: reqwest::Client, interval: Duration, latch: bool) {
    loop {
        let groups = pool.snapshot();
        let mut checks = tokio::task::JoinSet::new();
        for g in groups.iter() {
            for w in g.prefill.iter().chain(g.decode.iter()) {
                let (w, c) = (w.clone(), client.clone());
                checks.spawn(async move {
                    let ok = matches!(
                        tokio::time::timeout(interval, c.get(format!("{}/health", w.spec.url)).send()).await,
                        Ok(Ok(r)) if r.status().is_success()
                    );
                    w.set_healthy(ok, latch);
                });
            }
        }
        while checks.join_next().await.is_some() {}
        for g in groups.iter() {
            let Some(prober) = g.decode.iter().find(|d| d.is_healthy()) else {
                continue;
            };
            for p in g.prefill.iter().filter(|p| p.is_healthy()) {
                let (Some(host), Some(port)) = (&p.spec.kv_host, p.spec.kv_port) else {
                    continue;
                };
                let url = format!("{}/kv_probe?host={host}&port={port}", prober.spec.url);
                let ok = matches!(
                    tokio::time::timeout(interval, client.get(url).send()).await,
                    Ok(Ok(r)) if r.status().is_success()
                );
                p.set_link(ok, latch);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str) -> Arc<Worker> {
        Worker::new(WorkerSpec {
            name: name.into(),
            url: "http://127.0.0.1:1".into(),
            kv_host: None,
            kv_port: None,
        })
    }

    #[test]
    fn a_change_swaps_the_list_and_leaves_old_snapshots_and_failed_changes_alone() {
        let pool = Pool::new(vec![Group {
            name: "g0".into(),
            prefill: vec![],
            decode: vec![worker("decode-0")],
            bucket: None,
        }]);
        let before = pool.snapshot();
        before[0].decode[0].set_healthy(true, false);
        pool.change(|g| {
            g[0].decode.push(worker("decode-1"));
            Ok::<_, ()>(())
        })
        .unwrap();
        let after = pool.snapshot();
        assert_eq!(
            before[0].decode.len(),
            1,
            "a snapshot taken before is unchanged"
        );
        assert_eq!(after[0].decode.len(), 2);
        assert!(after[0].decode[0].is_healthy(), "state carries over");
        let failed: Result<(), &str> = pool.change(|g| {
            g[0].decode.clear();
            Err("refused")
        });
        assert_eq!(failed, Err("refused"));
        assert_eq!(
            pool.snapshot()[0].decode.len(),
            2,
            "a failed change is not applied"
        );
    }
}
