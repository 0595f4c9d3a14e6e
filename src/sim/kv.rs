//! KV transfer: the prefill side's store and TCP server, the decode side's fetch and probe.
//!
//! The KV is bytes on a real socket (sized bytes-per-token x prompt tokens, streamed from a
//! zeroed buffer rather than held in memory), so latency, bandwidth and cuts applied to the link
//! by Toxiproxy act on it. KV that no decode node fetches within the profile's timeout is
//! released and counted as stranded.

use crate::sim::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// A room's KV: pending until its prefill finishes, then `Some(bytes)`.
struct Room {
    ready: watch::Sender<Option<u64>>,
    created: Instant,
}

/// The prefill node's KV rooms.
pub struct KvStore {
    rooms: Mutex<HashMap<u64, Room>>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    /// The prefill node's name, sent with every KV so the decode side can name its source
    /// (a real router does not tell the decode worker which prefill node it paired it with).
    name: String,
}

impl KvStore {
    pub fn new(timeout: Duration, metrics: Arc<Metrics>) -> Arc<KvStore> {
        KvStore::named(timeout, metrics, "")
    }

    pub fn named(timeout: Duration, metrics: Arc<Metrics>, name: &str) -> Arc<KvStore> {
        Arc::new(KvStore {
            rooms: Mutex::new(HashMap::new()),
            timeout,
            metrics,
            name: name.split_whitespace().collect::<Vec<_>>().join("_"),
        })
    }

    fn room(&self, room: u64) -> watch::Receiver<Option<u64>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .entry(room)
            .or_insert_with(|| Room {
                ready: watch::channel(None).0,
                created: Instant::now(),
            })
            .ready
            .subscribe()
    }

    /// Marks the room's KV as computed: `bytes` now held until fetched or timed out.
    pub fn ready(&self, room: u64, bytes: u64) {
        let _ = self.room(room);
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = rooms.get(&room) {
            r.ready.send_replace(Some(bytes));
            Metrics::add(&self.metrics.kv_bytes_held, bytes);
        }
    }

    fn take(&self, room: u64) -> Option<u64> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = rooms.remove(&room).and_then(|r| *r.ready.borrow());
        if let Some(b) = bytes {
            Metrics::sub(&self.metrics.kv_bytes_held, b);
        }
        bytes
    }

    /// Releases rooms older than the timeout; counts those whose KV was computed but never
    /// fetched as stranded.
    pub fn reap(&self) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = self.timeout;
        rooms.retain(|_, r| {
            if r.created.elapsed() < timeout * 2 {
                return true;
            }
            if let Some(b) = *r.ready.borrow() {
                Metrics::sub(&self.metrics.kv_bytes_held, b);
                Metrics::inc(&self.metrics.kv_stranded);
            }
            false
        });
    }

    /// Serves `KV <room>` and `PING` on `listener` until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let reaper = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                reaper.reap();
            }
        });
        while let Ok((sock, _)) = listener.accept().await {
            let store = self.clone();
            tokio::spawn(async move {
                let _ = store.handle(sock).await;
            });
        }
    }

    async fn handle(&self, sock: TcpStream) -> std::io::Result<()> {
        let _ = sock.set_nodelay(true);
        let mut reader = BufReader::new(sock);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let mut sock = reader.into_inner();
        let line = line.trim();
        if line == "PING" {
            sock.write_all(b"PONG\n").await?;
            return linger(sock).await;
        }
        let Some(room) = line
            .strip_prefix("KV ")
            .and_then(|r| r.trim().parse::<u64>().ok())
        else {
            return sock.write_all(b"ERR bad request\n").await;
        };
        let mut rx = self.room(room);
        let ready = matches!(
            tokio::time::timeout(self.timeout, rx.wait_for(Option::is_some)).await,
            Ok(Ok(_))
        );
        if !ready {
            return sock.write_all(b"ERR kv not ready\n").await;
        }
        let Some(bytes) = self.take(room) else {
            return sock.write_all(b"ERR kv released\n").await;
        };
        let header = if self.name.is_empty() {
            format!("OK {bytes}\n")
        } else {
            format!("OK {bytes} {}\n", self.name)
        };
        sock.write_all(header.as_bytes()).await?;
        let zeros = [0u8; 16 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            sock.write_all(&zeros[..n]).await?;
            left -= n as u64;
        }
        sock.flush().await?;
        Metrics::add(&self.metrics.kv_bytes_transferred, bytes);
        Metrics::inc(&self.metrics.kv_transfers);
        linger(sock).await
    }
}

/// Keeps the connection open until the peer closes it: a proxy in between (a latency toxic)
/// may deliver our close before our data, so the reader, not the writer, ends the connection.
async fn linger(mut sock: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(n) = sock.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

/// Why a KV fetch failed (the decode side reports it to the router).
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("kv link {addr}: {reason}")]
    Link { addr: String, reason: String },
    #[error("kv for room {room}: {reason}")]
    Refused { room: u64, reason: String },
}

/// A fetched KV: its size and the prefill node that served it (when it said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: u64,
    pub source: Option<String>,
}

/// Fetches a room's KV; returns the bytes received.
pub async fn fetch(host: &str, port: u16, room: u64, timeout: Duration) -> Result<u64, KvError> {
    fetch_from(host, port, room, timeout).await.map(|f| f.bytes)
}

/// Fetches a room's KV; returns the bytes received and the prefill node's name.
pub async fn fetch_from(
    host: &str,
    port: u16,
    room: u64,
    timeout: Duration,
) -> Result<Fetched, KvError> {
    let addr = format!("{host}:{port}");
    let link = |reason: String| KvError::Link {
        addr: addr.clone(),
        reason,
    };
    let work = async {
        let mut sock = TcpStream::connect(&addr)
            .await
            .map_err(|e| link(e.to_string()))?;
        let _ = sock.set_nodelay(true);
        sock.write_all(format!("KV {room}\n").as_bytes())
            .await
            .map_err(|e| link(e.to_string()))?;
        let mut reader = BufReader::new(sock);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| link(e.to_string()))?;
        let line = line.trim();
        let mut ok = line.strip_prefix("OK ").unwrap_or("").split_whitespace();
        let size = ok.next().and_then(|s| s.parse::<u64>().ok());
        let source = ok.next().map(str::to_string);
        let Some(size) = size else {
            if line.is_empty() {
                return Err(link("connection closed before an answer".into()));
            }
            return Err(KvError::Refused {
                room,
                reason: line.trim_start_matches("ERR ").to_string(),
            });
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while got < size {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| link(e.to_string()))?;
            if n == 0 {
                return Err(link(format!("closed after {got} of {size} bytes")));
            }
            got += n as u64;
        }
        Ok(Fetched { bytes: got, source })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(link(format!("no KV within {} ms", timeout.as_millis()))))
}

/// Checks that a prefill node's KV port answers through whatever path lies in between.
pub async fn probe(host: &str, port: u16, timeout: Duration) -> bool {
    let work = async {
        let mut sock = TcpStream::connect((host, port)).await.ok()?;
        sock.write_all(b"PING\n").await.ok()?;
        let mut reader = BufReader::new(sock);
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        (line.trim() == "PONG").then_some(())
    };
    matches!(tokio::time::timeout(timeout, work).await, Ok(Some(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kv_moves_as_bytes_and_waits_for_prefill() {
        let metrics = Arc::new(Metrics::default());
        let store = KvStore::new(Duration::from_secs(2), metrics.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(store.clone().serve(listener));
        assert!(probe("127.0.0.1", port, Duration::from_secs(1)).await);
        let fetcher = tokio::spawn(fetch("127.0.0.1", port, 7, Duration::from_secs(2)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.ready(7, 300_000);
        assert_eq!(fetcher.await.unwrap().unwrap(), 300_000);
        assert_eq!(
            metrics
                .kv_bytes_transferred
                .load(std::sync::atomic::Ordering::Relaxed),
            300_000
        );
        assert_eq!(
            metrics
                .kv_bytes_held
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn kv_names_the_prefill_node_that_served_it() {
        let store = KvStore::named(
            Duration::from_secs(2),
            Arc::new(Metrics::default()),
            "prefill-1",
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(store.clone().serve(listener));
        store.ready(9, 1000);
        let got = fetch_from("127.0.0.1", port, 9, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(
            got,
            Fetched {
                bytes: 1000,
                source: Some("prefill-1".into())
            }
        );
    }

    #[tokio::test]
    async fn unfetched_kv_is_stranded_and_released() {
        let metrics = Arc::new(Metrics::default());
        let store = KvStore::new(Duration::from_millis(10), metrics.clone());
        store.ready(1, 1000);
        tokio::time::sleep(Duration::from_millis(30)).await;
        store.reap();
        assert_eq!(
            metrics
                .kv_stranded
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            metrics
                .kv_bytes_held
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn fetch_from_a_closed_port_is_a_link_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = fetch("127.0.0.1", port, 1, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, KvError::Link { .. }));
    }
}
