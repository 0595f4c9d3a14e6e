//! One direction's toxic chain, as pure state: what each toxic holds, when each held piece may
//! move on, and how the chain changes under a live connection.
//!
//! Every toxic is a [`Stage`] with a FIFO of held items, each carrying the time it may leave
//! (`due`). [`Chain::advance`] moves due items to the next stage and finally out. A change
//! ([`Chain::apply`]) never drops or reorders what is held: a removed toxic hands its items to
//! the next stage (they are newer than what that stage holds), an updated one re-times its own
//! items with the new attributes, a new one joins at the end. This is what Toxiproxy does
//! ("don't drop any data on the floor") and what the `noxious` engine did not: it tore down and
//! rebuilt every link on each toxic event, losing the chunks queued inside its toxics.
//!
//! Times are `tokio::time::Instant`, passed in, so the logic is testable without sockets.

use crate::fault::model::Toxic;
use crate::fault::toxiproxy::api::ToxicInfo;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use tokio::time::{Duration, Instant};

/// What flows through a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Data(Bytes),
    /// The sender finished: after the data before it, the receiver gets a FIN.
    Eof,
    /// Close the whole connection once the data before it is written (limit_data).
    Close,
}

/// How a toxic ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Both sockets closed (FIN).
    Close,
    /// Both sockets reset (RST, `SO_LINGER` 0): reset_peer.
    Reset,
}

#[derive(Debug)]
struct Held {
    item: Item,
    /// When the item entered this stage (kept so an update can re-time it).
    entered: Instant,
    due: Instant,
}

#[derive(Debug)]
struct Stage {
    info: ToxicInfo,
    /// Drawn once per connection and toxic; the toxic acts when `draw < toxicity` (Toxiproxy).
    draw: f32,
    queue: VecDeque<Held>,
    /// Earliest time the next piece may leave (bandwidth and slicer pacing).
    free_at: Option<Instant>,
    /// When this toxic ends the connection (timeout, reset_peer, limit_data 0).
    deadline: Option<(Instant, Kill)>,
    /// Bytes let through so far (limit_data); survives an update, as in Toxiproxy.
    passed: u64,
    /// limit_data reached: everything after is dropped.
    spent: bool,
}

impl Stage {
    fn new(info: ToxicInfo, draw: f32, passed: u64, now: Instant) -> Stage {
        let mut stage = Stage {
            info,
            draw,
            queue: VecDeque::new(),
            free_at: None,
            deadline: None,
            passed,
            spent: false,
        };
        if stage.active() {
            match stage.info.toxic {
                Toxic::Timeout { timeout } if timeout > 0 => {
                    stage.deadline = Some((now + ms(timeout), Kill::Close));
                }
                Toxic::LimitData { bytes } if passed >= bytes => {
                    stage.spent = true;
                    stage.deadline = Some((now, Kill::Close));
                }
                _ => {}
            }
        }
        stage
    }

    fn active(&self) -> bool {
        self.draw < self.info.toxicity
    }

    fn hold(&mut self, item: Item, entered: Instant, due: Instant) {
        self.queue.push_back(Held { item, entered, due });
    }

    /// The next paced slot: not before `entered`, not before the previous piece left.
    fn slot(&self, entered: Instant) -> Instant {
        self.free_at.map_or(entered, |f| f.max(entered))
    }

    /// Takes `item` in, holding it (or its pieces) until due, or dropping it.
    fn accept(&mut self, item: Item, entered: Instant, rng: &mut StdRng) {
        if !self.active() {
            return self.hold(item, entered, entered);
        }
        match (self.info.toxic.clone(), item) {
            (Toxic::Latency { latency, jitter }, Item::Data(b)) => {
                let spread = jitter as i64;
                let offset = if spread > 0 {
                    rng.random_range(-spread..=spread)
                } else {
                    0
                };
                let delay = (latency as i64 + offset).max(0) as u64;
                self.hold(Item::Data(b), entered, entered + ms(delay));
            }
            (Toxic::Bandwidth { rate }, Item::Data(b)) if rate > 0 => {
                // Pieces of 100 ms each, so a big chunk streams out instead of arriving at once.
                let piece = usize::try_from(rate.saturating_mul(100)).unwrap_or(usize::MAX);
                for part in pieces(b, |_| piece) {
                    let due = self.slot(entered) + us(part.len() as u64 * 1000 / rate);
                    self.free_at = Some(due);
                    self.hold(Item::Data(part), entered, due);
                }
            }
            (
                Toxic::Slicer {
                    average_size,
                    size_variation,
                    delay,
                },
                Item::Data(b),
            ) if average_size > 0 => {
                let (avg, var) = (average_size as i64, size_variation.min(average_size) as i64);
                let size = |rng: &mut StdRng| {
                    let s = if var > 0 {
                        avg + rng.random_range(-var..=var)
                    } else {
                        avg
                    };
                    s.max(1) as usize
                };
                for part in pieces(b, |_| size(rng)) {
                    let due = self.slot(entered);
                    self.free_at = Some(due + us(delay));
                    self.hold(Item::Data(part), entered, due);
                }
            }
            (Toxic::SlowClose { delay }, Item::Eof) => {
                self.hold(Item::Eof, entered, entered + ms(delay))
            }
            (Toxic::Timeout { .. }, Item::Data(_)) => {} // dropped, as Toxiproxy does
            (Toxic::ResetPeer { timeout }, Item::Data(_) | Item::Eof) => {
                // The first thing through arms the reset; data is dropped meanwhile.
                if self.deadline.is_none() {
                    self.deadline = Some((entered + ms(timeout), Kill::Reset));
                }
            }
            (Toxic::LimitData { .. }, _) if self.spent => {}
            (Toxic::LimitData { bytes }, Item::Data(mut b)) => {
                let left = bytes.saturating_sub(self.passed);
                if (b.len() as u64) >= left {
                    b.truncate(left as usize);
                    self.spent = true;
                }
                self.passed += b.len() as u64;
                if !b.is_empty() {
                    self.hold(Item::Data(b), entered, entered);
                }
                if self.spent {
                    self.hold(Item::Close, entered, entered);
                }
            }
            // Ends of stream and closes keep their place behind paced data.
            (Toxic::Bandwidth { .. } | Toxic::Slicer { .. }, item) => {
                let due = self.slot(entered);
                self.hold(item, entered, due);
            }
            (_, item) => self.hold(item, entered, entered),
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Cuts `b` into consecutive pieces whose sizes `size` picks (the last one may be shorter).
fn pieces(mut b: Bytes, mut size: impl FnMut(usize) -> usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = size(out.len()).clamp(1, b.len());
        out.push(b.split_to(n));
    }
    out
}

/// The toxics of one direction of one connection, in order.
#[derive(Debug)]
pub struct Chain {
    stages: Vec<Stage>,
    rng: StdRng,
}

impl Chain {
    pub fn new(toxics: &[ToxicInfo], now: Instant) -> Chain {
        Chain::seeded(toxics, now, StdRng::from_rng(&mut rand::rng()))
    }

    /// A chain whose random choices (toxicity draws, jitter, slice sizes) follow `rng`.
    pub fn seeded(toxics: &[ToxicInfo], now: Instant, mut rng: StdRng) -> Chain {
        let stages = toxics
            .iter()
            .map(|t| Stage::new(t.clone(), rng.random(), 0, now))
            .collect();
        Chain { stages, rng }
    }

    /// Feeds an item read from the socket at `now` into the first toxic (or straight out).
    pub fn push(&mut self, item: Item, now: Instant, out: &mut VecDeque<Item>) {
        match self.stages.first_mut() {
            Some(first) => first.accept(item, now, &mut self.rng),
            None => out.push_back(item),
        }
    }

    /// Moves every item due by `now` onward; returns a kill if a toxic ends the connection.
    pub fn advance(&mut self, now: Instant, out: &mut VecDeque<Item>) -> Option<Kill> {
        for i in 0..self.stages.len() {
            if let Some((at, kill)) = self.stages[i].deadline
                && at <= now
            {
                return Some(kill);
            }
            while self.stages[i].queue.front().is_some_and(|h| h.due <= now) {
                let Some(held) = self.stages[i].queue.pop_front() else {
                    break;
                };
                match self.stages.get_mut(i + 1) {
                    Some(next) => next.accept(held.item, held.due, &mut self.rng),
                    None => out.push_back(held.item),
                }
            }
        }
        None
    }

    /// When [`Chain::advance`] next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let heads = self
            .stages
            .iter()
            .filter_map(|s| s.queue.front())
            .map(|h| h.due);
        let deadlines = self
            .stages
            .iter()
            .filter_map(|s| s.deadline)
            .map(|(at, _)| at);
        heads.chain(deadlines).min()
    }

    /// Bytes held inside the toxics (for back-pressure on the reader).
    pub fn held_bytes(&self) -> usize {
        let held = self.stages.iter().flat_map(|s| s.queue.iter());
        held.map(|h| match &h.item {
            Item::Data(b) => b.len(),
            _ => 0,
        })
        .sum()
    }

    /// Changes the chain to `toxics` without dropping or reordering anything held (see the
    /// module docs). Toxics keep their order; new ones go to the end, as Toxiproxy appends.
    pub fn apply(&mut self, toxics: &[ToxicInfo], now: Instant, out: &mut VecDeque<Item>) {
        let old = std::mem::take(&mut self.stages);
        // Items of removed stages not yet handed on, oldest first.
        let mut carry: VecDeque<Held> = VecDeque::new();
        for mut stage in old {
            let Some(info) = toxics.iter().find(|t| t.name == stage.info.name) else {
                // Older than what earlier removed stages held: goes first.
                for held in stage.queue.drain(..).rev() {
                    carry.push_front(held);
                }
                continue;
            };
            if *info != stage.info {
                let held = std::mem::take(&mut stage.queue);
                stage = Stage::new(info.clone(), stage.draw, stage.passed, now);
                for h in held {
                    stage.accept(h.item, h.entered, &mut self.rng);
                }
            }
            for h in carry.drain(..) {
                stage.accept(h.item, h.entered, &mut self.rng);
            }
            self.stages.push(stage);
        }
        for info in toxics {
            if !self.stages.iter().any(|s| s.info.name == info.name) {
                let draw = self.rng.random();
                let mut stage = Stage::new(info.clone(), draw, 0, now);
                for h in carry.drain(..) {
                    stage.accept(h.item, h.entered, &mut self.rng);
                }
                self.stages.push(stage);
            }
        }
        out.extend(carry.into_iter().map(|h| h.item));
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
