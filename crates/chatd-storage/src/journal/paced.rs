//! Bulk writes that keep the disk's queue short.
//!
//! Besides the commits, the journal writes files of tens of MiB in the
//! background: each new segment's zeros (64 MiB) and each snapshot of the
//! index. Written into the page cache and synced once at the end, the whole
//! file reaches the device queue at once, and the commit thread's next
//! `fdatasync` waits behind all of it: on the development machine a 64 MiB
//! segment held one commit for about 30 ms, once per 64 MiB of log (every
//! few seconds at full load), which every send waiting on that commit
//! carried. Pushing each MiB to the device as soon as it is written
//! (`sync_file_range`, which waits for the write but sends no cache flush)
//! leaves at most about a MiB ahead of any commit; the largest wait seen
//! then was under 4 ms (docs/benchmarks.md). The final `fsync` still makes
//! the file durable.
//!
//! Written here, not taken from a crate: one system call that `libc`
//! already declares.

use std::fs::File;
use std::io::{self, Write};

/// Bytes written before they are pushed to the device.
pub(crate) const PACE_BYTES: u64 = 1 << 20;

/// Writes to a file at its current position, pushing every [`PACE_BYTES`]
/// to the device as it goes.
pub(crate) struct Paced<'a> {
    file: &'a File,
    /// Offset of the next byte written.
    at: u64,
    /// Bytes before this offset were pushed to the device.
    pushed: u64,
}

impl<'a> Paced<'a> {
    /// For writes that start at offset `at` of `file` (its current
    /// position).
    pub(crate) fn new(file: &'a File, at: u64) -> Self {
        Self {
            file,
            at,
            pushed: at,
        }
    }

    /// Bytes written through this writer and not yet pushed.
    #[cfg(test)]
    pub(crate) fn unpushed(&self) -> u64 {
        self.at - self.pushed
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.at += n as u64;
        if self.at - self.pushed >= PACE_BYTES {
            write_back(self.file, self.pushed, self.at - self.pushed)?;
            self.pushed = self.at;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts the write-back of `len` bytes at `offset` and waits for it: the
/// device has them (in its cache, not yet flushed) when this returns.
#[cfg(target_os = "linux")]
fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
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
fn write_back(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Pages of `file` in the page cache that are dirty, by `cachestat`
    /// (Linux 6.5), or `None` where the kernel lacks it.
    fn dirty_pages(file: &File) -> Option<u64> {
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
        let range = Range { off: 0, len: 0 };
        let mut stat = Stat::default();
        // SAFETY: cachestat reads `range` and writes `stat`, both live and
        // of the layout the kernel expects; flags must be 0.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                file.as_raw_fd(),
                &range as *const Range,
                &mut stat as *mut Stat,
                0,
            )
        };
        (rc == 0).then_some(stat.nr_dirty + stat.nr_writeback)
    }

    fn write_mib(out: &mut impl Write, mib: usize) {
        let chunk = vec![7u8; 64 << 10];
        for _ in 0..mib * 16 {
            out.write_all(&chunk).unwrap();
        }
    }

    #[test]
    fn paced_writes_leave_at_most_a_pace_unwritten() {
        let dir = tempfile::tempdir().unwrap();
        let page = 4096;
        let file = File::create(dir.path().join("paced")).unwrap();
        let mut out = Paced::new(&file, 0);
        write_mib(&mut out, 8);
        assert!(out.unpushed() < PACE_BYTES);
        let Some(dirty) = dirty_pages(&file) else {
            eprintln!("no cachestat on this kernel: the page counts are not checked");
            return;
        };
        assert!(
            dirty * page <= PACE_BYTES,
            "{dirty} pages still dirty after 8 MiB written with pacing"
        );

        // The check itself: without pacing the same writes stay dirty (the
        // kernel writes back after 30 s by default), so it can tell.
        let plain = File::create(dir.path().join("plain")).unwrap();
        write_mib(&mut &plain, 8);
        let dirty = dirty_pages(&plain).unwrap();
        assert!(
            dirty * page > 4 * PACE_BYTES,
            "only {dirty} pages dirty after 8 MiB written without pacing"
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
}
