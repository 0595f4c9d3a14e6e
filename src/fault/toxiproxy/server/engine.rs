//! One enabled proxy: its listener, accept loop and open connections ([`link`]), and the toxics
//! they apply. Start binds (port 0 resolves to a free port, kept by the listener), stop drops
//! the listener and cuts every connection, like a disabled Toxiproxy proxy. Toxic changes reach
//! live connections without closing them or losing what their toxics hold.

use super::link::{self, ToxicSet};
use crate::fault::model::Stream;
use crate::fault::toxiproxy::api::ToxicInfo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A started proxy; dropping it without [`Engine::stop`] also cuts it (the token is cancelled),
/// but only `stop` waits until the port and connections are gone.
#[derive(Debug)]
pub struct Engine {
    addr: SocketAddr,
    toxics: watch::Sender<Arc<ToxicSet>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Engine {
    /// Binds `listen` and starts accepting, proxying to `upstream` through `toxics`.
    pub async fn start(
        listen: &str,
        upstream: &str,
        toxics: &[ToxicInfo],
    ) -> std::io::Result<Engine> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (sender, _) = watch::channel(Arc::new(split(toxics)));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept_loop(
            listener,
            upstream.to_string(),
            sender.clone(),
            stop.clone(),
            tasks.clone(),
        ));
        Ok(Engine {
            addr,
            toxics: sender,
            stop,
            tasks,
        })
    }

    /// The bound listen address (a `:0` request resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `toxics` the proxy's toxics, for new and for open connections.
    pub fn set_toxics(&self, toxics: &[ToxicInfo]) {
        self.toxics.send_replace(Arc::new(split(toxics)));
    }

    /// Stops accepting, cuts every connection, and waits (bounded) until all are gone.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("proxy on {} did not stop within 5 s", self.addr);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn split(toxics: &[ToxicInfo]) -> ToxicSet {
    let of = |stream: Stream| {
        toxics
            .iter()
            .filter(|t| t.stream == stream)
            .cloned()
            .collect()
    };
    ToxicSet {
        upstream: of(Stream::Upstream),
        downstream: of(Stream::Downstream),
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    toxics: watch::Sender<Arc<ToxicSet>>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((client, _)) => {
                tasks.spawn(link::run(
                    client,
                    upstream.clone(),
                    toxics.subscribe(),
                    stop.clone(),
                ));
            }
            Err(e) => {
                // Out of descriptors and the like: keep the proxy, retry shortly.
                tracing::warn!("proxy accept on {upstream}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}
