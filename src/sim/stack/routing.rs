//! The router's worker list as the stack changes it: registering a worker (`POST /workers`),
//! removing it with a drain (`DELETE /workers/...`), and reading back that it is routed to.
//! Our router and SGLang's gateway take the same paths with different bodies (docs/protocol.md).

use crate::fault::control::ControlError;
use crate::pd::Role;
use crate::sim::health::WorkerSpec;
use std::time::Duration;

use super::{RouterKind, Stack};

impl Stack {
    /// The worker spec, group and role of node `name`.
    fn worker_of(&self, name: &str) -> Result<(WorkerSpec, u32, Role), ControlError> {
        self.with_slot(name, |s| s.worker.clone().map(|w| (w, s.group, s.role)))?
            .ok_or_else(|| ControlError(format!("{name} is not a worker")))
    }

    /// Tells the router to route to `name` (builtin: `POST /workers`; SGLang's gateway: its
    /// `POST /workers` with `worker_type` and, for prefill, `bootstrap_port`).
    pub(super) async fn register(&self, name: &str) -> Result<(), ControlError> {
        let (w, group, role) = self.worker_of(name)?;
        let body = match self.inner.cfg.router {
            RouterKind::Builtin => serde_json::json!({
                "group": format!("g{group}"), "role": role.as_str(), "worker": w,
            }),
            _ => {
                let mut b = serde_json::json!({"url": w.url, "worker_type": role.as_str()});
                if let Some(port) = w.kv_port {
                    b["bootstrap_port"] = port.into();
                }
                b
            }
        };
        let url = format!("http://{}/workers", self.inner.router_addr);
        let r = self
            .inner
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ControlError(format!("router: add {name}: {e}")))?;
        let status = r.status();
        // 409: our router already routes to it (a registration retried after a lost answer).
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        Err(ControlError(format!(
            "router: add {name}: HTTP {status}: {}",
            text.trim()
        )))
    }

    /// Stops the router routing to `name`; with our router, waits up to 2 s for its streams to
    /// end; with SGLang's gateway, until it no longer lists the node. A worker the router does
    /// not list is already removed.
    pub(super) async fn deregister(&self, name: &str) -> Result<(), ControlError> {
        let (w, _, _) = self.worker_of(name)?;
        let base = format!("http://{}", self.inner.router_addr);
        let url = match self.inner.cfg.router {
            RouterKind::Builtin => format!("{base}/workers/{name}?drain_ms=2000"),
            _ => match self.router_worker(&w.url).await? {
                Some(entry) => match entry["id"].as_str() {
                    Some(id) => format!("{base}/workers/{id}"),
                    None => return Err(ControlError(format!("router lists {name} without an id"))),
                },
                None => return Ok(()),
            },
        };
        let r = self
            .inner
            .client
            .delete(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| ControlError(format!("router: remove {name}: {e}")))?;
        let status = r.status();
        if status.as_u16() == 404 {
            return Ok(());
        }
        if status.is_success() {
            // SGLang's gateway queues the removal (202): wait until it no longer lists the node.
            if self.inner.cfg.router != RouterKind::Builtin {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while self.router_worker(&w.url).await?.is_some() {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ControlError(format!(
                            "the {} router still lists {name} 10 s after removing it",
                            self.inner.cfg.router.as_str()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Its removal does not drain: streams it sent before run on, and stopping the
                // node now would cut them. Wait for the node itself to go quiet.
                self.wait_idle(name, Duration::from_secs(2)).await;
            }
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        Err(ControlError(format!(
            "router: remove {name}: HTTP {status}: {}",
            text.trim()
        )))
    }

    /// The router's entry for the worker at `url`, from its `GET /workers` (ours lists
    /// `healthy`, SGLang's gateway `is_healthy` and an `id`).
    async fn router_worker(&self, url: &str) -> Result<Option<serde_json::Value>, ControlError> {
        let r = self
            .inner
            .client
            .get(format!("http://{}/workers", self.inner.router_addr))
            .send()
            .await
            .map_err(|e| ControlError(format!("router: GET /workers: {e}")))?;
        let v: serde_json::Value = r
            .json()
            .await
            .map_err(|e| ControlError(format!("router: GET /workers: {e}")))?;
        Ok(v["workers"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["url"] == url).cloned()))
    }

    /// Waits until the router lists `name` as healthy, read back from its `GET /workers`.
    pub(super) async fn wait_routed(
        &self,
        name: &str,
        within: Duration,
    ) -> Result<(), ControlError> {
        let (w, _, _) = self.worker_of(name)?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(entry)) = self.router_worker(&w.url).await
                && (entry["healthy"] == true || entry["is_healthy"] == true)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError(format!(
                    "the {} router did not route to {name} within {} s",
                    self.inner.cfg.router.as_str(),
                    within.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Brings a restarted router, which knows only its config (the start layout), back to the
    /// workers the stack had it route to: the running grown nodes are added again and the
    /// start-layout nodes `scale` took off are removed again. A grown node that is not running
    /// is left off (the next scale-up adds it).
    pub(super) async fn relist(&self) -> Result<(), ControlError> {
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for s in self.slots().iter_mut().filter(|s| s.worker.is_some()) {
            match (s.grown, s.listed, s.child.is_some()) {
                (true, true, true) => add.push(s.name.clone()),
                (true, true, false) => s.listed = false,
                (false, false, _) => remove.push(s.name.clone()),
                _ => {}
            }
        }
        for n in &remove {
            self.deregister(n).await?;
        }
        for n in &add {
            self.register(n).await?;
        }
        for n in &add {
            self.wait_routed(n, Duration::from_secs(30)).await?;
        }
        Ok(())
    }

    /// Waits, at most `within`, until worker `name` is idle by its own `/status`: nothing
    /// queued, in the decode batch or held for a KV transfer, and no request arrived for 200 ms.
    /// Like our router's drain, it gives up quietly after `within`: stopping the node then cuts
    /// what still runs, and the records show it.
    async fn wait_idle(&self, name: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let mut quiet_since: Option<(u64, tokio::time::Instant)> = None;
        while tokio::time::Instant::now() < deadline {
            let Ok(st) = self.worker_status(name).await else {
                return; // not answering: nothing left to drain
            };
            let m = &st["metrics"];
            let busy = st["batch_running"].as_u64().unwrap_or(0)
                + m["queue_depth"].as_u64().unwrap_or(0)
                + m["kv_bytes_held"].as_u64().unwrap_or(0);
            let total = m["requests_total"].as_u64().unwrap_or(0);
            let now = tokio::time::Instant::now();
            quiet_since = match quiet_since {
                _ if busy > 0 => None,
                Some((t, since)) if t == total => {
                    if now - since >= Duration::from_millis(200) {
                        return;
                    }
                    Some((t, since))
                }
                _ => Some((total, now)),
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
