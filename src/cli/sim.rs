//! `pdchaos sim ...`: the local P/D stack, whole (`up`) or one node at a time.

use crate::cli::bad_input;
use crate::pd::Role;
use crate::sim::node::{self, NodeConfig};
use crate::sim::profile::Profile;
use crate::sim::router::{self, Policy, RouterConfig};
use crate::sim::stack::{Breaks, RouterKind, Stack, StackConfig};
use crate::sim::tokens::GenBreaks;
use clap::{Args, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Start a whole P/D deployment on loopback, print its endpoints, stop it on Ctrl-C.
    #[command(after_long_help = "Examples:\n  \
        pdchaos sim up                                   1 prefill + 1 decode, profile tiny\n  \
        pdchaos sim up --prefill 2 --decode 4 --groups 2 --profile thinking\n  \
        pdchaos sim up --break ignore-kv-cut             a broken router, to see the suite fail\n  \
        pdchaos sim up --router sglang                   SGLang's gateway in front (docs/routers.md)\n\n\
        Then: pdchaos load --url <printed URL> --model sim -c 8 -n 100")]
    Up(UpArgs),
    /// Run one prefill node.
    Prefill(NodeArgs),
    /// Run one decode node.
    Decode(NodeArgs),
    /// Run the router with a YAML/JSON config (as `sim up` writes it).
    Router(RouterArgs),
    /// Run another program (a real router) so that it dies with the stack that started it.
    #[command(hide = true)]
    Exec(ExecArgs),
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Which router fronts the workers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RouterArg {
    /// `pdchaos sim router`.
    Builtin,
    /// SGLang model gateway (`sglang-router launch --pd-disaggregation`).
    Sglang,
    /// `vllm-router --vllm-pd-disaggregation`.
    Vllm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    RoundRobin,
    LeastLoad,
    PrefixAffinity,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Prefill nodes per group.
    #[arg(long, default_value_t = 1)]
    pub prefill: usize,
    /// Decode nodes per group.
    #[arg(long, default_value_t = 1)]
    pub decode: usize,
    /// Groups (each serves one prompt-length bucket first).
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Model profile: tiny, thinking, or a YAML file.
    #[arg(long, default_value = "tiny")]
    pub profile: String,
    #[arg(long, value_enum, default_value = "round-robin")]
    pub policy: PolicyArg,
    /// The router in front: ours, or a real one found via $PDCHAOS_SGLANG_ROUTER /
    /// $PDCHAOS_VLLM_ROUTER, PATH, ./.venv or ./.venv-routers (docs/routers.md).
    #[arg(long, value_enum, default_value = "builtin")]
    pub router: RouterArg,
    /// Router health-check interval.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,
    /// Connect nodes directly instead of through the embedded Toxiproxy (no link faults).
    #[arg(long)]
    pub no_toxiproxy: bool,
    /// Break the stack on purpose (repeatable): no-fallback-on-prefill-death, ignore-kv-cut,
    /// never-recover, drop-answer-after-thinking, no-done.
    #[arg(long = "break", value_name = "NAME")]
    pub breaks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub listen: SocketAddr,
    /// Prefill only: the KV-transfer (bootstrap) port.
    #[arg(long)]
    pub kv_listen: Option<SocketAddr>,
    /// Prefill only: the KV address to tell decode nodes (a proxy in front of --kv-listen).
    #[arg(long)]
    pub kv_advertise: Option<SocketAddr>,
    #[arg(long, default_value = "tiny")]
    pub profile: String,
    /// Decode defects: drop-answer-after-thinking, no-done.
    #[arg(long = "break", value_name = "NAME")]
    pub breaks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    #[arg(long)]
    pub config: PathBuf,
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<i32> {
    match cmd {
        SimCommand::Up(a) => up(a).await,
        SimCommand::Prefill(a) => node(a, Role::Prefill).await,
        SimCommand::Decode(a) => node(a, Role::Decode).await,
        SimCommand::Exec(a) => exec(a),
        SimCommand::Router(a) => {
            crate::sim::proc::die_with_parent();
            let text = std::fs::read_to_string(&a.config)
                .map_err(|e| bad_input(format!("--config {}: {e}", a.config.display())))?;
            let cfg: RouterConfig = serde_saphyr::from_str(&text).map_err(|e| {
                bad_input(format!(
                    "--config {}: {}",
                    a.config.display(),
                    one_line(&e.to_string())
                ))
            })?;
            router::run(cfg).await?;
            Ok(0)
        }
    }
}

/// Replaces this process with `a.command` after asking the kernel to kill it when the stack
/// that started it dies (the death signal survives `execve`).
fn exec(a: ExecArgs) -> anyhow::Result<i32> {
    crate::sim::proc::die_with_parent();
    let args: Vec<std::ffi::CString> = a
        .command
        .iter()
        .map(|s| std::ffi::CString::new(s.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad_input("sim exec: an argument contains a NUL byte"))?;
    let err = nix::unistd::execvp(&args[0], &args).unwrap_err();
    Err(bad_input(format!(
        "sim exec: cannot run {}: {err}",
        a.command[0]
    )))
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

async fn node(a: NodeArgs, role: Role) -> anyhow::Result<i32> {
    crate::sim::proc::die_with_parent();
    let profile = Profile::load(&a.profile).map_err(|e| bad_input(e.to_string()))?;
    let mut breaks = GenBreaks::default();
    for b in &a.breaks {
        match b.as_str() {
            "drop-answer-after-thinking" => breaks.drop_answer = true,
            "no-done" => breaks.no_done = true,
            other => {
                return Err(bad_input(format!(
                    "--break `{other}` is not a node defect (drop-answer-after-thinking, no-done)"
                )));
            }
        }
    }
    if role == Role::Prefill && a.kv_listen.is_none() {
        return Err(bad_input(
            "a prefill node needs --kv-listen ADDR (its KV-transfer port)",
        ));
    }
    node::run(NodeConfig {
        name: a.name,
        role,
        listen: a.listen,
        kv_listen: a.kv_listen,
        kv_advertise: a.kv_advertise,
        profile,
        breaks,
    })
    .await?;
    Ok(0)
}

async fn up(a: UpArgs) -> anyhow::Result<i32> {
    let mut cfg = StackConfig::new(std::env::current_exe()?);
    cfg.prefill = a.prefill;
    cfg.decode = a.decode;
    cfg.groups = a.groups;
    cfg.profile = a.profile;
    cfg.health_interval = a.health_interval;
    cfg.toxiproxy = !a.no_toxiproxy;
    cfg.router = match a.router {
        RouterArg::Builtin => RouterKind::Builtin,
        RouterArg::Sglang => RouterKind::Sglang,
        RouterArg::Vllm => RouterKind::Vllm,
    };
    cfg.policy = match a.policy {
        PolicyArg::RoundRobin => Policy::RoundRobin,
        PolicyArg::LeastLoad => Policy::LeastLoad,
        PolicyArg::PrefixAffinity => Policy::PrefixAffinity,
    };
    let mut breaks = Breaks::default();
    for b in &a.breaks {
        breaks
            .set(b)
            .map_err(|e| bad_input(format!("--break: {e}")))?;
    }
    cfg.breaks = breaks;
    Profile::load(&cfg.profile).map_err(|e| bad_input(format!("--profile: {e}")))?;
    eprintln!(
        "starting {} group(s) of {}P/{}D (profile {}, router {}) ...",
        cfg.groups,
        cfg.prefill,
        cfg.decode,
        cfg.profile,
        cfg.router.as_str()
    );
    let stack = Stack::start(cfg).await.map_err(|e| match e {
        crate::sim::stack::SimError::Invalid(m) => bad_input(m),
        e @ crate::sim::stack::SimError::RouterMissing(..) => bad_input(e.to_string()),
        other => other.into(),
    })?;
    println!("OpenAI API:  {}", stack.base_url());
    match stack.router_command() {
        None => println!(
            "router:      {}",
            stack.base_url().replace("/v1", "/status")
        ),
        Some(cmd) => println!("router:      {cmd}"),
    }
    if let Some(api) = crate::fault::control::NodeControl::toxiproxy_api(&stack) {
        println!("toxiproxy:   {api}");
    }
    for n in crate::fault::control::NodeControl::nodes(&stack) {
        println!(
            "node:        {:<14} {:<8} pid {}",
            n.name,
            n.role,
            n.pid.map_or("-".into(), |p| p.to_string())
        );
    }
    println!("Ctrl-C stops everything.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stack.shutdown().await;
    eprintln!("stopped.");
    Ok(0)
}
