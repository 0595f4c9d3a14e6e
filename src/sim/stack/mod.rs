//! The orchestrator: starts a whole local P/D deployment as child processes and controls it.
//!
//! Every node runs as `<binary> sim prefill|decode|router ...` on free loopback ports. The stack
//! waits for health before returning, kills every child on shutdown and on drop, and children
//! die with their parent (PDEATHSIG) even if it is SIGKILLed. It implements
//! [`NodeControl`](crate::fault::control::NodeControl) so the fault layer can kill, pause,
//! restart and scale nodes.
//!
//! The router is ours (`pdchaos sim router`) or a real one ([`RouterKind`]): SGLang's model
//! gateway or vLLM's router, started as `pdchaos sim exec -- <router> ...` so it too dies with
//! the stack, with its health-check and retry flags from [`real_router_args`] (docs/routers.md).
//!
//! Files by concern: `config` (what to start), `routers` (the real routers' command lines),
//! `workers` (ports, names, proxies of one worker), `observe` (mode and status read back),
//! `scale` (growing and shrinking), `routing` (the router's worker list), `control` (the
//! `NodeControl` impl).

mod config;
mod control;
mod observe;
mod routers;
mod routing;
mod scale;
mod workers;

pub use config::{Breaks, SimError, StackConfig};
pub use routers::{RouterKind, find_router, real_router_args};

use crate::fault::control::ControlError;
use crate::fault::model::LinkProxy;
use crate::pd::Role;
use crate::sim::health::WorkerSpec;
use crate::sim::router::{GroupSpec, RouterBreaks, RouterConfig};
use crate::sim::wiring::Toxi;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use workers::{assign_buckets, free_addr, new_worker, node_name};

/// Environment variable naming the parent pid; a node seeing it dies with that parent.
pub const PARENT_ENV: &str = "PDCHAOS_PARENT_PID";

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
    /// Made by `scale` beyond the start layout: the router's config does not list it, so a
    /// restarted router is told of it again.
    grown: bool,
    /// The router routes to this worker: the start layout from the router's config, a grown
    /// node once registered. `scale` removes a node it stops and adds it back when it starts it
    /// again (not behind vllm-router, which takes no changes: there it stays true).
    listed: bool,
}

struct Inner {
    cfg: StackConfig,
    /// A std mutex, never held across an await: `nodes()` is sync and must always see every
    /// slot, so every holder is short and none can leave it locked while it waits.
    slots: std::sync::Mutex<Vec<Slot>>,
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
            listed: false,
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
            listed: false,
        });
        let stack = Stack {
            inner: Arc::new(Inner {
                cfg,
                slots: std::sync::Mutex::new(Vec::new()),
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
            let mut guard = stack.slots();
            if let Some(t) = toxi_slot.take() {
                guard.push(t);
            }
            for mut s in slots {
                s.child = Some(stack.spawn(&s.name, &s.args)?);
                guard.push(s);
            }
        }
        let names: Vec<(String, SocketAddr)> = stack
            .slots()
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
            if let Some(status) = self.exit_status(name) {
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
    fn exit_status(&self, name: &str) -> Option<std::process::ExitStatus> {
        let mut slots = self.slots();
        let slot = slots.iter_mut().find(|s| s.name == name)?;
        slot.child.as_mut()?.try_wait().ok().flatten()
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

    /// The pids of every running process (for leak checks).
    pub async fn pids(&self) -> Vec<u32> {
        self.slots()
            .iter()
            .filter_map(|s| s.child.as_ref().and_then(Child::id))
            .collect()
    }

    /// Kills every process and waits for each to exit.
    pub async fn shutdown(&self) {
        let children: Vec<Child> = self
            .slots()
            .iter_mut()
            .filter_map(|s| s.child.take())
            .collect();
        for mut c in children {
            if let Some(pid) = c.id() {
                crate::sim::proc::signal(pid, nix::sys::signal::Signal::SIGCONT);
            }
            let _ = c.kill().await;
        }
    }

    /// The slots, locked for a moment: the guard is not `Send`, so it cannot be held across an
    /// await in the stack's futures. A panic while holding it left the slots whole (every
    /// change is one push or one field), so a poisoned lock is used as it is.
    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_slot<T>(&self, name: &str, f: impl FnOnce(&mut Slot) -> T) -> Result<T, ControlError> {
        let mut slots = self.slots();
        let slot = slots
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| ControlError(format!("no node named `{name}`")))?;
        Ok(f(slot))
    }
    async fn pid_of(&self, name: &str) -> Result<u32, ControlError> {
        self.with_slot(name, |s| s.child.as_ref().and_then(Child::id))?
            .ok_or_else(|| ControlError(format!("{name} is not running")))
    }
}
