//! The real routers a stack can put in front of its workers ([`RouterKind`]): where their
//! executables are found ([`find_router`]) and the command line they start with
//! ([`real_router_args`], docs/routers.md explains each flag).

use crate::sim::router::Policy;
use std::net::SocketAddr;
use std::path::PathBuf;

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
