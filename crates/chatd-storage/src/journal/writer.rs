//! The journal's write path: group commit with one fdatasync per batch.
//!
//! A request is appended under one short lock, on the caller's thread: its
//! inbox positions and conversation links are assigned, its record is
//! encoded into the pending batch, and it waits. The commit thread takes the
//! whole pending batch at once, writes it with one system call per segment
//! touched, fdatasyncs, applies the batch's records to the in-memory state
//! (so that a reader sees a message as soon as its sender has its answer,
//! and never before it is on disk), then answers every request of the batch.
//! While it syncs, the next batch gathers.
//!
//! A write or sync error fails the batch's requests and every later write:
//! after a failed fsync the kernel may have dropped the unwritten pages, so
//! the only safe way on is to reopen the store, which finds what the log
//! really holds.

use super::record::{self, EntryRef, MessageRecord, Record, SEGMENT_END_FRAME};
use super::segments::Files;
use super::snapshot;
use super::state::{Applied, KeyBuf, State};
use crate::{Result, StorageError};
use chatd_core::{EntryKind, NewMessage, StoredRecipient};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::{oneshot, Notify};

/// Pending bytes past which new requests wait for the commit thread (the
/// bound on memory under overload, and on how much a crash can tear).
pub(crate) const MAX_PENDING_BYTES: usize = 8 << 20;
/// Message ids remembered to refuse a second copy of one (see [`RecentIds`]).
pub(crate) const RECENT_IDS: usize = 1 << 16;

type Reply = oneshot::Sender<Result<Applied>>;

/// One record waiting in the pending batch. The commit thread applies it
/// from its bytes in the batch (the same decoding as recovery), so no
/// request's memory crosses to that thread.
struct Op {
    /// Its frame's place in the batch buffer.
    frame: std::ops::Range<usize>,
    offset: u64,
    next: u64,
    reply: Option<Reply>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// What the callers share with the commit thread.
pub(crate) struct Shared {
    pub files: Files,
    pub state: RwLock<State>,
    pending: Mutex<Pending>,
    /// The commit thread waits here for work.
    work: Condvar,
    /// Callers wait here for room in the pending batch.
    room: Notify,
    /// Callers that found no room take turns here, first come first served
    /// (the mutex is fair), so that no send waits while later ones pass it:
    /// a message id is taken before its send waits, and one that too many
    /// newer ids overtake could no longer be told from a copy.
    turns: tokio::sync::Mutex<()>,
    /// The journal's lock file, held (by the store and its commit thread)
    /// while the log may be written: one process writes a log at a time.
    _lock: File,
    /// Makes the next batch's write fail without writing, or panic (tests
    /// of what a failed write leaves).
    #[cfg(test)]
    pub fault: std::sync::atomic::AtomicU8,
}

struct Pending {
    buf: Vec<u8>,
    /// Runs of `buf` that are contiguous in the log: (log offset, start in
    /// `buf`). A run ends where a segment does.
    runs: Vec<(u64, usize)>,
    ops: Vec<Op>,
    /// Where the next record goes.
    next: u64,
    /// The last inbox position handed out per inbox ([`KeyBuf::user`]),
    /// ahead of the state by what is pending, with the batch that wrote it.
    assigned: FastMap<Box<[u8]>, (u64, u64)>,
    /// The newest entry per conversation ([`KeyBuf::pair`]), likewise.
    heads: FastMap<Box<[u8]>, (EntryRef, u64)>,
    /// The number of the batch gathering. Every batch before the one the
    /// commit thread holds is applied to the state.
    batch: u64,
    /// The commit thread waits for work (and needs waking).
    sleeping: bool,
    /// Buffers the commit thread is done with, for the next batch (kept
    /// rather than freed on the commit thread and allocated again here).
    spare: Spare,
    ids: RecentIds,
    /// Callers waiting for room or for their turn to: while any are, a new
    /// caller joins the queue even if there is room now.
    queued: usize,
    closing: bool,
    failed: Option<String>,
}

impl Shared {
    pub fn new(files: Files, state: State, next: u64, lock: File) -> Self {
        let floor = state.max_msg_id;
        Self {
            files,
            state: RwLock::new(state),
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(1 << 16),
                runs: vec![(next, 0)],
                ops: Vec::new(),
                next,
                assigned: FastMap::default(),
                heads: FastMap::default(),
                batch: 0,
                sleeping: false,
                spare: Spare::default(),
                ids: RecentIds::new(floor),
                queued: 0,
                closing: false,
                failed: None,
            }),
            work: Condvar::new(),
            room: Notify::new(),
            turns: tokio::sync::Mutex::new(()),
            _lock: lock,
            #[cfg(test)]
            fault: std::sync::atomic::AtomicU8::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for room in the pending batch and locks it. Callers are let in
    /// in the order they came once any had to wait.
    async fn lock_with_room(&self) -> Result<std::sync::MutexGuard<'_, Pending>> {
        {
            let mut p = self.lock();
            p.usable()?;
            if p.queued == 0 && p.has_room() {
                return Ok(p);
            }
            p.queued += 1;
        }
        // Leaves the queue however this ends, a dropped request included.
        let queued = Queued(self);
        let _turn = self.turns.lock().await;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut p = self.lock();
                p.usable()?;
                if p.has_room() {
                    std::mem::forget(queued);
                    p.queued -= 1;
                    return Ok(p);
                }
            }
            notified.await;
        }
    }

    /// Appends a message; answers once it is on disk and visible.
    pub async fn append_message(&self, msg: NewMessage) -> Result<Vec<StoredRecipient>> {
        if msg.recipients.is_empty() {
            return Ok(Vec::new());
        }
        if msg.recipients.len() > EntryRef::MAX_RECIPIENTS {
            return Err(StorageError::Invalid(format!(
                "{} recipients in one message",
                msg.recipients.len()
            )));
        }
        // A sync copy shares its message's id.
        let mut ids: Vec<u64> = msg.recipients.iter().map(|r| r.msg_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let (rx, stored) = {
            let mut guard = self.lock_with_room().await?;
            let p = &mut *guard;
            p.ids.check(&ids)?;
            let links = p.links(self, &msg)?;
            let stored: Vec<StoredRecipient> = msg
                .recipients
                .iter()
                .zip(&links)
                .map(|(r, (seq, _))| StoredRecipient {
                    msg_id: r.msg_id,
                    seq: *seq,
                })
                .collect();
            let (offset, rx) = p.push(self, &Record::Message(MessageRecord::of(&msg, &links)))?;
            let batch = p.batch;
            for (idx, (r, s)) in msg.recipients.iter().zip(&stored).enumerate() {
                upsert(
                    &mut p.assigned,
                    KeyBuf::user(msg.app, &r.owner),
                    (s.seq, batch),
                );
                if r.kind != EntryKind::SyncCopy {
                    let head = EntryRef::new(offset, idx, r.kind);
                    upsert(
                        &mut p.heads,
                        KeyBuf::pair(msg.app, &msg.from, &r.owner),
                        (head, batch),
                    );
                }
            }
            p.ids.insert(&ids);
            (rx, stored)
        };
        rx.await.map_err(|_| StorageError::Closed)??;
        Ok(stored)
    }

    /// Appends a record that assigns nothing (a cursor, a conversation
    /// change); answers with what applying it said, once it is on disk.
    pub async fn append(&self, record: &Record<'_>) -> Result<Applied> {
        let rx = {
            let mut p = self.lock_with_room().await?;
            p.push(self, record)?.1
        };
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Asks the commit thread to finish what is pending and stop.
    pub fn close(&self) {
        self.lock().closing = true;
        self.work.notify_one();
    }

    /// The commit thread's side: waits for a batch and takes it, or `None`
    /// once closing with nothing left.
    fn take_batch(&self) -> Option<Batch> {
        let mut guard = self.lock();
        while guard.ops.is_empty() && !guard.closing {
            guard.sleeping = true;
            guard = self.work.wait(guard).unwrap_or_else(|e| e.into_inner());
            guard.sleeping = false;
        }
        if guard.ops.is_empty() {
            return None;
        }
        let (batch, waiters) = {
            let p = &mut *guard;
            let waiters = !p.has_room() || p.queued > 0;
            let Spare { buf, mut runs, ops } = std::mem::take(&mut p.spare);
            runs.push((p.next, 0));
            let batch = Batch {
                buf: std::mem::replace(&mut p.buf, buf),
                runs: std::mem::replace(&mut p.runs, runs),
                ops: std::mem::replace(&mut p.ops, ops),
                failed: p.failed.clone(),
            };
            // Every earlier batch is applied: what they assigned is in the
            // state, and need not be kept here as well.
            let taken = p.batch;
            p.batch += 1;
            if p.assigned.len() > SWEEP_AT {
                p.assigned.retain(|_, (_, b)| *b >= taken);
            }
            if p.heads.len() > SWEEP_AT {
                p.heads.retain(|_, (_, b)| *b >= taken);
            }
            (batch, waiters)
        };
        drop(guard);
        if waiters {
            self.room.notify_waiters();
        }
        Some(batch)
    }

    /// Bytes pending, and callers queued for room.
    #[cfg(test)]
    pub fn pending(&self) -> (usize, usize) {
        let p = self.lock();
        (p.buf.len(), p.queued)
    }

    /// Gives a written batch's buffers back for reuse.
    fn recycle(&self, mut batch: Batch) {
        batch.buf.clear();
        batch.runs.clear();
        batch.ops.clear();
        self.lock().spare = Spare {
            buf: batch.buf,
            runs: batch.runs,
            ops: batch.ops,
        };
    }
}

/// A caller's place in the queue for room, given up when dropped.
struct Queued<'a>(&'a Shared);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.lock().queued -= 1;
    }
}

/// A batch taken by the commit thread.
struct Batch {
    buf: Vec<u8>,
    runs: Vec<(u64, usize)>,
    ops: Vec<Op>,
    /// Why writing failed, if an earlier batch's write did.
    failed: Option<String>,
}

/// A written batch's emptied buffers.
#[derive(Default)]
struct Spare {
    buf: Vec<u8>,
    runs: Vec<(u64, usize)>,
    ops: Vec<Op>,
}

/// Sizes of the pending side's maps past which the entries of applied
/// batches are dropped from them (small in tests, to exercise it).
const SWEEP_AT: usize = if cfg!(test) { 64 } else { 1 << 16 };

impl Pending {
    /// Whether writes can still be taken.
    fn usable(&self) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(StorageError::Failed(why.clone()));
        }
        if self.closing {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn has_room(&self) -> bool {
        self.buf.len() < MAX_PENDING_BYTES
    }

    /// Each recipient's inbox position and link to the previous entry of
    /// its conversation. They do not depend on where the record lands, and
    /// decide its bytes.
    fn links(&self, shared: &Shared, msg: &NewMessage) -> Result<Vec<(u64, EntryRef)>> {
        let mut links = Vec::with_capacity(msg.recipients.len());
        let mut taken: FastMap<&str, u64> = FastMap::default();
        let mut pairs: FastSet<&str> = FastSet::default();
        for r in &msg.recipients {
            let seq = match taken.get(r.owner.as_str()) {
                Some(s) => s + 1,
                None => {
                    let key = KeyBuf::user(msg.app, &r.owner);
                    match self.assigned.get(key.as_slice()) {
                        Some((s, _)) => s + 1,
                        None => shared.read_state().last_seq(msg.app, &r.owner) + 1,
                    }
                }
            };
            taken.insert(&r.owner, seq);
            let prev = if r.kind == EntryKind::SyncCopy {
                EntryRef::NONE
            } else {
                // A link to an entry of this same record could not be
                // written before the record's place is known.
                if !pairs.insert(&r.owner) {
                    return Err(StorageError::Invalid(format!(
                        "{} is a recipient twice",
                        r.owner
                    )));
                }
                let key = KeyBuf::pair(msg.app, &msg.from, &r.owner);
                match self.heads.get(key.as_slice()) {
                    Some((h, _)) => *h,
                    None => shared
                        .read_state()
                        .pair_head(msg.app, &msg.from, &r.owner)
                        .unwrap_or(EntryRef::NONE),
                }
            };
            links.push((seq, prev));
        }
        Ok(links)
    }

    /// Frames `record` into the batch, starting the next segment first if it
    /// does not fit in this one; returns its offset and the answer's
    /// receiver.
    fn push(
        &mut self,
        shared: &Shared,
        record: &Record<'_>,
    ) -> Result<(u64, oneshot::Receiver<Result<Applied>>)> {
        let layout = &shared.files.layout;
        // The commit thread sleeps only while nothing is pending.
        let wake = self.ops.is_empty();
        let mut start = self.buf.len();
        let len = record::frame(record, &mut self.buf)? as u64;
        let segment = layout.segment(self.next);
        let end_of_segment = layout.start(segment + 1);
        if self.next + len + SEGMENT_END_FRAME as u64 > end_of_segment {
            if len + SEGMENT_END_FRAME as u64 > layout.segment_bytes {
                self.buf.truncate(start);
                return Err(StorageError::Invalid(format!(
                    "a {len}-byte record does not fit in a segment"
                )));
            }
            let framed = self.buf.split_off(start);
            let marker = self.buf.len()..self.buf.len() + SEGMENT_END_FRAME;
            record::frame(&Record::SegmentEnd, &mut self.buf)?;
            self.ops.push(Op {
                frame: marker,
                offset: self.next,
                next: end_of_segment,
                reply: None,
            });
            self.runs.push((end_of_segment, self.buf.len()));
            self.next = end_of_segment;
            start = self.buf.len();
            self.buf.extend_from_slice(&framed);
        }
        let offset = self.next;
        self.next += len;
        let (tx, rx) = oneshot::channel();
        self.ops.push(Op {
            frame: start..start + len as usize,
            offset,
            next: self.next,
            reply: Some(tx),
        });
        if wake && self.sleeping {
            shared.work.notify_one();
        }
        Ok((offset, rx))
    }
}

/// The message ids of the last [`RECENT_IDS`] stored, to refuse a second
/// message with one of them. Ids are generated increasing and stored within
/// moments, so an id below every remembered one (`floor`) is refused too:
/// it could be a copy of a forgotten one. This also bounds how far out of
/// order ids can be in the log, which the id index relies on.
struct RecentIds {
    floor: u64,
    seen: FastSet<u64>,
    order: VecDeque<u64>,
}

impl RecentIds {
    fn new(floor: u64) -> Self {
        Self {
            floor,
            seen: FastSet::default(),
            order: VecDeque::new(),
        }
    }

    /// `ids` distinct.
    fn check(&self, ids: &[u64]) -> Result<()> {
        for id in ids {
            if *id <= self.floor || self.seen.contains(id) {
                return Err(StorageError::Duplicate(format!("message id {id}")));
            }
        }
        Ok(())
    }

    fn insert(&mut self, ids: &[u64]) {
        for &id in ids {
            self.seen.insert(id);
            self.order.push_back(id);
        }
        while self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
                self.floor = self.floor.max(old);
            }
        }
    }
}

/// When the state is written to a snapshot.
pub(crate) struct SnapshotPolicy {
    /// Log bytes between two snapshots.
    pub every_bytes: u64,
    /// Where the last snapshot was taken.
    pub last_at: u64,
}

impl SnapshotPolicy {
    /// After a snapshot failed (a full disk, say): the next try comes after
    /// an eighth of the interval rather than a whole one, since every byte
    /// until then is replayed at the next start; not at once, which could
    /// keep a thread rewriting a large snapshot against a disk that refuses it.
    fn retry_soon(&mut self) {
        self.last_at = self
            .last_at
            .saturating_sub(self.every_bytes - self.every_bytes / 8);
    }
}

/// The commit thread.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    /// The segment being written and its file.
    current: (u64, File),
    /// Makes the next segment ready ahead of need.
    preparer: std::sync::mpsc::Sender<u64>,
    snapshots: SnapshotPolicy,
    /// Writes a snapshot; says whether it did.
    snapshot_thread: Option<std::thread::JoinHandle<bool>>,
}

impl Committer {
    pub fn new(
        shared: Arc<Shared>,
        current: (u64, File),
        snapshots: SnapshotPolicy,
    ) -> Result<Self> {
        let layout = shared.files.layout.clone();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        std::thread::Builder::new()
            .name("chatd-journal-prepare".into())
            .spawn(move || {
                while let Ok(segment) = rx.recv() {
                    if let Err(e) = layout.prepare(segment) {
                        tracing::warn!(error = %e, segment, "preparing a journal segment failed");
                    }
                }
            })?;
        let _ = tx.send(current.0 + 1);
        Ok(Self {
            shared,
            current,
            preparer: tx,
            snapshots,
            snapshot_thread: None,
        })
    }

    pub fn run(mut self) {
        while let Some(mut batch) = self.shared.take_batch() {
            let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some(why) = &batch.failed {
                    // Callers may have joined this batch before an earlier
                    // one failed. Nothing more is written then: after a
                    // failed fdatasync the kernel may have dropped that
                    // batch's pages and reports the error only once, so a
                    // later sync succeeding would acknowledge records that
                    // a crash puts behind a hole in the log.
                    fail_all(&mut batch.ops, why);
                } else {
                    self.commit(&batch.buf, &batch.runs, &mut batch.ops);
                }
            }));
            if committed.is_err() {
                // The batch's unanswered callers see their channel close
                // when it is dropped; later ones must not wait forever on a
                // thread that may have left the log half written.
                let why = "journal commit thread panicked".to_string();
                tracing::error!("{why}; every write fails until chatd restarts");
                self.shared.lock().failed = Some(why);
                continue;
            }
            self.shared.recycle(batch);
        }
        self.finish();
    }

    fn commit(&mut self, buf: &[u8], runs: &[(u64, usize)], ops: &mut Vec<Op>) {
        let started = Instant::now();
        let size = ops.iter().filter(|o| o.reply.is_some()).count();
        if let Err(e) = self.write(buf, runs) {
            let why = format!("journal write failed: {e}");
            tracing::error!("{why}; every write fails until chatd restarts");
            self.shared.lock().failed = Some(why.clone());
            fail_all(ops, &why);
            return;
        }
        let mut answers = Vec::with_capacity(ops.len());
        let mut broken = None;
        // Decoded before the state is locked: readers, and senders looking
        // up their links, wait for the apply alone.
        let records: Vec<Result<Record<'_>>> = ops
            .iter()
            .map(|op| record::decode(&buf[op.frame.clone()]))
            .collect();
        {
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            for (op, rec) in ops.drain(..).zip(records) {
                let applied = rec.and_then(|rec| state.apply(&rec, op.offset, op.next));
                if let Err(e) = &applied {
                    // A record written but not applied would be applied
                    // again at the next start; writing more on top of a
                    // state that disagrees with the log only compounds it.
                    broken.get_or_insert_with(|| format!("journal record not applied: {e}"));
                }
                if let Some(r) = op.reply {
                    answers.push((r, applied));
                }
            }
        }
        let consistent = broken.is_none();
        if let Some(why) = broken {
            tracing::error!("{why}; every write fails until chatd restarts");
            self.shared.lock().failed = Some(why);
        }
        crate::queue::record_batch(size, started);
        for (r, applied) in answers {
            let _ = r.send(applied);
        }
        // A state that disagrees with the log must not become a snapshot.
        if consistent {
            self.maybe_snapshot();
        }
    }

    /// Writes the batch's runs and syncs every segment written.
    fn write(&mut self, buf: &[u8], runs: &[(u64, usize)]) -> std::io::Result<()> {
        #[cfg(test)]
        match self
            .shared
            .fault
            .swap(0, std::sync::atomic::Ordering::SeqCst)
        {
            0 => {}
            FAULT_STALL => {
                // A slow disk: nothing is written until the test says so.
                let fault = &self.shared.fault;
                fault.store(STALLED, std::sync::atomic::Ordering::SeqCst);
                while fault.load(std::sync::atomic::Ordering::SeqCst) == STALLED {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            FAULT_FAIL => {
                // As long as a slow device's failure takes: callers join
                // the next batch meanwhile.
                std::thread::sleep(std::time::Duration::from_millis(50));
                return Err(std::io::Error::other("injected write failure"));
            }
            _ => panic!("injected panic in the commit thread"),
        }
        let layout = self.shared.files.layout.clone();
        let mut written: Vec<File> = Vec::new();
        for (i, &(offset, start)) in runs.iter().enumerate() {
            let end = runs.get(i + 1).map_or(buf.len(), |r| r.1);
            if start == end {
                continue;
            }
            let segment = layout.segment(offset);
            if self.current.0 != segment {
                // Runs only ever move on to the next segment.
                let file = layout.install(segment)?;
                let _ = self.preparer.send(segment + 1);
                written.push(std::mem::replace(&mut self.current, (segment, file)).1);
            }
            let pos = offset - layout.start(segment);
            self.current.1.write_all_at(&buf[start..end], pos)?;
        }
        for f in &written {
            f.sync_data()?;
        }
        self.current.1.sync_data()
    }

    fn maybe_snapshot(&mut self) {
        if let Some(h) = &self.snapshot_thread {
            if !h.is_finished() {
                return;
            }
        }
        if let Some(h) = self.snapshot_thread.take() {
            if !matches!(h.join(), Ok(true)) {
                self.snapshots.retry_soon();
            }
        }
        let applied = self.shared.read_state().applied_to;
        if applied - self.snapshots.last_at < self.snapshots.every_bytes {
            return;
        }
        // O(1): the maps are persistent.
        let state = self.shared.read_state().clone();
        self.snapshots.last_at = state.applied_to;
        let dir = self.shared.files.layout.dir.clone();
        self.snapshot_thread = std::thread::Builder::new()
            .name("chatd-journal-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                match snapshot::save(&dir, &state) {
                    Ok(()) => {
                        metrics::histogram!("chatd_storage_snapshot_seconds")
                            .record(started.elapsed().as_secs_f64());
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "journal snapshot failed");
                        false
                    }
                }
            })
            .ok();
        if self.snapshot_thread.is_none() {
            self.snapshots.retry_soon();
        }
    }

    /// After the last batch: a snapshot of everything, so that the next
    /// open replays nothing.
    fn finish(&mut self) {
        // Whether the newest snapshot on disk is of the state at `last_at`.
        let mut saved = true;
        if let Some(h) = self.snapshot_thread.take() {
            saved = matches!(h.join(), Ok(true));
        }
        if self.shared.lock().failed.is_some() {
            return;
        }
        let state = self.shared.read_state().clone();
        if !saved || state.applied_to != self.snapshots.last_at {
            if let Err(e) = snapshot::save(&self.shared.files.layout.dir, &state) {
                tracing::warn!(error = %e, "journal snapshot at close failed");
            }
        }
    }
}

/// [`Shared::fault`]: the next write fails; [`FAULT_PANIC`]: it panics.
#[cfg(test)]
pub(crate) const FAULT_FAIL: u8 = 1;
#[cfg(test)]
pub(crate) const FAULT_PANIC: u8 = 2;
/// [`Shared::fault`]: the next write waits, showing [`STALLED`] there
/// until the value is changed.
#[cfg(test)]
pub(crate) const FAULT_STALL: u8 = 3;
#[cfg(test)]
pub(crate) const STALLED: u8 = 4;

/// Sets `key`'s value, allocating the key only when it is new (an inbox or
/// conversation active in recent batches is usually there already).
fn upsert<V>(map: &mut FastMap<Box<[u8]>, V>, key: KeyBuf, value: V) {
    match map.get_mut(key.as_slice()) {
        Some(v) => *v = value,
        None => {
            map.insert(key.to_key(), value);
        }
    }
}

/// Answers every caller of a batch that will not be written.
fn fail_all(ops: &mut Vec<Op>, why: &str) {
    for op in ops.drain(..) {
        if let Some(r) = op.reply {
            let _ = r.send(Err(StorageError::Failed(why.to_string())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_refuse_copies_and_stale_ids() {
        let mut r = RecentIds::new(10);
        assert!(r.check(&[10]).is_err(), "at the floor");
        assert!(r.check(&[11, 12]).is_ok());
        r.insert(&[11, 12]);
        assert!(r.check(&[12]).is_err());
        assert!(r.check(&[13]).is_ok());
        for id in 100..100 + RECENT_IDS as u64 {
            r.insert(&[id]);
        }
        assert!(r.check(&[12]).is_err(), "forgotten, so refused");
        assert!(r.check(&[11]).is_err(), "below a forgotten id");
        assert!(r.check(&[13]).is_ok(), "above every forgotten id");
        assert_eq!(r.seen.len(), RECENT_IDS);
    }
}
