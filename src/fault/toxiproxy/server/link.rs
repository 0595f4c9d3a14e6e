//! One proxied connection: client and upstream sockets, and for each direction a [`Chain`] of
//! toxics between the reading and the writing socket, all driven by one task.
//!
//! Toxic changes arrive over a `watch` channel and are applied to the live chains, so a heal
//! keeps the connection and flushes what the toxics held. An end of stream is passed on as a
//! half close (FIN) after everything read before it, so a server that answers and closes still
//! delivers its answer. The connection ends when both directions are finished, when a toxic
//! kills it, on an I/O error, or when the proxy stops.

use super::chain::{Chain, Item, Kill};
use crate::fault::toxiproxy::api::ToxicInfo;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Read size, as Go's io.Copy (and so Toxiproxy) uses.
const READ_CHUNK: usize = 32 * 1024;
/// Bytes a direction may hold (in toxics or waiting for the socket) before it stops reading.
const HELD_LIMIT: usize = 4 * 1024 * 1024;
/// An upstream that does not accept within this is an error for that one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy's toxics, split by the direction they act on.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ToxicSet {
    /// Client to upstream.
    pub upstream: Vec<ToxicInfo>,
    /// Upstream to client.
    pub downstream: Vec<ToxicInfo>,
}

enum Event {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Wake,
}

/// One direction: read from `reader`, through `chain`, into `out`, written to `writer`.
struct Direction {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    chain: Chain,
    /// Past every toxic, waiting for the socket; the front may be partly written.
    out: VecDeque<Item>,
    buf: BytesMut,
    read_done: bool,
    write_done: bool,
}

impl Direction {
    fn new(reader: OwnedReadHalf, writer: OwnedWriteHalf, chain: Chain) -> Direction {
        Direction {
            reader,
            writer,
            chain,
            out: VecDeque::new(),
            buf: BytesMut::new(),
            read_done: false,
            write_done: false,
        }
    }

    fn finished(&self) -> bool {
        self.read_done && self.write_done
    }

    fn held(&self) -> usize {
        let out: usize = self.out.iter().map(item_len).sum();
        out + self.chain.held_bytes()
    }

    /// Waits for the next thing this direction can do. Cancel-safe: each branch either
    /// completes (and is handled) or did nothing.
    async fn next_event(&mut self) -> Event {
        let can_read = !self.read_done && self.held() < HELD_LIMIT;
        if can_read && self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let wake = self.chain.next_wake();
        let Direction {
            reader,
            writer,
            out,
            buf,
            write_done,
            ..
        } = self;
        let front = out.front().filter(|_| !*write_done);
        tokio::select! {
            r = reader.read_buf(buf), if can_read => Event::Read(r),
            r = write_front(writer, front), if front.is_some() => Event::Wrote(r),
            _ = sleep_until(wake), if wake.is_some() => Event::Wake,
            else => std::future::pending().await,
        }
    }

    /// Applies an event; returns a kill when the connection must end now.
    fn handle(&mut self, event: Event) -> Option<Kill> {
        let now = Instant::now();
        match event {
            Event::Read(Err(_)) => return Some(Kill::Close),
            Event::Read(Ok(0)) => {
                self.read_done = true;
                self.chain.push(Item::Eof, now, &mut self.out);
            }
            Event::Read(Ok(_)) => {
                let data = self.buf.split().freeze();
                self.chain.push(Item::Data(data), now, &mut self.out);
            }
            Event::Wrote(Err(_)) => return Some(Kill::Close),
            Event::Wrote(Ok(n)) => match self.out.front_mut() {
                Some(Item::Data(b)) if n == 0 && !b.is_empty() => return Some(Kill::Close),
                Some(Item::Data(b)) if n < b.len() => {
                    let _ = b.split_to(n);
                }
                Some(Item::Eof) => {
                    self.out.pop_front();
                    self.write_done = true;
                }
                Some(Item::Close) => return Some(Kill::Close),
                _ => {
                    self.out.pop_front();
                }
            },
            Event::Wake => {}
        }
        self.chain.advance(now, &mut self.out)
    }

    /// Closes the writing socket with RST (`SO_LINGER` 0), as Toxiproxy's reset_peer does.
    /// The write half must not shut down on drop: that would send a FIN first.
    fn reset(self) {
        let _ = self.writer.as_ref().set_zero_linger();
        self.writer.forget();
    }

    fn apply(&mut self, toxics: &[ToxicInfo]) -> Option<Kill> {
        let now = Instant::now();
        self.chain.apply(toxics, now, &mut self.out);
        self.chain.advance(now, &mut self.out)
    }
}

fn item_len(item: &Item) -> usize {
    match item {
        Item::Data(b) => b.len(),
        _ => 0,
    }
}

/// Writes (part of) the front item: data is written once (the caller keeps the rest), an end
/// of stream shuts the socket's write side, a close is reported at once (nothing to write).
async fn write_front(writer: &mut OwnedWriteHalf, front: Option<&Item>) -> io::Result<usize> {
    match front {
        Some(Item::Data(b)) => writer.write(b).await,
        Some(Item::Eof) => writer.shutdown().await.map(|()| 0),
        Some(Item::Close) | None => Ok(0),
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Proxies `client` to `upstream` until either side is done, a toxic kills the connection, or
/// `stop` fires (proxy disabled or deleted: the connection is cut).
pub async fn run(
    client: TcpStream,
    upstream: String,
    mut toxics: watch::Receiver<Arc<ToxicSet>>,
    stop: CancellationToken,
) {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream));
    let server = tokio::select! {
        r = connect => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return tracing::debug!("proxy upstream {upstream}: {e}"),
            Err(_) => return tracing::debug!("proxy upstream {upstream}: connect timed out"),
        },
        _ = stop.cancelled() => return,
    };
    // Go (and so Toxiproxy) sets TCP_NODELAY; without it small writes wait for ACKs.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let set = toxics.borrow_and_update().clone();
    let now = Instant::now();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut up = Direction::new(client_read, server_write, Chain::new(&set.upstream, now));
    let mut down = Direction::new(server_read, client_write, Chain::new(&set.downstream, now));
    let kill = loop {
        if up.finished() && down.finished() {
            break None;
        }
        let kill = tokio::select! {
            e = up.next_event() => up.handle(e),
            e = down.next_event() => down.handle(e),
            changed = toxics.changed() => match changed {
                Ok(()) => {
                    let set = toxics.borrow_and_update().clone();
                    up.apply(&set.upstream).or(down.apply(&set.downstream))
                }
                Err(_) => Some(Kill::Close),
            },
            _ = stop.cancelled() => Some(Kill::Close),
        };
        if kill.is_some() {
            break kill;
        }
    };
    if kill == Some(Kill::Reset) {
        up.reset();
        down.reset();
    }
}
