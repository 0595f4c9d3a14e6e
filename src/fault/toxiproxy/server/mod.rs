//! The embedded Toxiproxy-compatible server: Toxiproxy's REST API ([`routes`]) over a registry
//! of proxies ([`registry`]), each run by our own proxy engine ([`engine`]): per connection
//! ([`link`]) and direction a chain of toxics ([`chain`]) that live changes never drain or
//! reorder.
//!
//! [`RunningServer::start`] binds the API (use port 0 in tests), serves until
//! [`RunningServer::shutdown`] (or drop), and on shutdown stops every proxy so no port or
//! connection outlives it.

mod chain;
mod engine;
mod link;
mod registry;
mod routes;

pub use registry::ApiError;
pub use routes::VERSION;

use crate::fault::toxiproxy::api::NewProxy;
use registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create proxy {name}: {message}")]
    Populate { name: String, message: String },
}

/// Serves the API on an already bound listener until the task is dropped (the same signature as
/// main's `toxiproxy::server::serve`, so either implementation can back `pdchaos toxiproxy`).
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let served = axum::serve(listener, routes::router(registry.clone())).await;
    registry.shutdown().await;
    served
}

/// A Toxiproxy API server running in this process.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    registry: Arc<Registry>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Binds the API on `listen` (e.g. `127.0.0.1:8474`, or `127.0.0.1:0` for a free port) and
    /// starts serving.
    pub async fn start(listen: &str) -> Result<RunningServer, ServerError> {
        let bind_err = |source| ServerError::Bind {
            addr: listen.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let registry = Arc::new(Registry::default());
        let cancel = CancellationToken::new();
        let app = routes::router(registry.clone());
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("toxiproxy API server failed: {e}");
            }
        });
        Ok(RunningServer {
            addr,
            registry,
            cancel,
            task: Some(task),
        })
    }

    /// The API's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for [`crate::fault::toxiproxy::ToxiproxyClient::new`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates proxies as `POST /populate` would (e.g. from a config file at start-up).
    pub async fn populate(&self, proxies: Vec<NewProxy>) -> Result<(), ServerError> {
        for proxy in proxies {
            let name = proxy.name.clone();
            self.registry
                .populate(vec![proxy])
                .await
                .map_err(|e| ServerError::Populate {
                    name,
                    message: e.message,
                })?;
        }
        Ok(())
    }

    /// Stops the API and every proxy, waiting until they are gone.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
        self.registry.shutdown().await;
    }
}

impl Drop for RunningServer {
    /// A server dropped without `shutdown` (a panicking test) still stops serving and, when a
    /// runtime is still there, stops its proxies.
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let registry = self.registry.clone();
                handle.spawn(async move { registry.shutdown().await });
            }
        }
    }
}
