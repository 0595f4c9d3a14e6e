//! `pdchaos sim ...`. (Stub: the simulator is being built in issue 3.)

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Start the whole local stack.
    Up,
}

pub async fn run(_cmd: SimCommand) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos sim is not built yet"))
}
