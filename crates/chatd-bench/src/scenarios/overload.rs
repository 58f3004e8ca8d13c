//! Overload: ten times the measured capacity offered in an open loop. The
//! server must answer with refusals (429) or more slowly, and its memory
//! must stay bounded.

use crate::http::Endpoint;
use crate::load::{closed_loop, open_loop, MakeBody, OpenLoad, Window};
use crate::report::{OverloadResult, Report};
use crate::scenarios::send_body;
use crate::stats::Progress;
use crate::Ctx;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let p = &ctx.params;
    let progress = Progress::global();
    progress.phase("overload: starting chatd");
    let mut server = ctx.server(&[])?;
    let t = server.target.clone();
    let token = t.app_token();
    let ep = Endpoint::new(t.addr, &t.host, &t.path("/messages/users"), Some(&token));
    let pool = p.pool_users.max(1);
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..pool)
            .map(|i| send_body(&[ctx.user("o", i).as_str()], "overload"))
            .collect(),
    );
    progress.phase("overload: measuring capacity (c=64)");
    let cap_window = Window {
        warmup: Duration::from_secs_f64(p.warmup_s),
        duration: Duration::from_secs_f64((p.overload_s / 4.0).max(1.0)),
    };
    let (cap, _) = closed_loop(&ep, bodies.clone(), 64, cap_window, &ctx.sources, t.pid).await;
    let capacity = cap.rps.max(1.0);
    let offered = capacity * p.overload_factor;
    let workers = p
        .overload_workers
        .min(ctx.nofile.saturating_sub(500) as usize)
        .max(1);
    progress.phase(format!(
        "overload: offering {:.0}/s (capacity {:.0}/s) over {workers} connections",
        offered, capacity
    ));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let t = t.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Some(r) = t.rss_kb() {
                            samples.push((started.elapsed().as_secs_f64(), r));
                        }
                    }
                    _ = stop_rx.changed() => break,
                }
            }
            samples
        })
    };
    let b = bodies.clone();
    let make: MakeBody = Arc::new(move |k, _| {
        let i = k as usize % b.len();
        (b[i].clone(), i)
    });
    let window = Window {
        warmup: Duration::ZERO,
        duration: Duration::from_secs_f64(p.overload_s),
    };
    let load = OpenLoad {
        make,
        keys: pool,
        rate: offered,
        workers,
        window,
    };
    let (rest, _) = open_loop(&ep, load, &ctx.sources, t.pid).await;
    // Let what is queued finish, still sampling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let rss = sampler.await.unwrap_or_default();
    let alive = match &mut server.process {
        Some(proc_) => proc_.alive(),
        None => true,
    } && health(&t).await;
    let start_kb = rss.first().map(|s| s.1);
    let end_kb = rss.last().map(|s| s.1);
    let peak_kb = rss.iter().map(|s| s.1).max();
    let half = &rss[rss.len() / 2..];
    let slope = slope(half);
    let bounded = match (rss.get(rss.len() / 2).map(|s| s.1), end_kb) {
        (Some(mid), Some(end)) => Some(end.saturating_sub(mid) <= (mid / 10).max(16 * 1024)),
        _ => None,
    };
    report.overload = Some(OverloadResult {
        capacity_rps: capacity,
        offered_rps: offered,
        workers,
        rest,
        rss,
        rss_start_kb: start_kb,
        rss_peak_kb: peak_kb,
        rss_end_kb: end_kb,
        rss_slope_kb_per_s: slope,
        bounded,
        alive_after: alive,
    });
    drop(server);
    Ok(())
}

async fn health(t: &crate::server::Target) -> bool {
    let rest = t.rest();
    let url = format!("{}/health", t.base);
    matches!(
        tokio::time::timeout(Duration::from_secs(10), rest.http().get(url).send()).await,
        Ok(Ok(r)) if r.status().as_u16() == 200
    )
}

/// Least-squares slope of (seconds, KiB) samples, KiB per second.
fn slope(s: &[(f64, u64)]) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let n = s.len() as f64;
    let mx = s.iter().map(|p| p.0).sum::<f64>() / n;
    let my = s.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let num: f64 = s.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    let den: f64 = s.iter().map(|p| (p.0 - mx).powi(2)).sum();
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line() {
        let s = [(0.0, 10), (1.0, 20), (2.0, 30)];
        assert!((super::slope(&s).unwrap() - 10.0).abs() < 1e-9);
    }
}
