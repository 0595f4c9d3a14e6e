//! `pdchaos toxiproxy`: run the embedded Toxiproxy API server until Ctrl-C or SIGTERM.
//!
//! Prints `toxiproxy listening on http://ADDR` on stdout once the API is up, so a parent that
//! passed port 0 can read the address. `--config FILE` populates proxies at start (a JSON array
//! of `{name, listen, upstream, enabled?}`, like Toxiproxy's `-config`).

use super::api::NewProxy;
use super::server::RunningServer;
use crate::cli::bad_input;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

/// Runs the server; returns the exit code after a clean shutdown.
pub async fn run(listen: &str, config: Option<&Path>) -> anyhow::Result<i32> {
    if listen.parse::<SocketAddr>().is_err() {
        return Err(bad_input(format!(
            "--listen {listen}: expected IP:PORT, e.g. 127.0.0.1:8474"
        )));
    }
    let proxies = match config {
        Some(path) => read_config(path)?,
        None => Vec::new(),
    };
    let server = RunningServer::start(listen).await?;
    if let Err(e) = server.populate(proxies).await {
        server.shutdown().await;
        return Err(e.into());
    }
    println!("toxiproxy listening on {}", server.base_url());
    let _ = std::io::stdout().flush();
    wait_for_signal().await;
    server.shutdown().await;
    Ok(0)
}

fn read_config(path: &Path) -> anyhow::Result<Vec<NewProxy>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad_input(format!("--config {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        bad_input(format!(
            "{}:{}: {e} (expected a JSON array of {{name, listen, upstream}})",
            path.display(),
            e.line()
        ))
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
