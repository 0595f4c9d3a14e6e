//! Load from several machines: one run split into shards, each saved as a file, merged exactly.
//!
//! `pdchaos load --shard I/N` drives shard `I` of `N` (0-based): its share of the users, of the
//! request count and of the rate, and of a FIFO dataset the prompts `I, I+N, I+2N, ...`
//! ([`Shard`] holds every one of those rules). With `--save-shard FILE` it writes a
//! [`ShardFile`]: the [`Tally`] a summary is computed from, whose HDR histograms are stored as
//! the base64 text of HdrHistogram's V2 deflate encoding (the encoding HdrHistogram's own logs
//! use, so other HDR tools can read them). `pdchaos merge` reads the files, checks that they
//! belong together ([`merge`]) and adds the tallies.
//!
//! What is exact: counts, token sums and every histogram add bucket by bucket, so the merged
//! percentiles, means, minima and maxima equal those of one process over the same records (the
//! unit tests below show it). The window is the earliest intended send to the latest end over
//! all shards, on absolute time; what is not exact is the alignment of the machines' clocks,
//! which shifts a shard's window (and so the merged QPM) by the skew between them.

use crate::load::metrics::{Hist, Summary, Tally};
use crate::load::record::OutcomeKind;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::{Deserializer as HdrDeserializer, Serializer as _};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The `format` field of every shard file.
pub const FORMAT: &str = "pdchaos-load-shard";
/// The version this build writes and the only one it reads.
pub const VERSION: u32 = 1;

/// Part `index` of `count` (0-based) of a load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole run in one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count N must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: it is 0-based, below N = {count}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// This shard's part of `total` (users or requests): split as evenly as possible, the
    /// remainder going to the lowest shards, so the parts of all shards add up to `total`.
    pub fn share(&self, total: u64) -> u64 {
        let (n, i) = (u64::from(self.count), u64::from(self.index));
        total / n + u64::from(i < total % n)
    }

    /// Whether the `k`-th item of a sequence (a user, a dataset line) belongs to this shard:
    /// items are dealt round robin, so shard `I` has `I, I+N, I+2N, ...`.
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }

    /// The run-wide number of this shard's `local`-th item (the inverse of the dealing above),
    /// so request ids and user ids stay unique across shards.
    pub fn global(&self, local: u64) -> u64 {
        local * u64::from(self.count) + u64::from(self.index)
    }

    /// The seed this shard draws with: `seed` itself for a whole run, else one derived from
    /// `seed` and the index, so that shards do not repeat each other's draws.
    pub fn seed(&self, seed: u64) -> u64 {
        if self.count == 1 {
            return seed;
        }
        // A splitmix64 step over the index keeps nearby seeds far apart.
        let mut z = seed ^ (u64::from(self.index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` must be I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i: u32 = i.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n).map_err(|e| format!("`{s}`: {e}"))
    }
}

/// What one shard saves: enough to merge exactly with the other shards of its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    pub shard: Shard,
    /// Counts by outcome, token sums, the absolute window and the histograms.
    pub tally: Tally,
}

impl ShardFile {
    pub fn new(shard: Shard, tally: Tally) -> ShardFile {
        ShardFile {
            format: FORMAT.into(),
            version: VERSION,
            shard,
            tally,
        }
    }

    /// Parses and checks a shard file's text; the error says what is wrong, without the path.
    pub fn from_json(text: &str) -> Result<ShardFile, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(format!("not a shard file (no \"format\": \"{FORMAT}\")"));
        }
        match v.get("version").and_then(|f| f.as_u64()) {
            Some(n) if n == u64::from(VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "shard file version {n}; this pdchaos reads version {VERSION}"
                ));
            }
            None => return Err("no shard file version".into()),
        }
        let file: ShardFile = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Shard::new(file.shard.index, file.shard.count).map_err(|e| format!("shard: {e}"))?;
        check_tally(&file.tally, "")?;
        for (bucket, t) in &file.tally.by_bucket {
            if !t.by_bucket.is_empty() {
                return Err(format!("bucket `{bucket}` has buckets of its own"));
            }
            check_tally(t, &format!("bucket `{bucket}`: "))?;
        }
        Ok(file)
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// The consistency a tally written by [`Tally::add`] always has.
fn check_tally(t: &Tally, ctx: &str) -> Result<(), String> {
    for k in t.outcomes.keys() {
        k.parse::<OutcomeKind>().map_err(|e| format!("{ctx}{e}"))?;
    }
    let e2e = t.histograms.e2e_us.len();
    if e2e != t.ok() {
        return Err(format!(
            "{ctx}{} ok requests but {e2e} latencies in the e2e_us histogram",
            t.ok()
        ));
    }
    if t.total() > 0 && t.window.is_none() {
        return Err(format!("{ctx}requests but no window"));
    }
    Ok(())
}

/// Why shard files could not be merged; every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("no shard files to merge")]
    Nothing,
}

/// Shard files merged into one tally.
#[derive(Debug, Clone)]
pub struct Merged {
    pub tally: Tally,
    /// N, common to every file.
    pub count: u32,
    /// The indices merged, ascending.
    pub merged: Vec<u32>,
    /// The indices of `0..N` that no file carried.
    pub missing: Vec<u32>,
}

impl Merged {
    pub fn summary(&self) -> Summary {
        self.tally.summary()
    }
}

/// Reads and checks one shard file.
pub fn read(path: &Path) -> Result<ShardFile, MergeError> {
    let err = |reason: String| MergeError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    ShardFile::from_json(&text).map_err(err)
}

/// Merges shard files of one run: they must agree on N and carry distinct indices. Shards that
/// no file carries are listed in [`Merged::missing`]; whether that is acceptable is the
/// caller's decision.
pub fn merge(files: &[(PathBuf, ShardFile)]) -> Result<Merged, MergeError> {
    let ((first_path, first), _) = files.split_first().ok_or(MergeError::Nothing)?;
    let count = first.shard.count;
    let mut seen: BTreeMap<u32, &Path> = BTreeMap::new();
    let mut tally = Tally::default();
    for (path, file) in files {
        let err = |reason: String| MergeError::File {
            path: path.display().to_string(),
            reason,
        };
        if file.shard.count != count {
            return Err(err(format!(
                "shard {} is one of {} shards, but {} is one of {count}",
                file.shard,
                file.shard.count,
                first_path.display()
            )));
        }
        if let Some(other) = seen.insert(file.shard.index, path) {
            return Err(err(format!(
                "shard {} again (also in {})",
                file.shard,
                other.display()
            )));
        }
        tally
            .merge(&file.tally)
            .map_err(|e| err(format!("histograms do not add: {e:?}")))?;
    }
    Ok(Merged {
        tally,
        count,
        merged: seen.keys().copied().collect(),
        missing: (0..count).filter(|i| !seen.contains_key(i)).collect(),
    })
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .map_err(|e| S::Error::custom(format!("cannot encode a histogram: {e}")))?;
        s.serialize_str(&BASE64.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| D::Error::custom(format!("histogram is not base64: {e}")))?;
        let h: Histogram<u64> = HdrDeserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| D::Error::custom(format!("histogram is not HDR V2: {e}")))?;
        // Only histograms of the layout `Hist::new` makes add bucket for bucket.
        let want = Hist::new();
        if h.sigfig() != want.0.sigfig() || h.low() != want.0.low() {
            return Err(D::Error::custom(format!(
                "histogram has {} significant digits and lowest value {}; pdchaos writes {} and {}",
                h.sigfig(),
                h.low(),
                want.0.sigfig(),
                want.0.low()
            )));
        }
        Ok(Hist::from_histogram(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::metrics::summarize;
    use crate::load::record::{RequestRecord, ServerInfo};
    use crate::pd::PdMode;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const T0: u64 = 1_790_000_000_000_000;

    /// Varied records: every outcome, buckets, modes, statuses, estimated tokens, missing usage,
    /// latencies over five orders of magnitude (so histograms resize differently per part).
    fn records(n: u64, seed: u64) -> Vec<RequestRecord> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|id| {
                let outcome = if rng.random_bool(0.7) {
                    OutcomeKind::Ok
                } else {
                    OutcomeKind::ALL[rng.random_range(1..OutcomeKind::ALL.len())]
                };
                let sent = T0 + id * 37_000 + rng.random_range(0..20_000);
                let ttft = 10u64.pow(rng.random_range(2..7)) + rng.random_range(0..999);
                let tokens: u64 = rng.random_range(0..400);
                let gaps: Vec<u64> = (0..tokens.min(20))
                    .scan(ttft, |t, _| {
                        *t += rng.random_range(1_000..90_000);
                        Some(*t)
                    })
                    .collect();
                let end = sent + gaps.last().copied().unwrap_or(ttft) + rng.random_range(0..5_000);
                let reasoning = rng.random_bool(0.3);
                RequestRecord {
                    id,
                    user: (id % 7) as u32,
                    bucket: Some(["short", "long"][rng.random_range(0..2)].into()),
                    intended_us: sent - rng.random_range(0..3_000),
                    first_reasoning_us: reasoning.then_some(sent + ttft),
                    first_answer_us: Some(sent + ttft + if reasoning { 50_000 } else { 0 }),
                    end_us: end,
                    chunk_offsets_us: gaps,
                    finish_reason: Some("stop".into()),
                    input_tokens: rng.random_range(1..5_000),
                    output_tokens: tokens,
                    tokens_estimated: rng.random_bool(0.1),
                    http_status: Some([200, 503, 429][rng.random_range(0..3)]),
                    answer_chars: tokens * 4,
                    server: ServerInfo {
                        mode: [None, Some(PdMode::Disaggregated), Some(PdMode::PrefillOnly)]
                            [rng.random_range(0..3)],
                        ..ServerInfo::default()
                    },
                    missing_usage: rng.random_bool(0.05),
                    ..RequestRecord::fixture(sent, outcome)
                }
            })
            .collect()
    }

    /// Tallies each part, writes and reads it back as a shard file, merges the files.
    fn merge_parts(parts: Vec<Vec<&RequestRecord>>) -> Merged {
        let count = parts.len() as u32;
        let files: Vec<(PathBuf, ShardFile)> = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut tally = Tally::default();
                part.into_iter().for_each(|r| tally.add(r));
                let file = ShardFile::new(Shard::new(i as u32, count).unwrap(), tally);
                let back = ShardFile::from_json(&file.to_json().unwrap()).unwrap();
                assert_eq!(back, file, "shard {i} changed in a round trip");
                (PathBuf::from(format!("shard-{i}.json")), back)
            })
            .collect();
        merge(&files).unwrap()
    }

    #[test]
    fn merged_shards_summarise_exactly_as_one_process() {
        let recs = records(3_000, 7);
        let whole = summarize(&recs, None);
        // The test means something only if every figure is populated.
        assert!(whole.requests.failed > 0 && whole.requests.ok > 0);
        assert!(whole.ttft_ms.p99 > whole.ttft_ms.p50 && whole.itl_ms.count > 0);
        assert!(whole.tpot_ms.count > 0 && whole.decode_tps.count > 0);
        assert_eq!(whole.by_bucket.len(), 2);
        assert!(!whole.modes.is_empty() && !whole.http_statuses.is_empty());
        for n in [1usize, 2, 3, 7] {
            // Dealt round robin, as `--shard` deals requests.
            let mut parts = vec![Vec::new(); n];
            for (i, r) in recs.iter().enumerate() {
                parts[i % n].push(r);
            }
            let merged = merge_parts(parts);
            assert!(merged.missing.is_empty());
            // Exact equality of every field: counts, rates, the window, every percentile.
            assert_eq!(merged.summary(), whole, "{n} shards");
        }
    }

    #[test]
    fn merging_is_exact_for_contiguous_parts_and_uneven_sizes() {
        // Shards on different machines see different latency ranges: the early part only small
        // values, the late part large ones, so their histograms have different sizes.
        let mut recs = records(1_500, 11);
        recs.sort_by_key(|r| r.end_us - r.intended_us);
        let whole = summarize(&recs, None);
        let parts = vec![
            recs[..10].iter().collect(),
            recs[10..1_400].iter().collect(),
            recs[1_400..].iter().collect(),
            Vec::new(),
        ];
        assert_eq!(merge_parts(parts).summary(), whole);
    }

    #[test]
    fn merging_one_shard_alone_differs_and_reports_the_missing_ones() {
        let recs = records(600, 3);
        let mut parts = vec![Vec::new(); 3];
        for (i, r) in recs.iter().enumerate() {
            parts[i % 3].push(r);
        }
        let only: Vec<_> = parts[0].clone();
        let mut tally = Tally::default();
        only.iter().for_each(|r| tally.add(r));
        let files = vec![(
            PathBuf::from("a.json"),
            ShardFile::new(Shard::new(0, 3).unwrap(), tally),
        )];
        let m = merge(&files).unwrap();
        assert_eq!(m.missing, vec![1, 2]);
        assert_eq!(m.summary().requests.total, 200);
        assert_ne!(m.summary(), summarize(&recs, None));
    }

    #[test]
    fn split_rules_cover_everything_once() {
        for (total, n) in [(10u64, 3u32), (2, 5), (0, 1), (7, 7), (1_000_001, 4)] {
            let shards: Vec<Shard> = (0..n).map(|i| Shard::new(i, n).unwrap()).collect();
            assert_eq!(shards.iter().map(|s| s.share(total)).sum::<u64>(), total);
            let shares: Vec<u64> = shards.iter().map(|s| s.share(total)).collect();
            assert!(shares.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            for k in 0..total.min(1000) {
                assert_eq!(shards.iter().filter(|s| s.owns(k)).count(), 1);
            }
            for s in &shards {
                // The owned items are exactly the global numbers of the local ones.
                for local in 0..s.share(total.min(1000)) {
                    assert!(s.owns(s.global(local)));
                }
            }
        }
        assert_eq!(Shard::new(1, 3).unwrap().share(10), 3);
        assert_eq!(Shard::new(0, 3).unwrap().share(10), 4);
        assert_eq!(Shard::WHOLE.seed(42), 42);
        let seeds: Vec<u64> = (0..4).map(|i| Shard::new(i, 4).unwrap().seed(42)).collect();
        assert!(
            seeds
                .iter()
                .all(|s| seeds.iter().filter(|t| *t == s).count() == 1)
        );
    }

    #[test]
    fn shard_text_parses_and_bad_text_is_refused() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::WHOLE.to_string(), "0/1");
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2", "1/2/3", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
    }

    fn file(index: u32, count: u32) -> ShardFile {
        let recs = records(20, u64::from(index));
        let mut t = Tally::default();
        recs.iter().for_each(|r| t.add(r));
        ShardFile::new(Shard { index, count }, t)
    }

    #[test]
    fn mismatched_files_are_refused_naming_the_file() {
        let p = |s: &str| PathBuf::from(s);
        let e = merge(&[(p("a"), file(0, 2)), (p("b"), file(1, 3))]).unwrap_err();
        assert!(e.to_string().starts_with("b: "), "{e}");
        assert!(e.to_string().contains("of 3 shards"), "{e}");
        let e = merge(&[(p("a"), file(1, 2)), (p("b"), file(1, 2))]).unwrap_err();
        assert!(
            e.to_string().contains("b: shard 1/2 again (also in a)"),
            "{e}"
        );
        assert!(matches!(merge(&[]), Err(MergeError::Nothing)));
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let good: serde_json::Value = serde_json::from_str(&file(0, 1).to_json().unwrap()).unwrap();
        let with = |path: &str, v: serde_json::Value| {
            let mut doc = good.clone();
            *doc.pointer_mut(path).unwrap() = v;
            ShardFile::from_json(&doc.to_string()).unwrap_err()
        };
        assert!(with("/version", 2.into()).contains("version 2"));
        assert!(with("/format", "other".into()).contains("not a shard file"));
        assert!(with("/shard/index", 3.into()).contains("out of range"));
        let e = with("/tally/histograms/ttft_us", "@@@".into());
        assert!(e.contains("not base64"), "{e}");
        let e = with(
            "/tally/histograms/ttft_us",
            BASE64.encode(b"abcdefgh").into(),
        );
        assert!(e.contains("not HDR"), "{e}");
        let e = with("/tally/outcomes/ok", 1_000.into());
        assert!(e.contains("latencies in the e2e_us histogram"), "{e}");
        let e = with("/tally/outcomes", serde_json::json!({"weird": 1}));
        assert!(e.contains("unknown outcome"), "{e}");
        assert!(ShardFile::from_json("{").unwrap_err().contains("not JSON"));
        // A histogram of another precision would not add bucket for bucket.
        let mut h = Histogram::<u64>::new(2).unwrap();
        h.record(5).unwrap();
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h, &mut bytes)
            .unwrap();
        let e = with("/tally/histograms/itl_us", BASE64.encode(bytes).into());
        assert!(e.contains("2 significant digits"), "{e}");
    }
}
