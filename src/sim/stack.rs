//! The orchestrator: starts a whole local P/D deployment as child processes and controls it.
//!
//! Every node runs as `<binary> sim prefill|decode|router ...` on free loopback ports. The stack
//! waits for health before returning, kills every child on shutdown and on drop, and children
//! die with their parent (PDEATHSIG) even if it is SIGKILLed. It implements
//! [`NodeControl`] so the fault layer can kill, pause, restart and scale nodes.
//!
//! The router is ours (`pdchaos sim router`) or a real one ([`RouterKind`]): SGLang's model
//! gateway or vLLM's router, started as `pdchaos sim exec -- <router> ...` so it too dies with
//! the stack, with its health-check and retry flags from [`real_router_args`] (docs/routers.md).

use crate::fault::control::{BoxFuture, ControlError, NodeControl, NodeProcess};
use crate::fault::model::{Link, LinkProxy};
use crate::pd::Role;
use crate::sim::health::WorkerSpec;
use crate::sim::router::{GroupSpec, Policy, RouterBreaks, RouterConfig};
use crate::sim::tokens::GenBreaks;
use crate::sim::wiring::Toxi;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// Environment variable naming the parent pid; a node seeing it dies with that parent.
pub const PARENT_ENV: &str = "PDCHAOS_PARENT_PID";

/// Deliberate defects of the whole stack, for the suite's honesty tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaks {
    pub router: RouterBreaks,
    pub decode: GenBreaks,
}

impl Breaks {
    /// Parses a `--break` name (see `pdchaos sim up --help`).
    pub fn set(&mut self, name: &str) -> Result<(), String> {
        match name {
            "no-fallback-on-prefill-death" => self.router.no_fallback_on_prefill_death = true,
            "ignore-kv-cut" => self.router.ignore_kv_cut = true,
            "never-recover" => self.router.never_recover = true,
            "drop-answer-after-thinking" => self.decode.drop_answer = true,
            "no-done" => self.decode.no_done = true,
            other => {
                return Err(format!(
                    "unknown break `{other}` (known: {})",
                    Breaks::NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub const NAMES: [&'static str; 5] = [
        "no-fallback-on-prefill-death",
        "ignore-kv-cut",
        "never-recover",
        "drop-answer-after-thinking",
        "no-done",
    ];
}

/// Which router fronts the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RouterKind {
    /// `pdchaos sim router`.
    #[default]
    Builtin,
    /// SGLang model gateway, `sglang-router launch --pd-disaggregation`.
    Sglang,
    /// `vllm-router --vllm-pd-disaggregation`.
    Vllm,
}

impl RouterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouterKind::Builtin => "builtin",
            RouterKind::Sglang => "sglang",
            RouterKind::Vllm => "vllm",
        }
    }

    /// The environment variable naming the router's executable.
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            RouterKind::Builtin => None,
            RouterKind::Sglang => Some("PDCHAOS_SGLANG_ROUTER"),
            RouterKind::Vllm => Some("PDCHAOS_VLLM_ROUTER"),
        }
    }

    /// The console script the PyPI package installs.
    pub fn executable(self) -> Option<&'static str> {
        match self {
            RouterKind::Builtin => None,
            RouterKind::Sglang => Some("sglang-router"),
            RouterKind::Vllm => Some("vllm-router"),
        }
    }

    /// The pinned PyPI package (what `.ci/run` installs).
    pub fn package(self) -> Option<&'static str> {
        match self {
            RouterKind::Builtin => None,
            RouterKind::Sglang => Some("sglang-router==0.3.2"),
            RouterKind::Vllm => Some("vllm-router==0.1.17"),
        }
    }
}

/// Finds a real router's executable: `$PDCHAOS_SGLANG_ROUTER` / `$PDCHAOS_VLLM_ROUTER`, then
/// PATH, then `./.venv/bin` and `./.venv-routers/bin`. The error is one line naming all three.
pub fn find_router(kind: RouterKind) -> Result<PathBuf, String> {
    let (Some(var), Some(exe), Some(pkg)) = (kind.env_var(), kind.executable(), kind.package())
    else {
        return Err("the builtin router is the pdchaos binary itself".into());
    };
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("${var}={}: not an executable file", p.display()))
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend([
        PathBuf::from(".venv/bin"),
        PathBuf::from(".venv-routers/bin"),
    ]);
    dirs.into_iter()
        .map(|d| d.join(exe))
        .find(|p| is_executable(p))
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .ok_or_else(|| {
            format!("{exe} not found: set ${var}, put it on PATH, or `.venv/bin/pip install {pkg}`")
        })
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The command line of a real router in PD mode in front of `prefill` (worker URL, KV port as
/// the decode side reaches it) and `decode` (worker URLs). The health, retry and circuit-breaker
/// flags are the settings we judge best and honest for a small P/D deployment (docs/routers.md
/// explains each); both routers take the same names.
pub fn real_router_args(
    kind: RouterKind,
    exe: &std::path::Path,
    listen: SocketAddr,
    metrics: SocketAddr,
    prefill: &[(String, u16)],
    decode: &[String],
    policy: Policy,
) -> Vec<String> {
    let mut a: Vec<String> = vec![exe.display().to_string()];
    match kind {
        RouterKind::Sglang => a.extend(["launch".into(), "--pd-disaggregation".into()]),
        _ => a.push("--vllm-pd-disaggregation".into()),
    }
    let policy = match policy {
        Policy::RoundRobin => "round_robin",
        Policy::LeastLoad => "power_of_two",
        Policy::PrefixAffinity => "cache_aware",
    };
    let flags: [(&str, String); 20] = [
        ("--host", listen.ip().to_string()),
        ("--port", listen.port().to_string()),
        ("--prometheus-host", metrics.ip().to_string()),
        ("--prometheus-port", metrics.port().to_string()),
        ("--policy", policy.into()),
        ("--health-check-interval-secs", "1".into()),
        ("--health-check-timeout-secs", "1".into()),
        ("--health-failure-threshold", "2".into()),
        ("--health-success-threshold", "1".into()),
        ("--retry-max-retries", "3".into()),
        ("--retry-initial-backoff-ms", "50".into()),
        ("--retry-max-backoff-ms", "500".into()),
        ("--cb-failure-threshold", "3".into()),
        ("--cb-success-threshold", "1".into()),
        ("--cb-timeout-duration-secs", "5".into()),
        ("--cb-window-duration-secs", "30".into()),
        ("--request-timeout-secs", "60".into()),
        ("--worker-startup-timeout-secs", "30".into()),
        ("--worker-startup-check-interval", "1".into()),
        (
            "--log-level",
            if kind == RouterKind::Vllm {
                "warning"
            } else {
                "warn"
            }
            .into(),
        ),
    ];
    for (k, v) in flags {
        a.extend([k.to_string(), v]);
    }
    for (url, kv_port) in prefill {
        a.extend(["--prefill".into(), url.clone(), kv_port.to_string()]);
    }
    for url in decode {
        a.extend(["--decode".into(), url.clone()]);
    }
    a
}

/// The shape of a local deployment.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Prefill and decode nodes per group.
    pub prefill: usize,
    pub decode: usize,
    pub groups: usize,
    /// Profile name (`tiny`, `thinking`) or YAML path.
    pub profile: String,
    pub policy: Policy,
    pub health_interval: Duration,
    /// Route the links through an embedded Toxiproxy, so link faults can be injected.
    pub toxiproxy: bool,
    pub breaks: Breaks,
    /// The router in front of the workers.
    pub router: RouterKind,
    /// The pdchaos executable to start nodes with.
    pub binary: PathBuf,
}

impl StackConfig {
    pub fn new(binary: impl Into<PathBuf>) -> StackConfig {
        StackConfig {
            prefill: 1,
            decode: 1,
            groups: 1,
            profile: "tiny".into(),
            policy: Policy::RoundRobin,
            health_interval: Duration::from_millis(200),
            toxiproxy: true,
            breaks: Breaks::default(),
            router: RouterKind::Builtin,
            binary: binary.into(),
        }
    }
}

/// Why the stack could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot start {node}: {reason}")]
    Spawn { node: String, reason: String },
    #[error("{node} did not become healthy within {secs} s")]
    Unhealthy { node: String, secs: u64 },
    #[error("invalid stack: {0}")]
    Invalid(String),
    #[error("toxiproxy: {0}")]
    Proxy(String),
    #[error("--router {0}: {1}")]
    RouterMissing(&'static str, String),
}

struct Slot {
    name: String,
    role: Role,
    group: u32,
    args: Vec<String>,
    /// The address the router (and the health checks) use: a proxy when Toxiproxy is on.
    http: SocketAddr,
    child: Option<Child>,
    /// What the router is told about this worker (None for the router and Toxiproxy).
    worker: Option<WorkerSpec>,
    /// Started by `scale` beyond the start layout: the router is told of it while it runs.
    grown: bool,
}

struct Inner {
    cfg: StackConfig,
    slots: Mutex<Vec<Slot>>,
    router_addr: SocketAddr,
    /// Grows when the stack scales a role beyond its start layout.
    proxies: std::sync::Mutex<Vec<LinkProxy>>,
    toxi: Option<Toxi>,
    /// Held by `scale`, so two scalings do not create the same node.
    scaling: Mutex<()>,
    /// A real router's command line (None for ours).
    router_cmd: Option<String>,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

/// A running local deployment. Cheap to clone; the last clone dropped kills every process.
#[derive(Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

fn free_addr() -> Result<SocketAddr, SimError> {
    crate::net::free_loopback_addr().map_err(|e| SimError::Spawn {
        node: "port".into(),
        reason: e.to_string(),
    })
}

/// `decode-2`, or with groups `g1-decode-2`: the `i`th node of `role` in group `g`.
fn node_name(cfg: &StackConfig, g: u32, role: Role, i: usize) -> String {
    if cfg.groups > 1 {
        format!("g{g}-{}-{i}", role.as_str())
    } else {
        format!("{}-{i}", role.as_str())
    }
}

/// One worker made ready to start: its slot (no process yet), what the router is told about
/// it, and the Toxiproxy proxies that carry its links.
struct NewWorker {
    slot: Slot,
    spec: WorkerSpec,
    proxies: Vec<LinkProxy>,
}

/// Picks free ports for worker `name` and, with Toxiproxy, creates its proxies
/// (`router-<name>`, and `kv-<name>` for a prefill node).
async fn new_worker(
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
        },
        spec,
        proxies,
    })
}

impl Stack {
    /// Starts every node on free ports and waits until the router serves disaggregated.
    pub async fn start(cfg: StackConfig) -> Result<Stack, SimError> {
        if cfg.prefill + cfg.decode == 0 || cfg.groups == 0 {
            return Err(SimError::Invalid(
                "need at least one node and one group".into(),
            ));
        }
        crate::sim::profile::Profile::load(&cfg.profile)
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        let real_router = match cfg.router {
            RouterKind::Builtin => None,
            kind => {
                if cfg.groups > 1 {
                    return Err(SimError::Invalid(format!(
                        "--router {}: a real router fronts one pool of workers; use --groups 1",
                        kind.as_str()
                    )));
                }
                if cfg.breaks.router != RouterBreaks::default() {
                    return Err(SimError::Invalid(format!(
                        "--router {}: the router --break variants belong to the builtin router",
                        kind.as_str()
                    )));
                }
                if cfg.prefill == 0 || cfg.decode == 0 {
                    return Err(SimError::Invalid(format!(
                        "--router {}: PD mode needs at least one prefill and one decode node",
                        kind.as_str()
                    )));
                }
                Some(find_router(kind).map_err(|e| SimError::RouterMissing(kind.as_str(), e))?)
            }
        };
        let dir = tempfile::tempdir().map_err(|e| SimError::Invalid(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        let mut slots = Vec::new();
        let mut proxies = Vec::new();
        let mut groups = Vec::new();
        let (toxi, toxi_child) = if cfg.toxiproxy {
            let (t, c) = Toxi::start(&cfg.binary).await?;
            (Some(t), Some(c))
        } else {
            (None, None)
        };
        for g in 0..cfg.groups {
            let mut spec = GroupSpec {
                name: format!("g{g}"),
                prefill: vec![],
                decode: vec![],
                bucket: None,
            };
            for (role, count) in [(Role::Prefill, cfg.prefill), (Role::Decode, cfg.decode)] {
                for i in 0..count {
                    let name = node_name(&cfg, g as u32, role, i);
                    let w = new_worker(&cfg, toxi.as_ref(), role, g as u32, name).await?;
                    proxies.extend(w.proxies);
                    match role {
                        Role::Prefill => spec.prefill.push(w.spec),
                        _ => spec.decode.push(w.spec),
                    }
                    slots.push(w.slot);
                }
            }
            groups.push(spec);
        }
        assign_buckets(&mut groups);
        let router_addr = free_addr()?;
        let router_cfg = RouterConfig {
            listen: router_addr,
            groups,
            policy: cfg.policy,
            health_interval: cfg.health_interval,
            breaks: cfg.breaks.router,
        };
        let mut router_cmd = None;
        let router_args = if let Some(exe) = &real_router {
            let g = &router_cfg.groups[0];
            let prefill: Vec<(String, u16)> = g
                .prefill
                .iter()
                .map(|w| (w.url.clone(), w.kv_port.unwrap_or(0)))
                .collect();
            let decode: Vec<String> = g.decode.iter().map(|w| w.url.clone()).collect();
            let cmd = real_router_args(
                cfg.router,
                exe,
                router_addr,
                free_addr()?,
                &prefill,
                &decode,
                cfg.policy,
            );
            router_cmd = Some(cmd.join(" "));
            let mut args = vec!["sim".into(), "exec".into(), "--".into()];
            args.extend(cmd);
            args
        } else {
            let cfg_path = dir.path().join("router.json");
            std::fs::write(
                &cfg_path,
                serde_json::to_vec_pretty(&router_cfg).unwrap_or_default(),
            )
            .map_err(|e| SimError::Invalid(e.to_string()))?;
            vec![
                "sim".into(),
                "router".into(),
                "--config".into(),
                cfg_path.display().to_string(),
            ]
        };
        slots.push(Slot {
            name: "router".into(),
            role: Role::Router,
            group: 0,
            args: router_args,
            http: router_addr,
            child: None,
            worker: None,
            grown: false,
        });
        let mut toxi_slot = toxi.as_ref().zip(toxi_child).map(|(t, c)| Slot {
            name: "toxiproxy".into(),
            role: Role::Router,
            group: 0,
            args: vec!["toxiproxy".into(), "--listen".into(), t.addr.to_string()],
            http: t.addr,
            child: Some(c),
            worker: None,
            grown: false,
        });
        let stack = Stack {
            inner: Arc::new(Inner {
                cfg,
                slots: Mutex::new(Vec::new()),
                router_addr,
                proxies: std::sync::Mutex::new(proxies),
                toxi,
                scaling: Mutex::new(()),
                router_cmd,
                _dir: dir,
                client,
            }),
        };
        {
            let mut guard = stack.inner.slots.lock().await;
            if let Some(t) = toxi_slot.take() {
                guard.push(t);
            }
            for mut s in slots {
                s.child = Some(stack.spawn(&s.name, &s.args)?);
                guard.push(s);
            }
        }
        let names: Vec<(String, SocketAddr)> = stack
            .inner
            .slots
            .lock()
            .await
            .iter()
            .map(|s| (s.name.clone(), s.http))
            .collect();
        for (name, addr) in names {
            stack
                .wait_healthy(&name, addr, Duration::from_secs(30))
                .await?;
        }
        stack
            .wait_mode("disaggregated", Duration::from_secs(10))
            .await?;
        Ok(stack)
    }

    fn spawn(&self, name: &str, args: &[String]) -> Result<Child, SimError> {
        Command::new(&self.inner.cfg.binary)
            .args(args)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SimError::Spawn {
                node: name.into(),
                reason: e.to_string(),
            })
    }

    async fn wait_healthy(
        &self,
        name: &str,
        addr: SocketAddr,
        within: Duration,
    ) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + within;
        let url = if name == "toxiproxy" {
            format!("http://{addr}/version")
        } else {
            format!("http://{addr}/health")
        };
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = self.inner.client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            // A node that exited (it could not bind its port, say) will never answer: say so
            // now, not after the whole wait.
            if let Some(status) = self.exit_status(name).await {
                return Err(SimError::Spawn {
                    node: name.into(),
                    reason: format!("it exited ({status}) before answering; its stderr is above"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(SimError::Unhealthy {
            node: name.into(),
            secs: within.as_secs(),
        })
    }

    /// How node `name`'s process ended, if it has.
    async fn exit_status(&self, name: &str) -> Option<std::process::ExitStatus> {
        let mut slots = self.inner.slots.lock().await;
        let slot = slots.iter_mut().find(|s| s.name == name)?;
        slot.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits until every group of the router reports `mode`. A real router has no `/status`:
    /// then a probe request must be served end to end in `mode` (as the answer's `x_pd` says).
    pub async fn wait_mode(&self, mode: &str, within: Duration) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.inner.cfg.router != RouterKind::Builtin {
                if self.probe_mode().await.as_deref() == Some(mode) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(SimError::Unhealthy {
                        node: format!(
                            "{} router (a probe request served {mode})",
                            self.inner.cfg.router.as_str()
                        ),
                        secs: within.as_secs(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if let Ok(v) = self.status().await
                && let Some(groups) = v["groups"].as_array()
                && groups.iter().all(|g| g["mode"] == mode)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Unhealthy {
                    node: format!("router (mode {mode})"),
                    secs: within.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one short streaming request through the router; the mode its answer's `x_pd`
    /// names, if it ended with `[DONE]`. With the decode workers broken on purpose to end
    /// streams early (`--break no-done`: no `[DONE]`, no usage chunk), the `x-pd-mode` header of
    /// a 2xx answer that streamed at least one chunk.
    pub async fn probe_mode(&self) -> Option<String> {
        let body = serde_json::json!({"model": crate::sim::node::MODEL_ID, "stream": true,
            "max_tokens": 2, "messages": [{"role": "user", "content": "pdchaos readiness probe"}]});
        let r = self
            .inner
            .client
            .post(format!("{}/chat/completions", self.base_url()))
            .timeout(Duration::from_secs(5))
            .json(&body)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let header = r
            .headers()
            .get(crate::pd::HEADER_MODE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = r.text().await.ok()?;
        let mut mode = None;
        let mut done = false;
        for data in text.lines().filter_map(|l| l.strip_prefix("data:")) {
            let data = data.trim();
            if data == "[DONE]" {
                done = true;
            } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(m) = v["x_pd"]["mode"].as_str()
            {
                mode = Some(m.to_string());
            }
        }
        if self.inner.cfg.breaks.decode.no_done {
            let streamed = text.lines().any(|l| l.starts_with("data:"));
            return mode.or(header).filter(|_| streamed);
        }
        mode.filter(|_| done)
    }

    /// Which router fronts the workers.
    pub fn router(&self) -> RouterKind {
        self.inner.cfg.router
    }

    /// A real router's command line, as started (None for the builtin router).
    pub fn router_command(&self) -> Option<String> {
        self.inner.router_cmd.clone()
    }

    /// Base URL of the OpenAI API: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.inner.router_addr)
    }

    /// The router's `/status` as JSON (the builtin router only).
    pub async fn status(&self) -> Result<serde_json::Value, SimError> {
        if self.inner.cfg.router != RouterKind::Builtin {
            return Err(SimError::Invalid(format!(
                "the {} router has no /status; read the workers' /status instead",
                self.inner.cfg.router.as_str()
            )));
        }
        let url = format!("http://{}/status", self.inner.router_addr);
        let r = self
            .inner
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        r.json().await.map_err(|e| SimError::Invalid(e.to_string()))
    }

    /// A worker's own `/status` (name, role, counters), read directly, not through a proxy.
    pub async fn worker_status(&self, name: &str) -> Result<serde_json::Value, SimError> {
        let listen = {
            let slots = self.inner.slots.lock().await;
            let s = slots
                .iter()
                .find(|s| s.name == name && s.role != Role::Router)
                .ok_or_else(|| SimError::Invalid(format!("no worker named `{name}`")))?;
            let i = s.args.iter().position(|a| a == "--listen");
            i.and_then(|i| s.args.get(i + 1)).cloned()
        };
        let listen = listen.ok_or_else(|| SimError::Invalid(format!("{name} has no --listen")))?;
        let r = self
            .inner
            .client
            .get(format!("http://{listen}/status"))
            .send()
            .await
            .map_err(|e| SimError::Invalid(format!("{name} /status: {e}")))?;
        r.json()
            .await
            .map_err(|e| SimError::Invalid(format!("{name} /status: {e}")))
    }

    /// The pids of every running process (for leak checks).
    pub async fn pids(&self) -> Vec<u32> {
        self.inner
            .slots
            .lock()
            .await
            .iter()
            .filter_map(|s| s.child.as_ref().and_then(Child::id))
            .collect()
    }

    /// Kills every process and waits for each to exit.
    pub async fn shutdown(&self) {
        let mut slots = self.inner.slots.lock().await;
        for s in slots.iter_mut() {
            if let Some(mut c) = s.child.take() {
                if let Some(pid) = c.id() {
                    crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGCONT);
                }
                let _ = c.kill().await;
            }
        }
    }

    async fn with_slot<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Slot) -> T,
    ) -> Result<T, ControlError> {
        let mut slots = self.inner.slots.lock().await;
        let slot = slots
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| ControlError(format!("no node named `{name}`")))?;
        Ok(f(slot))
    }

    async fn scale_role(&self, role: Role, replicas: usize) -> Result<(), ControlError> {
        let _one_at_a_time = self.inner.scaling.lock().await;
        let have = self.role_slots(role).await.len();
        if replicas > have {
            self.grow(role, replicas - have).await?;
        }
        let mut started = Vec::new();
        for (i, (name, running, grown)) in self.role_slots(role).await.into_iter().enumerate() {
            match (i < replicas, running) {
                (true, false) => {
                    self.restart(&name).await?;
                    if grown {
                        self.register(&name).await?;
                    }
                    started.push((name, grown));
                }
                (false, true) => {
                    if grown {
                        self.deregister(&name).await?;
                    }
                    self.stop(&name, Duration::from_secs(2)).await?;
                }
                _ => {}
            }
        }
        for (name, grown) in started {
            // A real router takes back a restarted start-layout node by its own health checks,
            // as it always has; a grown one, and every node behind our router, is read back.
            if grown || self.inner.cfg.router == RouterKind::Builtin {
                self.wait_routed(&name, Duration::from_secs(30)).await?;
            }
        }
        Ok(())
    }

    /// (name, running, grown) of every node of `role`, in slot order.
    async fn role_slots(&self, role: Role) -> Vec<(String, bool, bool)> {
        self.inner
            .slots
            .lock()
            .await
            .iter()
            .filter(|s| s.role == role && s.name != "toxiproxy")
            .map(|s| (s.name.clone(), s.child.is_some(), s.grown))
            .collect()
    }

    /// Adds `n` stopped slots of `role`, with their proxies; `scale_role` starts them.
    async fn grow(&self, role: Role, n: usize) -> Result<(), ControlError> {
        let cfg = &self.inner.cfg;
        match (role, cfg.router) {
            (Role::Router, _) => {
                return Err(ControlError(
                    "the local stack runs one router; it cannot scale the router up".into(),
                ));
            }
            (_, RouterKind::Vllm) => {
                return Err(ControlError(format!(
                    "cannot scale {role} beyond the start layout behind vllm-router: in PD mode it refuses new workers over HTTP (`/add_worker` and `POST /workers` answer 400 \"PD router requires specific add_prefill_server or add_decode_server methods\"); start with --{role} N"
                )));
            }
            _ => {}
        }
        for _ in 0..n {
            let (group, index) = {
                let slots = self.inner.slots.lock().await;
                let count = |g: u32| {
                    slots
                        .iter()
                        .filter(|s| s.role == role && s.group == g)
                        .count()
                };
                let g = (0..cfg.groups as u32)
                    .min_by_key(|&g| count(g))
                    .unwrap_or(0);
                (g, count(g))
            };
            let name = node_name(cfg, group, role, index);
            let mut w = new_worker(cfg, self.inner.toxi.as_ref(), role, group, name)
                .await
                .map_err(|e| ControlError(e.to_string()))?;
            w.slot.grown = true;
            match self.inner.proxies.lock() {
                Ok(mut p) => p.extend(w.proxies),
                Err(poisoned) => poisoned.into_inner().extend(w.proxies),
            }
            self.inner.slots.lock().await.push(w.slot);
        }
        Ok(())
    }

    /// The worker spec, group and role of node `name`.
    async fn worker_of(&self, name: &str) -> Result<(WorkerSpec, u32, Role), ControlError> {
        self.with_slot(name, |s| s.worker.clone().map(|w| (w, s.group, s.role)))
            .await?
            .ok_or_else(|| ControlError(format!("{name} is not a worker")))
    }

    /// Tells the router to route to `name` (builtin: `POST /workers`; SGLang's gateway: its
    /// `POST /workers` with `worker_type` and, for prefill, `bootstrap_port`).
    async fn register(&self, name: &str) -> Result<(), ControlError> {
        let (w, group, role) = self.worker_of(name).await?;
        let body = match self.inner.cfg.router {
            RouterKind::Builtin => serde_json::json!({
                "group": format!("g{group}"), "role": role.as_str(), "worker": w,
            }),
            _ => {
                let mut b = serde_json::json!({"url": w.url, "worker_type": role.as_str()});
                if let Some(port) = w.kv_port {
                    b["bootstrap_port"] = port.into();
                }
                b
            }
        };
        let url = format!("http://{}/workers", self.inner.router_addr);
        let r = self
            .inner
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ControlError(format!("router: add {name}: {e}")))?;
        let status = r.status();
        // 409: our router already routes to it (a registration retried after a lost answer).
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        Err(ControlError(format!(
            "router: add {name}: HTTP {status}: {}",
            text.trim()
        )))
    }

    /// Stops the router routing to `name`; with our router, waits up to 2 s for its streams to
    /// end; with SGLang's gateway, until it no longer lists the node. A worker the router does
    /// not list is already removed.
    async fn deregister(&self, name: &str) -> Result<(), ControlError> {
        let (w, _, _) = self.worker_of(name).await?;
        let base = format!("http://{}", self.inner.router_addr);
        let url = match self.inner.cfg.router {
            RouterKind::Builtin => format!("{base}/workers/{name}?drain_ms=2000"),
            _ => match self.router_worker(&w.url).await? {
                Some(entry) => match entry["id"].as_str() {
                    Some(id) => format!("{base}/workers/{id}"),
                    None => return Err(ControlError(format!("router lists {name} without an id"))),
                },
                None => return Ok(()),
            },
        };
        let r = self
            .inner
            .client
            .delete(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| ControlError(format!("router: remove {name}: {e}")))?;
        let status = r.status();
        if status.as_u16() == 404 {
            return Ok(());
        }
        if status.is_success() {
            // SGLang's gateway queues the removal (202): wait until it no longer lists the node.
            if self.inner.cfg.router != RouterKind::Builtin {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while self.router_worker(&w.url).await?.is_some() {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ControlError(format!(
                            "the {} router still lists {name} 10 s after removing it",
                            self.inner.cfg.router.as_str()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        Err(ControlError(format!(
            "router: remove {name}: HTTP {status}: {}",
            text.trim()
        )))
    }

    /// The router's entry for the worker at `url`, from its `GET /workers` (ours lists
    /// `healthy`, SGLang's gateway `is_healthy` and an `id`).
    async fn router_worker(&self, url: &str) -> Result<Option<serde_json::Value>, ControlError> {
        let r = self
            .inner
            .client
            .get(format!("http://{}/workers", self.inner.router_addr))
            .send()
            .await
            .map_err(|e| ControlError(format!("router: GET /workers: {e}")))?;
        let v: serde_json::Value = r
            .json()
            .await
            .map_err(|e| ControlError(format!("router: GET /workers: {e}")))?;
        Ok(v["workers"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["url"] == url).cloned()))
    }

    /// Waits until the router lists `name` as healthy, read back from its `GET /workers`.
    async fn wait_routed(&self, name: &str, within: Duration) -> Result<(), ControlError> {
        let (w, _, _) = self.worker_of(name).await?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(entry)) = self.router_worker(&w.url).await
                && (entry["healthy"] == true || entry["is_healthy"] == true)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError(format!(
                    "the {} router did not route to {name} within {} s",
                    self.inner.cfg.router.as_str(),
                    within.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pid_of(&self, name: &str) -> Result<u32, ControlError> {
        self.with_slot(name, |s| s.child.as_ref().and_then(Child::id))
            .await?
            .ok_or_else(|| ControlError(format!("{name} is not running")))
    }
}

/// Splits prompt lengths into one bucket per group (group 0 the shortest prompts).
fn assign_buckets(groups: &mut [GroupSpec]) {
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

impl NodeControl for Stack {
    fn nodes(&self) -> Vec<NodeProcess> {
        let slots = self.inner.slots.try_lock();
        let Ok(slots) = slots else { return Vec::new() };
        slots
            .iter()
            .filter(|s| s.name != "toxiproxy")
            .map(|s| NodeProcess {
                name: s.name.clone(),
                role: s.role,
                group: s.group,
                pid: s.child.as_ref().and_then(Child::id),
            })
            .collect()
    }

    fn kill<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let mut child = self
                .with_slot(name, |s| s.child.take())
                .await?
                .ok_or_else(|| ControlError(format!("{name} is not running")))?;
            child
                .kill()
                .await
                .map_err(|e| ControlError(format!("kill {name}: {e}")))
        })
    }

    fn stop<'a>(
        &'a self,
        name: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let mut child = self
                .with_slot(name, |s| s.child.take())
                .await?
                .ok_or_else(|| ControlError(format!("{name} is not running")))?;
            if let Some(pid) = child.id() {
                crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            Ok(())
        })
    }

    fn pause<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let pid = self.pid_of(name).await?;
            crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGSTOP);
            Ok(())
        })
    }

    fn resume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let pid = self.pid_of(name).await?;
            crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGCONT);
            Ok(())
        })
    }

    fn restart<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let (old, args, http) = self
                .with_slot(name, |s| (s.child.take(), s.args.clone(), s.http))
                .await?;
            if let Some(mut c) = old {
                let _ = c.kill().await;
            }
            let child = self
                .spawn(name, &args)
                .map_err(|e| ControlError(e.to_string()))?;
            self.with_slot(name, |s| s.child = Some(child)).await?;
            self.wait_healthy(name, http, Duration::from_secs(20))
                .await
                .map_err(|e| ControlError(e.to_string()))?;
            if name == "router" {
                // A restarted router knows only its start layout: tell it of the running nodes
                // that scaling added.
                let grown: Vec<String> = self
                    .inner
                    .slots
                    .lock()
                    .await
                    .iter()
                    .filter(|s| s.grown && s.child.is_some())
                    .map(|s| s.name.clone())
                    .collect();
                for n in &grown {
                    self.register(n).await?;
                }
                for n in &grown {
                    self.wait_routed(n, Duration::from_secs(30)).await?;
                }
            }
            Ok(())
        })
    }

    /// Starts or stops nodes of `role` (in slot order) until `replicas` run. Beyond the start
    /// layout it makes new nodes (`decode-3`, ...; with groups in the group with the fewest),
    /// with their proxies, and tells the router of them; stopping such a node removes it from
    /// the router first and lets its streams drain. Returns once every started node is
    /// healthy and the router routes to it.
    fn scale<'a>(&'a self, role: Role, replicas: usize) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move { self.scale_role(role, replicas).await })
    }

    fn link_proxies(&self) -> Vec<LinkProxy> {
        match self.inner.proxies.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn toxiproxy_api(&self) -> Option<String> {
        self.inner.toxi.as_ref().map(|t| t.api.clone())
    }
}
