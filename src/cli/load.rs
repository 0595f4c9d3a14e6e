//! `pdchaos load` and `pdchaos bench-client`: the load instrument from the command line.

use crate::cli::bad_input;
use crate::load::client::Timeouts;
use crate::load::engine::{Api, LoadConfig, Ramp, Shape};
use crate::load::metrics::{Summary, Tally};
use crate::load::prompts::{self, Order, PromptSource};
use crate::load::shard::{Shard, ShardFile};
use crate::load::{self, output};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ApiArg {
    Chat,
    Completions,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OrderArg {
    /// Draw lines at random (with replacement).
    Random,
    /// Use each line once, in file order, and stop when exhausted (cache tests).
    Fifo,
}

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
  pdchaos load --url http://127.0.0.1:8000/v1 --model m --concurrency 8 --requests 100 --json out.json\n  \
  pdchaos load --url $URL --model m --concurrency 32 --ramp 1/2s --duration 30m --dataset prompts.jsonl\n  \
  pdchaos load --url $URL --model m --rate 5 --poisson --duration 10m --records records.jsonl\n  \
  pdchaos load --url $URL --model m --dataset day1.jsonl --dataset-order fifo --no-unique-prefix --max-tokens 10\n\n\
From two machines, each driving half of the 64 users, then one summary of both:\n  \
  pdchaos load --url $URL --model m -c 64 --duration 10m --shard 0/2 --save-shard shard-0.json\n  \
  pdchaos load --url $URL --model m -c 64 --duration 10m --shard 1/2 --save-shard shard-1.json\n  \
  pdchaos merge shard-0.json shard-1.json --json summary.json\n\n\
Metric definitions: docs/metrics.md. Exit codes: 0 ok, 1 a --fail-under/--fail-over threshold broken, 2 bad input.")]
pub struct LoadArgs {
    /// Base URL of the OpenAI-compatible API, up to and including /v1.
    #[arg(long, env = "PDCHAOS_URL")]
    pub url: String,
    /// Model name sent in every request.
    #[arg(long)]
    pub model: String,
    /// Which endpoint to drive.
    #[arg(long, value_enum, default_value = "chat")]
    pub api: ApiArg,
    /// Bearer token (also read from PDCHAOS_API_KEY or OPENAI_API_KEY).
    #[arg(long, env = "PDCHAOS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Extra header NAME:VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,

    /// Closed loop: this many concurrent users.
    #[arg(long, short = 'c', conflicts_with = "rate")]
    pub concurrency: Option<u32>,
    /// Ramp-up as K/INTERVAL: add K users every INTERVAL (e.g. 1/2s), up to --concurrency.
    #[arg(long, value_name = "K/INTERVAL", requires = "concurrency")]
    pub ramp: Option<String>,
    /// Open loop: requests per second (latency counts from the intended send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop with Poisson (exponential) inter-arrival times.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Stop after this many requests.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Stop sending after this long (e.g. 30s, 10m); requests in flight drain.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// One inline prompt.
    #[arg(long, conflicts_with_all = ["dataset", "synthetic_tokens"])]
    pub prompt: Option<String>,
    /// JSONL file: one {"messages": [...]} or {"prompt": "..."} per line.
    #[arg(long, conflicts_with = "synthetic_tokens")]
    pub dataset: Option<PathBuf>,
    /// How the dataset is consumed.
    #[arg(long, value_enum, default_value = "random", requires = "dataset")]
    pub dataset_order: OrderArg,
    /// Synthetic prompts of about this many tokens.
    #[arg(long)]
    pub synthetic_tokens: Option<u64>,
    /// Do not add the unique per-request prefix (to measure prefix-cache hits).
    #[arg(long)]
    pub no_unique_prefix: bool,
    /// HF tokenizer.json used to count prompt tokens (else an estimate).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Length buckets in tokens, e.g. 0-16k,16k-48k,48k-128k (summaries split by bucket).
    #[arg(long)]
    pub buckets: Option<String>,

    #[arg(long)]
    pub max_tokens: Option<u32>,
    #[arg(long)]
    pub temperature: Option<f64>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long)]
    pub top_k: Option<i64>,
    /// Sampling seed sent to the server.
    #[arg(long)]
    pub sampling_seed: Option<u64>,
    #[arg(long)]
    pub ignore_eos: bool,

    /// Time allowed until the first token of any kind.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout_first_token: Duration,
    /// Time allowed for a whole request.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Treat a stream without `usage` as a failure (default: a warning).
    #[arg(long)]
    pub require_usage: bool,
    /// Seed for every random choice of the load (prompt draws, Poisson gaps).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Drive shard I of N (0-based) of the run described by the other flags: the users split as
    /// evenly as possible (remainder to the lowest shards), the same split of --requests, the
    /// rate divided by N, lines I, I+N, ... of a FIFO dataset. Merge with `pdchaos merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Write this process's shard file (counts, token sums, absolute window, HDR histograms)
    /// for `pdchaos merge`.
    #[arg(long, value_name = "FILE")]
    pub save_shard: Option<PathBuf>,
    /// Write every request record as JSONL; `-` writes them to stdout (and the table to
    /// stderr), which is how a load pod of a Kubernetes Job hands its records to the runner.
    #[arg(long)]
    pub records: Option<PathBuf>,
    /// Wait until this Unix time in milliseconds before sending (shards started by a Job
    /// begin together, so the runner's fault schedule lines up with their load).
    #[arg(long, value_name = "UNIX_MS")]
    pub start_at: Option<u64>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// What is done with a summary, by `pdchaos load` and `pdchaos merge` alike.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the summary as JSON (stable schema: docs/metrics.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write one CSV row with the article's columns.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Exit 1 when the success rate (percent) is below this.
    #[arg(long, value_name = "PCT")]
    pub fail_under_success: Option<f64>,
    /// Exit 1 when TTFT p90 (ms) is above this.
    #[arg(long, value_name = "MS")]
    pub fail_over_ttft_p90: Option<f64>,
    /// Exit 1 when the decode-rate p50 (tokens/s) is below this.
    #[arg(long, value_name = "TOK_S")]
    pub fail_under_decode_p50: Option<f64>,
}

impl ReportArgs {
    /// Prints the table, writes the JSON and CSV files, and returns the exit code: 1 when a
    /// threshold is broken, else 0.
    pub fn report(&self, summary: &Summary) -> anyhow::Result<i32> {
        self.report_to(summary, false)
    }

    /// Like [`ReportArgs::report`]; `table_to_stderr` keeps stdout for records.
    pub fn report_to(&self, summary: &Summary, table_to_stderr: bool) -> anyhow::Result<i32> {
        if table_to_stderr {
            eprintln!("{}", output::table(summary));
        } else {
            println!("{}", output::table(summary));
        }
        if let Some(p) = &self.json {
            output::write_json(p, summary)
                .with_context(|| format!("writing --json {}", p.display()))?;
        }
        if let Some(p) = &self.csv {
            output::write_csv(p, summary)
                .with_context(|| format!("writing --csv {}", p.display()))?;
        }
        let broken = self.broken(summary);
        if broken.is_empty() {
            Ok(0)
        } else {
            eprintln!("threshold broken: {}", broken.join("; "));
            Ok(1)
        }
    }

    fn broken(&self, summary: &Summary) -> Vec<String> {
        let mut broken = Vec::new();
        if let Some(min) = self.fail_under_success
            && summary.success_rate * 100.0 < min
        {
            broken.push(format!(
                "success rate {:.2}% < {min}%",
                summary.success_rate * 100.0
            ));
        }
        if let Some(max) = self.fail_over_ttft_p90
            && summary.ttft_ms.p90 > max
        {
            broken.push(format!("TTFT p90 {:.1} ms > {max} ms", summary.ttft_ms.p90));
        }
        if let Some(min) = self.fail_under_decode_p50
            && summary.decode_tps.p50 < min
        {
            broken.push(format!(
                "decode rate p50 {:.1} tok/s < {min} tok/s",
                summary.decode_tps.p50
            ));
        }
        broken
    }
}

/// Turns flags into a load configuration, naming the flag at fault.
pub fn config_from_args(a: &LoadArgs) -> anyhow::Result<LoadConfig> {
    let mut cfg = LoadConfig::new(a.url.clone(), a.model.clone());
    if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
        return Err(bad_input(format!(
            "--url `{}` must start with http:// or https://",
            a.url
        )));
    }
    cfg.api = match a.api {
        ApiArg::Chat => Api::Chat,
        ApiArg::Completions => Api::Completions,
    };
    cfg.api_key = a
        .api_key
        .clone()
        .or_else(|| std::env::var("OPENAI_API_KEY").ok());
    for h in &a.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| bad_input(format!("--header `{h}` must be NAME:VALUE")))?;
        cfg.headers
            .push((n.trim().to_string(), v.trim().to_string()));
    }
    cfg.shape = match (a.concurrency, a.rate) {
        (_, Some(rate)) => Shape::Open {
            rate_per_s: rate,
            poisson: a.poisson,
        },
        (c, None) => Shape::Closed {
            users: c.unwrap_or(1),
            ramp: a.ramp.as_deref().map(parse_ramp).transpose()?,
        },
    };
    if a.requests.is_none() && a.duration.is_none() && !matches!(a.dataset_order, OrderArg::Fifo) {
        return Err(bad_input(
            "give --requests N or --duration D (or --dataset-order fifo): the run must end",
        ));
    }
    cfg.max_requests = a.requests;
    cfg.duration = a.duration;
    cfg.prompts = match (&a.prompt, &a.dataset, a.synthetic_tokens) {
        (Some(p), _, _) => PromptSource::Inline(p.clone()),
        (_, Some(path), _) => PromptSource::Dataset {
            path: path.clone(),
            order: match a.dataset_order {
                OrderArg::Random => Order::Random,
                OrderArg::Fifo => Order::Fifo,
            },
        },
        (_, _, Some(t)) => PromptSource::Synthetic { tokens: t },
        _ => PromptSource::Inline("Explain in two sentences why the sky is blue.".into()),
    };
    cfg.unique_prefix = !a.no_unique_prefix;
    cfg.tokenizer = a.tokenizer.clone();
    if let Some(b) = &a.buckets {
        cfg.buckets =
            prompts::parse_buckets(b).map_err(|e| bad_input(format!("--buckets: {e}")))?;
    }
    cfg.sampling.max_tokens = a.max_tokens;
    cfg.sampling.temperature = a.temperature;
    cfg.sampling.top_p = a.top_p;
    cfg.sampling.top_k = a.top_k;
    cfg.sampling.seed = a.sampling_seed;
    cfg.sampling.ignore_eos = a.ignore_eos.then_some(true);
    cfg.timeouts = Timeouts {
        first_token: a.timeout_first_token,
        total: a.timeout,
    };
    cfg.require_usage = a.require_usage;
    cfg.seed = a.seed;
    if let Some(text) = &a.shard {
        cfg.shard = text
            .parse::<Shard>()
            .map_err(|e| bad_input(format!("--shard {e}")))?;
        if let Some(why) = cfg.empty_shard() {
            return Err(bad_input(format!("--shard {text}: {why}")));
        }
    }
    Ok(cfg)
}

fn parse_ramp(text: &str) -> anyhow::Result<Ramp> {
    let bad = || bad_input(format!("--ramp `{text}` must be K/INTERVAL, e.g. 1/2s"));
    let (k, every) = text.split_once('/').ok_or_else(bad)?;
    let users: u32 = k.trim().parse().map_err(|_| bad())?;
    let every = humantime::parse_duration(every.trim()).map_err(|_| bad())?;
    if users == 0 || every.is_zero() {
        return Err(bad());
    }
    Ok(Ramp { users, every })
}

pub async fn run(args: LoadArgs) -> anyhow::Result<i32> {
    let cfg = config_from_args(&args)?;
    let shard = cfg.shard;
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: draining requests in flight");
            ctrl_c.cancel();
        }
    });
    if let Some(at) = args.start_at {
        let now = crate::clock::now_us() / 1000;
        if at > now {
            let wait = Duration::from_millis(at - now);
            if wait > Duration::from_secs(3600) {
                return Err(bad_input(format!(
                    "--start-at {at} is more than an hour away; it takes Unix milliseconds"
                )));
            }
            tokio::time::sleep(wait).await;
        } else if now - at > 1000 {
            eprintln!("warning: --start-at was {} ms ago; starting late", now - at);
        }
    }
    let mut progress = Progress::new(args.quiet, cfg.max_requests.map(|n| shard.share(n)));
    let records = load::run(cfg, cancel, |r| progress.tick(r.outcome.is_ok()))
        .await
        .map_err(|e| bad_input(e.to_string()))?;
    progress.finish();
    let tally = Tally::of(&records);
    let to_stdout = args.records.as_deref() == Some(std::path::Path::new("-"));
    if to_stdout {
        output::print_records(&records).context("writing --records - to stdout")?;
    } else if let Some(p) = &args.records {
        output::write_records(p, &records)
            .with_context(|| format!("writing --records {}", p.display()))?;
    }
    if let Some(p) = &args.save_shard {
        output::write_json(p, &ShardFile::new(shard, tally.clone()))
            .with_context(|| format!("writing --save-shard {}", p.display()))?;
    }
    args.report.report_to(&tally.summary(), to_stdout)
}

/// A bar on a terminal; a plain line every 5 s otherwise (CI logs).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    done: u64,
    failed: u64,
    last_line: Instant,
    started: Instant,
}

impl Progress {
    fn new(quiet: bool, total: Option<u64>) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            quiet,
            done: 0,
            failed: 0,
            last_line: now,
            started: now,
        }
    }

    fn tick(&mut self, ok: bool) {
        self.done += 1;
        self.failed += u64::from(!ok);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("{} failed", self.failed));
        } else if !self.quiet && self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            eprintln!(
                "[{:>6.1}s] {} requests done, {} failed",
                self.started.elapsed().as_secs_f64(),
                self.done,
                self.failed
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchClientArgs {
    /// Concurrent streams to drive.
    #[arg(long, default_value_t = 2000)]
    pub streams: u32,
    /// Tokens per second per stream sent by the built-in fast server.
    #[arg(long, default_value_t = 20.0)]
    pub tokens_per_s: f64,
    /// Tokens per request.
    #[arg(long, default_value_t = 100)]
    pub tokens: u32,
    /// How long to drive the load.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Worker threads of the client runtime (the figure that matters is for 1).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Users join K every INTERVAL (e.g. 100/100ms); `none` starts every stream at once.
    #[arg(long, default_value = "100/100ms", value_name = "K/INTERVAL|none")]
    pub ramp: String,
    /// Run the server and client threads at real-time priority (SCHED_FIFO; needs root or
    /// CAP_SYS_NICE), so other work on a shared machine cannot preempt the measurement.
    #[arg(long)]
    pub realtime: bool,
}

pub async fn bench_client(args: BenchClientArgs) -> anyhow::Result<i32> {
    let report = crate::load::bench::run(crate::load::bench::BenchConfig {
        streams: args.streams,
        tokens_per_s: args.tokens_per_s,
        tokens: args.tokens,
        duration: args.duration,
        client_threads: args.client_threads,
        ramp: match args.ramp.as_str() {
            "none" => None,
            r => Some(parse_ramp(r).map_err(|e| bad_input(format!("--ramp: {e}")))?),
        },
        realtime: args.realtime,
    })
    .await
    .map_err(|e| anyhow::anyhow!("bench-client: {e}"))?;
    println!("{report}");
    Ok(0)
}
