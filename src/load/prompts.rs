//! Where prompts come from: inline text, JSONL datasets, or synthetic text of a target length.
//!
//! Datasets are read whole at start so that a bad line fails before any request is sent, with
//! its line number. Each prompt's token count is computed once (HF `tokenizer.json` when given,
//! else an estimate) and decides its length bucket. A unique prefix (a UUID) is added per request
//! by default so that prefix caches cannot flatter TTFT; cache tests turn it off.

use crate::load::shard::Shard;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How a dataset is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Drawn at random, with replacement (the article's fixed-concurrency runs).
    #[default]
    Random,
    /// Each line once, in file order; the run stops when the data is exhausted (cache tests).
    Fifo,
}

/// Where prompts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSource {
    Inline(String),
    Dataset {
        path: PathBuf,
        order: Order,
    },
    /// Synthetic text of about this many tokens.
    Synthetic {
        tokens: u64,
    },
}

/// A token-length range `[min, max)` with a label, e.g. `16k-32k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub label: String,
    pub min: u64,
    pub max: u64,
}

/// Problems with prompt input, each naming the file, line or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read dataset {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("dataset {0} has no prompts")]
    Empty(String),
    #[error("cannot load tokenizer {path}: {reason}")]
    Tokenizer { path: String, reason: String },
    #[error("invalid bucket `{0}`: expected MIN-MAX in tokens, e.g. 0-16k,16k-48k")]
    Bucket(String),
}

/// One prompt, ready to be turned into a request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Messages(Vec<Value>),
    Text(String),
}

#[derive(Debug, Clone)]
struct Entry {
    prompt: Prompt,
    tokens: u64,
    estimated: bool,
    bucket: Option<String>,
}

/// Counts tokens with a real tokenizer when given, else estimates.
pub enum TokenCounter {
    Tokenizer(Box<tokenizers::Tokenizer>),
    /// About 4 ASCII characters per token, one token per other character (CJK text).
    Estimate,
}

impl TokenCounter {
    pub fn load(path: Option<&Path>) -> Result<Self, PromptError> {
        match path {
            None => Ok(TokenCounter::Estimate),
            Some(p) => tokenizers::Tokenizer::from_file(p)
                .map(|t| TokenCounter::Tokenizer(Box::new(t)))
                .map_err(|e| PromptError::Tokenizer {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// (tokens, estimated)
    pub fn count(&self, text: &str) -> (u64, bool) {
        match self {
            TokenCounter::Tokenizer(t) => match t.encode(text, false) {
                Ok(enc) => (enc.len() as u64, false),
                Err(_) => (estimate_tokens(text), true),
            },
            TokenCounter::Estimate => (estimate_tokens(text), true),
        }
    }
}

/// The fallback estimate: ~4 ASCII characters a token, one token per non-ASCII character.
pub fn estimate_tokens(text: &str) -> u64 {
    let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
    let other = text.chars().filter(|c| !c.is_ascii()).count() as u64;
    ascii.div_ceil(4) + other
}

/// Parses `0-16k,16k-48k,48k-128k`: token ranges, `k` meaning 1,000 (as people write context
/// sizes). A prompt outside every range gets the bucket `other`.
pub fn parse_buckets(text: &str) -> Result<Vec<Bucket>, PromptError> {
    let num = |s: &str, whole: &str| -> Result<u64, PromptError> {
        let s = s.trim().to_ascii_lowercase();
        let (digits, mult) = match s.strip_suffix('k') {
            Some(d) => (d.to_string(), 1000),
            None => (s.clone(), 1),
        };
        digits
            .parse::<u64>()
            .map(|v| v * mult)
            .map_err(|_| PromptError::Bucket(whole.to_string()))
    };
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| PromptError::Bucket(part.into()))?;
            let (min, max) = (num(a, part)?, num(b, part)?);
            if min >= max {
                return Err(PromptError::Bucket(part.into()));
            }
            Ok(Bucket {
                label: part.trim().to_string(),
                min,
                max,
            })
        })
        .collect()
}

/// The prompts of a run, shared by every user.
pub struct Prompts {
    entries: Vec<Entry>,
    order: Order,
    cursor: AtomicUsize,
    rng: Mutex<StdRng>,
}

/// A prompt drawn for one request.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub prompt: Prompt,
    pub tokens: u64,
    pub estimated: bool,
    pub bucket: Option<String>,
}

impl Prompts {
    pub fn load(
        source: &PromptSource,
        counter: &TokenCounter,
        buckets: &[Bucket],
        seed: u64,
    ) -> Result<Self, PromptError> {
        let (raw, order) = match source {
            PromptSource::Inline(text) => (vec![Prompt::Text(text.clone())], Order::Random),
            PromptSource::Synthetic { tokens } => {
                (vec![Prompt::Text(synthetic(*tokens, seed))], Order::Random)
            }
            PromptSource::Dataset { path, order } => (read_dataset(path)?, *order),
        };
        let entries = raw
            .into_iter()
            .map(|prompt| {
                let (tokens, estimated) = counter.count(&prompt_text(&prompt));
                let bucket = buckets
                    .iter()
                    .find(|b| tokens >= b.min && tokens < b.max)
                    .map(|b| b.label.clone())
                    .or_else(|| (!buckets.is_empty()).then(|| "other".to_string()));
                Entry {
                    prompt,
                    tokens,
                    estimated,
                    bucket,
                }
            })
            .collect();
        Ok(Prompts {
            entries,
            order,
            cursor: AtomicUsize::new(0),
            rng: Mutex::new(rand::SeedableRng::seed_from_u64(seed)),
        })
    }

    /// The prompts shard `shard` may send. A FIFO dataset keeps the lines the shard owns
    /// (`I, I+N, I+2N, ...`), so the shards of a run never send the same line; random draws keep
    /// every line (each shard draws with its own seed).
    pub fn for_shard(mut self, shard: Shard) -> Self {
        if self.order == Order::Fifo {
            let mut k = 0u64;
            self.entries.retain(|_| {
                k += 1;
                shard.owns(k - 1)
            });
        }
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next prompt, or `None` once a FIFO dataset is exhausted.
    pub fn next(&self) -> Option<Drawn> {
        let index = match self.order {
            Order::Fifo => {
                let i = self.cursor.fetch_add(1, Ordering::Relaxed);
                (i < self.entries.len()).then_some(i)?
            }
            Order::Random => {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                rng.random_range(0..self.entries.len())
            }
        };
        let e = &self.entries[index];
        Some(Drawn {
            prompt: e.prompt.clone(),
            tokens: e.tokens,
            estimated: e.estimated,
            bucket: e.bucket.clone(),
        })
    }
}

/// Adds a unique prefix so that no two requests share a cacheable prefix.
pub fn with_unique_prefix(prompt: Prompt, prefix: &str) -> Prompt {
    match prompt {
        Prompt::Text(t) => Prompt::Text(format!("{prefix} {t}")),
        Prompt::Messages(mut msgs) => {
            if let Some(first) = msgs.first_mut()
                && let Some(Value::String(content)) = first.get_mut("content")
            {
                *content = format!("{prefix} {content}");
            } else {
                msgs.insert(0, json!({"role": "system", "content": prefix}));
            }
            Prompt::Messages(msgs)
        }
    }
}

/// The text used for token counting.
pub fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Messages(m) => m
            .iter()
            .filter_map(|msg| msg.get("content").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn read_dataset(path: &Path) -> Result<Vec<Prompt>, PromptError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PromptError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| PromptError::Line {
            path: shown.clone(),
            line: line_no,
            reason,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        if let Some(msgs) = v.get("messages") {
            let arr = msgs
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad("`messages` must be a non-empty array".into()))?;
            if arr
                .iter()
                .any(|m| m.get("role").and_then(Value::as_str).is_none())
            {
                return Err(bad("every message needs a string `role`".into()));
            }
            out.push(Prompt::Messages(arr.clone()));
        } else if let Some(p) = v.get("prompt") {
            let p = p
                .as_str()
                .ok_or_else(|| bad("`prompt` must be a string".into()))?;
            out.push(Prompt::Text(p.to_string()));
        } else {
            return Err(bad(
                "expected a `messages` array or a `prompt` string".into()
            ));
        }
    }
    if out.is_empty() {
        return Err(PromptError::Empty(shown));
    }
    Ok(out)
}

/// Deterministic filler text of about `tokens` tokens (by the estimate: 4 chars a token).
fn synthetic(tokens: u64, seed: u64) -> String {
    const WORDS: [&str; 8] = [
        "alpha", "bravo", "delta", "echo", "golf", "hotel", "kilo", "lima",
    ];
    let mut rng: StdRng = rand::SeedableRng::seed_from_u64(seed);
    let mut text = String::with_capacity(tokens as usize * 4);
    while estimate_tokens(&text) < tokens {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dataset(lines: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(lines.as_bytes()).unwrap();
        f
    }

    #[test]
    fn bad_dataset_line_names_its_number() {
        let f = dataset("{\"prompt\":\"a\"}\n\n{\"nope\":1}\n");
        let err = read_dataset(f.path()).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
        let f = dataset("{\"prompt\":\"a\"}\nnot json\n");
        assert!(
            read_dataset(f.path())
                .unwrap_err()
                .to_string()
                .contains(":2: not JSON")
        );
    }

    #[test]
    fn fifo_consumes_each_line_once_in_order() {
        let f = dataset(
            "{\"prompt\":\"one\"}\n{\"messages\":[{\"role\":\"user\",\"content\":\"two\"}]}\n",
        );
        let src = PromptSource::Dataset {
            path: f.path().into(),
            order: Order::Fifo,
        };
        let p = Prompts::load(&src, &TokenCounter::Estimate, &[], 1).unwrap();
        assert_eq!(p.next().unwrap().prompt, Prompt::Text("one".into()));
        assert!(matches!(p.next().unwrap().prompt, Prompt::Messages(_)));
        assert!(p.next().is_none());
    }

    #[test]
    fn fifo_shards_take_every_nth_line_and_random_keeps_all() {
        let text: String = (0..7)
            .map(|i| format!("{{\"prompt\":\"p{i}\"}}\n"))
            .collect();
        let f = dataset(&text);
        let drain = |order: Order, shard: Shard| -> Vec<String> {
            let src = PromptSource::Dataset {
                path: f.path().into(),
                order,
            };
            let p = Prompts::load(&src, &TokenCounter::Estimate, &[], 1)
                .unwrap()
                .for_shard(shard);
            std::iter::from_fn(|| p.next())
                .take(50)
                .map(|d| prompt_text(&d.prompt))
                .collect()
        };
        let s = |i| Shard::new(i, 3).unwrap();
        assert_eq!(drain(Order::Fifo, s(0)), ["p0", "p3", "p6"]);
        assert_eq!(drain(Order::Fifo, s(1)), ["p1", "p4"]);
        assert_eq!(drain(Order::Fifo, s(2)), ["p2", "p5"]);
        assert_eq!(drain(Order::Fifo, Shard::WHOLE).len(), 7);
        // Random draws go on (with replacement) over every line.
        let mut seen = drain(Order::Random, s(2));
        assert_eq!(seen.len(), 50);
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 3, "{seen:?}");
    }

    #[test]
    fn buckets_by_token_length() {
        let b = parse_buckets("0-10,10-1k").unwrap();
        assert_eq!(b[1].max, 1000);
        let src = PromptSource::Synthetic { tokens: 50 };
        let p = Prompts::load(&src, &TokenCounter::Estimate, &b, 1).unwrap();
        let d = p.next().unwrap();
        assert!(d.tokens >= 50 && d.tokens < 60, "{}", d.tokens);
        assert_eq!(d.bucket.as_deref(), Some("10-1k"));
        assert!(parse_buckets("5-2").is_err());
        assert!(parse_buckets("x").is_err());
    }

    #[test]
    fn unique_prefix_goes_into_the_first_message() {
        let p = Prompt::Messages(vec![json!({"role":"user","content":"hi"})]);
        let Prompt::Messages(m) = with_unique_prefix(p, "[u1]") else {
            panic!()
        };
        assert_eq!(m[0]["content"], "[u1] hi");
    }

    #[test]
    fn a_tokenizer_json_counts_real_tokens() {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,
            "decoder":null,"model":{"type":"WordLevel","vocab":{"hello":0,"world":1,"[UNK]":2},
            "unk_token":"[UNK]"}}"#;
        let f = dataset(json);
        let counter = TokenCounter::load(Some(f.path())).unwrap();
        // Three words are three tokens; the estimate would say ceil(17/4) = 5.
        assert_eq!(counter.count("hello world hello"), (3, false));
        assert_eq!(TokenCounter::Estimate.count("hello world hello"), (5, true));
        let bad = dataset("{not a tokenizer");
        let err = TokenCounter::load(Some(bad.path()))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("cannot load tokenizer")));
    }

    #[test]
    fn estimate_counts_cjk_per_character() {
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("你好"), 2);
    }
}
