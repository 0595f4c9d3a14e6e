//! The Kubernetes API calls the runner may make, as (API group, resource, verb).
//!
//! One list, checked from both sides: `tests/manifests.rs` proves the shipped Role grants exactly
//! these, and the kube fault backend's mock tests (`tests/kube_mock.rs`) assert that the calls
//! they record are exactly these: a new call without a Role change, or a grant nothing uses,
//! fails a test instead of a staging run.

/// One API call as RBAC sees it; `group` is `""` for the core API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    pub group: &'static str,
    /// Plural resource, with `/subresource` when one is used (`pods/eviction`).
    pub resource: &'static str,
    pub verb: &'static str,
}

const fn call(group: &'static str, resource: &'static str, verb: &'static str) -> ApiCall {
    ApiCall {
        group,
        resource,
        verb,
    }
}

/// Every call the runner needs: pod kill/evict by selector, scale and wait, NetworkPolicy
/// partition, LeaderWorkerSet scaling through the dynamic API, the distributed load Job.
pub const RUNNER_CALLS: &[ApiCall] = &[
    call("", "pods", "get"),
    call("", "pods", "list"),
    call("", "pods", "delete"),
    call("", "pods/eviction", "create"),
    call("apps", "deployments", "get"),
    call("apps", "statefulsets", "get"),
    call("apps", "deployments/scale", "get"),
    call("apps", "deployments/scale", "patch"),
    call("apps", "statefulsets/scale", "get"),
    call("apps", "statefulsets/scale", "patch"),
    call("networking.k8s.io", "networkpolicies", "create"),
    call("networking.k8s.io", "networkpolicies", "delete"),
    call("networking.k8s.io", "networkpolicies", "get"),
    call("leaderworkerset.x-k8s.io", "leaderworkersets", "get"),
    call("leaderworkerset.x-k8s.io", "leaderworkersets", "patch"),
    // Distributed load (`kubernetes.load`): the Indexed Job of load shards and their logs.
    call("batch", "jobs", "create"),
    call("batch", "jobs", "get"),
    call("batch", "jobs", "delete"),
    call("", "pods/log", "get"),
];

/// True when the shipped Role allows this call.
pub fn permitted(group: &str, resource: &str, verb: &str) -> bool {
    RUNNER_CALLS
        .iter()
        .any(|c| c.group == group && c.resource == resource && c.verb == verb)
}

/// Maps a recorded HTTP request (method + path, as a tower-test mock sees it) to its RBAC call,
/// e.g. `DELETE /api/v1/namespaces/ns/pods/p` -> (`""`, `pods`, `delete`). `None` for paths
/// that are not namespaced resource paths.
pub fn classify(method: &str, path: &str) -> Option<(String, String, String)> {
    let path = path.split('?').next()?;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/namespaces/NS/RES[/NAME[/SUB]] or /apis/GROUP/VERSION/namespaces/NS/RES[...]
    let (group, rest) = match *parts.first()? {
        "api" => ("".to_string(), parts.get(2..)?),
        "apis" => (parts.get(1)?.to_string(), parts.get(3..)?),
        _ => return None,
    };
    if rest.first() != Some(&"namespaces") {
        return None;
    }
    let resource = rest.get(2)?;
    let named = rest.get(3).is_some();
    let resource = match rest.get(4) {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group, resource, verb.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_requests_map_to_rbac_calls() {
        let c = |m, p| classify(m, p).unwrap();
        let t = |g: &str, r: &str, v: &str| (g.to_string(), r.to_string(), v.to_string());
        assert_eq!(
            c(
                "GET",
                "/api/v1/namespaces/ns/pods?&labelSelector=role%3Dprefill"
            ),
            t("", "pods", "list")
        );
        assert_eq!(
            c("DELETE", "/api/v1/namespaces/ns/pods/p-0"),
            t("", "pods", "delete")
        );
        assert_eq!(
            c("POST", "/api/v1/namespaces/ns/pods/p-0/eviction"),
            t("", "pods/eviction", "create")
        );
        assert_eq!(
            c(
                "PATCH",
                "/apis/apps/v1/namespaces/ns/deployments/decode/scale"
            ),
            t("apps", "deployments/scale", "patch")
        );
        assert_eq!(
            c(
                "PATCH",
                "/apis/leaderworkerset.x-k8s.io/v1/namespaces/ns/leaderworkersets/p"
            ),
            t("leaderworkerset.x-k8s.io", "leaderworkersets", "patch")
        );
        assert_eq!(classify("GET", "/version"), None);
    }

    #[test]
    fn permitted_is_exact() {
        assert!(permitted("", "pods", "delete"));
        assert!(!permitted("", "pods", "deletecollection"));
        assert!(!permitted("apps", "deployments", "delete"));
        assert!(!permitted("", "secrets", "get"));
    }
}
