//! Throughput of the embedded Toxiproxy's engine: how many bytes per second one connection
//! carries through a proxy, against the same transfer without a proxy, and with a latency toxic
//! in the chain (every chunk then waits on a timer). Run: `cargo bench --bench proxy`
//! (release build); figures go to the README's benchmark table and docs/bench.md.
//!
//! One client writes `SIZE` bytes in 64 KiB writes and half-closes; a sink on loopback reads to
//! the end and answers one byte; the time is from the first write to that byte.

use pdchaos::fault::model::{Stream, Toxic};
use pdchaos::fault::toxiproxy::api::NewProxy;
use pdchaos::fault::toxiproxy::client::toxic;
use pdchaos::fault::toxiproxy::{RunningServer, ToxiproxyClient};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIZE: usize = 512 << 20;
const RUNS: usize = 3;

/// A sink that reads each connection to its end and answers one byte.
async fn sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = sock.write_all(b"k").await;
            });
        }
    });
    addr
}

/// One transfer of `SIZE` bytes to `addr`: its duration.
async fn transfer(addr: &str) -> Duration {
    let chunk = vec![b'x'; 1 << 16];
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    for _ in 0..SIZE / chunk.len() {
        sock.write_all(&chunk).await.unwrap();
    }
    sock.shutdown().await.unwrap();
    let mut done = [0u8; 1];
    sock.read_exact(&mut done).await.unwrap();
    start.elapsed()
}

/// Median MB/s (10^6 bytes) over `RUNS` transfers.
async fn measure(addr: &str) -> f64 {
    let mut rates: Vec<f64> = Vec::new();
    for _ in 0..RUNS {
        rates.push(SIZE as f64 / transfer(addr).await.as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let upstream = sink().await;
    let server = RunningServer::start("127.0.0.1:0").await.unwrap();
    let client = ToxiproxyClient::new(server.base_url());
    let proxy = client
        .create_proxy(&NewProxy {
            name: "bench".into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.clone(),
            enabled: true,
        })
        .await
        .unwrap();
    println!(
        "{} MiB per transfer, median of {RUNS}, MB/s = 10^6 bytes/s",
        SIZE >> 20
    );
    println!(
        "direct (no proxy):         {:>8.0} MB/s",
        measure(&upstream).await
    );
    println!(
        "through the proxy:         {:>8.0} MB/s",
        measure(&proxy.listen).await
    );
    let latency = toxic(
        Toxic::Latency {
            latency: 5,
            jitter: 0,
        },
        Stream::Upstream,
        1.0,
    );
    client.add_toxic("bench", &latency).await.unwrap();
    println!(
        "proxy + 5 ms latency toxic: {:>7.0} MB/s",
        measure(&proxy.listen).await
    );
    client.remove_toxic("bench", &latency.name).await.unwrap();
    server.shutdown().await;
}
