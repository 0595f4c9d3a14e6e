//! The fault model shared by every backend (process, Toxiproxy, Kubernetes).
//!
//! A fault is data: a kind with its parameters, a target, an optional duration and an id. Backends
//! turn it into actions and must verify, by reading the system back, that it is in effect before
//! reporting it applied, and that it is gone before reporting it healed. Every state change is
//! also a [`TimelineEvent`], so checks can tell which requests were sent during a fault.

use crate::clock::Micros;
use crate::pd::Role;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A fault's identity within a run; also the journal key used to heal it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub String);

impl std::fmt::Display for FaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network path between two parts of the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Router to prefill HTTP (requests and health checks).
    RouterPrefill,
    /// Router to decode HTTP (requests and health checks).
    RouterDecode,
    /// Decode fetching KV from prefill (the KV-transfer / bootstrap port).
    DecodePrefillKv,
}

/// A Toxiproxy proxy that carries one link of one node, so link faults can find their proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkProxy {
    pub link: Link,
    /// The node at the far end of the link (the prefill node for a KV link).
    pub node: String,
    /// The proxy's name in the Toxiproxy API.
    pub proxy: String,
}

/// What a fault acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultTarget {
    /// One node of the role, chosen by the backend (the first healthy one, deterministically).
    Role { role: Role },
    /// Every node of the role.
    AllOf { role: Role },
    /// A node by name (e.g. `prefill-0`, or a pod name).
    Node { name: String },
    /// A link; `node` narrows it to the link of one node (e.g. `prefill-1`), else all such links.
    Link {
        link: Link,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
}

/// Direction of a Toxiproxy toxic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

/// A Toxiproxy toxic with its attributes (the names follow Toxiproxy's REST API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum Toxic {
    Latency {
        latency: u64,
        #[serde(default)]
        jitter: u64,
    },
    Bandwidth {
        rate: u64,
    },
    SlowClose {
        delay: u64,
    },
    /// `timeout: 0` holds data forever: a blackhole.
    Timeout {
        timeout: u64,
    },
    ResetPeer {
        #[serde(default)]
        timeout: u64,
    },
    Slicer {
        average_size: u64,
        #[serde(default)]
        size_variation: u64,
        #[serde(default)]
        delay: u64,
    },
    LimitData {
        bytes: u64,
    },
}

/// What the fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL the process / delete the pod with grace 0.
    Kill,
    /// SIGTERM with a grace period / delete the pod with grace.
    Stop {
        #[serde(with = "humantime_serde_compat")]
        grace: Duration,
    },
    /// SIGSTOP: a hung node that still holds its sockets. Healed by SIGCONT.
    Pause,
    /// Kill and start again; heals itself once the node is healthy.
    Restart,
    /// Scale a role to `replicas`; healed by scaling back to the count before.
    Scale { replicas: u32 },
    /// Pod eviction through the Eviction API.
    Evict,
    /// The link is down (Toxiproxy proxy disabled; NetworkPolicy on Kubernetes).
    Partition,
    /// A toxic on the link.
    Toxic {
        toxic: Toxic,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f32,
    },
}

fn one() -> f32 {
    1.0
}

/// A fault to apply: kind, target, optional duration (it heals itself when this ends), id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub id: FaultId,
    #[serde(flatten)]
    pub kind: FaultKind,
    pub target: FaultTarget,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde_compat::option"
    )]
    pub duration: Option<Duration>,
}

/// A step in a fault's life, as written to the journal and the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    /// Written before any action: the intent (so a crash mid-apply can still be healed).
    Planned,
    /// The action was taken.
    Applied,
    /// The fault was read back from the system and is in effect.
    Verified,
    /// The heal action was taken.
    Healed,
    /// The system was read back and is as before the fault.
    HealVerified,
    /// Healing failed or could not be verified: a leftover someone must look at.
    HealFailed,
}

/// One action that undoes (part of) a fault, recorded before the fault is applied so that a
/// later process (`pdchaos heal`) can heal it without the runner that applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Undo {
    /// SIGCONT a paused process.
    Resume { node: String, pid: u32 },
    /// Start a killed or stopped node again (needs the stack that owns it).
    Restart { node: String },
    /// Scale a role back to its previous replica count (needs the stack that owns it).
    Scale { role: Role, replicas: usize },
    /// Re-enable a disabled Toxiproxy proxy.
    EnableProxy { api: String, proxy: String },
    /// Remove a toxic by name.
    RemoveToxic {
        api: String,
        proxy: String,
        toxic: String,
    },
    /// Wait until `selector` in `namespace` has `ready` Ready pods again: the controller
    /// replaces a deleted or evicted pod, and healing means it did. `removed` are the pods the
    /// fault took away (checked gone when verifying the fault).
    PodsReady {
        namespace: String,
        selector: String,
        ready: usize,
        removed: Vec<PodRef>,
    },
    /// Scale a Kubernetes workload back to its replica count before the fault.
    ScaleWorkload {
        namespace: String,
        kind: crate::target::WorkloadKind,
        name: String,
        replicas: u32,
    },
    /// Delete the NetworkPolicy that partitions two roles.
    DeleteNetworkPolicy { namespace: String, name: String },
}

/// A pod as the fault layer saw it before acting: the uid tells a replacement with the same
/// name (a StatefulSet's) from the pod that was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

/// One line of the fault timeline (and of the journal file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub ts_us: Micros,
    pub fault: FaultId,
    pub phase: FaultPhase,
    /// The full spec on `Planned`; omitted on later phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<FaultSpec>,
    /// On `Planned`: how to heal it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undo: Vec<Undo>,
    /// Free text: what was read back, what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Durations as human text ("500ms", "2s") in JSON and YAML.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let text = Option::<String>::deserialize(d)?;
            text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_as_json() {
        let spec = FaultSpec {
            id: FaultId("f1".into()),
            kind: FaultKind::Toxic {
                toxic: Toxic::Latency {
                    latency: 200,
                    jitter: 10,
                },
                stream: Stream::Upstream,
                toxicity: 1.0,
            },
            target: FaultTarget::Link {
                link: Link::DecodePrefillKv,
                node: None,
            },
            duration: Some(Duration::from_secs(5)),
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains("\"duration\":\"5s\""), "{text}");
        let back: FaultSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
    }
}
