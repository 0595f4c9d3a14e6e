//! The Kubernetes fault backend: pods deleted or evicted by label selector, workloads scaled
//! (Deployment, StatefulSet, LeaderWorkerSet through the dynamic API), P and D partitioned by a
//! NetworkPolicy. Toxiproxy inside the cluster is reached by the ordinary Toxiproxy client.
//!
//! Safety comes first, because the cluster is a shared staging cluster:
//! - [`connect`] refuses any kubeconfig context but the one the target file allow-lists;
//! - every call goes through [`KubeFaults::namespace`], which refuses namespaces outside the
//!   target file's list, so a typo cannot reach another team's workloads;
//! - the calls made are exactly [`crate::target::rbac::RUNNER_CALLS`] (the mock tests record
//!   every request and check it against that list, and `tests/manifests.rs` checks the Role);
//! - [`plan`] only reads, so `--dry-run` can show the exact writes it would make.
//!
//! Verification reads the cluster back: a deleted pod is gone, replaced (new uid) or
//! terminating; a scaled workload reports the ready replicas asked for; a NetworkPolicy exists.
//! Whether the CNI enforces NetworkPolicies cannot be read from the API (docs/rbac.md says so).

mod ops;
pub mod plan;
pub mod selector;

pub use ops::api_err;
pub use plan::KubePlan;

use crate::target::{IN_CLUSTER, KubeTarget};
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use std::time::Duration;

/// Why a Kubernetes action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{0}")]
    NotReady(String),
    #[error("kubeconfig: {0}")]
    Config(String),
}

/// Checks that the kubeconfig's current context is the allow-listed one.
pub fn check_context(kc: &Kubeconfig, allowed: &str) -> Result<(), KubeError> {
    let current = kc.current_context.as_deref().unwrap_or("(none)");
    if current != allowed {
        return Err(KubeError::Refused(format!(
            "the current kubeconfig context is `{current}`, the target file allows only \
             `{allowed}` (kubectl config use-context {allowed})"
        )));
    }
    if !kc.contexts.iter().any(|c| c.name == allowed) {
        return Err(KubeError::Config(format!("no context named `{allowed}`")));
    }
    Ok(())
}

/// Connects with the allow-listed context (or the pod's ServiceAccount for [`IN_CLUSTER`]).
pub async fn connect(target: &KubeTarget) -> Result<KubeFaults, KubeError> {
    let config = if target.context == IN_CLUSTER {
        Config::incluster().map_err(|e| KubeError::Config(e.to_string()))?
    } else {
        let kc = Kubeconfig::read().map_err(|e| KubeError::Config(e.to_string()))?;
        check_context(&kc, &target.context)?;
        let opts = KubeConfigOptions {
            context: Some(target.context.clone()),
            ..Default::default()
        };
        Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?
    };
    let client = Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
    Ok(KubeFaults::new(client, target.clone()))
}

/// The Kubernetes side of the nemesis, bound to one target file's allow-list.
#[derive(Clone)]
pub struct KubeFaults {
    client: Client,
    target: KubeTarget,
    /// How often readiness is polled.
    pub poll: Duration,
    /// How long healing waits for pods and replicas to be ready before reporting a leftover.
    pub ready_timeout: Duration,
}

impl std::fmt::Debug for KubeFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeFaults")
            .field("context", &self.target.context)
            .field("namespaces", &self.target.namespaces)
            .finish_non_exhaustive()
    }
}

impl KubeFaults {
    /// A backend over an existing client (tests pass a tower-test mock here).
    pub fn new(client: Client, target: KubeTarget) -> KubeFaults {
        KubeFaults {
            client,
            target,
            poll: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(300),
        }
    }

    /// The client, for the runner's other cluster work (the load Job).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn target(&self) -> &KubeTarget {
        &self.target
    }

    /// The namespace to act in (`None`: the target's first), refused outside the allow-list.
    pub fn namespace(&self, ns: Option<&str>) -> Result<String, KubeError> {
        let ns = ns.unwrap_or(self.target.default_namespace());
        if self.target.namespaces.iter().any(|n| n == ns) {
            Ok(ns.to_string())
        } else {
            Err(KubeError::Refused(format!(
                "namespace `{ns}` is not in the target file's allow-list {:?}",
                self.target.namespaces
            )))
        }
    }
}
