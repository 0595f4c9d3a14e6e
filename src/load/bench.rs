//! `pdchaos bench-client`: how many concurrent streams one client core can measure faithfully.
//!
//! The server ([`crate::load::bench_server`]) runs on its own thread and runtime, pinned to one
//! CPU; the load client runs on a single-threaded runtime pinned to another, so the client's CPU
//! time (getrusage of that thread) and its measurement error (client-seen first token minus the
//! instant the server's write of that token returned, both on one clock) are the client's alone.

use crate::load::bench_server;
use crate::load::client::Timeouts;
use crate::load::engine::{LoadConfig, Shape};
use crate::load::metrics::Hist;
use crate::load::prompts::PromptSource;
use std::fmt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub streams: u32,
    pub tokens_per_s: f64,
    pub tokens: u32,
    pub duration: Duration,
    pub client_threads: usize,
    /// How users join; `None` starts them all at once (a connection storm at t=0).
    pub ramp: Option<crate::load::engine::Ramp>,
    /// Run server and client threads at SCHED_FIFO priority (when permitted).
    pub realtime: bool,
}

/// Gives the calling thread a real-time priority (SCHED_FIFO), so that on a shared machine a
/// compiler or test run on the same CPU does not preempt the measurement. Needs root or
/// CAP_SYS_NICE; returns whether it took effect.
fn realtime() -> bool {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// Pins the calling thread to one CPU (when the machine has more than one), so the server and
/// the client do not take turns on the same core. Returns whether it did.
fn pin_to(cpu: usize) -> bool {
    use nix::sched::{CpuSet, sched_setaffinity};
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return false;
    }
    let mut set = CpuSet::new();
    set.set(cpu % cpus).is_ok() && sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_ok()
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub cfg: BenchConfig,
    pub requests: u64,
    pub ok: u64,
    pub chunks: u64,
    pub wall_s: f64,
    pub client_cpu_s: f64,
    pub ttft_error_p50_ms: f64,
    pub ttft_error_p99_ms: f64,
    pub ttft_error_max_ms: f64,
    /// Chunks per second while every stream was live (after the ramp, before the end).
    pub steady_chunks_per_s: f64,
    /// Server and client threads were each pinned to a CPU of their own.
    pub pinned: bool,
    /// Both threads ran at real-time priority.
    pub realtime: bool,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cfg;
        writeln!(
            f,
            "bench-client: {} streams x {} tok/s, {} client thread(s), {:.1} s, {}{}",
            c.streams,
            c.tokens_per_s,
            c.client_threads,
            self.wall_s,
            c.ramp.map_or("all users at once".to_string(), |r| format!(
                "users join {} every {} ms",
                r.users,
                r.every.as_millis()
            )),
            if self.pinned {
                ", server and client pinned to CPUs 1 and 0"
            } else {
                ""
            }
        )?;
        if self.realtime {
            writeln!(
                f,
                "  scheduling     both threads SCHED_FIFO (other work on the machine cannot preempt them)"
            )?;
        }
        writeln!(f, "  requests       {} ({} ok)", self.requests, self.ok)?;
        writeln!(
            f,
            "  chunks/s       {:.0} with every stream live (target {:.0}); {:.0} over the whole run",
            self.steady_chunks_per_s,
            c.streams as f64 * c.tokens_per_s,
            self.chunks as f64 / self.wall_s,
        )?;
        writeln!(
            f,
            "  client CPU     {:.2} s = {:.0}% of one core",
            self.client_cpu_s,
            100.0 * self.client_cpu_s / self.wall_s
        )?;
        write!(
            f,
            "  TTFT error     p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (client first token - server's write of it)",
            self.ttft_error_p50_ms, self.ttft_error_p99_ms, self.ttft_error_max_ms
        )
    }
}

/// Errors that stop the benchmark from running at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start a runtime or server: {0}")]
    Setup(String),
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
}

pub async fn run(cfg: BenchConfig) -> Result<BenchReport, BenchError> {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let itl = Duration::from_secs_f64(1.0 / cfg.tokens_per_s);
    let script = bench_server::Script {
        ttft: Duration::from_millis(20),
        itl,
        tokens: cfg.tokens,
    };
    let want_rt = cfg.realtime;
    let server = std::thread::spawn(move || {
        let pinned = pin_to(1);
        let rt_ok = want_rt && realtime();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { return };
        rt.block_on(async move {
            match bench_server::serve(script).await {
                Ok(addr) => {
                    let _ = addr_tx.send(Ok((addr, pinned, rt_ok)));
                    server_stop.cancelled().await;
                }
                Err(e) => {
                    let _ = addr_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let (addr, server_pinned, server_rt) = addr_rx
        .await
        .map_err(|_| BenchError::Setup("server thread ended".into()))?
        .map_err(BenchError::Setup)?;
    let mut load = LoadConfig::new(format!("http://{addr}/v1"), "bench");
    load.shape = Shape::Closed {
        users: cfg.streams,
        ramp: cfg.ramp,
    };
    load.duration = Some(cfg.duration);
    load.prompts = PromptSource::Inline("bench".into());
    load.timeouts = Timeouts {
        first_token: Duration::from_secs(30),
        total: Duration::from_secs(600),
    };
    let threads = cfg.client_threads.max(1);
    let cfg2 = cfg.clone();
    let client = std::thread::spawn(move || -> Result<BenchReport, BenchError> {
        let pinned = server_pinned && threads == 1 && pin_to(0);
        let realtime = server_rt && threads == 1 && realtime();
        let rt = if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
        }
        .map_err(|e| BenchError::Setup(e.to_string()))?;
        let cpu0 = thread_cpu_s();
        let t0 = Instant::now();
        let records = rt.block_on(crate::load::run(load, CancellationToken::new(), |_| {}))?;
        let wall_s = t0.elapsed().as_secs_f64();
        let client_cpu_s = thread_cpu_s() - cpu0;
        let mut err = Hist::new();
        // Steady state: from the moment every user has started (the last first send) to the
        // end of the run's duration, when all streams are live.
        let t0_us = records.iter().map(|r| r.sent_us).min().unwrap_or(0);
        let full_us = records
            .iter()
            .filter(|r| r.user == cfg2.streams.saturating_sub(1))
            .map(|r| r.sent_us)
            .min()
            .unwrap_or(t0_us);
        let end_us = t0_us + cfg2.duration.as_micros() as u64;
        let mut steady = 0u64;
        let mut chunks = 0;
        for r in &records {
            chunks += r.chunk_offsets_us.len() as u64;
            steady += r
                .chunk_offsets_us
                .iter()
                .filter(|o| (full_us..end_us).contains(&(r.sent_us + **o)))
                .count() as u64;
            if let (Some(c), Some(s)) = (r.first_token_us(), r.server.first_token_us) {
                err.record(c.saturating_sub(s));
            }
        }
        let e = err.stats(1e3);
        let steady_s = end_us.saturating_sub(full_us) as f64 / 1e6;
        Ok(BenchReport {
            steady_chunks_per_s: if steady_s > 0.0 {
                steady as f64 / steady_s
            } else {
                0.0
            },
            cfg: cfg2,
            requests: records.len() as u64,
            ok: records.iter().filter(|r| r.outcome.is_ok()).count() as u64,
            chunks,
            wall_s,
            client_cpu_s,
            ttft_error_p50_ms: e.p50,
            ttft_error_p99_ms: e.p99,
            ttft_error_max_ms: e.max,
            pinned,
            realtime,
        })
    });
    let report = tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .map_err(|_| BenchError::Setup("client thread panicked".into()))?;
    stop.cancel();
    let _ = server.join();
    report
}

/// CPU time of the calling thread (user + system), in seconds. In a multi-threaded client this
/// undercounts; the single-threaded figure is the one the README quotes.
fn thread_cpu_s() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => 0.0,
    }
}
