//! `pdchaos run`. (Stub: the suite runner is issue 5.)

use clap::Args;

#[derive(Debug, Args)]
pub struct RunArgs {}

pub async fn run(_args: RunArgs) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos run is not built yet"))
}
