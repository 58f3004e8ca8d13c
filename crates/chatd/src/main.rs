//! `chatd`: the server and its command line.

mod bootstrap;
mod cli;
mod client_commands;
mod commands;
mod push;
mod serve;

use clap::Parser;

/// mimalloc instead of the system allocator: a profile of the send path
/// put glibc's malloc and free at ≈ 14 % of the request threads' time
/// (hyper, axum and serde_json allocate per request), see docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let config = chatd_config::Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::run(cli.command, config))
}
