//! Loopback networking the way every pdchaos server should do it: TCP_NODELAY on accepted
//! sockets, and listen ports picked where nothing else will take them.
//!
//! Without TCP_NODELAY, Nagle's algorithm holds a small SSE chunk until the previous one is
//! acknowledged, and the client's delayed ACK makes that up to 40 ms: token timings would
//! measure the kernel.
//!
//! Ports: a port from `bind(127.0.0.1:0)` comes from the kernel's ephemeral range, the same range
//! every outgoing connection takes its source port from. Between picking it and the node binding
//! it (and again while a killed node restarts, or a cut proxy is re-enabled on the same port) a
//! busy machine's outgoing connections can take it: the node then cannot bind and the stack
//! waits for a health check that never answers. CI saw exactly that with four stacks under load
//! in parallel. [`free_loopback_addr`] picks below the ephemeral range instead, and never hands
//! the same port out twice in one process.

use axum::Router;
use axum::serve::ListenerExt;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::sync::Mutex;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until the process ends, with TCP_NODELAY on every connection.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

/// The lowest port handed out: above the well-known and most registered service ports.
const LOWEST: u16 = 10_000;

/// Ports this process has handed out (a port is never handed out twice, so two nodes started
/// at the same moment, or a node and its proxy, cannot collide).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback address whose port is free now, lies outside the kernel's ephemeral range and was
/// not handed out before by this process. Falls back to a kernel-chosen port when no such port
/// can be found (a machine whose ephemeral range starts too low to leave room below it).
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let eph_low = ephemeral_low();
    let mut taken = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    if eph_low > LOWEST + 100 {
        for _ in 0..200 {
            let port = rand::random_range(LOWEST..eph_low);
            if taken.contains(&port) {
                continue;
            }
            let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
            if StdListener::bind(addr).is_ok() {
                taken.insert(port);
                return Ok(addr);
            }
        }
    }
    let addr = StdListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    taken.insert(addr.port());
    Ok(addr)
}

/// The lowest port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let low = ephemeral_low();
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let a = free_loopback_addr().unwrap();
            assert!(a.ip().is_loopback());
            assert!(seen.insert(a.port()), "port {} handed out twice", a.port());
            if low > LOWEST + 100 {
                assert!(
                    a.port() >= LOWEST && a.port() < low,
                    "{a} in the ephemeral range"
                );
            }
            // Free when handed out: the caller can bind it.
            StdListener::bind(a).unwrap();
        }
    }
}
