//! REST send: throughput and latency at each concurrency, 1 and 100
//! recipients, recipients offline and online, against the ceiling.

use crate::ceiling::Ceiling;
use crate::http::Endpoint;
use crate::load::closed_loop;
use crate::report::{CeilingCell, Report, SendCell};
use crate::scenarios::{offline_counts, probe, send_body};
use crate::server::Target;
use crate::stats::Progress;
use crate::ws::{connect_many, Receivers};
use crate::Ctx;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Request `j` goes to users `j, j+1, …, j+r-1` (mod the pool): every user
/// gets the same share.
fn bodies(users: &[String], r: usize) -> Vec<Bytes> {
    let n = users.len();
    (0..n)
        .map(|j| {
            let to: Vec<&str> = (0..r).map(|k| users[(j + k) % n].as_str()).collect();
            send_body(&to, "hello from chatd-bench")
        })
        .collect()
}

/// Inbox entries each user should hold, from the 200s per body.
fn expected(acked: &[u64], n: usize, r: usize) -> Vec<u64> {
    let mut e = vec![0u64; n];
    for (j, a) in acked.iter().enumerate() {
        for k in 0..r {
            e[(j + k) % n] += a;
        }
    }
    e
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let p = &ctx.params;
    let progress = Progress::global();
    progress.phase("send: starting chatd");
    let server = ctx.server(&[])?;
    let t = &server.target;
    probe(t, &ctx.user("probe", 0)).await?;
    let ceiling = Ceiling::start(crate::sys::cores())?;
    let token = t.app_token();
    let path = t.path("/messages/users");
    let ep = Endpoint::new(t.addr, &t.host, &path, Some(&token));
    let ceiling_ep = Endpoint::new(ceiling.addr, &ceiling.addr.to_string(), &path, Some(&token));
    for &r in &p.recipients {
        for &c in &p.concurrency {
            for round in 0..p.repeat {
                let pool = p.pool_users.max(r);
                let scratch: Vec<String> = (0..pool).map(|i| ctx.user("x", i)).collect();
                progress.phase(format!("ceiling  c={c} rcpt={r}{}", round_label(round)));
                let (load, _) = closed_loop(
                    &ceiling_ep,
                    Arc::new(bodies(&scratch, r)),
                    c,
                    p.window(),
                    &ctx.sources,
                    None,
                )
                .await;
                report.ceiling.push(CeilingCell {
                    concurrency: c,
                    recipients: r,
                    round,
                    load,
                });
                for presence in &p.presence {
                    let online = *presence == crate::Presence::Online;
                    let cell = cell(ctx, t, &ep, (c, r, round), online).await?;
                    let cell = report.with_ratios(cell);
                    progress.note(&format!(
                        "send {} c={c} rcpt={r}{}: {:.0} req/s ({:.2} × ceiling), p99 {}, errors {}, lost {}",
                        if online { "online " } else { "offline" },
                        round_label(round),
                        cell.load.rps,
                        cell.ratio_rps.unwrap_or(0.0),
                        crate::stats::fmt_us(cell.load.latency.p99_us),
                        cell.load.error_count,
                        cell.lost
                    ));
                    report.send.push(cell);
                }
            }
        }
    }
    drop(ceiling);
    drop(server);
    Ok(())
}

/// `#2`, `#3`, … for the rounds after the first.
fn round_label(round: usize) -> String {
    if round == 0 {
        String::new()
    } else {
        format!(" #{}", round + 1)
    }
}

async fn cell(
    ctx: &Ctx,
    t: &Target,
    ep: &Endpoint,
    (c, r, round): (usize, usize, usize),
    online: bool,
) -> anyhow::Result<SendCell> {
    let p = &ctx.params;
    let progress = Progress::global();
    let pool = p.pool_users.max(r);
    // Users of their own per round: the check counts what each inbox holds.
    let scope = format!("s{}c{c}r{r}n{round}", if online { "n" } else { "f" });
    let users: Vec<String> = (0..pool).map(|i| ctx.user(&scope, i)).collect();
    let receivers = if online {
        progress.phase(format!(
            "send online c={c} rcpt={r}: connecting {pool} recipients"
        ));
        let clients = connect_many(t, &users, &ctx.sources, 64).await;
        Some(Receivers::start(clients, 32))
    } else {
        None
    };
    progress.phase(format!(
        "send {} c={c} rcpt={r}",
        if online { "online " } else { "offline" }
    ));
    let (load, acked) = closed_loop(
        ep,
        Arc::new(bodies(&users, r)),
        c,
        p.window(),
        &ctx.sources,
        t.pid,
    )
    .await;
    let exp = expected(&acked, pool, r);
    let acked_msgs: u64 = exp.iter().sum();
    progress.phase(format!("send c={c} rcpt={r}: checking storage"));
    let (stored, check, dropped) = match &receivers {
        None => (offline_counts(t, &users).await?, "offline_msg_count", 0),
        Some(rx) => {
            rx.wait_for(&exp, Duration::from_secs(60)).await;
            let got = rx
                .received
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .collect::<Vec<_>>();
            let dropped = rx.dropped.load(Ordering::Relaxed);
            rx.stop().await;
            (got, "received over WebSocket", dropped)
        }
    };
    let lost: u64 = exp
        .iter()
        .zip(&stored)
        .map(|(e, s)| e.saturating_sub(*s))
        .sum();
    Ok(SendCell {
        concurrency: c,
        recipients: r,
        round,
        online,
        msgs_per_s: load.rps * r as f64,
        ratio_rps: None,
        ratio_p50: None,
        ratio_p99: None,
        acked_msgs,
        stored_msgs: stored.iter().sum(),
        lost,
        check,
        receivers_dropped: dropped,
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_gets_the_same_share() {
        let e = expected(&[1, 2, 3, 4], 4, 2);
        assert_eq!(e, vec![1 + 4, 2 + 1, 3 + 2, 4 + 3]);
        let users: Vec<String> = (0..3).map(|i| format!("u{i}")).collect();
        let b = bodies(&users, 2);
        assert!(std::str::from_utf8(&b[2])
            .unwrap()
            .contains(r#""to":["u2","u0"]"#));
    }
}
