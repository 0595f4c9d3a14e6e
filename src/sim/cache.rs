//! The prefill node's prefix cache: block-hash prefix matching, capacity in KV bytes, LRU.
//!
//! A prompt is cut into fixed blocks of text; block i's key hashes blocks 0..=i, so a hit on
//! block i means the whole prefix up to it is shared. Hit blocks need no prefill time.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Characters per cache block (about 16 tokens by the 4-chars-a-token estimate).
pub const BLOCK_CHARS: usize = 64;

pub struct PrefixCache {
    capacity_bytes: u64,
    bytes_per_block: u64,
    used_bytes: u64,
    tick: u64,
    blocks: HashMap<u64, u64>,
}

impl PrefixCache {
    pub fn new(capacity_bytes: u64, kv_bytes_per_token: u64) -> PrefixCache {
        PrefixCache {
            capacity_bytes,
            bytes_per_block: kv_bytes_per_token * (BLOCK_CHARS as u64 / 4),
            used_bytes: 0,
            tick: 0,
            blocks: HashMap::new(),
        }
    }

    fn keys(text: &str) -> Vec<u64> {
        let chars: Vec<char> = text.chars().collect();
        let mut h = DefaultHasher::new();
        chars
            .chunks(BLOCK_CHARS)
            .filter(|c| c.len() == BLOCK_CHARS)
            .map(|c| {
                c.hash(&mut h);
                h.finish()
            })
            .collect()
    }

    /// Looks up `text`, inserts its blocks, and returns the fraction of the prompt that hit.
    pub fn lookup_insert(&mut self, text: &str) -> f64 {
        let keys = Self::keys(text);
        let total_blocks = text.chars().count().div_ceil(BLOCK_CHARS).max(1);
        self.tick += 1;
        let mut hits = 0;
        for k in &keys {
            match self.blocks.get_mut(k) {
                Some(t) => {
                    *t = self.tick;
                    hits += 1;
                }
                None => break,
            }
        }
        for k in keys.iter().skip(hits) {
            self.blocks.insert(*k, self.tick);
            self.used_bytes += self.bytes_per_block;
        }
        self.evict();
        hits as f64 / total_blocks as f64
    }

    fn evict(&mut self) {
        while self.used_bytes > self.capacity_bytes && !self.blocks.is_empty() {
            // Evict the least recently used block (a linear scan: caches here hold few blocks).
            if let Some((&k, _)) = self.blocks.iter().min_by_key(|(_, t)| **t) {
                self.blocks.remove(&k);
                self.used_bytes -= self.bytes_per_block;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_prefix_hits_and_unique_prefix_misses() {
        let mut c = PrefixCache::new(1 << 30, 1024);
        let doc = "x".repeat(BLOCK_CHARS * 10);
        assert_eq!(c.lookup_insert(&doc), 0.0);
        assert!(c.lookup_insert(&doc) > 0.99);
        assert_eq!(c.lookup_insert(&format!("[uuid] {doc}")), 0.0);
    }

    #[test]
    fn capacity_evicts_least_recently_used() {
        let mut c = PrefixCache::new(1024 * 16 * 4, 1024);
        let a = "a".repeat(BLOCK_CHARS * 4);
        let b = "b".repeat(BLOCK_CHARS * 4);
        c.lookup_insert(&a);
        c.lookup_insert(&b);
        assert_eq!(c.lookup_insert(&a), 0.0, "a was evicted by b");
    }
}
