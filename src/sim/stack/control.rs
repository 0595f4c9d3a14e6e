//! [`NodeControl`] for the local stack: what the fault layer calls to kill, stop, pause,
//! resume, restart and scale nodes, and where it finds the link proxies.

use crate::fault::control::{BoxFuture, ControlError, NodeControl, NodeProcess};
use crate::fault::model::LinkProxy;
use crate::pd::Role;
use std::time::Duration;
use tokio::process::Child;

use super::Stack;

impl NodeControl for Stack {
    fn nodes(&self) -> Vec<NodeProcess> {
        self.slots()
            .iter()
            .filter(|s| s.name != "toxiproxy")
            .map(|s| NodeProcess {
                name: s.name.clone(),
                role: s.role,
                group: s.group,
                pid: s.child.as_ref().and_then(Child::id),
            })
            .collect()
    }

    fn kill<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let mut child = self
                .with_slot(name, |s| s.child.take())?
                .ok_or_else(|| ControlError(format!("{name} is not running")))?;
            child
                .kill()
                .await
                .map_err(|e| ControlError(format!("kill {name}: {e}")))
        })
    }

    fn stop<'a>(
        &'a self,
        name: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let mut child = self
                .with_slot(name, |s| s.child.take())?
                .ok_or_else(|| ControlError(format!("{name} is not running")))?;
            if let Some(pid) = child.id() {
                crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            Ok(())
        })
    }

    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let pid = self.pid_of(name).await?;
            crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGSTOP);
            Ok(())
        })
    }

    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let pid = self.pid_of(name).await?;
            crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGCONT);
            Ok(())
        })
    }

    fn restart<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let (old, args, http) =
                self.with_slot(name, |s| (s.child.take(), s.args.clone(), s.http))?;
            if let Some(mut c) = old {
                let _ = c.kill().await;
            }
            let child = self
                .spawn(name, &args)
                .map_err(|e| ControlError(e.to_string()))?;
            self.with_slot(name, |s| s.child = Some(child))?;
            self.wait_healthy(name, http, Duration::from_secs(20))
                .await
                .map_err(|e| ControlError(e.to_string()))?;
            if name == "router" {
                self.relist().await?;
            }
            Ok(())
        })
    }

    /// Starts or stops nodes of `role` (in slot order) until `replicas` run. Beyond the start
    /// layout it makes new nodes (`decode-3`, ...; with groups in the group with the fewest),
    /// with their proxies. A node it stops is removed from the router first and its streams
    /// drain; a node it starts is told to the router again (behind vllm-router, which takes no
    /// changes, only the start layout scales). Returns once every started node is healthy and
    /// the router routes to it.
    fn scale<'a>(&'a self, role: Role, replicas: usize) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move { self.scale_role(role, replicas).await })
    }

    fn link_proxies(&self) -> Vec<LinkProxy> {
        match self.inner.proxies.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn toxiproxy_api(&self) -> Option<String> {
        self.inner.toxi.as_ref().map(|t| t.api.clone())
    }
}
