//! Idle authenticated WebSocket clients held by one server, and the
//! server's resident memory per client.

use crate::report::{ConnResult, Report};
use crate::stats::Progress;
use crate::ws::{connect_many, Receivers};
use crate::Ctx;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// File descriptors kept free for everything else.
const SPARE_FDS: u64 = 300;
/// Ephemeral ports per source address (32768-60999).
const PORTS_PER_SOURCE: usize = 28_000;

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let p = &ctx.params;
    let progress = Progress::global();
    progress.phase("connections: starting chatd");
    let server = ctx.server(&[])?;
    let t = &server.target;
    let server_nofile = t.pid.and_then(crate::sys::nofile_limit_of);
    let mut n = p.connections;
    let mut cap_reason = None;
    let own = ctx.nofile.saturating_sub(SPARE_FDS) as usize;
    if n > own {
        n = own;
        cap_reason = Some(format!("bench open-file limit {}", ctx.nofile));
    }
    if let Some(s) = server_nofile {
        let cap = s.saturating_sub(SPARE_FDS) as usize;
        if n > cap {
            n = cap;
            cap_reason = Some(format!("server open-file limit {s}"));
        }
    }
    let ports = ctx.sources.len() * PORTS_PER_SOURCE;
    if n > ports {
        n = ports;
        cap_reason = Some(format!(
            "{} source addresses × {PORTS_PER_SOURCE} ports",
            ctx.sources.len()
        ));
    }
    if let Some(r) = &cap_reason {
        progress.note(&format!(
            "connections: {n} instead of {} ({r})",
            p.connections
        ));
    }
    let users: Vec<String> = (0..n).map(|i| ctx.user("c", i)).collect();
    // One client first: what every connection shares is then allocated.
    let first = connect_many(t, &users[..1.min(n)], &ctx.sources, 1).await;
    let mut groups = vec![Receivers::start(first, 16)];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_base = t.rss_kb();
    let mut curve = Vec::new();
    if let Some(r) = rss_base {
        curve.push((1.min(n), r));
    }
    let steps = 10usize;
    let started = Instant::now();
    let mut done = 1.min(n);
    for step in 1..=steps {
        let upto = n * step / steps;
        if upto <= done {
            continue;
        }
        progress.phase(format!("connections: {done} → {upto}"));
        let clients = connect_many(t, &users[done..upto], &ctx.sources, 128).await;
        groups.push(Receivers::start(clients, 16));
        done = upto;
        if let Some(r) = t.rss_kb() {
            let connected: usize = groups.iter().map(|g| g.connected()).sum();
            curve.push((connected, r));
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected: usize = groups.iter().map(|g| g.connected()).sum();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = t.rss_kb();
    progress.phase(format!(
        "connections: holding {connected} for {:.0}s",
        p.hold_s
    ));
    tokio::time::sleep(Duration::from_secs_f64(p.hold_s)).await;
    // `held` from the same counts as `dropped_by`, so the two always agree.
    let mut dropped_by = std::collections::BTreeMap::new();
    for g in &groups {
        for (why, n) in g.drop_reasons() {
            *dropped_by.entry(why).or_insert(0) += n;
        }
    }
    let dropped: u64 = dropped_by.values().sum();
    let held = connected.saturating_sub(dropped as usize);
    let per_conn = match (rss_base, rss) {
        (Some(a), Some(b)) if connected > 1 => {
            Some((b.saturating_sub(a) as f64 * 1024.0) / (connected - 1) as f64)
        }
        _ => None,
    };
    progress.note(&format!(
        "connections: {held} held of {n}; {} per connection",
        per_conn.map_or("?".into(), |b| format!("{:.1} KB", b / 1000.0))
    ));
    report.connections = Some(ConnResult {
        requested: p.connections,
        attempted: n,
        cap_reason,
        connected,
        connect_secs,
        hold_secs: p.hold_s,
        held,
        dropped_by,
        rss_base_kb: rss_base,
        rss_kb: rss,
        rss_per_conn_bytes: per_conn,
        curve,
        server_nofile_limit: server_nofile,
    });
    progress.phase(format!("connections: closing {connected}"));
    let stops: Vec<Arc<Receivers>> = groups;
    futures::future::join_all(stops.iter().map(|g| g.stop())).await;
    drop(server);
    Ok(())
}
