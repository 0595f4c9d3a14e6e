//! What the stack reads back from its router and workers: the serving mode (from the builtin
//! router's `/status`, or from a probe request through a real router) and each `/status`.

use crate::pd::Role;
use std::time::Duration;

use super::{RouterKind, SimError, Stack};

impl Stack {
    /// Waits until every group of the router reports `mode`. A real router has no `/status`:
    /// then a probe request must be served end to end in `mode` (as the answer's `x_pd` says).
    pub async fn wait_mode(&self, mode: &str, within: Duration) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.inner.cfg.router != RouterKind::Builtin {
                if self.probe_mode().await.as_deref() == Some(mode) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(SimError::Unhealthy {
                        node: format!(
                            "{} router (a probe request served {mode})",
                            self.inner.cfg.router.as_str()
                        ),
                        secs: within.as_secs(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if let Ok(v) = self.status().await
                && let Some(groups) = v["groups"].as_array()
                && groups.iter().all(|g| g["mode"] == mode)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Unhealthy {
                    node: format!("router (mode {mode})"),
                    secs: within.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one short streaming request through the router; the mode its answer's `x_pd`
    /// names, if it ended with `[DONE]`. With the decode workers broken on purpose to end
    /// streams early (`--break no-done`: no `[DONE]`, no usage chunk), the `x-pd-mode` header of
    /// a 2xx answer that streamed at least one chunk.
    pub async fn probe_mode(&self) -> Option<String> {
        let body = serde_json::json!({"model": crate::sim::node::MODEL_ID, "stream": true,
            "max_tokens": 2, "messages": [{"role": "user", "content": "pdchaos readiness probe"}]});
        let r = self
            .inner
            .client
            .post(format!("{}/chat/completions", self.base_url()))
            .timeout(Duration::from_secs(5))
            .json(&body)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let header = r
            .headers()
            .get(crate::pd::HEADER_MODE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = r.text().await.ok()?;
        let mut mode = None;
        let mut done = false;
        for data in text.lines().filter_map(|l| l.strip_prefix("data:")) {
            let data = data.trim();
            if data == "[DONE]" {
                done = true;
            } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(m) = v["x_pd"]["mode"].as_str()
            {
                mode = Some(m.to_string());
            }
        }
        if self.inner.cfg.breaks.decode.no_done {
            let streamed = text.lines().any(|l| l.starts_with("data:"));
            return mode.or(header).filter(|_| streamed);
        }
        mode.filter(|_| done)
    }

    /// The router's `/status` as JSON (the builtin router only).
    pub async fn status(&self) -> Result<serde_json::Value, SimError> {
        if self.inner.cfg.router != RouterKind::Builtin {
            return Err(SimError::Invalid(format!(
                "the {} router has no /status; read the workers' /status instead",
                self.inner.cfg.router.as_str()
            )));
        }
        let url = format!("http://{}/status", self.inner.router_addr);
        let r = self
            .inner
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        r.json().await.map_err(|e| SimError::Invalid(e.to_string()))
    }

    /// A worker's own `/status` (name, role, counters), read directly, not through a proxy.
    pub async fn worker_status(&self, name: &str) -> Result<serde_json::Value, SimError> {
        let listen = {
            let slots = self.slots();
            let s = slots
                .iter()
                .find(|s| s.name == name && s.role != Role::Router)
                .ok_or_else(|| SimError::Invalid(format!("no worker named `{name}`")))?;
            let i = s.args.iter().position(|a| a == "--listen");
            i.and_then(|i| s.args.get(i + 1)).cloned()
        };
        let listen = listen.ok_or_else(|| SimError::Invalid(format!("{name} has no --listen")))?;
        let r = self
            .inner
            .client
            .get(format!("http://{listen}/status"))
            .send()
            .await
            .map_err(|e| SimError::Invalid(format!("{name} /status: {e}")))?;
        r.json()
            .await
            .map_err(|e| SimError::Invalid(format!("{name} /status: {e}")))
    }
}
