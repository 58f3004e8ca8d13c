//! Latency histograms (HdrHistogram, microseconds) and the progress line.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant
/// digits.
pub type Hist = Histogram<u64>;

pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Hist, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// The summary of a latency histogram.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Hist) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// `850µs`, `1.23ms`, `2.5s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

/// `950`, `12.3k`, `1.20M`.
pub fn fmt_count(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1_000.0)
    } else if v >= 1_000.0 {
        format!("{:.2}k", v / 1_000.0)
    } else {
        format!("{v:.0}")
    }
}

/// The progress line on stderr: what runs, and its counters. On a terminal
/// it is rewritten in place twice a second; otherwise a line every 5 s.
pub struct Progress {
    label: Mutex<String>,
    started: Mutex<Instant>,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    quiet: AtomicBool,
    tty: bool,
}

impl Progress {
    pub fn global() -> &'static Progress {
        static P: OnceLock<Progress> = OnceLock::new();
        P.get_or_init(|| Progress {
            label: Mutex::new(String::new()),
            started: Mutex::new(Instant::now()),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            quiet: AtomicBool::new(false),
            tty: std::io::stderr().is_terminal(),
        })
    }

    /// Starts a new phase: resets the counters.
    pub fn phase(&self, label: impl Into<String>) {
        let label = label.into();
        if !self.tty && !self.quiet.load(Ordering::Relaxed) {
            eprintln!("[chatd-bench] {label}");
        }
        *self.label.lock().unwrap_or_else(|p| p.into_inner()) = label;
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.ok.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }

    /// A message between progress lines.
    pub fn note(&self, msg: &str) {
        if self.quiet.load(Ordering::Relaxed) {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("[chatd-bench] {msg}");
    }

    pub fn set_quiet(&self, q: bool) {
        self.quiet.store(q, Ordering::Relaxed);
    }

    /// Clears the progress line (before the table is printed).
    pub fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    /// Prints the line periodically until the runtime ends.
    pub fn spawn_ticker(&'static self) {
        tokio::spawn(async move {
            let period = if self.tty {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            };
            let mut last_ok = 0u64;
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                if self.quiet.load(Ordering::Relaxed) {
                    continue;
                }
                let ok = self.ok.load(Ordering::Relaxed);
                let errors = self.errors.load(Ordering::Relaxed);
                let rate = ok.saturating_sub(last_ok) as f64 / period.as_secs_f64();
                last_ok = ok;
                let label = self.label.lock().map(|l| l.clone()).unwrap_or_default();
                let t = self
                    .started
                    .lock()
                    .map(|s| s.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
                let line = format!(
                    "{label}  {}/s  ok {}  errors {errors}  {t:.0}s",
                    fmt_count(rate),
                    ok
                );
                if self.tty {
                    eprint!("\r\x1b[2K{line}");
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!("[chatd-bench]   {line}");
                }
            }
        });
    }
}

/// A histogram shared by many tasks (receivers): they record into it under
/// a lock, which at the rates involved (≤ 100k/s) is not contended.
#[derive(Clone)]
pub struct SharedHist(pub Arc<Mutex<Hist>>);

impl SharedHist {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(new_hist())))
    }

    pub fn record_us(&self, us: u64) {
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(us.max(1));
        }
    }

    pub fn reset(&self) {
        if let Ok(mut h) = self.0.lock() {
            h.reset();
        }
    }

    pub fn snapshot(&self) -> Hist {
        self.0
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| new_hist())
    }
}
