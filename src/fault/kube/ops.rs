//! The API calls themselves, one method per call shape, each naming what it did in its error.

use super::{KubeError, KubeFaults, selector};
use crate::fault::model::PodRef;
use crate::target::{WorkloadKind, WorkloadRef};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, EvictParams, GroupVersionKind, ListParams,
    Patch, PatchParams, PostParams,
};
use serde_json::json;

/// Wraps an API error with what was being done (`map_err(api_err("delete pod ns/p"))`).
pub fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let what = what.into();
    move |source| KubeError::Api {
        what,
        source: Box::new(source),
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn lws_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet"),
        "leaderworkersets",
    )
}

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// What a workload reports about its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    pub wanted: u32,
    pub current: u32,
    pub ready: u32,
}

impl KubeFaults {
    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Ready pods matching `sel`, not terminating, sorted by name (so "one of them" is stable).
    pub async fn ready_pods(&self, ns: &str, sel: &str) -> Result<Vec<PodRef>, KubeError> {
        let list = self
            .pods(ns)
            .list(&ListParams::default().labels(sel))
            .await
            .map_err(api_err(format!("list pods {sel} in {ns}")))?;
        let mut pods: Vec<PodRef> = list
            .items
            .iter()
            .filter(|p| pod_ready(p))
            .map(|p| PodRef {
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
            })
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pods)
    }

    /// Deletes a pod with a grace period (0: SIGKILL at once).
    pub async fn delete_pod(&self, ns: &str, name: &str, grace: u32) -> Result<(), KubeError> {
        match self
            .pods(ns)
            .delete(name, &DeleteParams::default().grace_period(grace))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(api_err(format!("delete pod {ns}/{name}"))(e)),
        }
    }

    /// Evicts a pod through the Eviction API (honours PodDisruptionBudgets: a 429 is an error).
    pub async fn evict_pod(&self, ns: &str, name: &str) -> Result<(), KubeError> {
        self.pods(ns)
            .evict(name, &EvictParams::default())
            .await
            .map(|_| ())
            .map_err(api_err(format!("evict pod {ns}/{name}")))
    }

    /// True once the pod is gone, replaced by a new one of the same name, or terminating.
    pub async fn pod_removed(&self, ns: &str, pod: &PodRef) -> Result<bool, KubeError> {
        match self.pods(ns).get_opt(&pod.name).await {
            Ok(None) => Ok(true),
            Ok(Some(p)) => Ok(p.metadata.uid.as_deref() != Some(pod.uid.as_str())
                || p.metadata.deletion_timestamp.is_some()),
            Err(e) => Err(api_err(format!("get pod {ns}/{}", pod.name))(e)),
        }
    }

    /// The workload's replica counts (scale subresource and status).
    pub async fn replicas(&self, ns: &str, w: &WorkloadRef) -> Result<Replicas, KubeError> {
        let what = format!("get {:?} {ns}/{}", w.kind, w.name);
        let n = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
        match w.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                let scale = api.get_scale(&w.name).await.map_err(api_err(&what))?;
                let d = api.get(&w.name).await.map_err(api_err(&what))?;
                let st = d.status.unwrap_or_default();
                Ok(Replicas {
                    wanted: n(scale.spec.and_then(|s| s.replicas)),
                    current: n(st.replicas),
                    ready: n(st.ready_replicas),
                })
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                let scale = api.get_scale(&w.name).await.map_err(api_err(&what))?;
                let s = api.get(&w.name).await.map_err(api_err(&what))?;
                let st = s.status.unwrap_or_default();
                Ok(Replicas {
                    wanted: n(scale.spec.and_then(|s| s.replicas)),
                    current: n(Some(st.replicas)),
                    ready: n(st.ready_replicas),
                })
            }
            WorkloadKind::LeaderWorkerSet => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), ns, &lws_resource());
                let o = api.get(&w.name).await.map_err(api_err(&what))?;
                let field = |path: &str| {
                    o.data
                        .pointer(path)
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0) as u32
                };
                Ok(Replicas {
                    wanted: field("/spec/replicas"),
                    current: field("/status/replicas"),
                    ready: field("/status/readyReplicas"),
                })
            }
        }
    }

    /// Sets the workload's replica count.
    pub async fn set_replicas(
        &self,
        ns: &str,
        w: &WorkloadRef,
        replicas: u32,
    ) -> Result<(), KubeError> {
        let what = format!("scale {:?} {ns}/{} to {replicas}", w.kind, w.name);
        let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
        let pp = PatchParams::default();
        match w.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                api.patch_scale(&w.name, &pp, &patch).await.map(|_| ())
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                api.patch_scale(&w.name, &pp, &patch).await.map(|_| ())
            }
            WorkloadKind::LeaderWorkerSet => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), ns, &lws_resource());
                api.patch(&w.name, &pp, &patch).await.map(|_| ())
            }
        }
        .map_err(api_err(what))
    }

    /// Creates a NetworkPolicy on the pods of `to` that admits every peer except `from`'s pods.
    pub async fn create_partition(
        &self,
        ns: &str,
        name: &str,
        to: &str,
        from: &str,
    ) -> Result<(), KubeError> {
        let to_terms = selector::parse(to).map_err(KubeError::Refused)?;
        let from_terms = selector::parse(from).map_err(KubeError::Refused)?;
        let policy = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some([("app.kubernetes.io/managed-by".into(), "pdchaos".into())].into()),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(selector::label_selector(&to_terms)),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(selector::everyone_but(&from_terms, ns)),
                    ports: None,
                }]),
                egress: None,
            }),
        };
        Api::<NetworkPolicy>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &policy)
            .await
            .map(|_| ())
            .map_err(api_err(format!("create networkpolicy {ns}/{name}")))
    }

    /// Deletes a NetworkPolicy; already gone is fine.
    pub async fn delete_policy(&self, ns: &str, name: &str) -> Result<(), KubeError> {
        match Api::<NetworkPolicy>::namespaced(self.client.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(api_err(format!("delete networkpolicy {ns}/{name}"))(e)),
        }
    }

    /// True when the NetworkPolicy exists.
    pub async fn policy_exists(&self, ns: &str, name: &str) -> Result<bool, KubeError> {
        Api::<NetworkPolicy>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map(|p| p.is_some())
            .map_err(api_err(format!("get networkpolicy {ns}/{name}")))
    }

    /// Polls `check` until it holds or [`KubeFaults::ready_timeout`] passes.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut check: F) -> Result<(), KubeError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>, KubeError>>,
    {
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        loop {
            // `None`: done; `Some(state)`: not yet, and this is what was seen.
            let state = match check().await? {
                None => return Ok(()),
                Some(s) => s,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(KubeError::NotReady(format!(
                    "{what}: not after {} ({state})",
                    humantime::format_duration(self.ready_timeout)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}
