//! Serving HTTP the way every pdchaos server should: with TCP_NODELAY on accepted sockets.
//!
//! Without it, Nagle's algorithm holds a small SSE chunk until the previous one is acknowledged,
//! and the client's delayed ACK makes that up to 40 ms: token timings would measure the kernel.

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until the process ends, with TCP_NODELAY on every connection.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
