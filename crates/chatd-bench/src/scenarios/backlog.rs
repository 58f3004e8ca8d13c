//! Backlog: one offline recipient's inbox grows from 0 to N messages while
//! the send rate is sampled in 1-second slices; then the time it takes that
//! user to drain all N on reconnect.

use crate::http::Endpoint;
use crate::load::{closed_loop_limited, Window};
use crate::report::{BacklogResult, Report};
use crate::scenarios::send_body;
use crate::stats::Progress;
use crate::ws::{connect, Receivers};
use crate::Ctx;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let p = &ctx.params;
    let progress = Progress::global();
    progress.phase("backlog: starting chatd");
    let server = ctx.server(&[])?;
    let t = &server.target;
    let user = ctx.user("bk", 0);
    let token = t.app_token();
    let ep = Endpoint::new(t.addr, &t.host, &t.path("/messages/users"), Some(&token));
    let bodies = Arc::new(vec![send_body(&[user.as_str()], "a message that waits")]);
    progress.phase(format!(
        "backlog: queueing {} messages for {user}",
        p.backlog
    ));
    let window = Window {
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3600),
    };
    let (load, acked) = closed_loop_limited(
        &ep,
        bodies,
        p.backlog_concurrency,
        window,
        Some(p.backlog as u64),
        &ctx.sources,
        t.pid,
    )
    .await;
    let acked = acked[0];
    // Complete 1-second slices only (the last one is cut short), unless the
    // run did not last a second.
    let complete = load.seconds.floor() as usize;
    let slices: Vec<u64> = if complete >= 1 {
        load.per_second.iter().take(complete).copied().collect()
    } else {
        load.per_second.clone()
    };
    let first = slices.first().copied().unwrap_or(0);
    let last = slices.last().copied().unwrap_or(0);
    progress.phase(format!("backlog: draining {acked} messages"));
    let started = Instant::now();
    let cpu = crate::load::CpuMeter::start(t.pid);
    let ws = connect(t, ctx.sources.pick(0), &user).await?;
    let rx = Receivers::start(vec![Some(ws)], 64);
    let mut curve = Vec::new();
    let mut prev = 0u64;
    let mut slice_end = Instant::now() + Duration::from_millis(100);
    let deadline = started + Duration::from_secs(600);
    loop {
        let got = rx.total.load(Ordering::Relaxed);
        progress.ok.store(got, Ordering::Relaxed);
        if Instant::now() >= slice_end || got >= acked {
            curve.push(got - prev);
            prev = got;
            slice_end += Duration::from_millis(100);
        }
        if got >= acked || Instant::now() > deadline || rx.dropped.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let (drain_server_cpu, drain_client_cpu) = cpu.read();
    let drained = rx.total.load(Ordering::Relaxed);
    rx.stop().await;
    let result = BacklogResult {
        messages: p.backlog,
        concurrency: p.backlog_concurrency,
        acked,
        errors: load.total_errors,
        send_secs: load.seconds,
        slices,
        first_slice: first,
        last_slice: last,
        last_over_first: if first > 0 {
            (last as f64 / first as f64 * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        drain_msgs: drained,
        drain_secs,
        drain_msgs_per_s: drained as f64 / drain_secs.max(1e-9),
        lost: acked.saturating_sub(drained),
        drain_curve: curve,
        drain_server_cpu,
        drain_client_cpu,
    };
    progress.note(&format!(
        "backlog: slices {} → {} ({:.2}); drain {} in {:.2}s = {:.0}/s",
        result.first_slice,
        result.last_slice,
        result.last_over_first,
        result.drain_msgs,
        result.drain_secs,
        result.drain_msgs_per_s
    ));
    report.backlog = Some(result);
    drop(server);
    Ok(())
}
