//! Backlog: one offline recipient's inbox grows from 0 to N messages while
//! the send rate is sampled in 1-second slices (200 ms slices when the
//! inbox fills in less than 3 s, which would leave too few); then the time
//! it takes that user to drain all N on reconnect.

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
    let (slices, slice_ms) = slices(&load.per_second, &load.per_tenth, load.seconds);
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
        slice_ms,
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

/// The send rate (msg/s) in each complete slice of a load that lasted
/// `seconds` (the last slice is cut short): 1-s slices if there are at
/// least 3, else 200 ms slices.
fn slices(per_second: &[u64], per_tenth: &[u64], seconds: f64) -> (Vec<u64>, u64) {
    const TENTHS: usize = 2;
    let complete_secs = (seconds.floor() as usize).min(per_second.len());
    if complete_secs >= 3 {
        return (per_second[..complete_secs].to_vec(), 1000);
    }
    let complete = ((seconds * 10.0).floor() as usize).min(per_tenth.len()) / TENTHS;
    let rates = per_tenth[..complete * TENTHS]
        .chunks(TENTHS)
        .map(|c| c.iter().sum::<u64>() * 10 / TENTHS as u64)
        .collect();
    (rates, 100 * TENTHS as u64)
}

#[cfg(test)]
mod tests {
    use super::slices;

    #[test]
    fn a_short_backlog_is_sliced_finer() {
        assert_eq!(
            slices(&[100, 110, 120, 30], &[], 3.4),
            (vec![100, 110, 120], 1000)
        );
        let tenths = [10, 12, 11, 11, 9, 9, 10, 2];
        assert_eq!(
            slices(&[44, 30], &tenths, 0.75),
            (vec![110, 110, 90], 200),
            "7 whole tenths make 3 whole slices of 200 ms"
        );
    }
}
