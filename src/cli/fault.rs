//! `pdchaos fault apply|list`, `pdchaos heal`, `pdchaos toxiproxy`.

use crate::cli::bad_input;
use crate::fault::control::NodeControl;
use crate::fault::kube::{self, KubeFaults};
use crate::fault::model::{
    FaultId, FaultKind, FaultSpec, FaultTarget, Link, LinkProxy, Stream, Toxic,
};
use crate::fault::nemesis::{self, Nemesis};
use crate::fault::pids::PidControl;
use crate::target::port_forward::PortForward;
use crate::target::{Target, load_target};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where faults are journalled unless `--journal` says otherwise.
/// The same file `pdchaos run` journals to with its default `--out pdchaos-out`.
pub const DEFAULT_JOURNAL: &str = "pdchaos-out/journal.jsonl";

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Apply one fault, verify it, and (with --duration) heal it when the duration ends.
    #[command(after_long_help = "Examples:\n  \
        pdchaos fault apply --kind pause --pid decode-0=4242 --duration 10s\n  \
        pdchaos fault apply --kind partition --toxiproxy http://127.0.0.1:8474 --proxy kv-prefill-0\n  \
        pdchaos fault apply --kind latency --latency-ms 200 --toxiproxy URL --proxy kv-prefill-0 --duration 30s\n  \
        pdchaos fault apply --target targets/llm-d.yaml --kind kill --role decode --dry-run\n  \
        pdchaos fault apply --target targets/llm-d.yaml --kind scale --role decode --replicas 1 --duration 2m\n  \
        pdchaos fault apply --target targets/pdchaos-k8s.yaml --kind partition --link kv --duration 30s\n  \
        pdchaos heal                  heals what a fault without --duration (or a killed runner) left\n  \
        pdchaos heal --target FILE    the same for pod, scale and NetworkPolicy faults on a cluster")]
    Apply(Box<ApplyArgs>),
    /// List the faults in the journal and whether each was healed.
    List(JournalArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Kill,
    Stop,
    Pause,
    /// Kill and wait until it (or its replacement pod) is back.
    Restart,
    /// Kubernetes only: the Eviction API (honours PodDisruptionBudgets).
    Evict,
    /// Kubernetes only: scale the role's workload to --replicas.
    Scale,
    Partition,
    Blackhole,
    Latency,
    Bandwidth,
    SlowClose,
    Slicer,
    LimitData,
    ResetPeer,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LinkArg {
    RouterPrefill,
    RouterDecode,
    /// Decode fetching KV from prefill.
    Kv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StreamArg {
    Upstream,
    Downstream,
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    /// The fault journal (JSONL).
    #[arg(long, default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// A Kubernetes target file: pod, scale and partition faults act on that cluster (only its
    /// allow-listed context and namespaces), link toxics on its Toxiproxy.
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// With --target: the role whose pods (first ready one, or --all) the fault hits.
    #[arg(long, value_parser = ["prefill", "decode", "router"])]
    pub role: Option<String>,
    /// With --target and --role: every pod of the role, not only the first ready one.
    #[arg(long)]
    pub all: bool,
    /// With --target: one pod by name.
    #[arg(long)]
    pub node: Option<String>,
    /// With --target: the link a partition or toxic acts on.
    #[arg(long, value_enum)]
    pub link: Option<LinkArg>,
    /// With --kind scale: the replica count.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Process faults: the process as NAME=PID (repeatable; the fault hits every one given).
    #[arg(long = "pid", value_name = "NAME=PID")]
    pub pids: Vec<String>,
    /// Network faults: the Toxiproxy API.
    #[arg(long)]
    pub toxiproxy: Option<String>,
    /// Network faults: the proxy that carries the link.
    #[arg(long)]
    pub proxy: Option<String>,
    /// Heal after this long (e.g. 10s); without it the fault stays until `pdchaos heal`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// SIGTERM grace for --kind stop.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Bandwidth in KB/s.
    #[arg(long, default_value_t = 0)]
    pub rate_kbps: u64,
    /// slow_close / slicer delay (ms for slow_close, µs for slicer).
    #[arg(long, default_value_t = 0)]
    pub delay: u64,
    /// limit_data: bytes before the connection is closed.
    #[arg(long, default_value_t = 0)]
    pub bytes: u64,
    #[arg(long, default_value_t = 64)]
    pub average_size: u64,
    #[arg(long, value_enum, default_value = "downstream")]
    pub stream: StreamArg,
    #[arg(long, default_value_t = 1.0)]
    pub toxicity: f32,
    /// Fault id (default: kind and time).
    #[arg(long)]
    pub id: Option<String>,
    /// Print each planned action (signals, API calls, heals) and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    #[arg(long, default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
    /// A Kubernetes target file: needed to heal pod, scale and NetworkPolicy faults (only its
    /// allow-listed context and namespaces are touched).
    #[arg(long)]
    pub target: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_long_help = "Drive it with any Toxiproxy client, e.g. the Python one:\n  \
    pdchaos toxiproxy --listen 127.0.0.1:8474 &\n  \
    python3 -c 'from toxiproxy import Toxiproxy; t = Toxiproxy(); print(t.version())'"
)]
pub struct ToxiproxyArgs {
    /// Address of the REST API (Toxiproxy's default port is 8474; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: String,
    /// JSON array of proxies to create at start: [{"name","listen","upstream","enabled"?}].
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(cmd: FaultCommand) -> anyhow::Result<i32> {
    match cmd {
        FaultCommand::Apply(a) => apply(*a).await,
        FaultCommand::List(a) => {
            let events =
                crate::fault::journal::read(&a.journal).map_err(|e| bad_input(e.to_string()))?;
            let open = crate::fault::journal::unhealed(&events);
            let mut seen = std::collections::BTreeSet::new();
            for e in &events {
                if seen.insert(e.fault.clone()) {
                    let state = if open.iter().any(|o| o.id == e.fault) {
                        "OPEN"
                    } else {
                        "healed"
                    };
                    let what = e
                        .spec
                        .as_ref()
                        .map(|s| format!("{:?} on {:?}", s.kind, s.target))
                        .unwrap_or_default();
                    println!("{:<7} {:<28} {what}", state, e.fault.0);
                }
            }
            if seen.is_empty() {
                println!("no faults in {}", a.journal.display());
            }
            Ok(0)
        }
    }
}

/// A fault from the command line, the process control it needs, and the proxies it may use.
type Planned = (FaultSpec, Option<Arc<dyn NodeControl>>, Vec<LinkProxy>);

fn spec_from(a: &ApplyArgs) -> anyhow::Result<Planned> {
    let id = FaultId(a.id.clone().unwrap_or_else(|| {
        format!("{:?}-{}", a.kind, crate::clock::now_us() / 1000).to_lowercase()
    }));
    let stream = match a.stream {
        StreamArg::Upstream => Stream::Upstream,
        StreamArg::Downstream => Stream::Downstream,
    };
    let toxic = |t: Toxic| FaultKind::Toxic {
        toxic: t,
        stream,
        toxicity: a.toxicity,
    };
    let kind = match a.kind {
        KindArg::Kill => FaultKind::Kill,
        KindArg::Restart => FaultKind::Restart,
        KindArg::Evict => FaultKind::Evict,
        KindArg::Scale => FaultKind::Scale {
            replicas: a
                .replicas
                .ok_or_else(|| bad_input("--kind scale needs --replicas N"))?,
        },
        KindArg::Stop => FaultKind::Stop { grace: a.grace },
        KindArg::Pause => FaultKind::Pause,
        KindArg::Partition => FaultKind::Partition,
        KindArg::Blackhole => toxic(Toxic::Timeout { timeout: 0 }),
        KindArg::Latency => toxic(Toxic::Latency {
            latency: a.latency_ms,
            jitter: a.jitter_ms,
        }),
        KindArg::Bandwidth => toxic(Toxic::Bandwidth { rate: a.rate_kbps }),
        KindArg::SlowClose => toxic(Toxic::SlowClose { delay: a.delay }),
        KindArg::Slicer => toxic(Toxic::Slicer {
            average_size: a.average_size,
            size_variation: 0,
            delay: a.delay,
        }),
        KindArg::LimitData => toxic(Toxic::LimitData { bytes: a.bytes }),
        KindArg::ResetPeer => toxic(Toxic::ResetPeer { timeout: a.delay }),
    };
    if a.target.is_some() {
        let target = cluster_target(a, &kind)?;
        return Ok((
            FaultSpec {
                id,
                kind,
                target,
                duration: a.duration,
            },
            None,
            vec![],
        ));
    }
    if matches!(kind, FaultKind::Evict | FaultKind::Scale { .. }) {
        return Err(bad_input(
            "--kind evict|scale act on Kubernetes: give --target FILE",
        ));
    }
    let is_process = matches!(
        kind,
        FaultKind::Kill | FaultKind::Stop { .. } | FaultKind::Pause | FaultKind::Restart
    );
    if is_process {
        if a.pids.is_empty() {
            return Err(bad_input("--kind kill|stop|pause needs --pid NAME=PID"));
        }
        let mut nodes = Vec::new();
        for p in &a.pids {
            let (n, pid) = p
                .split_once('=')
                .ok_or_else(|| bad_input(format!("--pid `{p}` must be NAME=PID")))?;
            let pid: u32 = pid
                .parse()
                .map_err(|_| bad_input(format!("--pid `{p}`: `{pid}` is not a process id")))?;
            nodes.push((n.to_string(), pid));
        }
        let target = FaultTarget::Node {
            name: nodes[0].0.clone(),
        };
        let control: Arc<dyn NodeControl> = Arc::new(PidControl::new(nodes));
        return Ok((
            FaultSpec {
                id,
                kind,
                target,
                duration: a.duration,
            },
            Some(control),
            vec![],
        ));
    }
    let (Some(_), Some(proxy)) = (&a.toxiproxy, &a.proxy) else {
        return Err(bad_input(
            "network faults need --toxiproxy URL and --proxy NAME",
        ));
    };
    let links = vec![LinkProxy {
        link: Link::DecodePrefillKv,
        node: proxy.clone(),
        proxy: proxy.clone(),
    }];
    let target = FaultTarget::Link {
        link: Link::DecodePrefillKv,
        node: Some(proxy.clone()),
    };
    Ok((
        FaultSpec {
            id,
            kind,
            target,
            duration: a.duration,
        },
        None,
        links,
    ))
}

/// The target of a fault on a cluster, from --role/--all/--node or --link.
fn cluster_target(a: &ApplyArgs, kind: &FaultKind) -> anyhow::Result<FaultTarget> {
    let network = matches!(kind, FaultKind::Partition | FaultKind::Toxic { .. });
    if network {
        let link = match a.link {
            Some(LinkArg::RouterPrefill) => Link::RouterPrefill,
            Some(LinkArg::RouterDecode) => Link::RouterDecode,
            Some(LinkArg::Kv) => Link::DecodePrefillKv,
            None => return Err(bad_input("network faults with --target need --link")),
        };
        return Ok(FaultTarget::Link {
            link,
            node: a.node.clone(),
        });
    }
    match (&a.role, &a.node) {
        (Some(r), None) => {
            let role: crate::pd::Role = r.parse().map_err(bad_input)?;
            Ok(if a.all {
                FaultTarget::AllOf { role }
            } else {
                FaultTarget::Role { role }
            })
        }
        (None, Some(name)) => Ok(FaultTarget::Node { name: name.clone() }),
        _ => Err(bad_input(
            "pod faults with --target need one of --role ROLE or --node POD",
        )),
    }
}

async fn apply(a: ApplyArgs) -> anyhow::Result<i32> {
    let (spec, control, links) = spec_from(&a)?;
    let mut nemesis = Nemesis::new(&a.journal, control)?;
    if let Some(api) = &a.toxiproxy {
        nemesis = nemesis.with_toxiproxy(api, links);
    }
    let mut _forward = None;
    if let Some(path) = &a.target {
        let (kube, pf) = connect_kube(path).await?;
        _forward = pf;
        if let Some(t) = &kube.target().toxiproxy {
            nemesis = nemesis.with_toxiproxy(&t.api, t.proxies.clone());
        }
        nemesis = nemesis.with_kube(kube);
    }
    let id = spec.id.clone();
    let duration = spec.duration;
    if a.dry_run {
        for step in nemesis.dry_run(&spec).await? {
            println!("would: {step}");
        }
        return Ok(0);
    }
    nemesis.apply(spec).await?;
    println!(
        "fault {id} applied and verified (journal {})",
        a.journal.display()
    );
    let Some(d) = duration else {
        println!(
            "it stays until `pdchaos heal --journal {}`",
            a.journal.display()
        );
        return Ok(0);
    };
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: healing now"),
    }
    let report = nemesis.heal(&id).await?;
    if report.is_clean() {
        println!("fault {id} healed and verified");
        Ok(0)
    } else {
        eprintln!("HEAL FAILED: {}", report.leftovers.join("; "));
        Ok(1)
    }
}

pub async fn heal(args: HealArgs) -> anyhow::Result<i32> {
    let kube = match &args.target {
        Some(t) => Some(connect_kube(t).await?),
        None => None,
    };
    let healers = nemesis::Healers {
        control: None,
        kube: kube.as_ref().map(|k| &k.0),
    };
    let report = nemesis::heal_journal(&args.journal, healers)
        .await
        .map_err(|e| bad_input(e.to_string()))?;
    for id in &report.healed {
        println!("healed {id}");
    }
    if report.is_clean() {
        if report.healed.is_empty() {
            println!("nothing to heal in {}", args.journal.display());
        }
        Ok(0)
    } else {
        for l in &report.leftovers {
            eprintln!("COULD NOT HEAL: {l}");
        }
        Ok(1)
    }
}

pub async fn toxiproxy(args: ToxiproxyArgs) -> anyhow::Result<i32> {
    crate::sim::proc::die_with_parent();
    crate::fault::toxiproxy::cli::run(&args.listen, args.config.as_deref()).await
}

/// The cluster backend for a `--target` file, which must be a Kubernetes one, and the
/// `kubectl port-forward` to its Toxiproxy when the file asks for one (kept while it lives).
pub async fn connect_kube(
    path: &std::path::Path,
) -> anyhow::Result<(KubeFaults, Option<PortForward>)> {
    let target = load_target(path).map_err(|e| bad_input(e.to_string()))?;
    let Target::Kubernetes(k) = target else {
        return Err(bad_input(format!(
            "{}: --target must be a Kubernetes target file here",
            path.display()
        )));
    };
    connect_cluster(path, &k).await
}

/// [`connect_kube`] for a target already read from `path` (named in errors).
pub async fn connect_cluster(
    path: &std::path::Path,
    k: &crate::target::KubeTarget,
) -> anyhow::Result<(KubeFaults, Option<PortForward>)> {
    let kube = kube::connect(k)
        .await
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let pf = crate::target::port_forward::start(k)
        .await
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    Ok((kube, pf))
}
