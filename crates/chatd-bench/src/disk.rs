//! The disk's own pace: a small write followed by `fdatasync` every
//! millisecond, in the directory where the bench's chatd servers keep their
//! data (a light commit load: back to back, the probe would itself be the
//! heaviest writer on the disk just before the scenarios).
//!
//! Every acknowledged send waits for a commit's `fdatasync`, so the send,
//! backlog and end-to-end figures move with the disk as the ratios to the
//! ceiling move with the CPU. On a shared virtual disk that pace changes
//! from hour to hour (docs/benchmarks.md: stalls of 40-139 ms with no
//! chatd running, where a few hours before the worst was 5 ms). Probed
//! before the first scenario and after the last, it tells a reader whether
//! a tail came from chatd or from the disk under it.

use crate::stats::{self, Latency};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of each probe write: a commit of one or two small messages.
const WRITE_BYTES: usize = 512;
/// The probe file, zero-filled and synced first as the journal does its
/// segments, so that a write changes no allocation.
const FILE_BYTES: u64 = 8 << 20;
/// Waits this long or longer are counted as stalls.
const STALL: Duration = Duration::from_millis(10);
/// One write + `fdatasync` starts every this long (at once when the one
/// before took longer).
const INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Serialize)]
pub struct DiskProbe {
    /// `before` the first scenario or `after` the last.
    pub when: &'static str,
    /// The file system's directory probed.
    pub dir: String,
    pub seconds: f64,
    /// Microseconds from the start of one write + `fdatasync` to the next.
    pub interval_us: u64,
    /// Time of each write + `fdatasync`.
    pub latency: Latency,
    /// Pairs that took 10 ms or more.
    pub stalls: u64,
}

/// Writes and syncs in a fresh file under `dir` for `secs`; the file is
/// removed afterwards.
pub fn probe(dir: &Path, when: &'static str, secs: f64) -> std::io::Result<DiskProbe> {
    let tmp = tempfile::Builder::new()
        .prefix("chatd-bench-disk-")
        .tempfile_in(dir)?;
    let file: &File = tmp.as_file();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..FILE_BYTES >> 20 {
        (&*file).write_all(&zeros)?;
    }
    file.sync_all()?;

    let data = [b'x'; WRITE_BYTES];
    let mut hist = stats::new_hist();
    let mut stalls = 0;
    let mut offset = 0u64;
    let window = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < window {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += INTERVAL;
        let t = Instant::now();
        file.write_all_at(&data, offset)?;
        file.sync_data()?;
        let took = t.elapsed();
        stats::record(&mut hist, took);
        if took >= STALL {
            stalls += 1;
        }
        offset = (offset + 4096) % FILE_BYTES;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(DiskProbe {
        when,
        dir: dir.display().to_string(),
        seconds: (elapsed * 100.0).round() / 100.0,
        interval_us: INTERVAL.as_micros() as u64,
        latency: Latency::of(&hist),
        stalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_times_every_sync_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = probe(dir.path(), "before", 0.2).unwrap();
        assert!(p.latency.count > 0, "{p:?}");
        assert!(p.latency.p50_us > 0, "{p:?}");
        assert!(p.latency.max_us >= p.latency.p99_us, "{p:?}");
        // One every millisecond at most: 200 in 0.2 s, and some at least.
        assert!(p.latency.count <= 201, "{p:?}");
        assert!(p.stalls <= p.latency.count);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
