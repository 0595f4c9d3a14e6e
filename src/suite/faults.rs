//! The fault phrases the scenarios use, turned into fault specs.

use crate::fault::control::NodeProcess;
use crate::fault::model::{FaultId, FaultKind, FaultSpec, FaultTarget, Link, Stream, Toxic};
use crate::pd::Role;
use std::time::Duration;

/// Every phrase understood after "When", for docs/steps.md and error messages.
pub const PHRASES: [&str; 9] = [
    "the prefill node is killed",
    "a decode node is paused",
    "every prefill node is stopped",
    "the KV link is cut",
    "the KV link is slowed by 120 ms",
    "the KV link bandwidth drops to 50 KB/s",
    "the router to prefill link is cut",
    "the router to decode link is cut",
    "group 0 is down",
];

/// Parses a fault phrase into specs (one per node for group faults).
pub fn parse(
    phrase: &str,
    ids: &mut dyn FnMut(&str) -> String,
    duration: Option<Duration>,
    nodes: &[NodeProcess],
) -> Result<Vec<FaultSpec>, String> {
    let p = phrase.trim();
    let words: Vec<&str> = p.split_whitespace().collect();
    let spec = |id: String, kind: FaultKind, target: FaultTarget| FaultSpec {
        id: FaultId(id),
        kind,
        target,
        duration,
    };
    let link_toxic = |t: Toxic| FaultKind::Toxic {
        toxic: t,
        stream: Stream::Downstream,
        toxicity: 1.0,
    };
    let kv = FaultTarget::Link {
        link: Link::DecodePrefillKv,
        node: None,
    };
    match words.as_slice() {
        [
            det @ ("the" | "a" | "every"),
            role @ ("prefill" | "decode"),
            "node" | "nodes",
            "is" | "are",
            action,
        ] => {
            let role: Role = role.parse()?;
            let target = if *det == "every" {
                FaultTarget::AllOf { role }
            } else {
                FaultTarget::Role { role }
            };
            let kind = match *action {
                "killed" => FaultKind::Kill,
                "paused" => FaultKind::Pause,
                "stopped" => FaultKind::Stop {
                    grace: Duration::from_secs(2),
                },
                "restarted" => FaultKind::Restart,
                other => {
                    return Err(format!(
                        "unknown node fault `{other}` (killed, paused, stopped, restarted)"
                    ));
                }
            };
            Ok(vec![spec(ids(action), kind, target)])
        }
        ["the", "KV", "link", "is", "cut"] => {
            Ok(vec![spec(ids("kv-cut"), FaultKind::Partition, kv)])
        }
        ["the", "KV", "link", "is", "slowed", "by", ms, "ms"] => {
            let latency = ms
                .parse()
                .map_err(|_| format!("`{ms}` is not a number of ms"))?;
            Ok(vec![spec(
                ids("kv-slow"),
                link_toxic(Toxic::Latency { latency, jitter: 0 }),
                kv,
            )])
        }
        [
            "the",
            "KV",
            "link",
            "bandwidth",
            "drops",
            "to",
            rate,
            "KB/s",
        ] => {
            let rate = rate
                .parse()
                .map_err(|_| format!("`{rate}` is not a number of KB/s"))?;
            Ok(vec![spec(
                ids("kv-bw"),
                link_toxic(Toxic::Bandwidth { rate }),
                kv,
            )])
        }
        [
            "the",
            "router",
            "to",
            side @ ("prefill" | "decode"),
            "link",
            "is",
            "cut",
        ] => {
            let link = if *side == "prefill" {
                Link::RouterPrefill
            } else {
                Link::RouterDecode
            };
            Ok(vec![spec(
                ids("router-cut"),
                FaultKind::Partition,
                FaultTarget::Link { link, node: None },
            )])
        }
        ["group", g, "is", "down"] => {
            let g: u32 = g
                .parse()
                .map_err(|_| format!("`{g}` is not a group number"))?;
            let nodes: Vec<String> = nodes
                .iter()
                .filter(|n| n.group == g && n.role != Role::Router)
                .map(|n| n.name.clone())
                .collect();
            if nodes.is_empty() {
                return Err(format!("the deployment has no group {g}"));
            }
            Ok(nodes
                .into_iter()
                .map(|name| {
                    spec(
                        ids("group-down"),
                        FaultKind::Kill,
                        FaultTarget::Node { name },
                    )
                })
                .collect())
        }
        _ => Err(format!(
            "unknown fault `{p}`; known: {}",
            PHRASES.join("; ")
        )),
    }
}
