//! Results: what each scenario found, the targets, the table and
//! the JSON.

use crate::load::{LoadResult, OpenResult};
use crate::stats::{fmt_count, fmt_us, Latency};
use crate::Ctx;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Meta {
    pub date: String,
    pub commit: Option<String>,
    pub cores: usize,
    pub cpu: Option<String>,
    pub command: String,
    pub server: String,
    pub bench_nofile_limit: u64,
    pub params: crate::Params,
}

#[derive(Debug, Serialize)]
pub struct CeilingCell {
    pub concurrency: usize,
    pub recipients: usize,
    /// Which round of the cell (`--repeat`), from 0.
    pub round: usize,
    #[serde(flatten)]
    pub load: LoadResult,
}

#[derive(Debug, Serialize)]
pub struct SendCell {
    pub concurrency: usize,
    pub recipients: usize,
    /// Which round of the cell (`--repeat`), from 0; its ratios are to the
    /// ceiling of the same round.
    pub round: usize,
    /// Recipients connected over WebSocket and acknowledging.
    pub online: bool,
    #[serde(flatten)]
    pub load: LoadResult,
    /// Inbox entries per second (requests × recipients).
    pub msgs_per_s: f64,
    /// requests/s ÷ the ceiling's requests/s at the same load.
    pub ratio_rps: Option<f64>,
    /// p50 and p99 latency ÷ the ceiling's.
    pub ratio_p50: Option<f64>,
    pub ratio_p99: Option<f64>,
    /// Inbox entries acknowledged with 200 (warm-up included).
    pub acked_msgs: u64,
    /// Inbox entries found afterwards.
    pub stored_msgs: u64,
    /// Acknowledged but not found: must be 0.
    pub lost: u64,
    /// How `stored_msgs` was counted.
    pub check: &'static str,
    /// Receiving clients whose connection dropped during the cell.
    pub receivers_dropped: u64,
}

#[derive(Debug, Serialize)]
pub struct E2eCell {
    pub users: usize,
    pub connected: usize,
    pub rate: u64,
    /// The REST side (open loop).
    pub rest: OpenResult,
    /// Request sent → message received on the recipient's WebSocket.
    pub e2e: Latency,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub receivers_dropped: u64,
    #[serde(skip)]
    pub hist: crate::stats::Hist,
}

#[derive(Debug, Serialize)]
pub struct ConnResult {
    pub requested: usize,
    /// What was attempted after capping by open-file limits.
    pub attempted: usize,
    pub cap_reason: Option<String>,
    pub connected: usize,
    pub connect_secs: f64,
    pub hold_secs: f64,
    /// Still connected after the hold.
    pub held: usize,
    /// The clients not held, by why their connection ended.
    pub dropped_by: std::collections::BTreeMap<String, u64>,
    pub rss_base_kb: Option<u64>,
    pub rss_kb: Option<u64>,
    /// (RSS after − RSS before) ÷ connections.
    pub rss_per_conn_bytes: Option<f64>,
    /// (connections, server RSS KiB) while connecting.
    pub curve: Vec<(usize, u64)>,
    pub server_nofile_limit: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct BacklogResult {
    pub messages: usize,
    pub concurrency: usize,
    pub acked: u64,
    pub errors: u64,
    pub send_secs: f64,
    /// Sends per second in each slice while the inbox grew.
    pub slices: Vec<u64>,
    /// Length of a slice, ms (1000, or 200 for a backlog sent in < 3 s).
    pub slice_ms: u64,
    pub first_slice: u64,
    /// The last complete slice.
    pub last_slice: u64,
    pub last_over_first: f64,
    pub drain_msgs: u64,
    pub drain_secs: f64,
    pub drain_msgs_per_s: f64,
    pub lost: u64,
    /// Messages received per 100 ms during the drain.
    pub drain_curve: Vec<u64>,
    /// Cores used during the drain by the server and by the bench (the
    /// receiving client).
    pub drain_server_cpu: Option<f64>,
    pub drain_client_cpu: f64,
}

#[derive(Debug, Serialize)]
pub struct OverloadResult {
    pub capacity_rps: f64,
    pub offered_rps: f64,
    pub workers: usize,
    pub rest: OpenResult,
    /// (seconds, server RSS KiB), every 250 ms.
    pub rss: Vec<(f64, u64)>,
    pub rss_start_kb: Option<u64>,
    pub rss_peak_kb: Option<u64>,
    pub rss_end_kb: Option<u64>,
    /// RSS growth over the second half, KiB per second.
    pub rss_slope_kb_per_s: Option<f64>,
    pub bounded: Option<bool>,
    /// The server answered /health afterwards.
    pub alive_after: bool,
}

#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub target: String,
    pub value: String,
    /// None: not measured in this run.
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub meta: Meta,
    /// The disk's own pace before the first scenario and after the last
    /// (a server the bench starts only).
    pub disk: Vec<crate::disk::DiskProbe>,
    pub ceiling: Vec<CeilingCell>,
    pub send: Vec<SendCell>,
    pub e2e: Vec<E2eCell>,
    pub connections: Option<ConnResult>,
    pub backlog: Option<BacklogResult>,
    pub overload: Option<OverloadResult>,
    pub targets: Vec<TargetCheck>,
    pub failures: Vec<String>,
}

/// The round whose ratio to its ceiling is the median.
fn median_round<'a>(rounds: &[&'a SendCell]) -> Option<&'a SendCell> {
    let ratios: Vec<f64> = rounds.iter().map(|c| c.ratio_rps.unwrap_or(0.0)).collect();
    median_index(&ratios).map(|i| rounds[i])
}

/// Where the median of `v` is (the lower middle one of an even count: the
/// target is not judged met on the better half's word).
fn median_index(v: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    order.get(order.len().saturating_sub(1) / 2).copied()
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| (a / b * 1000.0).round() / 1000.0)
}

impl Report {
    pub fn new(ctx: &Ctx, command: String, server: String) -> Self {
        Self {
            meta: Meta {
                date: crate::sys::today(),
                commit: crate::sys::git_commit(),
                cores: crate::sys::cores(),
                cpu: crate::sys::cpu_model(),
                command,
                server,
                bench_nofile_limit: ctx.nofile,
                params: ctx.params.clone(),
            },
            disk: Vec::new(),
            ceiling: Vec::new(),
            send: Vec::new(),
            e2e: Vec::new(),
            connections: None,
            backlog: None,
            overload: None,
            targets: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn ceiling_for(
        &self,
        concurrency: usize,
        recipients: usize,
        round: usize,
    ) -> Option<&CeilingCell> {
        self.ceiling.iter().find(|c| {
            c.concurrency == concurrency && c.recipients == recipients && c.round == round
        })
    }

    /// Fills the ratios of a send cell from the ceiling at the same load.
    pub fn with_ratios(&self, mut cell: SendCell) -> SendCell {
        if let Some(c) = self.ceiling_for(cell.concurrency, cell.recipients, cell.round) {
            cell.ratio_rps = ratio(cell.load.rps, c.load.rps);
            cell.ratio_p50 = ratio(
                cell.load.latency.p50_us as f64,
                c.load.latency.p50_us as f64,
            );
            cell.ratio_p99 = ratio(
                cell.load.latency.p99_us as f64,
                c.load.latency.p99_us as f64,
            );
        }
        cell
    }

    pub fn evaluate_targets(&mut self) {
        let mut t = Vec::new();
        let rounds: Vec<&SendCell> = self
            .send
            .iter()
            .filter(|c| c.concurrency == 64 && c.recipients == 1 && !c.online)
            .collect();
        let judged = median_round(&rounds);
        t.push(TargetCheck {
            name: "REST send, c=64, 1 recipient, durable".into(),
            target: "≥ 0.50 × ceiling req/s".into(),
            value: judged.map_or("not measured".into(), |c| {
                let mut v = format!(
                    "{} req/s = {:.2} × ceiling",
                    fmt_count(c.load.rps),
                    c.ratio_rps.unwrap_or(0.0)
                );
                if rounds.len() > 1 {
                    let all: Vec<f64> = rounds.iter().filter_map(|c| c.ratio_rps).collect();
                    let (lo, hi) = all
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
                    v.push_str(&format!(
                        " (median of {} rounds, {lo:.2}-{hi:.2})",
                        rounds.len()
                    ));
                }
                v
            }),
            met: judged.and_then(|c| c.ratio_rps).map(|r| r >= 0.5),
        });
        let lost: Option<u64> = (!self.send.is_empty()).then(|| {
            self.send.iter().map(|c| c.lost).sum::<u64>()
                + self.backlog.as_ref().map_or(0, |b| b.lost)
        });
        t.push(TargetCheck {
            name: "Nothing acknowledged is lost".into(),
            target: "0 lost".into(),
            value: lost.map_or("not measured".into(), |l| format!("{l} lost")),
            met: lost.map(|l| l == 0),
        });
        let b = self.backlog.as_ref();
        t.push(TargetCheck {
            name: "Backlog: send rate while one inbox grows".into(),
            target: "last slice ≥ 0.90 × first".into(),
            value: b.map_or("not measured".into(), |b| {
                format!(
                    "{} → {} /s = {:.2}",
                    b.first_slice, b.last_slice, b.last_over_first
                )
            }),
            met: b
                .filter(|b| b.slices.len() >= 2)
                .map(|b| b.last_over_first >= 0.9),
        });
        t.push(TargetCheck {
            name: "Backlog: drain on reconnect".into(),
            target: "≥ 100k messages/s".into(),
            value: b.map_or("not measured".into(), |b| {
                format!(
                    "{} msgs in {:.2}s = {}/s",
                    b.drain_msgs,
                    b.drain_secs,
                    fmt_count(b.drain_msgs_per_s)
                )
            }),
            met: b.map(|b| b.drain_msgs_per_s >= 100_000.0 && b.lost == 0),
        });
        let e = self
            .e2e
            .iter()
            .find(|c| c.users == 10_000 && c.rate == 10_000);
        t.push(TargetCheck {
            name: "End-to-end p99 at 10k msg/s, 10k users".into(),
            target: "≤ 10 ms".into(),
            value: e.map_or("not measured".into(), |c| {
                format!(
                    "p99 {} (achieved {} msg/s)",
                    fmt_us(c.e2e.p99_us),
                    fmt_count(c.rest.load.rps)
                )
            }),
            met: e.map(|c| {
                c.e2e.p99_us <= 10_000 && c.rest.load.rps >= 0.95 * c.rate as f64 && c.lost == 0
            }),
        });
        let c = self.connections.as_ref();
        t.push(TargetCheck {
            name: "Idle connections held".into(),
            target: "100k".into(),
            value: c.map_or("not measured".into(), |c| {
                let mut v = format!("{} held of {} attempted", c.held, c.attempted);
                if let Some(r) = &c.cap_reason {
                    let _ = write!(v, " ({r})");
                }
                v
            }),
            met: c.map(|c| c.held >= 100_000),
        });
        t.push(TargetCheck {
            name: "Memory per idle connection".into(),
            target: "≤ 20 KB".into(),
            value: c
                .and_then(|c| c.rss_per_conn_bytes)
                .map_or("not measured".into(), |b| format!("{:.1} KB", b / 1000.0)),
            met: c.and_then(|c| c.rss_per_conn_bytes).map(|b| b <= 20_000.0),
        });
        let o = self.overload.as_ref();
        t.push(TargetCheck {
            name: "Overload (10x): bounded memory, no crash".into(),
            target: "429s or slower answers, RSS flat".into(),
            value: o.map_or("not measured".into(), |o| {
                format!(
                    "offered {}/s, served {}/s, 429s {}, p99 {}, RSS {}→{} MB (peak {}), alive {}",
                    fmt_count(o.offered_rps),
                    fmt_count(o.rest.load.rps),
                    o.rest.load.errors.get("status 429").copied().unwrap_or(0),
                    fmt_us(o.rest.load.latency.p99_us),
                    o.rss_start_kb
                        .map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
                    o.rss_end_kb
                        .map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
                    o.rss_peak_kb
                        .map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
                    o.alive_after
                )
            }),
            met: o.map(|o| o.alive_after && o.bounded.unwrap_or(true)),
        });
        self.targets = t;
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.meta;
        let _ = writeln!(
            s,
            "chatd-bench {}  commit {}  {} cores ({})",
            m.date,
            m.commit.as_deref().unwrap_or("?"),
            m.cores,
            m.cpu.as_deref().unwrap_or("?")
        );
        let _ = writeln!(s, "server: {}", m.server);
        for d in &self.disk {
            let l = &d.latency;
            let _ = writeln!(
                s,
                "disk {:<6}: {} writes of 512 B + fdatasync in {}, one per {} over {}s: p50 {} p99 {} p99.9 {} max {}, {} of 10 ms or more",
                d.when,
                l.count,
                d.dir,
                fmt_us(d.interval_us),
                d.seconds,
                fmt_us(l.p50_us),
                fmt_us(l.p99_us),
                fmt_us(l.p999_us),
                fmt_us(l.max_us),
                d.stalls
            );
        }
        if !self.send.is_empty() || !self.ceiling.is_empty() {
            let _ = writeln!(
                s,
                "\nREST send ({}s warm-up, {}s measured per cell; ratio = chatd ÷ ceiling at the same load)",
                m.params.warmup_s, m.params.duration_s
            );
            let _ = writeln!(
                s,
                "{:<9} {:>4} {:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6} {:>5} {:>9}",
                "server", "c", "rcpt", "req/s", "msg/s", "×ceil", "p50", "p99", "p99.9", "p50×", "p99×", "errors", "lost", "cpu s/c"
            );
            let mut rows: Vec<(usize, usize, usize, u8)> = Vec::new();
            for c in &self.ceiling {
                rows.push((c.recipients, c.concurrency, c.round, 0));
            }
            for c in &self.send {
                rows.push((c.recipients, c.concurrency, c.round, 1 + u8::from(c.online)));
            }
            rows.sort();
            rows.dedup();
            for (r, c, round, kind) in rows {
                let name = |n: &str| match round {
                    0 => n.to_string(),
                    _ => format!("{n}#{}", round + 1),
                };
                if kind == 0 {
                    if let Some(x) = self.ceiling_for(c, r, round) {
                        let l = &x.load;
                        let _ = writeln!(
                            s,
                            "{:<9} {:>4} {:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6} {:>5} {:>9}",
                            name("ceiling"),
                            c,
                            r,
                            fmt_count(l.rps),
                            "",
                            "1.00",
                            fmt_us(l.latency.p50_us),
                            fmt_us(l.latency.p99_us),
                            fmt_us(l.latency.p999_us),
                            "",
                            "",
                            l.error_count,
                            "",
                            format!("-/{:.2}", l.client_cpu)
                        );
                    }
                    continue;
                }
                let online = kind == 2;
                if let Some(x) = self.send.iter().find(|x| {
                    x.concurrency == c
                        && x.recipients == r
                        && x.round == round
                        && x.online == online
                }) {
                    let l = &x.load;
                    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
                    let _ = writeln!(
                        s,
                        "{:<9} {:>4} {:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6} {:>5} {:>9}",
                        name(if online { "online" } else { "offline" }),
                        c,
                        r,
                        fmt_count(l.rps),
                        fmt_count(x.msgs_per_s),
                        f(x.ratio_rps),
                        fmt_us(l.latency.p50_us),
                        fmt_us(l.latency.p99_us),
                        fmt_us(l.latency.p999_us),
                        f(x.ratio_p50),
                        f(x.ratio_p99),
                        l.error_count,
                        x.lost,
                        format!(
                            "{}/{:.2}",
                            l.server_cpu.map_or("-".into(), |v| format!("{v:.2}")),
                            l.client_cpu
                        )
                    );
                }
            }
            let _ = writeln!(
                s,
                "  (cpu s/c: cores used by the server / by the bench process, which also hosts the ceiling server)"
            );
        }
        if !self.e2e.is_empty() {
            let _ = writeln!(
                s,
                "\nEnd-to-end: REST request sent → message received on the recipient's WebSocket"
            );
            let _ = writeln!(
                s,
                "{:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>5} {:>7}",
                "users",
                "rate",
                "achieved",
                "e2e p50",
                "e2e p99",
                "e2e p99.9",
                "REST p50",
                "REST p99",
                "errors",
                "lost",
                "late"
            );
            for c in &self.e2e {
                let _ = writeln!(
                    s,
                    "{:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>5} {:>7}",
                    c.users,
                    fmt_count(c.rate as f64),
                    fmt_count(c.rest.load.rps),
                    fmt_us(c.e2e.p50_us),
                    fmt_us(c.e2e.p99_us),
                    fmt_us(c.e2e.p999_us),
                    fmt_us(c.rest.load.latency.p50_us),
                    fmt_us(c.rest.load.latency.p99_us),
                    c.rest.load.error_count,
                    c.lost,
                    c.rest.late
                );
            }
        }
        if let Some(c) = &self.connections {
            let _ = writeln!(s, "\nConnections: idle authenticated WebSocket clients");
            let _ = writeln!(
                s,
                "  requested {}  attempted {}{}  connected {} in {:.1}s  held {} after {:.0}s",
                c.requested,
                c.attempted,
                c.cap_reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ({r})")),
                c.connected,
                c.connect_secs,
                c.held,
                c.hold_secs
            );
            for (why, n) in &c.dropped_by {
                let _ = writeln!(s, "  not held: {n} × {why}");
            }
            if let (Some(a), Some(b), Some(p)) = (c.rss_base_kb, c.rss_kb, c.rss_per_conn_bytes) {
                let _ = writeln!(
                    s,
                    "  server RSS {:.1} MB → {:.1} MB: {:.1} KB per connection",
                    a as f64 / 1024.0,
                    b as f64 / 1024.0,
                    p / 1000.0
                );
            }
        }
        if let Some(b) = &self.backlog {
            let _ = writeln!(
                s,
                "\nBacklog: one offline inbox grows to {} messages (c={})",
                b.messages, b.concurrency
            );
            let _ = writeln!(
                s,
                "  {} ms slices (msg/s): {}",
                b.slice_ms,
                b.slices
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let _ = writeln!(
                s,
                "  first {} last {} ratio {:.2}; errors {}; drain {} msgs in {:.2}s = {}/s (cpu s/c {}/{:.2}); lost {}",
                b.first_slice,
                b.last_slice,
                b.last_over_first,
                b.errors,
                b.drain_msgs,
                b.drain_secs,
                fmt_count(b.drain_msgs_per_s),
                b.drain_server_cpu.map_or("-".into(), |v| format!("{v:.2}")),
                b.drain_client_cpu,
                b.lost
            );
        }
        if let Some(o) = &self.overload {
            let _ = writeln!(
                s,
                "\nOverload: {:.0}x the measured capacity, open loop over {} connections",
                o.offered_rps / o.capacity_rps.max(1.0),
                o.workers
            );
            let l = &o.rest.load;
            let _ = writeln!(
                s,
                "  capacity {}/s, offered {}/s, served {}/s; p50 {} p99 {}; errors {:?}; unsent {}",
                fmt_count(o.capacity_rps),
                fmt_count(o.offered_rps),
                fmt_count(l.rps),
                fmt_us(l.latency.p50_us),
                fmt_us(l.latency.p99_us),
                l.errors,
                o.rest.unsent
            );
            let mb = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
            let _ = writeln!(
                s,
                "  server RSS start {} MB, peak {} MB, end {} MB, slope {} KB/s over the second half; alive after: {}",
                mb(o.rss_start_kb),
                mb(o.rss_peak_kb),
                mb(o.rss_end_kb),
                o.rss_slope_kb_per_s.map_or("?".into(), |v| format!("{v:.0}")),
                o.alive_after
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(s, "\nTargets (issue 5)");
            if self.meta.params.quick {
                let _ = writeln!(
                    s,
                    "  (--quick: small counts and short windows; a smoke test, not a measurement)"
                );
            }
            for t in &self.targets {
                let mark = match t.met {
                    Some(true) => "met   ",
                    Some(false) => "MISSED",
                    None => "-     ",
                };
                let _ = writeln!(s, "  {mark} {:<44} {:<32} {}", t.name, t.target, t.value);
            }
        }
        for f in &self.failures {
            let _ = writeln!(s, "\nFAILED: {f}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::median_index;

    #[test]
    fn the_send_target_is_judged_on_the_median_round() {
        assert_eq!(median_index(&[0.40, 0.47, 0.44]), Some(2));
        assert_eq!(median_index(&[0.52, 0.40]), Some(1), "the lower middle");
        assert_eq!(median_index(&[0.43]), Some(0));
        assert_eq!(median_index(&[]), None);
    }
}
