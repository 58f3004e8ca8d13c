//! End-to-end latency: REST request sent → message received on the
//! recipient's WebSocket, at steady rates, with many users connected.

use crate::http::Endpoint;
use crate::load::{open_loop, MakeBody, OpenLoad, Window};
use crate::report::{E2eCell, Report};
use crate::scenarios::{probe, send_body};
use crate::stats::{Latency, Progress};
use crate::ws::{connect_many, marker, Receivers};
use crate::Ctx;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let p = &ctx.params;
    let progress = Progress::global();
    progress.phase("e2e: starting chatd");
    let server = ctx.server(&[])?;
    let t = &server.target;
    probe(t, &ctx.user("probe", 1)).await?;
    let token = t.app_token();
    let ep = Endpoint::new(t.addr, &t.host, &t.path("/messages/users"), Some(&token));
    for &n in &p.e2e_users {
        let users: Arc<Vec<String>> =
            Arc::new((0..n).map(|i| ctx.user(&format!("e{n}"), i)).collect());
        progress.phase(format!("e2e: connecting {n} users"));
        let started = Instant::now();
        let clients = connect_many(t, &users, &ctx.sources, 128).await;
        let connected = clients.iter().filter(|c| c.is_some()).count();
        progress.note(&format!(
            "e2e: {connected} of {n} users connected in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        let rx = Receivers::start(clients, 16);
        for &rate in &p.e2e_rates {
            progress.phase(format!("e2e users={n} rate={rate}/s"));
            let base: Vec<u64> = rx
                .received
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .collect();
            rx.e2e.reset();
            let window = Window {
                warmup: Duration::from_secs_f64(p.e2e_warmup_s),
                duration: Duration::from_secs_f64(p.e2e_duration_s),
            };
            // open_loop starts 20 ms from now; measure after its warm-up.
            rx.measure_from_ns.store(
                crate::sys::now_ns() + 20_000_000 + window.warmup.as_nanos() as u64,
                Ordering::Relaxed,
            );
            let u = users.clone();
            let make: MakeBody = Arc::new(move |k, ns| {
                let i = k as usize % u.len();
                (send_body(&[u[i].as_str()], &marker(ns)), i)
            });
            let workers = ((rate / 40) as usize).clamp(16, 512);
            let load = OpenLoad {
                make,
                keys: n,
                rate: rate as f64,
                workers,
                window,
            };
            let (rest, acked) = open_loop(&ep, load, &ctx.sources, t.pid).await;
            let expected: Vec<u64> = base.iter().zip(&acked).map(|(b, a)| b + a).collect();
            rx.wait_for(&expected, Duration::from_secs(30)).await;
            let got: Vec<u64> = rx
                .received
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .collect();
            let lost = expected
                .iter()
                .zip(&got)
                .map(|(e, g)| e.saturating_sub(*g))
                .sum();
            let hist = rx.e2e.snapshot();
            let cell = E2eCell {
                users: n,
                connected,
                rate,
                e2e: Latency::of(&hist),
                expected: acked.iter().sum(),
                received: got.iter().sum::<u64>() - base.iter().sum::<u64>(),
                lost,
                receivers_dropped: rx.dropped.load(Ordering::Relaxed),
                rest,
                hist,
            };
            progress.note(&format!(
                "e2e users={n} rate={rate}: achieved {:.0}/s, e2e p50 {} p99 {} p99.9 {}, lost {}",
                cell.rest.load.rps,
                crate::stats::fmt_us(cell.e2e.p50_us),
                crate::stats::fmt_us(cell.e2e.p99_us),
                crate::stats::fmt_us(cell.e2e.p999_us),
                cell.lost
            ));
            report.e2e.push(cell);
        }
        progress.phase(format!("e2e: closing {n} clients"));
        rx.stop().await;
    }
    drop(server);
    Ok(())
}
