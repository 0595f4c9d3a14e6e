//! Growing and shrinking a role at run time ([`Stack::scale_role`], behind
//! [`NodeControl::scale`](crate::fault::control::NodeControl::scale)): new slots beyond the
//! start layout, stopping and restarting slots, and telling the router.

use crate::fault::control::{ControlError, NodeControl};
use crate::pd::Role;
use std::time::Duration;

use super::workers::{new_worker, node_name};
use super::{RouterKind, Stack};

impl Stack {
    pub(super) async fn scale_role(&self, role: Role, replicas: usize) -> Result<(), ControlError> {
        let _one_at_a_time = self.inner.scaling.lock().await;
        let have = self.role_slots(role).len();
        if replicas > have {
            self.grow(role, replicas - have).await?;
        }
        let mut started = Vec::new();
        for (i, (name, running, grown)) in self.role_slots(role).into_iter().enumerate() {
            match (i < replicas, running) {
                (true, false) => {
                    self.restart(&name).await?;
                    if grown {
                        self.register(&name).await?;
                    }
                    started.push((name, grown));
                }
                (false, true) => {
                    if grown {
                        self.deregister(&name).await?;
                    }
                    self.stop(&name, Duration::from_secs(2)).await?;
                }
                _ => {}
            }
        }
        for (name, grown) in started {
            // A real router takes back a restarted start-layout node by its own health checks,
            // as it always has; a grown one, and every node behind our router, is read back.
            if grown || self.inner.cfg.router == RouterKind::Builtin {
                self.wait_routed(&name, Duration::from_secs(30)).await?;
            }
        }
        Ok(())
    }

    /// (name, running, grown) of every node of `role`, in slot order.
    fn role_slots(&self, role: Role) -> Vec<(String, bool, bool)> {
        self.slots()
            .iter()
            .filter(|s| s.role == role && s.name != "toxiproxy")
            .map(|s| (s.name.clone(), s.child.is_some(), s.grown))
            .collect()
    }

    /// Adds `n` stopped slots of `role`, with their proxies; `scale_role` starts them.
    async fn grow(&self, role: Role, n: usize) -> Result<(), ControlError> {
        let cfg = &self.inner.cfg;
        match (role, cfg.router) {
            (Role::Router, _) => {
                return Err(ControlError(
                    "the local stack runs one router; it cannot scale the router up".into(),
                ));
            }
            (_, RouterKind::Vllm) => {
                return Err(ControlError(format!(
                    "cannot scale {role} beyond the start layout behind vllm-router: in PD mode it refuses new workers over HTTP (`/add_worker` and `POST /workers` answer 400 \"PD router requires specific add_prefill_server or add_decode_server methods\"); start with --{role} N"
                )));
            }
            _ => {}
        }
        for _ in 0..n {
            let (group, index) = {
                let slots = self.slots();
                let count = |g: u32| {
                    slots
                        .iter()
                        .filter(|s| s.role == role && s.group == g)
                        .count()
                };
                let g = (0..cfg.groups as u32)
                    .min_by_key(|&g| count(g))
                    .unwrap_or(0);
                (g, count(g))
            };
            let name = node_name(cfg, group, role, index);
            let mut w = new_worker(cfg, self.inner.toxi.as_ref(), role, group, name)
                .await
                .map_err(|e| ControlError(e.to_string()))?;
            w.slot.grown = true;
            match self.inner.proxies.lock() {
                Ok(mut p) => p.extend(w.proxies),
                Err(poisoned) => poisoned.into_inner().extend(w.proxies),
            }
            self.slots().push(w.slot);
        }
        Ok(())
    }
}
