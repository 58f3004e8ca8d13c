//! Bulk writes that keep the disk's queue short.
//!
//! A send is answered after its batch's `fdatasync`, and that call waits for
//! whatever else the device has queued. Files of MiBs written into the page
//! cache and synced once at the end reach the device queue all at once: on
//! the development machine 64 MiB held the next commit for about 30 ms,
//! which every send waiting on that commit carried (docs/benchmarks.md).
//! Pushing each MiB to the device as soon as it is written
//! (`sync_file_range`, which waits for the write but sends no cache flush)
//! leaves at most about a MiB ahead of any commit. The writer's final
//! `fsync` still makes the file durable.
//!
//! Used for the journal's background files (each next segment's zeros, the
//! snapshots) and for uploaded chat files.
//!
//! Written here, not taken from a crate: one system call that `libc`
//! already declares, and the arithmetic of when to make it.

use std::fs::File;
use std::io::{self, Write};

/// Bytes written before they are pushed to the device.
pub const PACE_BYTES: u64 = 1 << 20;

/// Where a file's writes stand against its pushes: for writers that make
/// the push themselves (an async writer, from a blocking thread).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Offset of the next byte written.
    at: u64,
    /// Bytes before this offset were pushed to the device.
    pushed: u64,
}

impl Pace {
    /// For writes that start at offset `at`.
    pub fn new(at: u64) -> Self {
        Self { at, pushed: at }
    }

    /// Counts `n` bytes written; returns the range `(offset, len)` to push
    /// now, if a pace's worth is waiting, and counts it pushed.
    pub fn wrote(&mut self, n: u64) -> Option<(u64, u64)> {
        self.at += n;
        let waiting = self.at - self.pushed;
        (waiting >= PACE_BYTES).then(|| {
            let range = (self.pushed, waiting);
            self.pushed = self.at;
            range
        })
    }

    /// Bytes written and not yet pushed.
    pub fn unpushed(&self) -> u64 {
        self.at - self.pushed
    }

    /// Offset of the next byte written: the file's length for writes that
    /// started at 0.
    pub fn at(&self) -> u64 {
        self.at
    }
}

/// Writes to a file at its current position, pushing every [`PACE_BYTES`]
/// to the device as it goes.
pub struct Paced<'a> {
    file: &'a File,
    pace: Pace,
}

impl<'a> Paced<'a> {
    /// For writes that start at offset `at` of `file` (its current
    /// position).
    pub fn new(file: &'a File, at: u64) -> Self {
        Self {
            file,
            pace: Pace::new(at),
        }
    }

    /// Bytes written through this writer and not yet pushed.
    pub fn unpushed(&self) -> u64 {
        self.pace.unpushed()
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some((offset, len)) = self.pace.wrote(n as u64) {
            write_back(self.file, offset, len)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts the write-back of `len` bytes at `offset` and waits for it: the
/// device has them (in its cache, not yet flushed) when this returns. It
/// blocks: call it off the async runtime's workers.
#[cfg(target_os = "linux")]
pub fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: sync_file_range reads nothing from memory; the descriptor is
    // open for as long as `file` is borrowed.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere the final fsync does all of it.
#[cfg(not(target_os = "linux"))]
pub fn write_back(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Bytes of `file` in the page cache that are dirty or being written back,
/// by `cachestat` (Linux 6.5); `None` where the kernel lacks it. For tests
/// that check a writer's pace.
#[cfg(target_os = "linux")]
pub fn unwritten_bytes(file: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    const SYS_CACHESTAT: libc::c_long = 451;
    // The whole file.
    let range = Range { off: 0, len: 0 };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live and of
    // the layout the kernel expects; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0,
        )
    };
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    (rc == 0).then_some((stat.nr_dirty + stat.nr_writeback) * page)
}

/// No `cachestat` elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn unwritten_bytes(_file: &File) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_mib(out: &mut impl Write, mib: usize) {
        let chunk = vec![7u8; 64 << 10];
        for _ in 0..mib * 16 {
            out.write_all(&chunk).unwrap();
        }
    }

    #[test]
    fn paced_writes_leave_at_most_a_pace_unwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("paced")).unwrap();
        let mut out = Paced::new(&file, 0);
        write_mib(&mut out, 8);
        assert!(out.unpushed() < PACE_BYTES);
        let Some(unwritten) = unwritten_bytes(&file) else {
            eprintln!("no cachestat on this kernel: the page counts are not checked");
            return;
        };
        assert!(
            unwritten <= PACE_BYTES,
            "{unwritten} bytes still unwritten after 8 MiB written with pacing"
        );

        // The check itself: without pacing the same writes stay dirty (the
        // kernel writes back after 30 s by default), so it can tell.
        let plain = File::create(dir.path().join("plain")).unwrap();
        write_mib(&mut &plain, 8);
        let unwritten = unwritten_bytes(&plain).unwrap();
        assert!(
            unwritten > 4 * PACE_BYTES,
            "only {unwritten} bytes unwritten after 8 MiB written without pacing"
        );
    }

    #[test]
    fn writes_start_at_the_given_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"head").unwrap();
        let mut out = Paced::new(&file, 4);
        write_mib(&mut out, 2);
        out.write_all(b"tail").unwrap();
        // Each MiB written from offset 4 was pushed; the tail waits.
        assert_eq!(out.unpushed(), 4);
        file.sync_all().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 4 + (2 << 20) + 4);
        assert_eq!(&back[..4], b"head");
        assert!(back[4..4 + (2 << 20)].iter().all(|b| *b == 7));
        assert_eq!(&back[back.len() - 4..], b"tail");
    }

    #[test]
    fn a_pace_asks_for_each_range_once_and_whole() {
        let mut pace = Pace::new(10);
        assert_eq!(pace.wrote(PACE_BYTES - 1), None);
        assert_eq!(pace.wrote(5), Some((10, PACE_BYTES + 4)));
        assert_eq!(pace.unpushed(), 0);
        assert_eq!(pace.wrote(3), None);
        assert_eq!(pace.unpushed(), 3);
        assert_eq!(pace.at(), 10 + PACE_BYTES + 7);
        assert_eq!(
            pace.wrote(2 * PACE_BYTES),
            Some((PACE_BYTES + 14, 2 * PACE_BYTES + 3))
        );
    }
}
