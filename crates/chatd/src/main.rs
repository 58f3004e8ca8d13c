//! `chatd`: the server and its command line.

mod bootstrap;
mod cli;
mod client_commands;
mod commands;
mod push;
mod serve;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let config = chatd_config::Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::run(cli.command, config))
}
