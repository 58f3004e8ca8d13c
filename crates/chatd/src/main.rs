//! `chatd`: the server and its command line.

mod bootstrap;
mod cli;
mod client_commands;
mod commands;
mod http_server;
mod push;
mod serve;

use clap::Parser;

/// mimalloc instead of the system allocator: a profile of the send path
/// put glibc's malloc and free at ≈ 14 % of the request threads' time
/// (hyper, axum and serde_json allocate per request), see docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    let cli = cli::Cli::parse();
    let config = chatd_config::Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::run(cli.command, config))
}

/// mimalloc asks for transparent huge pages on its arenas, and then holds
/// and purges memory in 2 MiB units: 10 concurrent 10 MB uploads raised the
/// peak RSS by 55 MB instead of 15-20 MB, and every idle process started
/// 10 MB larger. Small pages keep memory flat (tests/files.rs measures it).
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        eprintln!("chatd: could not disable transparent huge pages (prctl failed)");
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}
