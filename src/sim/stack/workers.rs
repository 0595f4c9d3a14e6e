//! How a worker is made ready to start: its name, its free ports, its command line, its
//! Toxiproxy proxies and what the router is told about it; and how groups split prompts.

use crate::fault::model::{Link, LinkProxy};
use crate::pd::Role;
use crate::sim::health::WorkerSpec;
use crate::sim::router::GroupSpec;
use crate::sim::wiring::Toxi;
use std::net::SocketAddr;

use super::{SimError, Slot, StackConfig};

pub(super) fn free_addr() -> Result<SocketAddr, SimError> {
    crate::net::free_loopback_addr().map_err(|e| SimError::Spawn {
        node: "port".into(),
        reason: e.to_string(),
    })
}

/// `decode-2`, or with groups `g1-decode-2`: the `i`th node of `role` in group `g`.
pub(super) fn node_name(cfg: &StackConfig, g: u32, role: Role, i: usize) -> String {
    if cfg.groups > 1 {
        format!("g{g}-{}-{i}", role.as_str())
    } else {
        format!("{}-{i}", role.as_str())
    }
}

/// One worker made ready to start: its slot (no process yet), what the router is told about
/// it, and the Toxiproxy proxies that carry its links.
pub(super) struct NewWorker {
    pub(super) slot: Slot,
    pub(super) spec: WorkerSpec,
    pub(super) proxies: Vec<LinkProxy>,
}

/// Picks free ports for worker `name` and, with Toxiproxy, creates its proxies
/// (`router-<name>`, and `kv-<name>` for a prefill node).
pub(super) async fn new_worker(
    cfg: &StackConfig,
    toxi: Option<&Toxi>,
    role: Role,
    group: u32,
    name: String,
) -> Result<NewWorker, SimError> {
    let listen = free_addr()?;
    let mut args = vec![
        "sim".into(),
        role.as_str().into(),
        "--name".into(),
        name.clone(),
        "--listen".into(),
        listen.to_string(),
        "--profile".into(),
        cfg.profile.clone(),
    ];
    let mut http = listen;
    let mut kv = None;
    let mut proxies = Vec::new();
    if role == Role::Prefill {
        let kv_listen = free_addr()?;
        args.extend(["--kv-listen".into(), kv_listen.to_string()]);
        kv = Some(kv_listen);
    }
    if role == Role::Decode {
        if cfg.breaks.decode.drop_answer {
            args.extend(["--break".into(), "drop-answer-after-thinking".into()]);
        }
        if cfg.breaks.decode.no_done {
            args.extend(["--break".into(), "no-done".into()]);
        }
    }
    if let Some(t) = toxi {
        let link = if role == Role::Prefill {
            Link::RouterPrefill
        } else {
            Link::RouterDecode
        };
        let p = t.proxy(&format!("router-{name}"), listen).await?;
        proxies.push(LinkProxy {
            link,
            node: name.clone(),
            proxy: p.0.clone(),
        });
        http = p.1;
        if let Some(k) = kv {
            let p = t.proxy(&format!("kv-{name}"), k).await?;
            proxies.push(LinkProxy {
                link: Link::DecodePrefillKv,
                node: name.clone(),
                proxy: p.0.clone(),
            });
            kv = Some(p.1);
            // vLLM's router learns the KV address from the prefill node itself.
            args.extend(["--kv-advertise".into(), p.1.to_string()]);
        }
    }
    let spec = WorkerSpec {
        name: name.clone(),
        url: format!("http://{http}"),
        kv_host: kv.map(|a| a.ip().to_string()),
        kv_port: kv.map(|a| a.port()),
    };
    Ok(NewWorker {
        slot: Slot {
            name,
            role,
            group,
            args,
            http,
            child: None,
            worker: Some(spec.clone()),
            grown: false,
            listed: true,
        },
        spec,
        proxies,
    })
}

/// Splits prompt lengths into one bucket per group (group 0 the shortest prompts).
pub(super) fn assign_buckets(groups: &mut [GroupSpec]) {
    if groups.len() < 2 {
        return;
    }
    const EDGES: [u64; 6] = [0, 512, 2048, 8192, 32768, u64::MAX];
    let n = groups.len();
    for (i, g) in groups.iter_mut().enumerate() {
        let lo = EDGES[i.min(EDGES.len() - 2)];
        let hi = if i + 1 == n {
            u64::MAX
        } else {
            EDGES[(i + 1).min(EDGES.len() - 1)]
        };
        g.bucket = Some((lo, hi));
    }
}
