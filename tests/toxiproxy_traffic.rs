//! The embedded Toxiproxy server's toxics act on real TCP traffic: a proxy in front of a local
//! echo server, driven through our typed client, with effects measured on the wire.
//! Tolerances are generous: the machine is shared.

use pdchaos::fault::model::{Stream, Toxic};
use pdchaos::fault::toxiproxy::api::{NewProxy, ProxyInfo};
use pdchaos::fault::toxiproxy::client::toxic;
use pdchaos::fault::toxiproxy::{RunningServer, ToxiproxyClient};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free port; the task ends with the test's runtime.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn setup() -> (RunningServer, ToxiproxyClient, ProxyInfo) {
    let upstream = echo_server().await;
    let server = RunningServer::start("127.0.0.1:0").await.unwrap();
    let client = ToxiproxyClient::new(server.base_url());
    let proxy = client
        .create_proxy(&NewProxy {
            name: "echo".into(),
            listen: "127.0.0.1:0".into(),
            upstream,
            enabled: true,
        })
        .await
        .unwrap();
    assert!(
        !proxy.listen.ends_with(":0"),
        "listen resolved: {}",
        proxy.listen
    );
    (server, client, proxy)
}

/// Sends `n` bytes through the proxy and reads them back; returns bytes read and elapsed time.
async fn round_trip(listen: &str, n: usize, limit: Duration) -> (usize, Duration) {
    let start = Instant::now();
    let mut sock = TcpStream::connect(listen).await.unwrap();
    let payload = vec![b'x'; n];
    let (mut r, mut w) = sock.split();
    let mut got = 0usize;
    let mut buf = vec![0u8; 8192];
    let io = async {
        let write = async {
            let _ = w.write_all(&payload).await;
        };
        let read = async {
            while got < n {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
        };
        tokio::join!(write, read);
    };
    let _ = tokio::time::timeout(limit, io).await;
    (got, start.elapsed())
}

#[tokio::test]
async fn latency_toxic_adds_measured_delay_and_removal_restores() {
    let (server, client, proxy) = setup().await;
    let (got, base) = round_trip(&proxy.listen, 100, Duration::from_secs(5)).await;
    assert_eq!(got, 100);
    let t = toxic(
        Toxic::Latency {
            latency: 400,
            jitter: 0,
        },
        Stream::Downstream,
        1.0,
    );
    client.add_toxic("echo", &t).await.unwrap();
    let (got, slow) = round_trip(&proxy.listen, 100, Duration::from_secs(5)).await;
    assert_eq!(got, 100);
    eprintln!("echo round trip: {base:?} without, {slow:?} with 400 ms latency");
    assert!(
        slow >= Duration::from_millis(380),
        "latency not applied: {slow:?}"
    );
    assert!(
        slow < Duration::from_secs(3),
        "latency far too large: {slow:?}"
    );
    client.remove_toxic("echo", &t.name).await.unwrap();
    let (_, after) = round_trip(&proxy.listen, 100, Duration::from_secs(5)).await;
    assert!(
        after < Duration::from_millis(300),
        "latency not removed: {after:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn partition_refuses_new_and_cuts_open_connections() {
    let (server, client, proxy) = setup().await;
    let mut open = TcpStream::connect(&proxy.listen).await.unwrap();
    open.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    open.read_exact(&mut buf).await.unwrap();

    client.disable("echo").await.unwrap();
    let refused = TcpStream::connect(&proxy.listen).await;
    assert!(
        refused.is_err(),
        "a disabled proxy still accepts connections"
    );
    let cut = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await;
    assert!(
        matches!(cut, Ok(Ok(0)) | Ok(Err(_))),
        "open connection not cut: {cut:?}"
    );

    client.enable("echo").await.unwrap();
    let (got, _) = round_trip(&proxy.listen, 10, Duration::from_secs(5)).await;
    assert_eq!(got, 10, "traffic does not flow after enable");
    server.shutdown().await;
}

#[tokio::test]
async fn bandwidth_toxic_slows_transfer() {
    let (server, client, proxy) = setup().await;
    let (_, fast) = round_trip(&proxy.listen, 64 * 1024, Duration::from_secs(10)).await;
    let t = toxic(Toxic::Bandwidth { rate: 32 }, Stream::Downstream, 1.0);
    client.add_toxic("echo", &t).await.unwrap();
    let (got, slow) = round_trip(&proxy.listen, 64 * 1024, Duration::from_secs(20)).await;
    eprintln!("64 KiB echo: {fast:?} unlimited, {slow:?} at 32 KB/s");
    assert_eq!(got, 64 * 1024);
    assert!(
        slow >= Duration::from_millis(1500),
        "bandwidth not limited: {slow:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn limit_data_cuts_after_n_bytes() {
    let (server, client, proxy) = setup().await;
    let t = toxic(Toxic::LimitData { bytes: 1000 }, Stream::Downstream, 1.0);
    client.add_toxic("echo", &t).await.unwrap();
    let (got, _) = round_trip(&proxy.listen, 5000, Duration::from_secs(5)).await;
    assert!(got <= 1000 && got > 0, "limit_data let {got} bytes through");
    server.shutdown().await;
}

#[tokio::test]
async fn timeout_zero_stalls_without_closing() {
    let (server, client, proxy) = setup().await;
    let t = toxic(Toxic::Timeout { timeout: 0 }, Stream::Downstream, 1.0);
    client.add_toxic("echo", &t).await.unwrap();
    let mut sock = TcpStream::connect(&proxy.listen).await.unwrap();
    sock.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    let stalled = tokio::time::timeout(Duration::from_millis(1500), sock.read(&mut buf)).await;
    assert!(
        stalled.is_err(),
        "blackhole let data through or closed: {stalled:?}"
    );
    client.reset().await.unwrap();
    let (got, _) = round_trip(&proxy.listen, 10, Duration::from_secs(5)).await;
    assert_eq!(got, 10, "traffic does not flow after reset");
    server.shutdown().await;
}

#[tokio::test]
async fn client_reports_http_errors_and_reset_heals_both_streams() {
    let (server, client, proxy) = setup().await;
    let missing = client.get_proxy("nope").await.unwrap_err();
    assert_eq!(missing.status().map(|s| s.as_u16()), Some(404), "{missing}");
    assert!(missing.to_string().contains("proxy not found"), "{missing}");
    let dup = client
        .create_proxy(&NewProxy {
            name: "echo".into(),
            listen: "127.0.0.1:0".into(),
            upstream: proxy.upstream.clone(),
            enabled: true,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.status().map(|s| s.as_u16()), Some(409), "{dup}");
    let up = toxic(
        Toxic::Latency {
            latency: 10,
            jitter: 0,
        },
        Stream::Upstream,
        0.5,
    );
    let down = toxic(
        Toxic::Slicer {
            average_size: 10,
            size_variation: 2,
            delay: 5,
        },
        Stream::Downstream,
        1.0,
    );
    client.add_toxic("echo", &up).await.unwrap();
    client.add_toxic("echo", &down).await.unwrap();
    let mut changed = up.clone();
    changed.toxic = Toxic::Latency {
        latency: 20,
        jitter: 3,
    };
    changed.stream = Stream::Downstream;
    changed.toxicity = 0.25;
    client.update_toxic("echo", &changed).await.unwrap();
    let bad = toxic(Toxic::Timeout { timeout: 1 }, Stream::Upstream, 1.5);
    let rejected = client.add_toxic("echo", &bad).await.unwrap_err();
    assert_eq!(
        rejected.status().map(|s| s.as_u16()),
        Some(400),
        "{rejected}"
    );
    let again = client.add_toxic("echo", &up).await.unwrap_err();
    assert_eq!(again.status().map(|s| s.as_u16()), Some(409), "{again}");
    client.disable("echo").await.unwrap();
    assert!(client.verify_clean().await.is_err());
    client.reset().await.unwrap();
    let back = client.get_proxy("echo").await.unwrap();
    assert!(back.enabled && back.toxics.is_empty(), "{back:?}");
    client.delete_proxy("echo").await.unwrap();
    let gone = client.delete_proxy("echo").await.unwrap_err();
    assert_eq!(gone.status().map(|s| s.as_u16()), Some(404), "{gone}");
    server.shutdown().await;
}

#[tokio::test]
async fn reset_peer_closes_the_connection_after_its_timeout() {
    let (server, client, proxy) = setup().await;
    let t = toxic(Toxic::ResetPeer { timeout: 300 }, Stream::Downstream, 1.0);
    client.add_toxic("echo", &t).await.unwrap();
    let start = Instant::now();
    let mut sock = TcpStream::connect(&proxy.listen).await.unwrap();
    sock.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
    let took = start.elapsed();
    assert!(
        matches!(&read, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "connection not reset: {read:?}"
    );
    assert!(
        took >= Duration::from_millis(250),
        "closed before the timeout: {took:?}"
    );
    server.shutdown().await;
}

/// What happens to the toxic while data is in flight.
enum Heal {
    Remove,
    Update(Toxic),
}

/// Streams 64 KiB through the proxy in 1 KiB writes (one every 5 ms) with `toxic` installed,
/// heals it (`heal`) 250 ms into the stream, and asserts that every byte comes back, in order, on
/// the same connection, soon after the heal: removing or updating a toxic must flush what it
/// holds (Toxiproxy does), not strand it until the peer gives up.
async fn heal_mid_stream(toxic_kind: Toxic, stream: Stream, heal: Heal) {
    const TOTAL: usize = 64 * 1024;
    const PIECE: usize = 1024;
    let (server, client, proxy) = setup().await;
    let t = toxic(toxic_kind, stream, 1.0);
    client.add_toxic("echo", &t).await.unwrap();
    let sock = TcpStream::connect(&proxy.listen).await.unwrap();
    let (mut r, mut w) = sock.into_split();
    let pattern: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
    let to_send = pattern.clone();
    let writer = tokio::spawn(async move {
        for piece in to_send.chunks(PIECE) {
            w.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w // keep the write half open: a close must not be what flushes the data
    });
    let reader = tokio::spawn(async move {
        let mut got = Vec::with_capacity(TOTAL);
        let mut buf = vec![0u8; 8192];
        while got.len() < TOTAL {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let healed = Instant::now();
    match heal {
        Heal::Remove => client.remove_toxic("echo", &t.name).await.unwrap(),
        Heal::Update(next) => {
            let mut changed = t.clone();
            changed.toxic = next;
            client.update_toxic("echo", &changed).await.unwrap();
        }
    }
    let read = tokio::time::timeout(Duration::from_secs(6), reader).await;
    let (got, done) = read.expect("reader hung").unwrap();
    let _w = writer.await.unwrap();
    assert_eq!(got.len(), TOTAL, "bytes lost at the heal");
    let first_bad = got.iter().zip(&pattern).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "bytes reordered or corrupted at the heal");
    let after = done.saturating_duration_since(healed);
    eprintln!(
        "{} healed: all {TOTAL} bytes back {after:?} after the heal",
        t.name
    );
    assert!(
        after < Duration::from_millis(1500),
        "data stalled after the heal: last byte {after:?} after it"
    );
    server.shutdown().await;
}

fn latency(latency: u64, jitter: u64) -> Toxic {
    Toxic::Latency { latency, jitter }
}

#[tokio::test]
async fn removing_latency_mid_stream_delivers_every_byte() {
    heal_mid_stream(latency(300, 0), Stream::Downstream, Heal::Remove).await;
}

#[tokio::test]
async fn removing_upstream_latency_mid_stream_delivers_every_byte() {
    heal_mid_stream(latency(300, 0), Stream::Upstream, Heal::Remove).await;
}

#[tokio::test]
async fn removing_jitter_mid_stream_delivers_every_byte() {
    heal_mid_stream(latency(300, 100), Stream::Downstream, Heal::Remove).await;
}

#[tokio::test]
async fn updating_latency_mid_stream_delivers_every_byte() {
    let smaller = latency(10, 0);
    heal_mid_stream(latency(300, 0), Stream::Downstream, Heal::Update(smaller)).await;
}

#[tokio::test]
async fn removing_bandwidth_mid_stream_delivers_every_byte() {
    // 16 KB/s: 64 KiB would take 4 s; after the heal it must not.
    heal_mid_stream(
        Toxic::Bandwidth { rate: 16 },
        Stream::Downstream,
        Heal::Remove,
    )
    .await;
}

#[tokio::test]
async fn removing_slicer_mid_stream_delivers_every_byte() {
    let slicer = Toxic::Slicer {
        average_size: 64,
        size_variation: 16,
        delay: 20_000,
    };
    heal_mid_stream(slicer, Stream::Downstream, Heal::Remove).await;
}

#[tokio::test]
async fn an_answer_sent_just_before_close_is_delivered_through_latency() {
    // An HTTP/1.0-style server: reads a request, answers, closes. The answer sits in the
    // latency toxic when the server's FIN arrives; it must still reach the client, then EOF.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        if let Ok((mut sock, _)) = listener.accept().await {
            let mut req = [0u8; 4];
            let _ = sock.read_exact(&mut req).await;
            let _ = sock.write_all(b"answer").await;
        }
    });
    let server = RunningServer::start("127.0.0.1:0").await.unwrap();
    let client = ToxiproxyClient::new(server.base_url());
    let proxy = client
        .create_proxy(&NewProxy {
            name: "closing".into(),
            listen: "127.0.0.1:0".into(),
            upstream,
            enabled: true,
        })
        .await
        .unwrap();
    let t = toxic(latency(200, 0), Stream::Downstream, 1.0);
    client.add_toxic("closing", &t).await.unwrap();
    let mut sock = TcpStream::connect(&proxy.listen).await.unwrap();
    sock.write_all(b"ping").await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(6))), "{read:?}");
    assert_eq!(got, b"answer");
    server.shutdown().await;
}
