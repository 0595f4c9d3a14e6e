//! The seam between the fault layer and whatever runs the nodes' processes.
//!
//! The local stack ([`crate::sim`]) implements [`NodeControl`]; the process backend of the fault
//! layer resolves a fault's target to node names, journals, calls these methods, and then verifies
//! the effect itself from `/proc` rather than trusting the implementation.

use crate::fault::model::LinkProxy;
use crate::pd::Role;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so [`NodeControl`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a control action failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String);

/// One node process as the controller sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProcess {
    /// Stable name, e.g. `prefill-0`, `decode-1`, `router`; with groups `g1-prefill-0`.
    pub name: String,
    pub role: Role,
    /// Group index (0 when the layout has one group).
    pub group: u32,
    /// OS process id while running; `None` after it was killed or stopped.
    pub pid: Option<u32>,
}

/// Process-level control of a running deployment.
pub trait NodeControl: Send + Sync {
    /// Every node, running or not, in a stable order.
    fn nodes(&self) -> Vec<NodeProcess>;
    /// How many nodes of `role` have a process (what a scale fault sets and its undo restores).
    fn running(&self, role: Role) -> usize {
        self.nodes()
            .iter()
            .filter(|n| n.role == role && n.pid.is_some())
            .count()
    }
    /// SIGKILL the node; returns once the process has exited and been reaped.
    fn kill<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>>;
    /// SIGTERM, then SIGKILL after `grace`; returns once the process has exited.
    fn stop<'a>(
        &'a self,
        name: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ControlError>>;
    /// SIGSTOP: the process stays, holding its sockets, but does nothing.
    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>>;
    /// SIGCONT after a pause.
    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>>;
    /// Start a stopped or killed node again on its old ports; returns once it is healthy.
    fn restart<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>>;
    /// Start or stop nodes of `role` until `replicas` run; returns once they are healthy.
    fn scale<'a>(&'a self, role: Role, replicas: usize) -> BoxFuture<'a, Result<(), ControlError>>;
    /// The Toxiproxy proxies that carry the deployment's links (empty without Toxiproxy).
    fn link_proxies(&self) -> Vec<LinkProxy>;
    /// Base URL of the Toxiproxy API that owns [`NodeControl::link_proxies`], if any.
    fn toxiproxy_api(&self) -> Option<String>;
}
