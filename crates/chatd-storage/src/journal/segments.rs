//! The log's files.
//!
//! The log is a run of fixed-size segment files in one directory,
//! `{index:010}.seg`: byte `o` of the log is byte `o % size` of segment
//! `o / size`. Records never straddle two segments; a segment whose tail is
//! too short for the next record ends with a [`Record::SegmentEnd`] marker.
//!
//! A segment is filled with zeros (under a `.new` name) before it is put in
//! place, so that appending to it changes neither the file's size nor its
//! allocation: the fdatasync of every commit then has only data to flush,
//! which on ext4 is measurably quicker than an append (docs/benchmarks.md).
//!
//! [`Record::SegmentEnd`]: super::record::Record::SegmentEnd

use super::record::{self, Frame, Record, FRAME_HEADER};
use crate::{Result, StorageError};
use chatd_diskio::Paced;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the segments are and how large each is.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
    pub segment_bytes: u64,
}

impl Layout {
    pub fn segment(&self, offset: u64) -> u64 {
        offset / self.segment_bytes
    }

    pub fn start(&self, segment: u64) -> u64 {
        segment * self.segment_bytes
    }

    pub fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{segment:010}.seg"))
    }

    fn prepared_path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{segment:010}.seg.new"))
    }

    /// The segments present, ascending.
    pub fn segments(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Writes a zero-filled segment and puts it under its `.new` name once
    /// whole and synced (never before, so a `.new` file is always whole).
    pub fn prepare(&self, segment: u64) -> io::Result<()> {
        if self.prepared_path(segment).exists() {
            // Whole already (a previous run's): 64 MiB not written again.
            return Ok(());
        }
        static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = self
            .dir
            .join(format!("{segment:010}.seg.tmp{}-{n}", std::process::id()));
        let written = (|| {
            let f = File::create(&temp)?;
            let mut out = Paced::new(&f, 0);
            let zeros = vec![0u8; 1 << 20];
            let mut left = self.segment_bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                out.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            f.sync_all()?;
            std::fs::rename(&temp, self.prepared_path(segment))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// Puts `segment` in place, preparing it first if that was not done,
    /// and opens it for writing. Durable once this returns: records written
    /// to it can be acknowledged after their own fdatasync.
    pub fn install(&self, segment: u64) -> io::Result<File> {
        let prepared = self.prepared_path(segment);
        if !prepared.exists() {
            self.prepare(segment)?;
        }
        let path = self.path(segment);
        std::fs::rename(&prepared, &path)?;
        sync_dir(&self.dir)?;
        File::options().write(true).open(path)
    }

    /// Removes what preparations left: temporary files, and prepared
    /// segments that are no longer ahead of the log.
    pub fn remove_leftovers(&self, current: u64) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let Some((index, rest)) = name.split_once(".seg.") else {
                continue;
            };
            let stale = match (rest, index.parse::<u64>()) {
                ("new", Ok(i)) => i <= current,
                (r, _) => r.starts_with("tmp"),
            };
            if stale {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Opens the segment already in place for writing.
    pub fn open_for_writing(&self, segment: u64) -> io::Result<File> {
        File::options().write(true).open(self.path(segment))
    }

    /// Removes a segment (and any prepared file of it).
    pub fn remove(&self, segment: u64) -> io::Result<()> {
        for p in [self.path(segment), self.prepared_path(segment)] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(&self.dir)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads all of `buf` at `pos`, or up to the end of the file.
fn read_full(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Read access to the segments, with their files kept open (up to a bound:
/// a long log has more segments than a process should hold descriptors).
pub(crate) struct Files {
    pub layout: Layout,
    open: Mutex<OpenFiles>,
}

/// Open segment files, most recently used last.
#[derive(Default)]
struct OpenFiles {
    files: Vec<(u64, Arc<File>)>,
}

/// Segment files kept open for reading.
const OPEN_FILES: usize = 32;
/// A first read of a record: most records are much smaller.
pub(crate) const FIRST_READ: usize = 2048;

impl Files {
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            open: Mutex::new(OpenFiles::default()),
        }
    }

    fn file(&self, segment: u64) -> io::Result<Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.files.iter().position(|(s, _)| *s == segment) {
            let entry = open.files.remove(i);
            let file = entry.1.clone();
            open.files.push(entry);
            return Ok(file);
        }
        let file = Arc::new(File::open(self.layout.path(segment))?);
        if open.files.len() >= OPEN_FILES {
            open.files.remove(0);
        }
        open.files.push((segment, file.clone()));
        Ok(file)
    }

    /// Reads the log from `offset` into `buf`: `window` bytes (up to the
    /// segment's end), and more if the record at `offset` is longer; `buf`
    /// then starts with that whole record's frame.
    pub fn read_window(&self, offset: u64, window: usize, buf: &mut Vec<u8>) -> Result<()> {
        let segment = self.layout.segment(offset);
        let pos = offset - self.layout.start(segment);
        let room = (self.layout.segment_bytes - pos) as usize;
        let file = self.file(segment)?;
        buf.clear();
        buf.resize(window.max(FRAME_HEADER).min(room), 0);
        let n = read_full(&file, buf, pos)?;
        buf.truncate(n);
        loop {
            match record::check_frame(buf) {
                Frame::Record(_) => return Ok(()),
                Frame::Incomplete(len) if len <= room && buf.len() < len => {
                    let have = buf.len();
                    buf.resize(len, 0);
                    let n = read_full(&file, &mut buf[have..], pos + have as u64)?;
                    buf.truncate(have + n);
                    if have + n < len {
                        break;
                    }
                }
                _ => break,
            }
        }
        Err(StorageError::Corrupt(format!(
            "journal: no record at offset {offset}"
        )))
    }
}

/// How a sequential read of the log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Zeros: nothing was ever written past here.
    Clean,
    /// A frame that is not whole: a write cut short by a crash (or damage).
    Torn,
    /// A segment marker pointed at a segment that is not there.
    MissingSegment,
}

/// One step of a sequential read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A whole record at `offset` ([`Scanner::frame`]); the next one is at
    /// `next`.
    Record {
        offset: u64,
        next: u64,
    },
    End(End),
}

/// Reads the log's records in order from an offset, in large reads.
pub(crate) struct Scanner<'a> {
    files: &'a Files,
    /// Where the next record starts.
    offset: u64,
    chunk: Vec<u8>,
    /// Log offset of `chunk[0]`.
    chunk_start: u64,
    /// The last record returned, within `chunk`.
    frame: std::ops::Range<usize>,
    /// A segment seen to exist (looked up once, not once per record).
    present: Option<u64>,
}

const CHUNK: usize = 1 << 20;

impl<'a> Scanner<'a> {
    pub fn new(files: &'a Files, offset: u64) -> Self {
        Self {
            files,
            offset,
            chunk: Vec::new(),
            chunk_start: offset,
            frame: 0..0,
            present: None,
        }
    }

    /// The frame of the last record returned by [`Scanner::next`].
    pub fn frame(&self) -> &[u8] {
        &self.chunk[self.frame.clone()]
    }

    /// Reads the chunk starting at the current offset, at least `min`
    /// bytes if the segment holds them.
    fn refill(&mut self, min: usize) -> Result<()> {
        let layout = &self.files.layout;
        let segment = layout.segment(self.offset);
        let pos = self.offset - layout.start(segment);
        let room = (layout.segment_bytes - pos) as usize;
        let want = min.max(CHUNK).min(room);
        self.chunk.clear();
        self.chunk.resize(want, 0);
        let file = self.files.file(segment)?;
        let n = read_full(&file, &mut self.chunk, pos)?;
        self.chunk.truncate(n);
        self.chunk_start = self.offset;
        Ok(())
    }

    pub fn next(&mut self) -> Result<Step> {
        let files = self.files;
        let layout = &files.layout;
        loop {
            let segment = layout.segment(self.offset);
            if self.present != Some(segment) {
                if !layout.path(segment).exists() {
                    return Ok(Step::End(End::MissingSegment));
                }
                self.present = Some(segment);
            }
            let within = (self.offset - self.chunk_start) as usize;
            let have = self.chunk.get(within..).unwrap_or(&[]);
            let check = record::check_frame(have);
            let need = match check {
                Frame::Record(len) => {
                    let at = within..within + len;
                    let offset = self.offset;
                    // Only a frame of the marker's size can be the marker.
                    let is_end = len == record::SEGMENT_END_FRAME
                        && matches!(
                            record::decode(&self.chunk[at.clone()]),
                            Ok(Record::SegmentEnd)
                        );
                    let next = if is_end {
                        layout.start(segment + 1)
                    } else {
                        offset + len as u64
                    };
                    self.frame = at;
                    self.offset = next;
                    return Ok(Step::Record { offset, next });
                }
                Frame::Empty if have.len() >= FRAME_HEADER => return Ok(Step::End(End::Clean)),
                Frame::Invalid => return Ok(Step::End(End::Torn)),
                Frame::Incomplete(len) => len,
                Frame::Empty => FRAME_HEADER,
            };
            // Not enough bytes in the chunk: read on from this record.
            let room = (layout.start(segment + 1) - self.offset) as usize;
            let end_here = if check == Frame::Empty {
                End::Clean
            } else {
                End::Torn
            };
            if need > room {
                // The segment ends before the frame could.
                return Ok(Step::End(end_here));
            }
            self.refill(need)?;
            if self.chunk.len() < need {
                // The file is shorter than a segment: nothing more to read.
                let zeros = self.chunk.iter().all(|b| *b == 0);
                return Ok(Step::End(if zeros { End::Clean } else { End::Torn }));
            }
        }
    }

    /// Where the next record would start.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{frame, ConversationRecord, Record};
    use std::borrow::Cow;

    /// The whole frame of the record at `offset`.
    fn read_frame(files: &Files, offset: u64, buf: &mut Vec<u8>) -> Result<()> {
        files.read_window(offset, FIRST_READ, buf)?;
        if let Frame::Record(len) = record::check_frame(buf) {
            buf.truncate(len);
        }
        Ok(())
    }

    fn layout(dir: &Path, size: u64) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            segment_bytes: size,
        }
    }

    #[test]
    fn a_prepared_segment_is_not_written_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path(), 8192);
        l.prepare(3).unwrap();
        let inode = std::fs::metadata(l.prepared_path(3)).unwrap().ino();
        l.prepare(3).unwrap();
        assert_eq!(std::fs::metadata(l.prepared_path(3)).unwrap().ino(), inode);
        assert_eq!(std::fs::read(l.prepared_path(3)).unwrap(), vec![0u8; 8192]);
    }

    fn mark(i: i64) -> Record<'static> {
        Record::MarkRead(ConversationRecord {
            app: i,
            owner: Cow::Owned("o".repeat(i as usize % 50)),
            peer: Cow::Borrowed("p"),
            at_ms: i,
        })
    }

    #[test]
    fn segments_are_installed_zeroed_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path(), 4096);
        let f = l.install(0).unwrap();
        assert_eq!(std::fs::metadata(l.path(0)).unwrap().len(), 4096);
        // Records up to the segment's end, then a marker, then segment 1.
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        let mut i = 0;
        loop {
            let mut one = Vec::new();
            frame(&mark(i), &mut one).unwrap();
            if buf.len() + one.len() + record::SEGMENT_END_FRAME > 4096 {
                break;
            }
            offsets.push(buf.len() as u64);
            buf.extend_from_slice(&one);
            i += 1;
        }
        frame(&Record::SegmentEnd, &mut buf).unwrap();
        f.write_all_at(&buf, 0).unwrap();
        let f1 = l.install(1).unwrap();
        let mut tail = Vec::new();
        frame(&mark(1000), &mut tail).unwrap();
        f1.write_all_at(&tail, 0).unwrap();
        assert_eq!(l.segments().unwrap(), vec![0, 1]);

        let files = Files::new(l.clone());
        let mut s = Scanner::new(&files, 0);
        let mut seen = Vec::new();
        let end = loop {
            match s.next().unwrap() {
                Step::Record { offset, next } => {
                    if record::decode(s.frame()).unwrap() == Record::SegmentEnd {
                        assert_eq!(next, 4096);
                    } else {
                        seen.push((offset, s.frame().to_vec()));
                    }
                }
                Step::End(e) => break e,
            }
        };
        assert_eq!(end, End::Clean);
        assert_eq!(s.offset(), 4096 + tail.len() as u64);
        assert_eq!(seen.len(), offsets.len() + 1);
        let (last_at, last) = seen.last().unwrap();
        assert_eq!(
            (*last_at, record::decode(last).unwrap()),
            (4096, mark(1000))
        );
        for (k, off) in offsets.iter().enumerate() {
            assert_eq!(seen[k].0, *off);
            assert_eq!(record::decode(&seen[k].1).unwrap(), mark(k as i64));
            let mut one = Vec::new();
            read_frame(&files, *off, &mut one).unwrap();
            assert_eq!(record::decode(&one).unwrap(), mark(k as i64));
        }
        let mut one = Vec::new();
        assert!(read_frame(&files, buf.len() as u64 + 1, &mut one).is_err());
    }

    #[test]
    fn a_torn_frame_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path(), 1 << 16);
        let f = l.install(0).unwrap();
        let mut buf = Vec::new();
        frame(&mark(1), &mut buf).unwrap();
        let first = buf.len() as u64;
        frame(&mark(2), &mut buf).unwrap();
        buf.truncate(buf.len() - 2);
        f.write_all_at(&buf, 0).unwrap();
        let files = Files::new(l);
        let mut s = Scanner::new(&files, 0);
        assert_eq!(
            s.next().unwrap(),
            Step::Record {
                offset: 0,
                next: first
            }
        );
        assert_eq!(s.next().unwrap(), Step::End(End::Torn));
        assert_eq!(s.offset(), first);
    }

    #[test]
    fn a_marker_without_its_next_segment_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path(), 4096);
        let f = l.install(0).unwrap();
        let mut buf = Vec::new();
        frame(&Record::SegmentEnd, &mut buf).unwrap();
        f.write_all_at(&buf, 0).unwrap();
        let files = Files::new(l);
        let mut s = Scanner::new(&files, 0);
        assert!(matches!(s.next().unwrap(), Step::Record { next: 4096, .. }));
        assert_eq!(s.next().unwrap(), Step::End(End::MissingSegment));
    }

    #[test]
    fn a_record_larger_than_a_chunk_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path(), 4 << 20);
        let f = l.install(0).unwrap();
        let big = Record::MarkRead(ConversationRecord {
            app: 1,
            owner: Cow::Owned("x".repeat(CHUNK + 100)),
            peer: Cow::Borrowed("p"),
            at_ms: 1,
        });
        let mut buf = vec![];
        frame(&mark(3), &mut buf).unwrap();
        let at = buf.len() as u64;
        frame(&big, &mut buf).unwrap();
        f.write_all_at(&buf, 0).unwrap();
        let files = Files::new(l);
        let mut s = Scanner::new(&files, 0);
        s.next().unwrap();
        assert!(matches!(s.next().unwrap(), Step::Record { offset, .. } if offset == at));
        assert_eq!(record::decode(s.frame()).unwrap(), big);
        assert_eq!(s.next().unwrap(), Step::End(End::Clean));
        let mut one = Vec::new();
        read_frame(&files, at, &mut one).unwrap();
        assert_eq!(record::decode(&one).unwrap(), big);
    }
}
