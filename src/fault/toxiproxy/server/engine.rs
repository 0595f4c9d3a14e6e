//! One proxy's running `noxious` engine: start (bind + accept loop), stop (drops the listener
//! and every open connection, like a disabled Toxiproxy proxy), and toxic events over `bmrng`.
//!
//! The engine's own gaps are handled here: it has no `reset_peer` (mapped to a `timeout` toxic,
//! see docs/toxiproxy.md) and its remove-all clears only upstream toxics (we remove by name).

use crate::fault::model::{Stream, Toxic};
use crate::fault::toxiproxy::api::ToxicInfo;
use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::socket::TcpListener;
use noxious::toxic::ToxicEventResult;
use noxious::toxic::{StreamDirection, Toxic as NxToxic, ToxicEvent, ToxicEventKind, ToxicKind};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A started proxy; dropping it without [`Engine::stop`] leaves the accept loop running.
#[derive(Debug)]
pub struct Engine {
    stopper: Stopper,
    events: bmrng::RequestSender<ToxicEvent, ToxicEventResult>,
    task: JoinHandle<std::io::Result<()>>,
    name: String,
}

impl Engine {
    /// Binds `listen` and starts accepting, with `toxics` installed from the first connection.
    pub async fn start(
        name: &str,
        listen: &str,
        upstream: &str,
        toxics: &[ToxicInfo],
    ) -> std::io::Result<Engine> {
        let config = ProxyConfig {
            name: name.to_string(),
            listen: listen.to_string(),
            upstream: upstream.to_string(),
            enabled: true,
            rand_seed: None,
        };
        let mut initial = Toxics::empty();
        for toxic in toxics.iter().flat_map(to_engine) {
            match toxic.direction {
                StreamDirection::Upstream => initial.upstream.push(toxic),
                StreamDirection::Downstream => initial.downstream.push(toxic),
            }
        }
        let (listener, shared) =
            ProxyRunner::initialize_proxy::<TcpListener>(config, initial).await?;
        let (stop, stopper) = Stop::new();
        let (_close, closer) = Close::new();
        let (events, receiver) = bmrng::channel(16);
        let task = tokio::spawn(ProxyRunner::run_proxy(
            listener, shared, receiver, stop, closer,
        ));
        Ok(Engine {
            stopper,
            events,
            task,
            name: name.to_string(),
        })
    }

    /// Stops accepting, closes every connection, and waits (bounded) until the port is free.
    pub async fn stop(self) {
        self.stopper.stop();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    pub async fn add(&self, toxic: &ToxicInfo) -> Result<(), String> {
        for part in to_engine(toxic) {
            self.send(ToxicEventKind::AddToxic(part)).await?;
        }
        Ok(())
    }

    /// Removes the toxic by name (and its helper slicer, if it is a bandwidth toxic).
    pub async fn remove(&self, toxic: &ToxicInfo) -> Result<(), String> {
        for part in to_engine(toxic) {
            self.send(ToxicEventKind::RemoveToxic(part.name)).await?;
        }
        Ok(())
    }

    async fn send(&self, kind: ToxicEventKind) -> Result<(), String> {
        let event = ToxicEvent::new(self.name.clone(), kind);
        match self.events.send_receive(event).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("engine refused toxic change: {e}")),
            Err(_) => Err("proxy engine is not running".to_string()),
        }
    }
}

/// The engine's form of an API toxic: one engine toxic, or two for bandwidth.
///
/// The engine's bandwidth toxic panics ("overflow when subtracting durations") on a chunk larger
/// than 100 ms worth of data, because it sends 100 bytes per 100 ms step instead of rate*100.
/// A slicer placed just before it (always active) cuts chunks to `rate * 100` bytes, so the
/// faulty loop never runs and each chunk waits exactly `len / rate` ms, as in Toxiproxy.
fn to_engine(info: &ToxicInfo) -> Vec<NxToxic> {
    let direction = match info.stream {
        Stream::Upstream => StreamDirection::Upstream,
        Stream::Downstream => StreamDirection::Downstream,
    };
    let mut out = Vec::with_capacity(2);
    if let Toxic::Bandwidth { rate } = info.toxic
        && rate > 0
    {
        out.push(NxToxic {
            kind: ToxicKind::Slicer {
                average_size: rate.saturating_mul(100),
                size_variation: 0,
                delay: 0,
            },
            name: format!("{}{BANDWIDTH_SLICER}", info.name),
            toxicity: 1.0,
            direction,
        });
    }
    out.push(NxToxic {
        kind: engine_kind(&info.toxic),
        name: info.name.clone(),
        toxicity: info.toxicity,
        direction,
    });
    out
}

/// Suffix of the hidden slicer that guards a bandwidth toxic (never shown by the API).
const BANDWIDTH_SLICER: &str = "\u{0}bandwidth-slicer";

fn engine_kind(toxic: &Toxic) -> ToxicKind {
    match *toxic {
        Toxic::Latency { latency, jitter } => ToxicKind::Latency { latency, jitter },
        Toxic::Bandwidth { rate } => ToxicKind::Bandwidth { rate },
        Toxic::SlowClose { delay } => ToxicKind::SlowClose { delay },
        Toxic::Timeout { timeout } => ToxicKind::Timeout { timeout },
        // No reset_peer in the engine: stop the data and close after the timeout (at least 1 ms,
        // since the engine's timeout 0 means "never close").
        Toxic::ResetPeer { timeout } => ToxicKind::Timeout {
            timeout: timeout.max(1),
        },
        Toxic::Slicer {
            average_size,
            size_variation,
            delay,
        } => ToxicKind::Slicer {
            average_size,
            size_variation,
            delay,
        },
        Toxic::LimitData { bytes } => ToxicKind::LimitData { bytes },
    }
}
