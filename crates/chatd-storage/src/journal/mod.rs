//! The journal (`storage_engine = "journal"`, the default): the store is an
//! append-only log of records, and an index of positions in memory.
//!
//! Why not a B-tree or an LSM: per one-recipient message, SQLite writes whole
//! 4 KiB pages for the index entries that land at random places (≈ 28 µs of
//! CPU on its writer), and the LSM sorts four keys into memory tables (≈ 13
//! µs); a send's whole budget at half the benchmark's ceiling is about 20 µs
//! of CPU, HTTP included (docs/benchmarks.md). Here a send costs the
//! encoding of one record (a few hundred bytes), its share of one write and
//! one fdatasync per batch, and a few map updates.
//!
//! * **Log** (`segments`, `record`): fixed-size segment files in
//!   `data_dir/journal/`, zero-filled ahead of use, each record framed with
//!   its length and CRC-32C. A message is written once, with every
//!   recipient's inbox position and a link to the previous entry of its
//!   one-to-one conversation.
//! * **State** (`state`): per inbox the positions not yet acknowledged by
//!   every device and the devices' positions; conversation lists; the
//!   newest entry of each conversation; history clears; a sparse message-id
//!   index. Message content is read back from the log.
//! * **Group commit** (`writer`): requests append under one short lock and
//!   wait; one thread writes each batch, fdatasyncs it, applies it to the
//!   state, and answers.
//! * **Snapshots** (`snapshot`): the state is written out every 256 MiB of
//!   log and at close (cloning it is O(1)); opening the store loads the
//!   snapshot and replays the log after it, stopping at the first record
//!   that is not whole (a write cut short by a crash: never acknowledged).
//!
//! History follows the conversation's links from its newest entry, so its
//! cost grows with how far back a page is, and a conversation is listed in
//! the order its messages were stored. Apps and users live in the SQLite
//! registry beside the journal (`apps.db`).

mod record;
mod segments;
mod snapshot;
mod state;
mod writer;

use crate::model::{Conversation, UserInsert};
use crate::{AppStore, Result, SqliteApps, StorageError, Store};
use async_trait::async_trait;
use chatd_core::{
    AppRecord, EntryKind, InboxEntry, NewMessage, NewUser, StoredRecipient, UserRecord,
};
use record::{ConversationRecord, CursorRecord, EntryRef, Record};
use segments::{End, Files, Layout, Scanner, Step};
use state::{Applied, State};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use writer::{Committer, Shared, SnapshotPolicy};

/// How to open the journal.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Directory of the log (created if missing).
    pub dir: PathBuf,
    /// Size of a new log's segment files. A log keeps the size it was
    /// created with.
    pub segment_bytes: u64,
    /// Log bytes between two snapshots of the state.
    pub snapshot_every_bytes: u64,
    /// After this long without an acknowledgement a device no longer keeps
    /// entries its user's other devices acknowledged; 0: never.
    pub stale_device_ms: i64,
}

impl JournalOptions {
    pub fn in_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: data_dir.into().join("journal"),
            segment_bytes: 64 << 20,
            snapshot_every_bytes: 256 << 20,
            stale_device_ms: 30 * 24 * 3600 * 1000,
        }
    }

    /// The app registry's SQLite file, beside the journal's directory.
    pub fn apps_path(&self) -> PathBuf {
        self.dir.with_file_name(crate::apps::APPS_FILE)
    }
}

/// Inbox reads of at most this many entries run on the calling thread (a
/// few reads from the page cache); larger ones on a blocking thread.
const SMALL_READ_ENTRIES: usize = 8;

/// Blocks of the id index looked at past the first that may hold an id:
/// ids out of order by more than [`writer::RECENT_IDS`] are refused. A
/// block closes after 128 entries and an id has at most two (its
/// recipient's, and the sender's sync copy), so a block holds at least 64
/// distinct ids.
const ID_WINDOW_BLOCKS: usize = writer::RECENT_IDS / 64 + 2;

const FORMAT_FILE: &str = "format";
const LOCK_FILE: &str = "lock";
const FORMAT: &str = "chatd journal 1";

pub struct JournalStore {
    shared: Arc<Shared>,
    apps: SqliteApps,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl JournalStore {
    /// Opens (creating if needed) the journal, replaying what the last
    /// snapshot does not hold.
    pub fn open(opts: JournalOptions) -> Result<Self> {
        create_dir_durably(&opts.dir)?;
        let lock = lock_dir(&opts.dir)?;
        let layout = Layout {
            segment_bytes: format(&opts)?,
            dir: opts.dir.clone(),
        };
        let apps = SqliteApps::open(&opts.apps_path())?;
        apps.execute_schema(crate::users::USERS_SCHEMA)?;
        let files = Files::new(layout.clone());
        let snapshot = snapshot::load(&layout.dir)?;
        let snapshot_at = snapshot.as_ref().map_or(0, |s| s.applied_to);
        let mut state = snapshot.unwrap_or_default();
        state.stale_device_ms = opts.stale_device_ms;
        let (state, end) = recover(&files, state, UNSYNCED_SPAN)?;
        let segment = layout.segment(end);
        layout.remove_leftovers(segment)?;
        let current = if layout.path(segment).exists() {
            layout.open_for_writing(segment)?
        } else {
            layout.install(segment)?
        };
        let shared = Arc::new(Shared::new(files, state, end, lock));
        let committer = Committer::new(
            shared.clone(),
            (segment, current),
            SnapshotPolicy {
                every_bytes: opts.snapshot_every_bytes,
                last_at: snapshot_at,
            },
        )?;
        let handle = std::thread::Builder::new()
            .name("chatd-journal".into())
            .spawn(move || committer.run())?;
        Ok(Self {
            shared,
            apps,
            committer: Mutex::new(Some(handle)),
        })
    }

    /// Runs `f` on a blocking thread with the shared state and files.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| StorageError::Corrupt(format!("journal reader failed: {e}")))?
    }
}

impl Drop for JournalStore {
    fn drop(&mut self) {
        // The commit thread finishes what is pending and stops on its own.
        self.shared.close();
    }
}

/// Takes the journal's lock file, or fails if another process holds it.
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::create(dir.join(LOCK_FILE))?;
    // SAFETY: flock on a descriptor this function owns; the lock goes with
    // the file when it is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(StorageError::Invalid(format!(
            "{} is in use by another chatd process",
            dir.display()
        )));
    }
    Ok(file)
}

/// The segment size of the journal in `opts.dir`, recording it for a new one.
fn format(opts: &JournalOptions) -> Result<u64> {
    let path = opts.dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut lines = text.lines();
            let size = match (lines.next(), lines.next()) {
                (Some(FORMAT), Some(size)) => size
                    .strip_prefix("segment_bytes ")
                    .and_then(|n| n.parse().ok()),
                _ => None,
            };
            size.filter(|s| *s >= 4096).ok_or_else(|| {
                StorageError::Corrupt(format!("{} is not a chatd journal", opts.dir.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let any = Layout {
                dir: opts.dir.clone(),
                segment_bytes: opts.segment_bytes,
            };
            if !any.segments()?.is_empty() {
                return Err(StorageError::Corrupt(format!(
                    "{} has segments but no {FORMAT_FILE} file",
                    opts.dir.display()
                )));
            }
            let temp = opts.dir.join(format!("{FORMAT_FILE}.new"));
            std::fs::write(
                &temp,
                format!("{FORMAT}\nsegment_bytes {}\n", opts.segment_bytes),
            )?;
            std::fs::File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, &path)?;
            segments::sync_dir(&opts.dir)?;
            Ok(opts.segment_bytes)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates `dir` and any missing parent, and syncs the parent of each one
/// created: the first acknowledged records must not depend on a directory
/// entry that a crash could still take away.
fn create_dir_durably(dir: &std::path::Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty());
        segments::sync_dir(parent.unwrap_or(std::path::Path::new(".")))?;
    }
    Ok(())
}

/// How far past the last whole record a crash can leave written bytes: one
/// batch (the pending bytes, plus the record that went past them) is
/// written at a time, after the one before it was synced; in log offsets
/// twice that, since a record that does not fit in a segment leaves the
/// rest of it unused.
const UNSYNCED_SPAN: u64 = 2
    * (writer::MAX_PENDING_BYTES
        + record::MAX_PAYLOAD
        + record::FRAME_HEADER
        + record::SEGMENT_END_FRAME) as u64;

/// Replays the log after what `state` holds; returns the state and where
/// the next record goes. What follows the last whole record can only be a
/// write that was never acknowledged: it is zeroed, and later segments are
/// removed, so that no later crash can bring it back. A segment further on
/// than such a write could reach (`unsynced_span`) means the log is damaged
/// where the replay stopped, with acknowledged records after it: the
/// journal is not opened rather than have them discarded.
fn recover(files: &Files, mut state: State, unsynced_span: u64) -> Result<(State, u64)> {
    let layout = &files.layout;
    let segments = layout.segments()?;
    if segments.is_empty() && state.applied_to > 0 {
        return Err(StorageError::Corrupt(
            "journal: a snapshot but no log".into(),
        ));
    }
    // Segments are made one after the other and never removed below the
    // end of the log: one missing under what the snapshot holds was lost,
    // and the messages written there with it, which the state still lists.
    if let Some(held) = state.applied_to.checked_sub(1).map(|o| layout.segment(o)) {
        if let Some(missing) = (0..=held).find(|s| segments.binary_search(s).is_err()) {
            return Err(StorageError::Corrupt(format!(
                "journal: the snapshot holds the log up to offset {}, but {} is missing: the \
                 messages written there cannot be read. Nothing was changed. Restore {} from \
                 a backup",
                state.applied_to,
                layout.path(missing).display(),
                layout.dir.display(),
            )));
        }
    }
    let started = std::time::Instant::now();
    let mut scan = Scanner::new(files, state.applied_to);
    let mut records = 0u64;
    let end = loop {
        match scan.next()? {
            Step::Record { offset, next } => {
                let rec = record::decode(scan.frame())?;
                state.apply(&rec, offset, next)?;
                records += 1;
            }
            Step::End(end) => break end,
        }
    };
    let at = scan.offset();
    let last = layout.segment(at);
    if let Some(beyond) = segments
        .iter()
        .find(|s| layout.start(**s) >= at.saturating_add(unsynced_span))
    {
        return Err(StorageError::Corrupt(format!(
            "journal: the log cannot be read past offset {at} (segment {}), yet segment {} \
             and maybe others after it hold later records, which a crash cannot explain: \
             the disk lost data there. Nothing was changed. Restore {} from a backup, or \
             move the segments after {} aside to start with the log up to that point",
            layout.path(last).display(),
            layout.path(*beyond).display(),
            layout.dir.display(),
            layout.path(last).display(),
        )));
    }
    for s in segments.iter().filter(|s| **s > last) {
        layout.remove(*s)?;
    }
    let discarded = if layout.path(last).exists() {
        zero_after(layout, at)?
    } else {
        0
    };
    if end == End::Torn || discarded > 0 {
        tracing::warn!(
            offset = at,
            discarded,
            "journal: the last write was cut short (never acknowledged); its bytes are cleared"
        );
    }
    if records > 0 {
        tracing::info!(
            records,
            seconds = started.elapsed().as_secs_f64(),
            "journal: replayed the log after the snapshot"
        );
    }
    Ok((state, at))
}

/// Zeroes what a torn batch may have left past `at` in its segment (a batch
/// is at most this long); returns how many non-zero bytes there were.
fn zero_after(layout: &Layout, at: u64) -> Result<usize> {
    use std::os::unix::fs::FileExt;
    let segment = layout.segment(at);
    let pos = at - layout.start(segment);
    let span = (writer::MAX_PENDING_BYTES + record::MAX_PAYLOAD + 4 * record::FRAME_HEADER) as u64;
    let len = span.min(layout.segment_bytes - pos) as usize;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(layout.path(segment))?;
    let mut buf = vec![0u8; len];
    let mut read = 0;
    while read < len {
        match file.read_at(&mut buf[read..], pos + read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    let dirty = buf[..read].iter().filter(|b| **b != 0).count();
    if dirty > 0 {
        buf.fill(0);
        file.write_all_at(&buf, pos)?;
        file.sync_data()?;
    }
    Ok(dirty)
}

/// Reads message records back, keeping what the last read brought in:
/// consecutive entries often share a record, and an inbox's entries are
/// often close together in the log (a backlog drained in order).
struct RecordReader<'a> {
    files: &'a Files,
    /// Log bytes from `start`.
    buf: Vec<u8>,
    start: u64,
    /// How much one read brings in.
    window: usize,
}

impl<'a> RecordReader<'a> {
    fn new(files: &'a Files) -> Self {
        Self::with_window(files, segments::FIRST_READ)
    }

    fn with_window(files: &'a Files, window: usize) -> Self {
        Self {
            files,
            buf: Vec::new(),
            start: 0,
            window,
        }
    }

    /// The whole frame at `offset`, from the buffer if it holds it.
    fn frame(&mut self, offset: u64) -> Result<&[u8]> {
        let within = offset
            .checked_sub(self.start)
            .map(|d| d as usize)
            .filter(|d| *d < self.buf.len());
        let held = within.and_then(|d| match record::check_frame(&self.buf[d..]) {
            record::Frame::Record(len) => Some(d..d + len),
            _ => None,
        });
        let range = match held {
            Some(r) => r,
            None => {
                self.files.read_window(offset, self.window, &mut self.buf)?;
                self.start = offset;
                match record::check_frame(&self.buf) {
                    record::Frame::Record(len) => 0..len,
                    _ => {
                        return Err(StorageError::Corrupt(format!(
                            "journal: no record at offset {offset}"
                        )))
                    }
                }
            }
        };
        Ok(&self.buf[range])
    }

    fn message(&mut self, offset: u64) -> Result<record::MessageRecord<'_>> {
        match record::decode(self.frame(offset)?)? {
            Record::Message(m) => Ok(m),
            _ => Err(StorageError::Corrupt(format!(
                "journal: no message at offset {offset}"
            ))),
        }
    }

    fn entry(&mut self, at: EntryRef) -> Result<InboxEntry> {
        self.message(at.offset())?.entry(at.idx())
    }
}

/// Largest read of a run of entries (a drain reads its inbox in pages).
const RUN_WINDOW: usize = 1 << 20;
/// Entries this close on average are read together.
const DENSE_GAP: u64 = 4096;

/// How much one read should bring in for `refs`: entries close together in
/// the log (a backlog written in a burst) come in with one read; entries
/// far apart (an inbox that receives now and then, among everyone else's
/// messages) each with a read of their own.
fn run_window(refs: &[(u64, EntryRef)]) -> usize {
    let (Some(first), Some(last)) = (refs.first(), refs.last()) else {
        return segments::FIRST_READ;
    };
    let span = last.1.offset().saturating_sub(first.1.offset());
    let gaps = refs.len() as u64 - 1;
    if gaps == 0 || span / gaps > DENSE_GAP {
        return segments::FIRST_READ;
    }
    (span as usize + segments::FIRST_READ).min(RUN_WINDOW)
}

fn inbox_entries(shared: &Shared, refs: &[(u64, EntryRef)]) -> Result<Vec<InboxEntry>> {
    let mut reader = RecordReader::with_window(&shared.files, run_window(refs));
    refs.iter()
        .map(|(seq, at)| {
            let e = reader.entry(*at)?;
            if e.seq != *seq {
                return Err(StorageError::Corrupt(format!(
                    "journal: entry {} found where {seq} was indexed",
                    e.seq
                )));
            }
            Ok(e)
        })
        .collect()
}

fn find_entry(shared: &Shared, app: i64, msg_id: u64) -> Result<Option<InboxEntry>> {
    find_message(shared, app, msg_id, |m, idx| m.entry(idx))
}

/// Looks `msg_id` up through the id index and hands its message record
/// and the index of its (not sync copy) entry to `found`.
fn find_message<T>(
    shared: &Shared,
    app: i64,
    msg_id: u64,
    found: impl FnOnce(&record::MessageRecord<'_>, usize) -> Result<T>,
) -> Result<Option<T>> {
    let ranges = shared.read_state().id_ranges(msg_id, ID_WINDOW_BLOCKS);
    for (start, end) in ranges {
        let mut scan = Scanner::new(&shared.files, start);
        while let Step::Record { offset, .. } = scan.next()? {
            if offset >= end {
                break;
            }
            let Record::Message(m) = record::decode(scan.frame())? else {
                continue;
            };
            if m.app != app {
                continue;
            }
            let idx = (0..m.recipients.len())
                .find(|&i| m.recipients[i].msg_id == msg_id && m.kind(i) != EntryKind::SyncCopy);
            if let Some(idx) = idx {
                return found(&m, idx).map(Some);
            }
        }
    }
    Ok(None)
}

/// Where the conversation of `user` and `peer` goes on after the entry with
/// id `cursor`: its link to the conversation's previous entry, if the entry
/// is one of that conversation. Every entry of a conversation is on the
/// chain of links from its newest one (heads are never removed), so a walk
/// from here gives what a walk from the newest entry gives after meeting the
/// cursor, without reading everything newer: a page far back costs a look-up
/// of the id (a block of the log, ≈ 128 records) instead of one read per
/// newer message.
fn after_cursor(
    shared: &Shared,
    app: i64,
    user: &str,
    peer: &str,
    cursor: u64,
) -> Result<Option<EntryRef>> {
    let link = find_message(shared, app, cursor, |m, idx| {
        let r = &m.recipients[idx];
        let ours = (m.from == user && r.owner == peer) || (m.from == peer && r.owner == user);
        Ok(ours.then_some(r.prev))
    })?;
    Ok(link.flatten())
}

/// Entries a history page walks from the newest one looking for its
/// cursor before it looks the cursor up by id instead (which reads a block
/// of the log, [`ID_WINDOW_BLOCKS`] blocks of 128 ids at most, usually one).
const CURSOR_WALK: usize = 128;

/// How far out of time order a conversation's records can be: a send takes
/// its id and timestamp before it queues for the log, so two sends racing
/// for it are stored in either order. A clear's cut-off is walked past by
/// this much before the walk stops.
const OUT_OF_ORDER_MS: i64 = 60_000;

/// A conversation, newest first, as stored. Records are in log order, which
/// differs from id order only for sends that raced each other; so a page
/// after `before` starts right after the entry with that id, where the
/// previous page ended (an id filter would skip or repeat the racing
/// entries). A cursor close to the newest entry is met by walking there; a
/// cursor further back is looked up by id ([`after_cursor`]), which costs
/// about as much as walking [`CURSOR_WALK`] entries, so that neither a
/// near page nor a far one costs more than about twice what it must. A
/// cursor that is no entry of this conversation (an id from elsewhere)
/// falls back to "ids below it".
fn history(
    shared: &Shared,
    app: i64,
    user: &str,
    peer: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<InboxEntry>> {
    let walk = |start| walk_history(shared, app, user, peer, limit, start);
    let page = match before {
        None => walk(Start::Newest)?,
        Some(cursor) => match walk(Start::After(cursor))? {
            Some(page) => Some(page),
            None => match after_cursor(shared, app, user, peer, cursor)? {
                Some(link) => walk(Start::From(link))?,
                // No entry of this conversation has that id (the index
                // holds every stored id): a walk would not meet it either.
                None => walk(Start::Below(cursor))?,
            },
        },
    };
    Ok(page.unwrap_or_default())
}

#[derive(Clone, Copy)]
enum Start {
    Newest,
    /// At this entry (the link from a cursor's entry, [`after_cursor`]).
    From(EntryRef),
    /// Right after the entry with this id; `None` if the walk does not
    /// meet it within [`CURSOR_WALK`] entries.
    After(u64),
    /// Entries with lower ids.
    Below(u64),
}

fn walk_history(
    shared: &Shared,
    app: i64,
    user: &str,
    peer: &str,
    limit: usize,
    start: Start,
) -> Result<Option<Vec<InboxEntry>>> {
    let (mut at, cleared) = {
        let state = shared.read_state();
        (
            match start {
                Start::From(link) => link,
                _ => state.pair_head(app, user, peer).unwrap_or(EntryRef::NONE),
            },
            state.cleared_before(app, user, peer).unwrap_or(i64::MIN),
        )
    };
    let mut met = !matches!(start, Start::After(_));
    let mut walked = 0;
    let mut reader = RecordReader::new(&shared.files);
    let mut out = Vec::with_capacity(limit.min(256));
    while !at.is_none() && out.len() < limit {
        let m = reader.message(at.offset())?;
        // Everything this much older than the clear was cleared too.
        if m.timestamp_ms <= cleared.saturating_sub(OUT_OF_ORDER_MS) {
            break;
        }
        let r = m
            .recipients
            .get(at.idx())
            .ok_or_else(|| StorageError::Corrupt("journal: conversation link".into()))?;
        let next = r.prev;
        let shown = match start {
            Start::After(cursor) if !met => {
                if walked == CURSOR_WALK {
                    break;
                }
                walked += 1;
                met = r.msg_id == cursor;
                false
            }
            Start::Below(cursor) => r.msg_id < cursor,
            _ => true,
        };
        if shown && m.timestamp_ms > cleared && !m.hidden_from(user) {
            out.push(m.entry(at.idx())?);
        }
        at = next;
    }
    Ok(met.then_some(out))
}

fn conversations(
    shared: &Shared,
    app: i64,
    owner: &str,
    limit: usize,
) -> Result<Vec<Conversation>> {
    let mut list = shared.read_state().conversations(app, owner);
    list.sort_by_key(|(_, c)| std::cmp::Reverse((c.updated_ms, c.last_msg_id)));
    list.truncate(limit);
    let mut reader = RecordReader::new(&shared.files);
    list.into_iter()
        .map(|(peer, c)| {
            let mut last = reader.entry(c.last)?;
            last.seq = 0;
            last.owner = owner.to_string();
            last.kind = EntryKind::Incoming;
            Ok(Conversation {
                peer,
                unread: c.unread,
                updated_ms: c.updated_ms,
                last,
            })
        })
        .collect()
}

#[async_trait]
impl AppStore for JournalStore {
    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        self.apps.list_apps().await
    }

    async fn upsert_app(&self, app: AppRecord) -> Result<AppRecord> {
        self.apps.upsert_app(app).await
    }
}

#[async_trait]
impl Store for JournalStore {
    async fn create_users(&self, app: i64, users: Vec<NewUser>) -> Result<Vec<UserInsert>> {
        self.apps
            .with(move |c| crate::users::create_users(c, app, users))
            .await
    }

    async fn get_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>> {
        let username = username.to_string();
        self.apps
            .with(move |c| crate::users::read_user(c, app, &username))
            .await
    }

    async fn delete_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>> {
        let username = username.to_string();
        self.apps
            .with(move |c| crate::users::delete_user(c, app, &username))
            .await
    }

    async fn append_message(&self, msg: NewMessage) -> Result<Vec<StoredRecipient>> {
        self.shared.append_message(msg).await
    }

    async fn inbox_after(
        &self,
        app: i64,
        owner: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let refs = self
            .shared
            .read_state()
            .inbox_after(app, owner, after, limit);
        if refs.len() <= SMALL_READ_ENTRIES {
            inbox_entries(&self.shared, &refs)
        } else {
            self.blocking(move |s| inbox_entries(s, &refs)).await
        }
    }

    async fn device_cursor(&self, app: i64, owner: &str, device: &str) -> Result<Option<u64>> {
        Ok(self.shared.read_state().device_cursor(app, owner, device))
    }

    async fn user_cursor(&self, app: i64, owner: &str) -> Result<u64> {
        Ok(self.shared.read_state().user_cursor(app, owner))
    }

    async fn save_device_cursor(
        &self,
        app: i64,
        owner: &str,
        device: &str,
        seq: u64,
    ) -> Result<()> {
        let record = Record::Cursor(CursorRecord {
            app,
            owner: Cow::Borrowed(owner),
            device: Cow::Borrowed(device),
            seq,
            at_ms: chatd_core::clock::now_ms(),
        });
        self.shared.append(&record).await.map(|_| ())
    }

    async fn offline_count(&self, app: i64, owner: &str) -> Result<u64> {
        Ok(self.shared.read_state().offline_count(app, owner))
    }

    async fn find_entry(&self, app: i64, msg_id: u64) -> Result<Option<InboxEntry>> {
        self.blocking(move |s| find_entry(s, app, msg_id)).await
    }

    async fn history(
        &self,
        app: i64,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let (user, peer) = (user.to_string(), peer.to_string());
        self.blocking(move |s| history(s, app, &user, &peer, before, limit))
            .await
    }

    async fn conversations(
        &self,
        app: i64,
        owner: &str,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        let owner = owner.to_string();
        self.blocking(move |s| conversations(s, app, &owner, limit))
            .await
    }

    async fn mark_read(&self, app: i64, owner: &str, peer: &str) -> Result<bool> {
        let record = Record::MarkRead(ConversationRecord {
            app,
            owner: Cow::Borrowed(owner),
            peer: Cow::Borrowed(peer),
            at_ms: chatd_core::clock::now_ms(),
        });
        Ok(self.shared.append(&record).await? == Applied::Existed(true))
    }

    async fn delete_conversation(
        &self,
        app: i64,
        owner: &str,
        peer: &str,
        clear_history: bool,
    ) -> Result<bool> {
        let record = Record::DeleteConversation(
            ConversationRecord {
                app,
                owner: Cow::Borrowed(owner),
                peer: Cow::Borrowed(peer),
                at_ms: chatd_core::clock::now_ms(),
            },
            clear_history,
        );
        Ok(self.shared.append(&record).await? == Applied::Existed(true))
    }

    async fn max_message_id(&self) -> Result<u64> {
        Ok(self.shared.read_state().max_msg_id)
    }

    async fn close(&self) {
        self.shared.close();
        let handle = self.committer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

#[cfg(test)]
mod tests;
