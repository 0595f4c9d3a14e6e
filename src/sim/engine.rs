//! The simulated model: a batched prefill queue, a decode batch whose step time grows with its
//! size, and a KV memory budget that makes decode admission wait. Time and bytes, no compute.

use crate::sim::metrics::Metrics;
use crate::sim::profile::Profile;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// A FIFO prefill queue served in batches of at most `prefill_batch_tokens` tokens: a saturated
/// prefill node makes TTFT climb with queue depth, as the article describes.
#[derive(Clone)]
pub struct PrefillEngine {
    tx: mpsc::UnboundedSender<(u64, oneshot::Sender<()>)>,
}

impl PrefillEngine {
    /// `factor` slows prefill (a decode node doing its own prefill).
    pub fn start(profile: Arc<Profile>, factor: f64, metrics: Arc<Metrics>) -> PrefillEngine {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, oneshot::Sender<()>)>();
        tokio::spawn(async move {
            let mut carry = None;
            loop {
                let first = match carry.take() {
                    Some(job) => job,
                    None => match rx.recv().await {
                        Some(job) => job,
                        None => return,
                    },
                };
                let mut batch_tokens = first.0;
                let mut batch = vec![first];
                while let Ok(job) = rx.try_recv() {
                    if batch_tokens + job.0 > profile.prefill_batch_tokens {
                        carry = Some(job);
                        break;
                    }
                    batch_tokens += job.0;
                    batch.push(job);
                }
                tokio::time::sleep(profile.prefill_time(batch_tokens).mul_f64(factor)).await;
                Metrics::sub(&metrics.queue_depth, batch.len() as u64);
                for (_, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        PrefillEngine { tx }
    }

    /// Waits until `tokens` prompt tokens have been prefilled.
    pub async fn prefill(&self, tokens: u64, metrics: &Metrics) {
        let (done_tx, done_rx) = oneshot::channel();
        Metrics::inc(&metrics.queue_depth);
        if self.tx.send((tokens.max(1), done_tx)).is_ok() {
            let _ = done_rx.await;
        }
    }
}

/// The decode batch: how many sequences run now, which sets the step time.
#[derive(Clone, Default)]
pub struct DecodeBatch {
    running: Arc<AtomicUsize>,
}

/// Held while a sequence is in the batch.
pub struct InBatch {
    running: Arc<AtomicUsize>,
}

impl Drop for InBatch {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl DecodeBatch {
    pub fn join(&self) -> InBatch {
        self.running.fetch_add(1, Ordering::Relaxed);
        InBatch {
            running: self.running.clone(),
        }
    }

    pub fn step(&self, profile: &Profile) -> Duration {
        profile.decode_step(self.running.load(Ordering::Relaxed))
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

/// KV memory on a decode node, in KiB permits: beyond the budget, requests queue.
#[derive(Clone)]
pub struct KvBudget {
    sem: Arc<Semaphore>,
    total_kib: u32,
}

impl KvBudget {
    pub fn new(bytes: u64) -> KvBudget {
        let kib = (bytes / 1024).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        KvBudget {
            sem: Arc::new(Semaphore::new(kib as usize)),
            total_kib: kib,
        }
    }

    /// Waits for room for `bytes` of KV (a request larger than the whole budget takes it all).
    pub async fn admit(&self, bytes: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = (bytes.div_ceil(1024) as u32).clamp(1, self.total_kib);
        self.sem.clone().acquire_many_owned(kib).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_prefills_wait_for_earlier_batches() {
        let p = Arc::new(Profile::load("tiny").unwrap());
        let m = Arc::new(Metrics::default());
        let engine = PrefillEngine::start(p.clone(), 1.0, m.clone());
        let t0 = tokio::time::Instant::now();
        // Three requests each filling a whole batch run one after another.
        let jobs: Vec<_> = (0..3)
            .map(|_| {
                let (e, m) = (engine.clone(), m.clone());
                tokio::spawn(async move {
                    e.prefill(p_batch(), &m).await;
                    t0.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for j in jobs {
            times.push(j.await.unwrap());
        }
        times.sort();
        let one = p.prefill_time(p.prefill_batch_tokens);
        assert!(
            times[2] >= one * 3 - Duration::from_millis(5),
            "{times:?} vs {one:?}"
        );
    }

    fn p_batch() -> u64 {
        Profile::load("tiny").unwrap().prefill_batch_tokens
    }
}
