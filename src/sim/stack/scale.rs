//! Growing and shrinking a role at run time ([`Stack::scale_role`], behind
//! [`NodeControl::scale`](crate::fault::control::NodeControl::scale)): new slots beyond the
//! start layout, stopping and restarting slots, and telling the router.

use crate::fault::control::{ControlError, NodeControl};
use crate::pd::Role;
use std::time::Duration;

use super::workers::{new_worker, node_name};
use super::{RouterKind, Stack};

/// One node of the role being scaled, as `scale_role` finds it.
struct RoleSlot {
    name: String,
    running: bool,
    /// A worker (the router is told of it), not the router itself.
    worker: bool,
    listed: bool,
}

impl Stack {
    /// After it returns, the first `replicas` nodes of `role` (in slot order) run and the router
    /// routes to each; every other node of `role` is stopped and, first, removed from the router
    /// with its streams drained. A start-layout node is treated like a grown one, except behind
    /// vllm-router, which takes no changes: there a stopped node stays listed and its health
    /// checks mark it down.
    pub(super) async fn scale_role(&self, role: Role, replicas: usize) -> Result<(), ControlError> {
        let _one_at_a_time = self.inner.scaling.lock().await;
        let have = self.role_slots(role).len();
        if replicas > have {
            self.grow(role, replicas - have).await?;
        }
        let edits = self.inner.cfg.router != RouterKind::Vllm;
        let mut started = Vec::new();
        for (i, n) in self.role_slots(role).into_iter().enumerate() {
            if i < replicas {
                if !n.running {
                    self.restart(&n.name).await?;
                }
                let add = edits && n.worker && !n.listed;
                if add {
                    self.register(&n.name).await?;
                    self.with_slot(&n.name, |s| s.listed = true)?;
                }
                if n.worker && (!n.running || add) {
                    started.push((n.name, add));
                }
            } else {
                if edits && n.worker && n.listed {
                    // Off the router first, so no new request goes to a node about to stop.
                    self.deregister(&n.name).await?;
                    self.with_slot(&n.name, |s| s.listed = false)?;
                }
                if n.running {
                    self.stop(&n.name, Duration::from_secs(2)).await?;
                }
            }
        }
        for (name, added) in started {
            // vllm-router takes back a restarted node by its own health checks, as it always
            // has; a node we added, and every node behind our router, is read back.
            if added || self.inner.cfg.router == RouterKind::Builtin {
                self.wait_routed(&name, Duration::from_secs(30)).await?;
            }
        }
        Ok(())
    }

    /// Every node of `role`, in slot order.
    fn role_slots(&self, role: Role) -> Vec<RoleSlot> {
        self.slots()
            .iter()
            .filter(|s| s.role == role && s.name != "toxiproxy")
            .map(|s| RoleSlot {
                name: s.name.clone(),
                running: s.child.is_some(),
                worker: s.worker.is_some(),
                listed: s.listed,
            })
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
            w.slot.listed = false;
            match self.inner.proxies.lock() {
                Ok(mut p) => p.extend(w.proxies),
                Err(poisoned) => poisoned.into_inner().extend(w.proxies),
            }
            self.slots().push(w.slot);
        }
        Ok(())
    }
}
