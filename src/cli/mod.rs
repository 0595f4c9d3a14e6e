//! The command line: one subcommand per job, each defined beside the code it drives.
//!
//! Exit codes are part of the interface CI scripts rely on: 0 success, 1 a check or threshold
//! failed (or a runtime error), 2 bad input (a flag, a file, a line), always with a one-line
//! message naming what is wrong.

pub mod fault;
pub mod load;
pub mod merge;
pub mod report;
pub mod run;
pub mod scorecard;
pub mod sim;

use clap::{Parser, Subcommand};

/// Error for input the user must fix: printed on one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Shorthand for returning a [`BadInput`] error from a command.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

#[derive(Debug, Parser)]
#[command(
    name = "pdchaos",
    version,
    about = "Resilience tests for prefill/decode disaggregated LLM serving",
    long_about = "Resilience tests for prefill/decode (P/D) disaggregated LLM serving.\n\n\
        Start here:\n  \
        pdchaos run                      run every feature against a local P/D stack\n  \
        pdchaos sim up                   start the local stack and print its endpoints\n  \
        pdchaos load --url URL --model M measure a streaming endpoint (TTFT, decode rate, QPM)\n  \
        pdchaos merge shard-*.json       one summary from the shards of a load run on several machines\n  \
        pdchaos scorecard                every feature behind our, SGLang's and vLLM's routers: docs/scorecard.md\n  \
        pdchaos heal                     heal every fault a killed run left behind"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Gherkin features against the local stack or a target file.
    Run(run::RunArgs),
    /// Drive a streaming OpenAI-compatible endpoint and measure it.
    Load(Box<load::LoadArgs>),
    /// Merge the shard files of a load run from several processes into one summary.
    Merge(merge::MergeArgs),
    /// Measure how many concurrent streams the load client can drive (a benchmark).
    BenchClient(load::BenchClientArgs),
    /// The local P/D stack: `up` starts it all; `prefill`, `decode`, `router` run one node.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Apply, list and heal faults.
    #[command(subcommand)]
    Fault(fault::FaultCommand),
    /// Heal every fault recorded as unhealed in the journal (after a killed run).
    Heal(fault::HealArgs),
    /// Serve the Toxiproxy REST API with an embedded proxy engine.
    Toxiproxy(fault::ToxiproxyArgs),
    /// Run the features behind each router (builtin, SGLang, vLLM) and write the scorecard.
    Scorecard(scorecard::ScorecardArgs),
    /// Write the HTML report, figures and Markdown summary of a run folder.
    Report(report::ReportArgs),
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<BadInput>() { 2 } else { 1 }
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Load(args) => load::run(*args).await,
        Command::Merge(args) => merge::run(args).await,
        Command::BenchClient(args) => load::bench_client(args).await,
        Command::Sim(cmd) => sim::run(cmd).await,
        Command::Fault(cmd) => fault::run(cmd).await,
        Command::Heal(args) => fault::heal(args).await,
        Command::Toxiproxy(args) => fault::toxiproxy(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Scorecard(args) => scorecard::run(args).await,
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PDCHAOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
