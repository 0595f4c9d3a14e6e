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
pub struct ToxiproxyArgs {}

pub async fn run(_cmd: FaultCommand) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos fault is not built yet"))
}

pub async fn heal(_args: HealArgs) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos heal is not built yet"))
}

pub async fn toxiproxy(_args: ToxiproxyArgs) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos toxiproxy is not built yet"))
}
