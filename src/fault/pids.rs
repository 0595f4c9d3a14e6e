//! [`NodeControl`] over plain process ids, for `pdchaos fault apply --pid NAME=PID` against
//! processes this runner did not start. It can signal them; it cannot restart or scale them.

use crate::fault::control::{BoxFuture, ControlError, NodeControl, NodeProcess};
use crate::fault::model::LinkProxy;
use crate::pd::Role;
use crate::sim::proc;
use nix::sys::signal::Signal;
use std::time::Duration;

pub struct PidControl {
    nodes: Vec<(String, u32)>,
}

impl PidControl {
    pub fn new(nodes: Vec<(String, u32)>) -> PidControl {
        PidControl { nodes }
    }

    fn pid(&self, name: &str) -> Result<u32, ControlError> {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| ControlError(format!("no process named `{name}`")))
    }

    async fn signal_until(
        &self,
        name: &str,
        sig: Signal,
        done: fn(u32) -> bool,
        within: Duration,
    ) -> Result<(), ControlError> {
        let pid = self.pid(name)?;
        if !proc::signal(pid, sig) {
            return Err(ControlError(format!("{name} (pid {pid}) does not exist")));
        }
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if done(pid) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(ControlError(format!(
            "{name} (pid {pid}) did not react to {sig}"
        )))
    }
}

fn running(pid: u32) -> bool {
    !proc::is_dead(pid) && !proc::is_stopped(pid)
}

impl NodeControl for PidControl {
    fn nodes(&self) -> Vec<NodeProcess> {
        self.nodes
            .iter()
            .map(|(name, pid)| NodeProcess {
                name: name.clone(),
                role: name.parse::<Role>().unwrap_or(if name.contains("prefill") {
                    Role::Prefill
                } else {
                    Role::Decode
                }),
                group: 0,
                pid: (!proc::is_dead(*pid)).then_some(*pid),
            })
            .collect()
    }
    fn kill<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.signal_until(name, Signal::SIGKILL, proc::is_dead, Duration::from_secs(5)))
    }
    fn stop<'a>(
        &'a self,
        name: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            if self
                .signal_until(name, Signal::SIGTERM, proc::is_dead, grace)
                .await
                .is_ok()
            {
                return Ok(());
            }
            self.signal_until(name, Signal::SIGKILL, proc::is_dead, Duration::from_secs(5))
                .await
        })
    }
    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.signal_until(
            name,
            Signal::SIGSTOP,
            proc::is_stopped,
            Duration::from_secs(2),
        ))
    }
    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.signal_until(name, Signal::SIGCONT, running, Duration::from_secs(2)))
    }
    fn restart<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            Err(ControlError(format!(
                "cannot restart {name}: it was not started by pdchaos"
            )))
        })
    }
    fn scale<'a>(
        &'a self,
        role: Role,
        _replicas: usize,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            Err(ControlError(format!(
                "cannot scale {role}: processes given by --pid"
            )))
        })
    }
    fn link_proxies(&self) -> Vec<LinkProxy> {
        Vec::new()
    }
    fn toxiproxy_api(&self) -> Option<String> {
        None
    }
}
