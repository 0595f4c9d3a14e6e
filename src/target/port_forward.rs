//! Reaching a Toxiproxy inside the cluster from a runner outside it: when the target file's
//! `toxiproxy.api` is on loopback and names a `port_forward` (`svc/NAME:PORT`), the runner
//! starts `kubectl port-forward` itself, in the allow-listed context and namespace, waits until
//! the Toxiproxy API answers through it, and stops it when the run ends (or dies: the child
//! gets SIGKILL with its parent).

use crate::target::KubeTarget;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running `kubectl port-forward`; dropped, it is killed.
#[derive(Debug)]
pub struct PortForward {
    child: Child,
    /// The arguments kubectl was given (for messages and tests).
    pub args: Vec<String>,
}

impl PortForward {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The kubectl arguments, or `None` when no port-forward is asked for (or the API is not on
/// loopback, i.e. the runner reaches a Service address directly).
pub fn plan(target: &KubeTarget) -> Result<Option<Vec<String>>, String> {
    let Some(t) = &target.toxiproxy else {
        return Ok(None);
    };
    let Some(pf) = &t.port_forward else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(&t.api)
        .map_err(|e| format!("kubernetes.toxiproxy.api `{}`: {e}", t.api))?;
    if !matches!(url.host_str(), Some("127.0.0.1" | "localhost")) {
        return Ok(None);
    }
    let local = url
        .port_or_known_default()
        .ok_or_else(|| format!("kubernetes.toxiproxy.api `{}` has no port", t.api))?;
    let (resource, remote) = pf
        .rsplit_once(':')
        .ok_or_else(|| format!("kubernetes.toxiproxy.port_forward `{pf}` must be svc/NAME:PORT"))?;
    if !resource.starts_with("svc/") || remote.parse::<u16>().is_err() {
        return Err(format!(
            "kubernetes.toxiproxy.port_forward `{pf}` must be svc/NAME:PORT"
        ));
    }
    let mut args = Vec::new();
    if target.context != crate::target::IN_CLUSTER {
        args.extend(["--context".to_string(), target.context.clone()]);
    }
    args.extend([
        "--namespace".to_string(),
        target.default_namespace().to_string(),
        "port-forward".to_string(),
        "--address".to_string(),
        "127.0.0.1".to_string(),
        resource.to_string(),
        format!("{local}:{remote}"),
    ]);
    Ok(Some(args))
}

/// Starts the port-forward the target asks for and waits until the Toxiproxy API answers.
/// The kubectl used is `$PDCHAOS_KUBECTL`, else `kubectl` on PATH.
pub async fn start(target: &KubeTarget) -> Result<Option<PortForward>, String> {
    let kubectl = std::env::var("PDCHAOS_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    start_with(target, &kubectl).await
}

/// [`start`] with an explicit kubectl executable.
pub async fn start_with(target: &KubeTarget, kubectl: &str) -> Result<Option<PortForward>, String> {
    let Some(args) = plan(target)? else {
        return Ok(None);
    };
    let mut cmd = Command::new(kubectl);
    cmd.args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: only an async-signal-safe prctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{kubectl} port-forward`: {e}"))?;
    let mut pf = PortForward { child, args };
    let api = target
        .toxiproxy
        .as_ref()
        .map(|t| t.api.clone())
        .unwrap_or_default();
    let client = crate::fault::toxiproxy::ToxiproxyClient::new(&api);
    for _ in 0..150 {
        if let Ok(Some(status)) = pf.child.try_wait() {
            return Err(format!(
                "`{kubectl} {}` exited ({status}) before {api} answered",
                pf.args.join(" ")
            ));
        }
        if client.version().await.is_ok() {
            return Ok(Some(pf));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let args = pf.args.join(" ");
    pf.child.kill().await.ok();
    Err(format!(
        "`{kubectl} {args}`: {api} did not answer within 15 s"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{Target, parse_target};

    fn target(tox: &str) -> KubeTarget {
        let text = format!(
            "name: t\nkubernetes:\n  endpoint: http://gw/v1\n  model: m\n  context: staging\n  namespaces: [llm]\n  selectors: {{prefill: r=p, decode: r=d}}\n  degraded: none\n{tox}"
        );
        match parse_target(&text, std::path::Path::new("t.yaml"))
            .unwrap()
            .target
        {
            Target::Kubernetes(k) => k,
            _ => unreachable!(),
        }
    }

    #[test]
    fn loopback_api_with_a_port_forward_is_forwarded_in_the_allowed_context() {
        let t = target(
            "  toxiproxy:\n    api: http://127.0.0.1:18474\n    port_forward: svc/toxiproxy:8474\n    proxies: []\n",
        );
        let args = plan(&t).unwrap().unwrap();
        assert_eq!(
            args.join(" "),
            "--context staging --namespace llm port-forward --address 127.0.0.1 svc/toxiproxy 18474:8474"
        );
        let direct = target(
            "  toxiproxy:\n    api: http://toxiproxy.llm.svc:8474\n    port_forward: svc/toxiproxy:8474\n    proxies: []\n",
        );
        assert_eq!(plan(&direct).unwrap(), None);
        let bad = target(
            "  toxiproxy:\n    api: http://127.0.0.1:18474\n    port_forward: toxiproxy\n    proxies: []\n",
        );
        assert!(plan(&bad).unwrap_err().contains("svc/NAME:PORT"));
    }
}
