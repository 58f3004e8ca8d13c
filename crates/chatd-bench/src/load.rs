//! Load shapes: closed loop (N slots, each sending its next request as soon
//! as the previous one is answered) and open loop (a fixed rate, whatever
//! the answers do).

use crate::http::{Conn, Endpoint};
use crate::stats::{new_hist, record, Hist, Latency, Progress};
use crate::sys::Sources;
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load produced.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Requests answered 200 within the measured window.
    pub ok: u64,
    /// Successful requests per second over the measured window.
    pub rps: f64,
    pub latency: Latency,
    /// Failures within the measured window, by kind (`status 500`,
    /// `timeout`, `io`).
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    /// Answers with 200 over the whole load, warm-up included.
    pub total_ok: u64,
    /// Failures over the whole load.
    pub total_errors: u64,
    /// Successful requests in each second of the measured window.
    pub per_second: Vec<u64>,
    /// Successful requests in each tenth of a second of it.
    pub per_tenth: Vec<u64>,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// CPU used during the measured window, as a share of one core.
    pub server_cpu: Option<f64>,
    pub client_cpu: f64,
    #[serde(skip)]
    pub hist: Hist,
}

struct Shared {
    /// 200s per body (or per key), warm-up included.
    acked: Vec<AtomicU64>,
    per_second: Vec<AtomicU64>,
    per_tenth: Vec<AtomicU64>,
}

impl Shared {
    fn new(keys: usize, seconds: usize) -> Arc<Self> {
        Arc::new(Self {
            acked: (0..keys).map(|_| AtomicU64::new(0)).collect(),
            per_second: (0..seconds + 2).map(|_| AtomicU64::new(0)).collect(),
            per_tenth: (0..(seconds + 2) * 10).map(|_| AtomicU64::new(0)).collect(),
        })
    }
}

/// A worker's own tallies, merged at the end.
struct Tally {
    hist: Hist,
    errors: BTreeMap<String, u64>,
    ok: u64,
    total_ok: u64,
    total_errors: u64,
    late: u64,
    /// When the last measured request was answered.
    last: Instant,
}

/// When one request was sent and answered, and whether both fall in the
/// measured window.
struct Answer {
    sent: Instant,
    answered: Instant,
    measured: bool,
}

impl Tally {
    /// Counts one answer the same way for both kinds of load: the body's
    /// (or key's) acknowledged count and the totals always, latency, errors
    /// by kind and the per-second slice only inside the measured window.
    fn count(
        &mut self,
        outcome: Result<(), String>,
        acked: Option<&AtomicU64>,
        shared: &Shared,
        measure_from: Instant,
        a: Answer,
    ) {
        let progress = Progress::global();
        match outcome {
            Ok(()) => {
                if let Some(c) = acked {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                self.total_ok += 1;
                progress.ok.fetch_add(1, Ordering::Relaxed);
                if a.measured {
                    self.ok += 1;
                    record(&mut self.hist, a.answered - a.sent);
                    let since = a.answered - measure_from;
                    if let Some(c) = shared.per_second.get(since.as_secs() as usize) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(c) = shared.per_tenth.get((since.as_millis() / 100) as usize) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    self.last = self.last.max(a.answered);
                }
            }
            Err(kind) => {
                self.total_errors += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if a.measured {
                    *self.errors.entry(kind).or_default() += 1;
                }
            }
        }
    }

    fn new() -> Self {
        Self {
            hist: new_hist(),
            errors: BTreeMap::new(),
            ok: 0,
            total_ok: 0,
            total_errors: 0,
            late: 0,
            last: Instant::now(),
        }
    }

    fn merge(&mut self, o: Tally) {
        let _ = self.hist.add(&o.hist);
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.ok += o.ok;
        self.total_ok += o.total_ok;
        self.total_errors += o.total_errors;
        self.late += o.late;
        self.last = self.last.max(o.last);
    }
}

/// The window a load measures: after the warm-up, for `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

/// One request and what became of it.
async fn one(
    conn: &mut Option<Conn>,
    ep: &Endpoint,
    src: std::net::IpAddr,
    body: Bytes,
    timeout: Duration,
) -> Result<(), String> {
    if conn.is_none() {
        match tokio::time::timeout(timeout, Conn::connect(ep.addr, src)).await {
            Ok(Ok(c)) => *conn = Some(c),
            Ok(Err(_)) => return Err("connect".into()),
            Err(_) => return Err("connect timeout".into()),
        }
    }
    let c = conn.as_mut().expect("connected");
    match tokio::time::timeout(timeout, c.post(ep, body)).await {
        Ok(Ok(s)) if s.as_u16() == 200 => Ok(()),
        Ok(Ok(s)) => Err(format!("status {}", s.as_u16())),
        Ok(Err(_)) => {
            *conn = None;
            Err("io".into())
        }
        Err(_) => {
            *conn = None;
            Err("timeout".into())
        }
    }
}

fn finish(
    tally: Tally,
    shared: &Shared,
    seconds: f64,
    cpu: (Option<f64>, f64),
) -> (LoadResult, Vec<u64>) {
    let per_second: Vec<u64> = shared
        .per_second
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .take(seconds.ceil() as usize)
        .collect();
    let per_tenth: Vec<u64> = shared
        .per_tenth
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .take((seconds * 10.0).ceil() as usize)
        .collect();
    let acked = shared
        .acked
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let error_count = tally.errors.values().sum();
    (
        LoadResult {
            ok: tally.ok,
            rps: tally.ok as f64 / seconds.max(1e-9),
            latency: Latency::of(&tally.hist),
            errors: tally.errors,
            error_count,
            total_ok: tally.total_ok,
            total_errors: tally.total_errors,
            per_second,
            per_tenth,
            seconds,
            server_cpu: cpu.0,
            client_cpu: cpu.1,
            hist: tally.hist,
        },
        acked,
    )
}

/// CPU time of the server (if known) and of the bench, sampled around a window.
pub struct CpuMeter {
    pid: Option<u32>,
    server: Option<f64>,
    client: f64,
    at: Instant,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            server: pid.and_then(crate::sys::cpu_secs),
            client: crate::sys::own_cpu_secs(),
            at: Instant::now(),
        }
    }

    /// A meter that starts at `at` (a task waits for it).
    pub fn at(at: Instant, pid: Option<u32>) -> Arc<std::sync::Mutex<Option<CpuMeter>>> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let s = slot.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            *s.lock().unwrap_or_else(|p| p.into_inner()) = Some(CpuMeter::start(pid));
        });
        slot
    }

    pub fn read_shared(slot: &std::sync::Mutex<Option<CpuMeter>>) -> (Option<f64>, f64) {
        slot.lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or((None, 0.0), CpuMeter::read)
    }

    /// (server, client) CPU in cores since `start`.
    pub fn read(&self) -> (Option<f64>, f64) {
        let dt = self.at.elapsed().as_secs_f64().max(1e-9);
        let server = match (self.server, self.pid.and_then(crate::sys::cpu_secs)) {
            (Some(a), Some(b)) => Some(((b - a) / dt * 100.0).round() / 100.0),
            _ => None,
        };
        let client = ((crate::sys::own_cpu_secs() - self.client) / dt * 100.0).round() / 100.0;
        (server, client)
    }
}

/// Closed loop: `concurrency` slots, each with its own keep-alive
/// connection, send `bodies` round-robin. Returns the result and the number
/// of 200s per body (warm-up included).
pub async fn closed_loop(
    ep: &Endpoint,
    bodies: Arc<Vec<Bytes>>,
    concurrency: usize,
    window: Window,
    sources: &Sources,
    server_pid: Option<u32>,
) -> (LoadResult, Vec<u64>) {
    closed_loop_limited(ep, bodies, concurrency, window, None, sources, server_pid).await
}

/// [`closed_loop`] that also stops after `limit` requests (the measured
/// window then ends with the last answer).
pub async fn closed_loop_limited(
    ep: &Endpoint,
    bodies: Arc<Vec<Bytes>>,
    concurrency: usize,
    window: Window,
    limit: Option<u64>,
    sources: &Sources,
    server_pid: Option<u32>,
) -> (LoadResult, Vec<u64>) {
    let seconds = window.duration.as_secs_f64();
    let shared = Shared::new(bodies.len(), seconds.ceil() as usize);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let end = measure_from + window.duration;
    let timeout = Duration::from_secs(30);
    let cpu = CpuMeter::at(measure_from, server_pid);
    let mut tasks = Vec::with_capacity(concurrency);
    for slot in 0..concurrency {
        let ep = ep.clone();
        let bodies = bodies.clone();
        let shared = shared.clone();
        let counter = counter.clone();
        let src = sources.pick(slot);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::new();
            let mut conn: Option<Conn> = None;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let ticket = counter.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| ticket >= l) {
                    break;
                }
                let k = ticket as usize % bodies.len();
                let r = one(&mut conn, &ep, src, bodies[k].clone(), timeout).await;
                let t1 = Instant::now();
                let failed = r.is_err();
                let answer = Answer {
                    sent: t0,
                    answered: t1,
                    measured: t0 >= measure_from && t1 <= end,
                };
                t.count(r, shared.acked.get(k), &shared, measure_from, answer);
                if failed && conn.is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            t
        }));
    }
    let mut tally = Tally::new();
    for t in tasks {
        if let Ok(t) = t.await {
            tally.merge(t);
        }
    }
    // A limited load may end before the window does.
    let seconds = if limit.is_some() && tally.last > measure_from && tally.last < end {
        (tally.last - measure_from).as_secs_f64()
    } else {
        seconds
    };
    finish(tally, &shared, seconds, CpuMeter::read_shared(&cpu))
}

/// What the open loop sends: for ticket `k` sent at bench time `t0_ns`,
/// the body and the key its 200 is counted under.
pub type MakeBody = Arc<dyn Fn(u64, u64) -> (Bytes, usize) + Send + Sync>;

/// An open-loop result: the load result plus how well the schedule was kept.
#[derive(Debug, Clone, Serialize)]
pub struct OpenResult {
    #[serde(flatten)]
    pub load: LoadResult,
    pub offered_rps: f64,
    /// Requests started more than 5 ms after their scheduled time (no free
    /// connection, or the bench itself could not keep up).
    pub late: u64,
    /// Scheduled requests that were never sent (the schedule ran past the
    /// end while all connections were busy).
    pub unsent: u64,
}

/// An open-loop load.
pub struct OpenLoad {
    /// What request `k` sends.
    pub make: MakeBody,
    /// How many keys `make` counts 200s under.
    pub keys: usize,
    /// Requests per second.
    pub rate: f64,
    /// Connections (each with at most one request in flight).
    pub workers: usize,
    pub window: Window,
}

/// Open loop: request `k` is due at `start + k / rate`; `workers`
/// connections take the due requests in turn. Latency is measured from the
/// moment a request is actually sent; `late` counts how far the schedule
/// slipped.
pub async fn open_loop(
    ep: &Endpoint,
    load: OpenLoad,
    sources: &Sources,
    server_pid: Option<u32>,
) -> (OpenResult, Vec<u64>) {
    let OpenLoad {
        make,
        keys,
        rate,
        workers,
        window,
    } = load;
    let seconds = window.duration.as_secs_f64();
    let shared = Shared::new(keys, seconds.ceil() as usize);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + window.warmup;
    let end = measure_from + window.duration;
    let total_due = ((window.warmup + window.duration).as_secs_f64() * rate) as u64;
    let timeout = Duration::from_secs(30);
    let cpu = CpuMeter::at(measure_from, server_pid);
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let ep = ep.clone();
        let make = make.clone();
        let shared = shared.clone();
        let counter = counter.clone();
        let src = sources.pick(w);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::new();
            let mut conn: Option<Conn> = None;
            loop {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                if k >= total_due {
                    break;
                }
                let due = start + Duration::from_secs_f64(k as f64 / rate);
                if due >= end || Instant::now() >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let t0 = Instant::now();
                if t0 > due + Duration::from_millis(5) {
                    t.late += 1;
                }
                let (body, key) = make(k, crate::sys::now_ns());
                let r = one(&mut conn, &ep, src, body, timeout).await;
                let t1 = Instant::now();
                let answer = Answer {
                    sent: t0,
                    answered: t1,
                    measured: due >= measure_from && t1 <= end,
                };
                t.count(r, shared.acked.get(key), &shared, measure_from, answer);
            }
            t
        }));
    }
    let mut tally = Tally::new();
    for t in tasks {
        if let Ok(t) = t.await {
            tally.merge(t);
        }
    }
    let unsent = total_due.saturating_sub(tally.total_ok + tally.total_errors);
    let late = tally.late;
    let (load, acked) = finish(tally, &shared, seconds, CpuMeter::read_shared(&cpu));
    (
        OpenResult {
            load,
            offered_rps: rate,
            late,
            unsent,
        },
        acked,
    )
}
