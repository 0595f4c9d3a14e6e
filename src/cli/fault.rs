//! `pdchaos fault ...`, `pdchaos heal`, `pdchaos toxiproxy`. (Stub: issue 4.)

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// List faults in the journal.
    List,
}

#[derive(Debug, Args)]
pub struct HealArgs {}

#[derive(Debug, Args)]
#[command(
    after_long_help = "Drive it with any Toxiproxy client, e.g. the Python one:\n  \
    pdchaos toxiproxy --listen 127.0.0.1:8474 &\n  \
    python3 -c 'from toxiproxy import Toxiproxy; t = Toxiproxy(); print(t.version())'"
)]
pub struct ToxiproxyArgs {
    /// Address of the REST API (Toxiproxy's default port is 8474).
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(_cmd: FaultCommand) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos fault is not built yet"))
}

pub async fn heal(_args: HealArgs) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos heal is not built yet"))
}

pub async fn toxiproxy(args: ToxiproxyArgs) -> anyhow::Result<i32> {
    crate::sim::proc::die_with_parent();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| super::bad_input(format!("--listen {}: {e}", args.listen)))?;
    eprintln!("toxiproxy API on http://{}", args.listen);
    crate::fault::toxiproxy::server::serve(listener).await?;
    Ok(0)
}
