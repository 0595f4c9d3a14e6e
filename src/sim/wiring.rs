//! Routing the stack's links through an embedded Toxiproxy (`pdchaos toxiproxy`), so that link
//! faults act on real traffic: router -> prefill, router -> decode, decode -> prefill KV.

use crate::sim::stack::SimError;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The API of a running embedded Toxiproxy (the stack keeps it to add proxies when it grows).
#[derive(Clone)]
pub struct Toxi {
    pub api: String,
    pub addr: SocketAddr,
    client: reqwest::Client,
}

impl Toxi {
    /// Starts `<binary> toxiproxy` on a free port; its API handle and its process.
    pub async fn start(binary: &Path) -> Result<(Toxi, Child), SimError> {
        let addr = crate::net::free_loopback_addr().map_err(|e| SimError::Proxy(e.to_string()))?;
        let child = Command::new(binary)
            .args(["toxiproxy", "--listen", &addr.to_string()])
            .env(
                crate::sim::stack::PARENT_ENV,
                std::process::id().to_string(),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            // The proxy engine logs every refused upstream connection: expected during faults.
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SimError::Proxy(format!("cannot start: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| SimError::Proxy(e.to_string()))?;
        let api = format!("http://{addr}");
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{api}/version")).send().await
                && r.status().is_success()
            {
                return Ok((Toxi { api, addr, client }, child));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(SimError::Proxy(
            "the embedded Toxiproxy did not answer within 10 s".into(),
        ))
    }

    /// Creates proxy `name` to `upstream` on a free port; returns (name, listen address).
    pub async fn proxy(
        &self,
        name: &str,
        upstream: SocketAddr,
    ) -> Result<(String, SocketAddr), SimError> {
        let listen =
            crate::net::free_loopback_addr().map_err(|e| SimError::Proxy(e.to_string()))?;
        let body = json!({"name": name, "listen": listen.to_string(), "upstream": upstream.to_string(), "enabled": true});
        let r = self
            .client
            .post(format!("{}/proxies", self.api))
            .json(&body)
            .send()
            .await
            .map_err(|e| SimError::Proxy(format!("create {name}: {e}")))?;
        if !r.status().is_success() {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            return Err(SimError::Proxy(format!(
                "create {name}: HTTP {status}: {text}"
            )));
        }
        Ok((name.to_string(), listen))
    }
}
