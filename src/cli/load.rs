//! `pdchaos load` and `pdchaos bench-client`. (Stub: the load engine is being built in issue 2.)

use clap::Args;

#[derive(Debug, Args)]
pub struct LoadArgs {}

#[derive(Debug, Args)]
pub struct BenchClientArgs {}

pub async fn run(_args: LoadArgs) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos load is not built yet"))
}

pub async fn bench_client(_args: BenchClientArgs) -> anyhow::Result<i32> {
    Err(super::bad_input("pdchaos bench-client is not built yet"))
}
