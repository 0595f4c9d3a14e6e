//! The load generator: who sends what, when, until when.
//!
//! Two shapes, as in the article and in vLLM/goose: a closed loop of N users (each sends its next
//! request when the previous one ends), with an optional ramp-up of k users every s seconds; and
//! an open loop at a constant or Poisson rate whose latencies count from the intended send time,
//! so a late client cannot hide a slow server. Both stop at a request count and/or a duration,
//! or when cancelled, and then drain: requests in flight finish or hit their own timeouts.

use crate::clock::{self, Micros};
use crate::load::client::{self, Endpoint, EndpointError, Planned, Timeouts};
use crate::load::prompts::{
    self, Bucket, Prompt, PromptError, PromptSource, Prompts, TokenCounter,
};
use crate::load::record::RequestRecord;
use crate::load::shard::Shard;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which OpenAI endpoint is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    #[default]
    Chat,
    Completions,
}

/// Sampling fields passed through to the server as given (absent fields are not sent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub seed: Option<u64>,
    pub ignore_eos: Option<bool>,
}

/// `k` users added every `every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    pub users: u32,
    pub every: Duration,
}

/// When requests are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Closed { users: u32, ramp: Option<Ramp> },
    Open { rate_per_s: f64, poisson: bool },
}

/// Everything a load run needs. Build with [`LoadConfig::new`] and set fields.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL up to and including `/v1`.
    pub base_url: String,
    pub model: String,
    pub api: Api,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub sampling: Sampling,
    pub shape: Shape,
    pub max_requests: Option<u64>,
    pub duration: Option<Duration>,
    pub timeouts: Timeouts,
    pub prompts: PromptSource,
    /// A UUID prefix per request, to defeat prefix caches. On by default.
    pub unique_prefix: bool,
    pub buckets: Vec<Bucket>,
    pub tokenizer: Option<PathBuf>,
    pub seed: u64,
    /// A missing `usage` fails the request instead of warning.
    pub require_usage: bool,
    /// Open loop: at most this many requests in flight (a safety bound, not a shape).
    pub max_in_flight: usize,
    /// The part of the run this process drives ([`Shard::WHOLE`] unless the run is split):
    /// its share of the users, of `max_requests` and of the rate, the FIFO dataset lines it owns,
    /// and its own seed. `shape` and `max_requests` describe the whole run.
    pub shard: Shard,
}

impl LoadConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LoadConfig {
            base_url: base_url.into(),
            model: model.into(),
            api: Api::Chat,
            api_key: None,
            headers: Vec::new(),
            sampling: Sampling::default(),
            shape: Shape::Closed {
                users: 1,
                ramp: None,
            },
            max_requests: None,
            duration: None,
            timeouts: Timeouts {
                first_token: Duration::from_secs(60),
                total: Duration::from_secs(600),
            },
            prompts: PromptSource::Inline("Say hello.".into()),
            unique_prefix: true,
            buckets: Vec::new(),
            tokenizer: None,
            seed: 0,
            require_usage: false,
            max_in_flight: 10_000,
            shard: Shard::WHOLE,
        }
    }

    /// Why this process's shard would have nothing to send, if so.
    pub fn empty_shard(&self) -> Option<String> {
        let s = self.shard;
        if let Shape::Closed { users, .. } = self.shape
            && s.share(users.into()) == 0
        {
            return Some(format!(
                "shard {s} gets none of {users} users: a closed loop needs at least one user per shard"
            ));
        }
        if let Some(n) = self.max_requests
            && s.share(n) == 0
        {
            return Some(format!(
                "shard {s} gets none of {n} requests: give at least one request per shard"
            ));
        }
        None
    }

    /// The request URL for the configured API.
    pub fn url(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        match self.api {
            Api::Chat => format!("{base}/chat/completions"),
            Api::Completions => format!("{base}/completions"),
        }
    }
}

/// Why a load could not start. Failures of requests are outcomes, never errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("invalid load: {0}")]
    Invalid(String),
}

struct Shared {
    cfg: LoadConfig,
    endpoint: Endpoint,
    prompts: Prompts,
    issued: AtomicU64,
    deadline: Option<Instant>,
    cancel: CancellationToken,
}

impl Shared {
    /// Claims the next request id (unique across the shards of a run), or `None` once this
    /// shard's part of the run is over.
    fn claim(&self) -> Option<u64> {
        if self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let local = self.issued.fetch_add(1, Ordering::Relaxed);
        let shard = self.cfg.shard;
        if self
            .cfg
            .max_requests
            .is_some_and(|m| local >= shard.share(m))
        {
            return None;
        }
        Some(shard.global(local))
    }

    fn plan(&self, id: u64, user: u32, intended_us: Micros) -> Option<Planned> {
        let drawn = self.prompts.next()?;
        let prompt = if self.cfg.unique_prefix {
            prompts::with_unique_prefix(drawn.prompt, &format!("[{}]", uuid::Uuid::new_v4()))
        } else {
            drawn.prompt
        };
        Some(Planned {
            id,
            user,
            bucket: drawn.bucket,
            intended_us,
            body: request_body(&self.cfg, prompt),
            input_tokens: drawn.tokens,
            input_estimated: drawn.estimated,
        })
    }
}

/// Builds the JSON body of one streaming request.
pub fn request_body(cfg: &LoadConfig, prompt: Prompt) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(cfg.model));
    match (cfg.api, prompt) {
        (Api::Chat, Prompt::Messages(m)) => body.insert("messages".into(), Value::Array(m)),
        (Api::Chat, Prompt::Text(t)) => {
            body.insert("messages".into(), json!([{"role": "user", "content": t}]))
        }
        (Api::Completions, p) => body.insert("prompt".into(), json!(prompts::prompt_text(&p))),
    };
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    let s = &cfg.sampling;
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    };
    put("max_tokens", s.max_tokens.map(|v| json!(v)));
    put("temperature", s.temperature.map(|v| json!(v)));
    put("top_p", s.top_p.map(|v| json!(v)));
    put("top_k", s.top_k.map(|v| json!(v)));
    put("seed", s.seed.map(|v| json!(v)));
    put("ignore_eos", s.ignore_eos.map(|v| json!(v)));
    Value::Object(body)
}

/// Runs the load until its bounds or `cancel`, then drains. Calls `on_record` as each request
/// ends and returns every record in completion order.
pub async fn run(
    cfg: LoadConfig,
    cancel: CancellationToken,
    mut on_record: impl FnMut(&RequestRecord) + Send,
) -> Result<Vec<RequestRecord>, LoadError> {
    validate(&cfg)?;
    let counter = TokenCounter::load(cfg.tokenizer.as_deref())?;
    let prompts = Prompts::load(
        &cfg.prompts,
        &counter,
        &cfg.buckets,
        cfg.shard.seed(cfg.seed),
    )?
    .for_shard(cfg.shard);
    if prompts.is_empty()
        && let PromptSource::Dataset { path, .. } = &cfg.prompts
    {
        return Err(
            PromptError::Empty(format!("{} for shard {}", path.display(), cfg.shard)).into(),
        );
    }
    let endpoint = Endpoint::new(
        cfg.url(),
        cfg.api_key.as_deref(),
        &cfg.headers,
        cfg.timeouts.first_token,
    )?;
    let shared = Arc::new(Shared {
        deadline: cfg.duration.map(|d| Instant::now() + d),
        cfg,
        endpoint,
        prompts,
        issued: AtomicU64::new(0),
        cancel,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = match shared.cfg.shape.clone() {
        Shape::Closed { users, ramp } => tokio::spawn(closed_loop(shared.clone(), users, ramp, tx)),
        Shape::Open {
            rate_per_s,
            poisson,
        } => tokio::spawn(open_loop(shared.clone(), rate_per_s, poisson, tx)),
    };
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        on_record(&r);
        records.push(r);
    }
    let _ = driver.await;
    Ok(records)
}

fn validate(cfg: &LoadConfig) -> Result<(), LoadError> {
    let bad = |m: &str| Err(LoadError::Invalid(m.into()));
    if cfg.max_requests.is_none()
        && cfg.duration.is_none()
        && !matches!(
            cfg.prompts,
            PromptSource::Dataset {
                order: prompts::Order::Fifo,
                ..
            }
        )
    {
        return bad("set a request count, a duration, or a FIFO dataset: the run must end");
    }
    if let Some(why) = cfg.empty_shard() {
        return Err(LoadError::Invalid(why));
    }
    match &cfg.shape {
        Shape::Closed { users: 0, .. } => bad("concurrency must be at least 1"),
        Shape::Closed { ramp: Some(r), .. } if r.users == 0 || r.every.is_zero() => {
            bad("ramp-up must add at least 1 user every non-zero interval")
        }
        Shape::Open { rate_per_s, .. } if !(rate_per_s.is_finite() && *rate_per_s > 0.0) => {
            bad("rate must be a positive number of requests per second")
        }
        _ => Ok(()),
    }
}

async fn closed_loop(
    shared: Arc<Shared>,
    users: u32,
    ramp: Option<Ramp>,
    tx: mpsc::UnboundedSender<RequestRecord>,
) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // Users are numbered across the run and dealt round robin to shards; each starts when the
    // run-wide ramp would start it, so the shards together ramp as one process would.
    let shard = shared.cfg.shard;
    for user in (0..users).filter(|u| shard.owns(u64::from(*u))) {
        let delay = ramp.map_or(Duration::ZERO, |r| r.every * (user / r.users));
        let (shared, tx) = (shared.clone(), tx.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(start + delay) => {}
                _ = shared.cancel.cancelled() => return,
            }
            while let Some(id) = shared.claim() {
                let Some(plan) = shared.plan(id, user, clock::now_us()) else {
                    break;
                };
                let rec = client::execute(
                    &shared.endpoint,
                    plan,
                    shared.cfg.timeouts,
                    shared.cfg.require_usage,
                )
                .await;
                if tx.send(rec).is_err() {
                    break;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn open_loop(
    shared: Arc<Shared>,
    rate: f64,
    poisson: bool,
    tx: mpsc::UnboundedSender<RequestRecord>,
) {
    let mut rng: StdRng = rand::SeedableRng::seed_from_u64(shared.cfg.shard.seed(shared.cfg.seed));
    // Each shard sends its part of the rate; the sum of the shards' (Poisson) arrivals has the
    // run's rate (and is Poisson again).
    let rate = rate / f64::from(shared.cfg.shard.count);
    let gate = Arc::new(tokio::sync::Semaphore::new(shared.cfg.max_in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    let mut intended = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(intended) => {}
            _ = shared.cancel.cancelled() => break,
        }
        let Some(id) = shared.claim() else { break };
        let Some(plan) = shared.plan(id, 0, clock::at(intended.into_std())) else {
            break;
        };
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let (shared2, tx2) = (shared.clone(), tx.clone());
        tasks.spawn(async move {
            let rec = client::execute(
                &shared2.endpoint,
                plan,
                shared2.cfg.timeouts,
                shared2.cfg.require_usage,
            )
            .await;
            drop(permit);
            let _ = tx2.send(rec);
        });
        let gap = if poisson {
            // Exponential inter-arrival times: -ln(U)/rate.
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            -u.ln() / rate
        } else {
            1.0 / rate
        };
        intended += Duration::from_secs_f64(gap);
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_stream_usage_and_only_given_sampling_fields() {
        let mut cfg = LoadConfig::new("http://x/v1", "m");
        cfg.sampling.max_tokens = Some(10);
        cfg.sampling.ignore_eos = Some(true);
        let b = request_body(&cfg, Prompt::Text("hi".into()));
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["max_tokens"], 10);
        assert_eq!(b["ignore_eos"], true);
        assert!(b.get("temperature").is_none());
        assert_eq!(b["messages"][0]["content"], "hi");
        cfg.api = Api::Completions;
        assert_eq!(
            request_body(&cfg, Prompt::Text("hi".into()))["prompt"],
            "hi"
        );
        assert_eq!(cfg.url(), "http://x/v1/completions");
    }

    #[test]
    fn a_shard_with_no_users_or_no_requests_is_refused() {
        let mut cfg = LoadConfig::new("http://x/v1", "m");
        cfg.max_requests = Some(10);
        cfg.shape = Shape::Closed {
            users: 2,
            ramp: None,
        };
        cfg.shard = Shard::new(1, 2).unwrap();
        assert!(validate(&cfg).is_ok());
        cfg.shard = Shard::new(2, 3).unwrap();
        let e = validate(&cfg).unwrap_err().to_string();
        assert!(e.contains("shard 2/3 gets none of 2 users"), "{e}");
        cfg.shape = Shape::Open {
            rate_per_s: 1.0,
            poisson: false,
        };
        assert!(validate(&cfg).is_ok());
        cfg.max_requests = Some(2);
        let e = validate(&cfg).unwrap_err().to_string();
        assert!(e.contains("none of 2 requests"), "{e}");
    }

    #[test]
    fn unbounded_runs_are_refused() {
        let cfg = LoadConfig::new("http://x/v1", "m");
        assert!(validate(&cfg).is_err());
    }
}
