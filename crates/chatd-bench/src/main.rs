//! `chatd-bench`: measures chatd (docs/benchmarks.md).
//!
//! It starts chatd itself (a fresh data directory per scenario, the app's
//! rate limits lifted) or targets `--url`, drives it from this process over
//! loopback, and prints a table (or `--json`), with every send figure also
//! given as a ratio to a trivial hyper server driven the same way.

mod ceiling;
mod disk;
mod http;
mod load;
mod plot;
mod report;
mod scenarios;
mod server;
mod stats;
mod sys;
mod ws;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use report::Report;
use server::{ChatdProcess, Target};
use stats::Progress;
use std::path::PathBuf;
use std::time::Duration;
use sys::Sources;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Everything below, in this order.
    All,
    /// REST send throughput and latency, with the ceiling.
    Send,
    /// REST accepted → received on a WebSocket, at steady rates.
    E2e,
    /// Idle authenticated WebSocket clients held, and memory per client.
    Connections,
    /// One inbox growing to N messages, then its drain on reconnect.
    Backlog,
    /// 10x the measured capacity offered: refusals or slower answers,
    /// bounded memory.
    Overload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// No device of the recipients is connected.
    Offline,
    /// Every recipient has a WebSocket client connected and acknowledging.
    Online,
}

#[derive(Debug, Parser)]
#[command(
    name = "chatd-bench",
    about = "Benchmark of chatd: send throughput against a hyper ceiling, delivery latency, connections, backlog, overload",
    version
)]
pub struct Cli {
    /// The chatd binary to start (default: `chatd` next to this executable).
    #[arg(long, conflicts_with = "url")]
    chatd: Option<PathBuf>,
    /// A setting for the chatd the bench starts, as `CHATD_KEY=value`
    /// (repeatable), e.g. `--chatd-env CHATD_STORAGE_ENGINE=sqlite`.
    #[arg(long = "chatd-env", value_name = "CHATD_KEY=VALUE", value_parser = parse_chatd_env, conflicts_with = "url")]
    chatd_env: Vec<(String, String)>,
    /// Benchmark a running server instead (http://host:port).
    #[arg(long, requires_all = ["app_id", "app_cert"])]
    url: Option<String>,
    /// App ID of the app to use on `--url`.
    #[arg(long)]
    app_id: Option<String>,
    /// App Certificate of that app (the bench mints its tokens).
    #[arg(long)]
    app_cert: Option<String>,
    /// Process id of the `--url` server, to read its memory and CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Scenarios to run (repeat or comma-separate).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenario: Vec<Scenario>,
    /// Seconds and small counts: a smoke test, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Write PNG charts into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Measured seconds per send cell.
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds before each measured window.
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrency levels of the send scenario.
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Recipients per request in the send scenario.
    #[arg(long, value_delimiter = ',')]
    recipients: Option<Vec<usize>>,
    /// Recipient states of the send scenario: offline, online.
    #[arg(long, value_delimiter = ',')]
    presence: Option<Vec<Presence>>,
    /// Recipients the send scenario spreads its requests over.
    #[arg(long)]
    pool_users: Option<usize>,
    /// Rounds of each send cell (the ceiling, then chatd), one after the
    /// other; the send target is judged on the median ratio of its rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Connected users of the end-to-end scenario.
    #[arg(long, value_delimiter = ',')]
    e2e_users: Option<Vec<usize>>,
    /// Message rates (per second) of the end-to-end scenario.
    #[arg(long, value_delimiter = ',')]
    e2e_rates: Option<Vec<u64>>,
    /// Idle connections to open in the connections scenario (capped by the
    /// open-file limits of the bench and of the server).
    #[arg(long)]
    connections: Option<usize>,
    /// Seconds the connections are held (longer than the server's ping
    /// interval proves they stay alive).
    #[arg(long)]
    hold: Option<f64>,
    /// Messages the backlog scenario queues for one recipient.
    #[arg(long)]
    backlog: Option<usize>,
    /// Seconds of offered overload.
    #[arg(long)]
    overload_secs: Option<f64>,
    /// Loopback source addresses (127.0.0.1 … 127.0.0.N) client sockets
    /// are spread over.
    #[arg(long, default_value_t = 8)]
    source_addrs: usize,
}

/// The resolved parameters of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    pub quick: bool,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub concurrency: Vec<usize>,
    pub recipients: Vec<usize>,
    pub presence: Vec<Presence>,
    pub pool_users: usize,
    pub repeat: usize,
    pub e2e_users: Vec<usize>,
    pub e2e_rates: Vec<u64>,
    pub e2e_warmup_s: f64,
    pub e2e_duration_s: f64,
    pub connections: usize,
    pub hold_s: f64,
    pub backlog: usize,
    pub backlog_concurrency: usize,
    pub overload_s: f64,
    pub overload_factor: f64,
    pub overload_workers: usize,
}

impl Params {
    fn from_cli(c: &Cli) -> Self {
        let q = c.quick;
        Self {
            quick: q,
            warmup_s: c.warmup.unwrap_or(if q { 0.3 } else { 2.0 }),
            duration_s: c.duration.unwrap_or(if q { 1.0 } else { 8.0 }),
            concurrency: c.concurrency.clone().unwrap_or(if q {
                vec![16]
            } else {
                vec![1, 16, 64, 256]
            }),
            recipients: c.recipients.clone().unwrap_or(vec![1, 100]),
            presence: c
                .presence
                .clone()
                .unwrap_or(vec![Presence::Offline, Presence::Online]),
            pool_users: c.pool_users.unwrap_or(if q { 100 } else { 1000 }),
            repeat: c.repeat as usize,
            e2e_users: c.e2e_users.clone().unwrap_or(if q {
                vec![100]
            } else {
                vec![1000, 10_000]
            }),
            e2e_rates: c.e2e_rates.clone().unwrap_or(if q {
                vec![200]
            } else {
                vec![1000, 10_000]
            }),
            e2e_warmup_s: if q { 0.3 } else { 2.0 },
            e2e_duration_s: c.duration.unwrap_or(if q { 1.0 } else { 10.0 }),
            connections: c.connections.unwrap_or(if q { 200 } else { 100_000 }),
            hold_s: c.hold.unwrap_or(if q { 1.0 } else { 30.0 }),
            backlog: c.backlog.unwrap_or(if q { 2_000 } else { 100_000 }),
            backlog_concurrency: 64,
            overload_s: c.overload_secs.unwrap_or(if q { 2.0 } else { 20.0 }),
            overload_factor: 10.0,
            overload_workers: if q { 64 } else { 1024 },
        }
    }

    pub fn window(&self) -> load::Window {
        load::Window {
            warmup: Duration::from_secs_f64(self.warmup_s),
            duration: Duration::from_secs_f64(self.duration_s),
        }
    }
}

/// What every scenario gets.
pub struct Ctx {
    pub params: Params,
    pub sources: Sources,
    /// Distinguishes this run's user names from earlier runs' on `--url`.
    pub run_id: String,
    pub nofile: u64,
    chatd: Option<PathBuf>,
    chatd_env: Vec<(String, String)>,
    url: Option<Target>,
}

/// `CHATD_KEY=value` of `--chatd-env`.
fn parse_chatd_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if k.starts_with("CHATD_") && k.len() > "CHATD_".len() => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected CHATD_KEY=value, got {s:?}")),
    }
}

/// The server of one scenario; a started chatd is killed when this drops.
pub struct Server {
    pub target: Target,
    pub process: Option<ChatdProcess>,
}

impl Ctx {
    /// A fresh chatd (new data directory) for one scenario, or the `--url`
    /// server.
    pub fn server(&self, extra_env: &[(&str, String)]) -> anyhow::Result<Server> {
        if let Some(t) = &self.url {
            return Ok(Server {
                target: t.clone(),
                process: None,
            });
        }
        let bin = self.chatd.as_ref().context("no chatd binary")?;
        let mut env: Vec<(&str, String)> = vec![("CHATD_PUSH_PROVIDER", "none".to_string())];
        env.extend(self.chatd_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        env.extend(extra_env.iter().cloned());
        let p = ChatdProcess::start(bin, &env)?;
        Ok(Server {
            target: p.target.clone(),
            process: Some(p),
        })
    }

    /// A user name unique to this run.
    pub fn user(&self, scope: &str, i: usize) -> String {
        format!("b{}{scope}u{i}", self.run_id)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let nofile = sys::raise_nofile_limit();
    sys::now_ns();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(run(cli, nofile))?;
    // Do not wait for stragglers (idle client tasks) on the way out.
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

async fn run(cli: Cli, nofile: u64) -> anyhow::Result<i32> {
    let params = Params::from_cli(&cli);
    let (chatd, url) = match &cli.url {
        Some(u) => {
            let t = Target::at_url(
                u,
                cli.app_id.as_deref().unwrap_or_default(),
                cli.app_cert.as_deref().unwrap_or_default(),
                cli.server_pid,
            )?;
            (None, Some(t))
        }
        None => {
            let bin = match &cli.chatd {
                Some(p) => p.clone(),
                None => server::default_chatd_path().context(
                    "no chatd next to chatd-bench: build it (cargo build --release -p chatd) or pass --chatd PATH",
                )?,
            };
            if !bin.is_file() {
                bail!("{} is not a file", bin.display());
            }
            (Some(bin), None)
        }
    };
    let run_id: String = {
        use rand::Rng;
        let mut r = rand::rng();
        (0..6)
            .map(|_| char::from(b'a' + r.random_range(0..26u8)))
            .collect()
    };
    let ctx = Ctx {
        params,
        sources: Sources::loopback(cli.source_addrs),
        run_id,
        nofile,
        chatd: chatd.clone(),
        chatd_env: cli.chatd_env.clone(),
        url,
    };
    let progress = Progress::global();
    progress.spawn_ticker();

    let mut scenarios: Vec<Scenario> = cli.scenario.clone();
    if scenarios.contains(&Scenario::All) {
        scenarios = vec![
            Scenario::Send,
            Scenario::E2e,
            Scenario::Connections,
            Scenario::Backlog,
            Scenario::Overload,
        ];
    }
    scenarios.dedup();

    let mut report = Report::new(
        &ctx,
        std::env::args().collect::<Vec<_>>().join(" "),
        chatd
            .map(|p| p.display().to_string())
            .or(cli.url.clone())
            .unwrap_or_default(),
    );
    // The disk under the servers' data directories (only a server the
    // bench starts has them here).
    let probe_disk = |when: &'static str| {
        let secs = if ctx.params.quick { 0.3 } else { 3.0 };
        async move {
            progress.phase(format!(
                "disk: {when} the scenarios, {secs} s of writes + fdatasync"
            ));
            let dir = std::env::temp_dir();
            let probed = tokio::task::spawn_blocking(move || disk::probe(&dir, when, secs)).await;
            match probed.map_err(std::io::Error::other).and_then(|r| r) {
                Ok(p) => Some(p),
                Err(e) => {
                    progress.note(&format!("disk probe failed: {e}"));
                    None
                }
            }
        }
    };
    if ctx.chatd.is_some() {
        report.disk.extend(probe_disk("before").await);
    }
    for s in &scenarios {
        let r = match s {
            Scenario::Send => scenarios::send::run(&ctx, &mut report).await,
            Scenario::E2e => scenarios::e2e::run(&ctx, &mut report).await,
            Scenario::Connections => scenarios::connections::run(&ctx, &mut report).await,
            Scenario::Backlog => scenarios::backlog::run(&ctx, &mut report).await,
            Scenario::Overload => scenarios::overload::run(&ctx, &mut report).await,
            Scenario::All => Ok(()),
        };
        if let Err(e) = r {
            progress.note(&format!("scenario {s:?} failed: {e:#}"));
            report.failures.push(format!("{s:?}: {e:#}"));
        }
    }
    if ctx.chatd.is_some() {
        report.disk.extend(probe_disk("after").await);
    }
    server::remove_stopped_data_dirs();
    report.evaluate_targets();
    progress.set_quiet(true);
    progress.clear();
    if let Some(dir) = &cli.plot {
        match plot::write_all(&report, dir) {
            Ok(files) => {
                for f in files {
                    eprintln!("[chatd-bench] wrote {}", f.display());
                }
            }
            Err(e) => eprintln!("[chatd-bench] plotting failed: {e:#}"),
        }
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        // The table for the human watching, on stderr.
        eprint!("{}", report.table());
    } else {
        print!("{}", report.table());
    }
    Ok(if report.failures.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::parse_chatd_env;

    #[test]
    fn chatd_env_takes_chatd_settings_only() {
        assert_eq!(
            parse_chatd_env("CHATD_STORAGE_ENGINE=sqlite"),
            Ok(("CHATD_STORAGE_ENGINE".into(), "sqlite".into()))
        );
        assert_eq!(
            parse_chatd_env("CHATD_LOG=a=b"),
            Ok(("CHATD_LOG".into(), "a=b".into()))
        );
        assert!(parse_chatd_env("PATH=/bin").is_err());
        assert!(parse_chatd_env("CHATD_=x").is_err());
        assert!(parse_chatd_env("CHATD_STORAGE_ENGINE").is_err());
    }
}
