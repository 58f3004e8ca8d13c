//! The embedded store: one SQLite database in WAL mode.
//!
//! All writes go through one writer thread that drains whatever requests are
//! queued, applies them in a single transaction (one failing request does
//! not undo the others: see `Writer::apply`), commits
//! with `synchronous=FULL` (an fsync of the WAL) and only then answers the
//! callers. Under load this batches many sends into one fsync; idle, a lone
//! request is committed at once. Reads use a small pool of read-only
//! connections, which WAL lets run beside the writer.
//!
//! Checkpoints (copying the log back into the database file, with its own
//! fsync) do not run inside the writer's commits, where they would stall
//! every waiting sender: a checkpointer thread runs them beside the writer,
//! and the writer only finishes the tail of one when the log has grown
//! large, so that the log can start over from its beginning.

use crate::model::{Conversation, UserInsert};
use crate::queue::{self, answer, Answer, Reply, WriteQueue};
use crate::{AppStore, Result, StorageError, Store};
use async_trait::async_trait;
use chatd_core::{
    AppRecord, EntryKind, InboxEntry, NewMessage, NewUser, StoredRecipient, UserRecord,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const SCHEMA: &str = r#"
-- One row per message sent, whatever the number of recipients.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    app INTEGER NOT NULL,
    sender TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    body TEXT NOT NULL,
    ext TEXT,
    created_ms INTEGER NOT NULL,
    options TEXT NOT NULL
);
-- One row per inbox entry: each user's ordered inbox. kind: 0 incoming,
-- 1 incoming online-only, 2 the owner's own message copied to their devices.
CREATE TABLE IF NOT EXISTS inbox (
    app INTEGER NOT NULL,
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    msg_id INTEGER NOT NULL,
    message INTEGER NOT NULL,
    peer TEXT NOT NULL,
    to_user TEXT NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY (app, owner, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbox_by_msg_id ON inbox (msg_id);
CREATE INDEX IF NOT EXISTS inbox_by_conversation ON inbox (app, owner, peer, msg_id);
-- What each device of a user has acknowledged.
CREATE TABLE IF NOT EXISTS devices (
    app INTEGER NOT NULL,
    owner TEXT NOT NULL,
    device TEXT NOT NULL,
    acked INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (app, owner, device)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
    app INTEGER NOT NULL,
    owner TEXT NOT NULL,
    peer TEXT NOT NULL,
    last_msg_id INTEGER NOT NULL,
    message INTEGER NOT NULL,
    last_from TEXT NOT NULL,
    last_to TEXT NOT NULL,
    unread INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (app, owner, peer)
) WITHOUT ROWID;
-- Conversations whose history a user cleared, up to a time.
CREATE TABLE IF NOT EXISTS history_clears (
    app INTEGER NOT NULL,
    owner TEXT NOT NULL,
    peer TEXT NOT NULL,
    before_ms INTEGER NOT NULL,
    PRIMARY KEY (app, owner, peer)
) WITHOUT ROWID;
"#;

/// How to open the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Read-only connections in the read pool.
    pub readers: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// Requests queued for the writer before callers wait.
    pub queue: usize,
    /// Log frames past which the log is made to start over
    /// ([`WAL_RESTART_FRAMES`]; smaller in tests).
    pub wal_restart_frames: u64,
}

impl SqliteOptions {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            path: dir.into().join("chatd.db"),
            readers: 4,
            max_batch: 1024,
            queue: 8192,
            wal_restart_frames: WAL_RESTART_FRAMES,
        }
    }
}

/// Page cache of the writer connection, KiB: the inbox indexes are written
/// at random places, and pages read again from the OS cost a system call
/// each. (Not more: every commit scans the cache's hash table.)
const WRITER_CACHE_KIB: i64 = 16 * 1024;
/// Page cache of each read-only connection, KiB.
const READER_CACHE_KIB: i64 = 16 * 1024;
/// Inbox reads of at most this many entries run on the calling thread
/// (when a read connection is free): delivering a message to an online
/// device reads just it.
const SMALL_READ_ROWS: usize = 8;
/// How often the checkpointer copies the log into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// Log frames (pages) past which the log is copied up to a small tail that
/// the writer finishes between two transactions, so that the log restarts
/// from its beginning instead of growing while writes never pause (~160 MiB
/// of 4 KiB pages). See [`Checkpointer`]. The writer's part still costs it
/// a sync of the database file (a few ms for a few hundred pages written at
/// random places), so this is large to make that rare: 8 000 frames
/// restarted about twice a second at 10k sends/s, each time holding every
/// queued send for 4-17 ms (docs/benchmarks.md).
const WAL_RESTART_FRAMES: u64 = 40_000;
/// The checkpointer's rounds before a restart continue until one copied at
/// most this many frames: the writer's tail is what it adds meanwhile.
const WAL_TAIL_FRAMES: u64 = 100;

enum WriteOp {
    UpsertApp(AppRecord, Reply<AppRecord>),
    CreateUsers(i64, Vec<NewUser>, Reply<Vec<UserInsert>>),
    DeleteUser(i64, String, Reply<Option<UserRecord>>),
    AppendMessage(Box<NewMessage>, Reply<Vec<StoredRecipient>>),
    SaveCursor(i64, String, String, u64, Reply<()>),
    MarkRead(i64, String, String, Reply<bool>),
    DeleteConversation(i64, String, String, bool, Reply<bool>),
    Close(oneshot::Sender<()>),
}

pub struct SqliteStore {
    writer: WriteQueue<WriteOp>,
    readers: Arc<ReadPool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(opts: SqliteOptions) -> Result<Self> {
        if let Some(dir) = opts.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(&opts.path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: in WAL mode this fsyncs the log at every commit, which is what
        // makes a 200 mean "on disk".
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints run on the checkpointer thread, not inside commits.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(64);
        stable_plans(&conn)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(crate::apps::APPS_SCHEMA)?;
        conn.execute_batch(crate::users::USERS_SCHEMA)?;
        conn.execute_batch(SCHEMA)?;

        let mut readers = Vec::with_capacity(opts.readers.max(1));
        for _ in 0..opts.readers.max(1) {
            let r = Connection::open_with_flags(
                &opts.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(std::time::Duration::from_secs(5))?;
            r.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
            r.set_prepared_statement_cache_capacity(64);
            stable_plans(&r)?;
            readers.push(r);
        }

        let checkpointer = Checkpointer::start(&opts.path, opts.wal_restart_frames)?;
        let max_batch = opts.max_batch;
        let writer = WriteQueue::start("chatd-sqlite-writer", opts.queue, move |rx| {
            Writer::new(conn, checkpointer).run(rx, max_batch)
        })?;
        Ok(Self {
            writer,
            readers: Arc::new(ReadPool::new(readers)),
        })
    }

    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> WriteOp) -> Result<T> {
        self.writer.call(make).await
    }

    /// A read small enough (a point lookup, a few rows from the page cache:
    /// microseconds) to run on the calling thread when a connection is free,
    /// rather than paying a hand-off to a blocking thread and back.
    async fn read_small<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match self.readers.try_take() {
            Some(conn) => {
                let out = f(&conn);
                self.readers.put(conn);
                out
            }
            None => self.read(f).await,
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StorageError::Corrupt(format!("reader task failed: {e}")))?
    }
}

#[async_trait]
impl AppStore for SqliteStore {
    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        self.read(crate::apps::list_apps).await
    }

    async fn upsert_app(&self, app: AppRecord) -> Result<AppRecord> {
        self.write(|r| WriteOp::UpsertApp(app, r)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_users(&self, app: i64, users: Vec<NewUser>) -> Result<Vec<UserInsert>> {
        self.write(|r| WriteOp::CreateUsers(app, users, r)).await
    }

    async fn get_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>> {
        let username = username.to_string();
        self.read(move |c| crate::users::read_user(c, app, &username))
            .await
    }

    async fn delete_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>> {
        let username = username.to_string();
        self.write(|r| WriteOp::DeleteUser(app, username, r)).await
    }

    async fn append_message(&self, msg: NewMessage) -> Result<Vec<StoredRecipient>> {
        self.write(|r| WriteOp::AppendMessage(Box::new(msg), r))
            .await
    }

    async fn inbox_after(
        &self,
        app: i64,
        owner: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let owner = owner.to_string();
        let read = move |c: &Connection| {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM inbox i JOIN messages m ON m.id = i.message \
                 WHERE i.app = ?1 AND i.owner = ?2 AND i.seq > ?3 ORDER BY i.seq LIMIT ?4"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![app, owner, after as i64, limit as i64], entry_row)?;
            rows.map(|r| r?.into_entry()).collect()
        };
        if limit <= SMALL_READ_ROWS {
            self.read_small(read).await
        } else {
            self.read(read).await
        }
    }

    async fn device_cursor(&self, app: i64, owner: &str, device: &str) -> Result<Option<u64>> {
        let (owner, device) = (owner.to_string(), device.to_string());
        self.read_small(move |c| {
            Ok(c.prepare_cached(
                "SELECT acked FROM devices WHERE app = ?1 AND owner = ?2 AND device = ?3",
            )?
            .query_row(params![app, owner, device], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v as u64))
        })
        .await
    }

    async fn user_cursor(&self, app: i64, owner: &str) -> Result<u64> {
        let owner = owner.to_string();
        self.read_small(move |c| user_cursor(c, app, &owner)).await
    }

    async fn save_device_cursor(
        &self,
        app: i64,
        owner: &str,
        device: &str,
        seq: u64,
    ) -> Result<()> {
        let (owner, device) = (owner.to_string(), device.to_string());
        self.write(|r| WriteOp::SaveCursor(app, owner, device, seq, r))
            .await
    }

    async fn offline_count(&self, app: i64, owner: &str) -> Result<u64> {
        let owner = owner.to_string();
        self.read(move |c| {
            let cursor = user_cursor(c, app, &owner)?;
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM inbox WHERE app = ?1 AND owner = ?2 AND seq > ?3 \
                     AND kind = 0",
                )?
                .query_row(params![app, owner, cursor as i64], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn find_entry(&self, app: i64, msg_id: u64) -> Result<Option<InboxEntry>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM inbox i JOIN messages m ON m.id = i.message \
                 WHERE i.msg_id = ?1 AND i.app = ?2 AND i.kind != 2 LIMIT 1"
            );
            c.prepare_cached(&sql)?
                .query_row(params![msg_id as i64, app], entry_row)
                .optional()?
                .map(EntryRow::into_entry)
                .transpose()
        })
        .await
    }

    async fn history(
        &self,
        app: i64,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (user, peer) = (user.to_string(), peer.to_string());
        self.read(move |c| {
            let cleared: i64 = c
                .prepare_cached(
                    "SELECT before_ms FROM history_clears WHERE app = ?1 AND owner = ?2 AND peer = ?3",
                )?
                .query_row(params![app, user, peer], |r| r.get(0))
                .optional()?
                .unwrap_or(i64::MIN);
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM inbox i JOIN messages m ON m.id = i.message \
                 WHERE i.app = ?1 AND i.kind != 2 AND i.msg_id < ?4 AND m.created_ms > ?5 \
                 AND ((i.owner = ?2 AND i.peer = ?3) OR (i.owner = ?3 AND i.peer = ?2)) \
                 ORDER BY i.msg_id DESC LIMIT ?6"
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut out = Vec::with_capacity(limit);
            let mut cursor = before.map_or(i64::MAX, |b| b as i64);
            // Entries hidden by roam_ignore_users are skipped, so a page may
            // need more than one query to fill.
            loop {
                let mut fetched = 0;
                let rows =
                    st.query_map(params![app, user, peer, cursor, cleared, limit as i64], entry_row)?;
                for row in rows {
                    let e = row?.into_entry()?;
                    fetched += 1;
                    cursor = e.msg_id as i64;
                    if !e.options.roam_ignore_users.contains(&user) {
                        out.push(e);
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
                if fetched < limit {
                    return Ok(out);
                }
            }
        })
        .await
    }

    async fn conversations(
        &self,
        app: i64,
        owner: &str,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        let owner = owner.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT c.peer, c.unread, c.updated_ms, c.last_msg_id, c.last_from, c.last_to, \
                 m.msg_type, m.body, m.ext, m.created_ms, m.options \
                 FROM conversations c JOIN messages m ON m.id = c.message \
                 WHERE c.app = ?1 AND c.owner = ?2 ORDER BY c.updated_ms DESC, c.last_msg_id DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![app, owner, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    EntryRow {
                        seq: 0,
                        msg_id: r.get(3)?,
                        owner: owner.clone(),
                        from: r.get(4)?,
                        to: r.get(5)?,
                        kind: 0,
                        msg_type: r.get(6)?,
                        body: r.get(7)?,
                        ext: r.get(8)?,
                        created_ms: r.get(9)?,
                        options: r.get(10)?,
                    },
                ))
            })?;
            rows.map(|row| {
                let (peer, unread, updated_ms, last) = row?;
                Ok(Conversation {
                    peer,
                    unread: unread as u64,
                    updated_ms,
                    last: last.into_entry()?,
                })
            })
            .collect()
        })
        .await
    }

    async fn mark_read(&self, app: i64, owner: &str, peer: &str) -> Result<bool> {
        let (owner, peer) = (owner.to_string(), peer.to_string());
        self.write(|r| WriteOp::MarkRead(app, owner, peer, r)).await
    }

    async fn delete_conversation(
        &self,
        app: i64,
        owner: &str,
        peer: &str,
        clear_history: bool,
    ) -> Result<bool> {
        let (owner, peer) = (owner.to_string(), peer.to_string());
        self.write(|r| WriteOp::DeleteConversation(app, owner, peer, clear_history, r))
            .await
    }

    async fn max_message_id(&self) -> Result<u64> {
        self.read(|c| {
            let n: Option<i64> = c
                .prepare_cached("SELECT MAX(msg_id) FROM inbox")?
                .query_row([], |r| r.get(0))?;
            Ok(n.unwrap_or(0) as u64)
        })
        .await
    }

    async fn close(&self) {
        self.writer.close(WriteOp::Close).await
    }
}

fn user_cursor(c: &Connection, app: i64, owner: &str) -> Result<u64> {
    let v: Option<i64> = c
        .prepare_cached("SELECT MAX(acked) FROM devices WHERE app = ?1 AND owner = ?2")?
        .query_row(params![app, owner], |r| r.get(0))?;
    Ok(v.unwrap_or(0) as u64)
}

/// The columns `entry_row` reads, from `inbox i JOIN messages m`.
const ENTRY_COLUMNS: &str = "i.seq, i.msg_id, i.owner, m.sender, i.to_user, i.kind, m.msg_type, \
                             m.body, m.ext, m.created_ms, m.options";

/// An inbox entry as read, before its text columns are parsed.
struct EntryRow {
    seq: i64,
    msg_id: i64,
    owner: String,
    from: String,
    to: String,
    kind: i64,
    msg_type: String,
    body: String,
    ext: Option<String>,
    created_ms: i64,
    options: String,
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        seq: r.get(0)?,
        msg_id: r.get(1)?,
        owner: r.get(2)?,
        from: r.get(3)?,
        to: r.get(4)?,
        kind: r.get(5)?,
        msg_type: r.get(6)?,
        body: r.get(7)?,
        ext: r.get(8)?,
        created_ms: r.get(9)?,
        options: r.get(10)?,
    })
}

impl EntryRow {
    fn into_entry(self) -> Result<InboxEntry> {
        Ok(InboxEntry {
            seq: self.seq as u64,
            msg_id: self.msg_id as u64,
            owner: self.owner,
            from: self.from,
            to: self.to,
            kind: EntryKind::from_code(self.kind)
                .ok_or_else(|| StorageError::Corrupt(format!("entry kind {}", self.kind)))?,
            msg_type: self
                .msg_type
                .parse()
                .map_err(|_| StorageError::Corrupt(format!("message type {}", self.msg_type)))?,
            body: self.body,
            ext: self.ext,
            timestamp_ms: self.created_ms,
            options: serde_json::from_str(&self.options)
                .map_err(|e| StorageError::Corrupt(format!("message options: {e}")))?,
        })
    }
}

/// A fixed set of read-only connections. rusqlite connections are not
/// `Sync`, so each read borrows one for its duration.
struct ReadPool {
    conns: Mutex<Vec<Connection>>,
    available: std::sync::Condvar,
}

impl ReadPool {
    fn new(conns: Vec<Connection>) -> Self {
        Self {
            conns: Mutex::new(conns),
            available: std::sync::Condvar::new(),
        }
    }

    /// A connection if one is free now (never waits).
    fn try_take(&self) -> Option<Connection> {
        self.conns.lock().ok()?.pop()
    }

    /// Gives back a connection taken with `try_take`.
    fn put(&self, conn: Connection) {
        if let Ok(mut guard) = self.conns.lock() {
            guard.push(conn);
        }
        self.available.notify_one();
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = {
            let mut guard = self.conns.lock().map_err(|_| StorageError::Closed)?;
            loop {
                if let Some(c) = guard.pop() {
                    break c;
                }
                guard = self
                    .available
                    .wait(guard)
                    .map_err(|_| StorageError::Closed)?;
            }
        };
        let out = f(&conn);
        if let Ok(mut guard) = self.conns.lock() {
            guard.push(conn);
        }
        self.available.notify_one();
        out
    }
}

/// Plans do not depend on bound values. Without this, SQLite plans a query
/// with `LIMIT ?` for the value bound at the time and marks the statement to
/// be compiled again whenever that parameter is bound anew: every inbox read
/// (`LIMIT` = the room in the delivery window) would parse and plan its SQL
/// again.
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Copies the log into the database beside the writer: a connection of its
/// own running passive checkpoints, which never block the writer.
///
/// The log only starts over from its beginning when a checkpoint has copied
/// all of it, which a checkpoint running beside a busy writer never does.
/// So once the log is large the checkpointer catches up, checkpoint after
/// checkpoint, until a round had little to copy, and then tells the
/// writer, which copies the small tail added since between two
/// transactions. The writer's part is bounded by that tail (before, it
/// copied whatever had come in since the last checkpoint: up to 100 ms of
/// sends), but it still syncs the database file, pages at random places:
/// a few ms, a stall for every waiting send, hence restarts are rare
/// ([`WAL_RESTART_FRAMES`]).
struct Checkpointer {
    stop: Arc<AtomicBool>,
    /// Set when the log is large and nearly all copied: the writer's cue.
    tail_ready: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &std::path::Path, restart_frames: u64) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let stop = Arc::new(AtomicBool::new(false));
        let tail_ready = Arc::new(AtomicBool::new(false));
        let (s, ready) = (stop.clone(), tail_ready.clone());
        let handle = std::thread::Builder::new()
            .name("chatd-sqlite-checkpoint".into())
            .spawn(move || {
                crate::io_priority::idle_for_this_thread();
                while !s.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_INTERVAL);
                    if s.load(Ordering::Acquire) {
                        break;
                    }
                    if let Err(e) = catch_up(&conn, restart_frames, &s, &ready) {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                }
            })?;
        Ok(Self {
            stop,
            tail_ready,
            handle: Some(handle),
        })
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One checkpoint; when the log is past `restart_frames`, more until one
/// round copied at most [`WAL_TAIL_FRAMES`], then `ready` is set.
fn catch_up(
    conn: &Connection,
    restart_frames: u64,
    stop: &AtomicBool,
    ready: &AtomicBool,
) -> rusqlite::Result<()> {
    let mut progress = passive_checkpoint(conn)?;
    if progress.log <= restart_frames || ready.load(Ordering::Acquire) {
        return Ok(());
    }
    // A checkpoint copies the log as it was when it began; what the writer
    // adds meanwhile is the next round's work, and the writer's tail is
    // what it adds during the last round. So rounds continue until one had
    // little to copy (and so was short); the bound only guards against a
    // writer faster than the copy.
    for _ in 0..8 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let next = passive_checkpoint(conn)?;
        let copied_now = next.log.saturating_sub(progress.log);
        progress = next;
        if copied_now <= WAL_TAIL_FRAMES && progress.left() == 0 {
            break;
        }
    }
    ready.store(true, Ordering::Release);
    Ok(())
}

/// What a checkpoint reports: frames in the log, and frames copied.
struct CheckpointProgress {
    log: u64,
    copied: u64,
}

impl CheckpointProgress {
    fn left(&self) -> u64 {
        self.log.saturating_sub(self.copied)
    }
}

/// Runs a passive checkpoint.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<CheckpointProgress> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(CheckpointProgress {
            log: r.get::<_, i64>(1)?.max(0) as u64,
            copied: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })
}

struct Writer {
    conn: Connection,
    /// Last inbox sequence per (app, owner), so that appends need no read.
    seqs: HashMap<(i64, String), u64>,
    checkpointer: Checkpointer,
    /// Set when a request failed half-way outside a savepoint: the batch's
    /// transaction is rolled back as a whole.
    poisoned: Option<String>,
}

/// Bound on the sequence cache; past it the cache starts over (a miss costs
/// one index lookup).
const SEQ_CACHE_MAX: usize = 1_000_000;

impl Writer {
    fn new(conn: Connection, checkpointer: Checkpointer) -> Self {
        Self {
            conn,
            seqs: HashMap::new(),
            checkpointer,
            poisoned: None,
        }
    }

    /// Runs a statement through the statement cache (transaction control
    /// statements would otherwise be parsed again at every request).
    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// When the checkpointer has copied all but a small tail of a large
    /// log, copies that tail between two transactions, so that the next
    /// transaction starts the log over.
    fn restart_log_if_large(&mut self) {
        if self.checkpointer.tail_ready.swap(false, Ordering::AcqRel) {
            let started = Instant::now();
            if let Err(e) = passive_checkpoint(&self.conn) {
                tracing::warn!(error = %e, "checkpoint failed");
            }
            // Apart from the commits' own metric: every queued send waits
            // for this too.
            metrics::histogram!("chatd_storage_log_restart_seconds")
                .record(started.elapsed().as_secs_f64());
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<WriteOp>, max_batch: usize) {
        let mut closing: Option<oneshot::Sender<()>> = None;
        while closing.is_none() {
            let Some(batch) = queue::next_batch(&mut rx, max_batch) else {
                break;
            };
            self.restart_log_if_large();
            let started = Instant::now();
            let size = batch.len();
            let mut done: Vec<Answer> = Vec::with_capacity(size);
            let begin = self.exec("BEGIN IMMEDIATE");
            for op in batch {
                match op {
                    WriteOp::Close(tx) => closing = Some(tx),
                    op => done.push(self.apply(op)),
                }
            }
            let commit = match self.poisoned.take() {
                Some(why) => Err(why),
                None => begin
                    .and_then(|_| self.exec("COMMIT"))
                    .map_err(|e| e.to_string()),
            };
            let commit_error = commit.err().map(|e| {
                tracing::error!(error = %e, "storage batch commit failed");
                let _ = self.conn.execute_batch("ROLLBACK");
                // Cached sequences may include rolled-back appends.
                self.seqs.clear();
                e
            });
            queue::record_batch(size, started);
            for d in done {
                d(commit_error.as_deref());
            }
        }
        queue::refuse_rest(&mut rx, |op| match op {
            WriteOp::Close(tx) => Some(tx),
            _ => None,
        });
        self.checkpointer.shutdown();
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        if let Some(tx) = closing {
            let _ = tx.send(());
        }
    }

    /// Applies one request inside its own savepoint.
    fn apply(&mut self, op: WriteOp) -> Answer {
        match op {
            WriteOp::UpsertApp(app, reply) => {
                let r = self.savepoint(|w| crate::apps::upsert_app(&w.conn, app));
                answer(reply, r)
            }
            WriteOp::CreateUsers(app, users, reply) => {
                let r = self.savepoint(|w| crate::users::create_users(&w.conn, app, users));
                answer(reply, r)
            }
            WriteOp::DeleteUser(app, name, reply) => {
                let r = self.savepoint(|w| crate::users::delete_user(&w.conn, app, &name));
                answer(reply, r)
            }
            WriteOp::AppendMessage(msg, reply) => {
                // No savepoint: opening and releasing one per send, and the
                // sub-journal copies of the pages that the batch's sends
                // share, showed in the writer's profile. A send fails on its
                // own only at its first statement (a message id stored
                // before), which writes nothing; a failure after it poisons
                // the batch (see append_message).
                let mut staged = HashMap::new();
                let r = self.append_message(&msg, &mut staged);
                if r.is_ok() {
                    if self.seqs.len() + staged.len() > SEQ_CACHE_MAX {
                        self.seqs.clear();
                    }
                    self.seqs.extend(staged);
                }
                answer(reply, r)
            }
            WriteOp::SaveCursor(app, owner, device, seq, reply) => {
                let r = self.savepoint(|w| w.save_cursor(app, &owner, &device, seq));
                answer(reply, r)
            }
            WriteOp::MarkRead(app, owner, peer, reply) => {
                let r = self.savepoint(|w| {
                    Ok(w.conn
                        .prepare_cached(
                            "UPDATE conversations SET unread = 0 WHERE app = ?1 AND owner = ?2 AND peer = ?3",
                        )?
                        .execute(params![app, owner, peer])?
                        > 0)
                });
                answer(reply, r)
            }
            WriteOp::DeleteConversation(app, owner, peer, clear, reply) => {
                let r = self.savepoint(|w| w.delete_conversation(app, &owner, &peer, clear));
                answer(reply, r)
            }
            WriteOp::Close(_) => unreachable!("handled by the batch loop"),
        }
    }

    fn savepoint<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.exec("SAVEPOINT op")?;
        let r = f(self);
        match &r {
            Ok(_) => self.exec("RELEASE op")?,
            Err(_) => {
                self.exec("ROLLBACK TO op")?;
                self.exec("RELEASE op")?;
            }
        }
        r
    }

    fn save_cursor(&mut self, app: i64, owner: &str, device: &str, seq: u64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO devices (app, owner, device, acked, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (app, owner, device) DO UPDATE SET \
                 acked = MAX(acked, excluded.acked), updated_ms = excluded.updated_ms",
            )?
            .execute(params![app, owner, device, seq as i64, chatd_core::clock::now_ms()])?;
        Ok(())
    }

    fn delete_conversation(
        &mut self,
        app: i64,
        owner: &str,
        peer: &str,
        clear: bool,
    ) -> Result<bool> {
        let existed = self
            .conn
            .prepare_cached(
                "DELETE FROM conversations WHERE app = ?1 AND owner = ?2 AND peer = ?3",
            )?
            .execute(params![app, owner, peer])?
            > 0;
        if clear {
            self.conn
                .prepare_cached(
                    "INSERT INTO history_clears (app, owner, peer, before_ms) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (app, owner, peer) DO UPDATE SET before_ms = excluded.before_ms",
                )?
                .execute(params![app, owner, peer, chatd_core::clock::now_ms()])?;
        }
        Ok(existed)
    }

    fn append_message(
        &mut self,
        msg: &NewMessage,
        staged: &mut HashMap<(i64, String), u64>,
    ) -> Result<Vec<StoredRecipient>> {
        let Some(first) = msg.recipients.first() else {
            return Ok(Vec::new());
        };
        let options = serde_json::to_string(&msg.options)
            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        // A single-row INSERT that fails changes nothing: this request fails
        // alone.
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, app, sender, msg_type, body, ext, created_ms, options) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                first.msg_id as i64,
                msg.app,
                msg.from,
                msg.msg_type.as_str(),
                msg.body,
                msg.ext,
                msg.timestamp_ms,
                options
            ])?;
        // Past this point a failure leaves part of the message written: the
        // whole batch is rolled back and every request of it fails.
        self.append_entries(msg, first.msg_id as i64, staged)
            .inspect_err(|e| self.poisoned = Some(format!("a send failed half-way: {e}")))
    }

    fn append_entries(
        &mut self,
        msg: &NewMessage,
        message: i64,
        staged: &mut HashMap<(i64, String), u64>,
    ) -> Result<Vec<StoredRecipient>> {
        let mut out = Vec::with_capacity(msg.recipients.len());
        for r in &msg.recipients {
            let key = (msg.app, r.owner.clone());
            let last = match staged.get(&key).or_else(|| self.seqs.get(&key)) {
                Some(s) => *s,
                None => self
                    .conn
                    .prepare_cached("SELECT MAX(seq) FROM inbox WHERE app = ?1 AND owner = ?2")?
                    .query_row(params![msg.app, r.owner], |row| {
                        row.get::<_, Option<i64>>(0)
                    })?
                    .unwrap_or(0) as u64,
            };
            let seq = last + 1;
            self.conn
                .prepare_cached(
                    "INSERT INTO inbox (app, owner, seq, msg_id, message, peer, to_user, kind) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    msg.app,
                    r.owner,
                    seq as i64,
                    r.msg_id as i64,
                    message,
                    r.peer,
                    r.to,
                    r.kind.code()
                ])?;
            staged.insert(key, seq);
            out.push(StoredRecipient {
                msg_id: r.msg_id,
                seq,
            });
            if msg.conversations && r.kind != EntryKind::SyncCopy {
                self.touch_conversation(msg, message, r, &r.to, &msg.from, true)?;
                if msg.from != "admin" {
                    self.touch_conversation(msg, message, r, &msg.from, &r.to, false)?;
                }
            }
        }
        Ok(out)
    }

    /// Makes `(owner, peer)`'s conversation end with this message.
    fn touch_conversation(
        &mut self,
        msg: &NewMessage,
        message: i64,
        r: &chatd_core::Recipient,
        owner: &str,
        peer: &str,
        unread: bool,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO conversations (app, owner, peer, last_msg_id, message, last_from, last_to, \
                 unread, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (app, owner, peer) DO UPDATE SET last_msg_id = excluded.last_msg_id, \
                 message = excluded.message, last_from = excluded.last_from, last_to = excluded.last_to, \
                 unread = unread + excluded.unread, updated_ms = excluded.updated_ms",
            )?
            .execute(params![
                msg.app,
                owner,
                peer,
                r.msg_id as i64,
                message,
                msg.from,
                r.to,
                i64::from(unread),
                msg.timestamp_ms
            ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::message;

    fn open(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(SqliteOptions::in_dir(dir)).unwrap())
    }

    crate::contract::store_contract!(open);

    #[tokio::test]
    async fn the_log_starts_over_while_writes_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = SqliteOptions::in_dir(dir.path());
        opts.wal_restart_frames = 300;
        let store = Arc::new(SqliteStore::open(opts).unwrap());
        let wal = dir.path().join("chatd.db-wal");
        // Concurrent sends to many inboxes: every commit dirties pages at
        // random places, and the writer is never idle long.
        let started = Instant::now();
        let mut id = 0;
        while started.elapsed() < Duration::from_secs(3) {
            let sends: Vec<_> = (0..32)
                .map(|_| {
                    id += 1;
                    let owner = format!("u{}", (id * 7919) % 5000);
                    let store = store.clone();
                    let msg = message(1, &[owner.as_str()], id);
                    tokio::spawn(async move { store.append_message(msg).await })
                })
                .collect();
            for s in sends {
                s.await.unwrap().unwrap();
            }
        }
        let written = id;
        let wal_pages = std::fs::metadata(&wal).unwrap().len() / 4096;
        store.close().await;
        // Without a restart the log holds a frame for every page each commit
        // dirtied: more than three per send here (measured: 157k frames
        // after 43k sends; with restarts, 7.5k after 56k).
        assert!(written > 3_000, "only {written} sends in 3 s");
        assert!(
            wal_pages < written / 2,
            "log of {wal_pages} pages after {written} sends: it never started over"
        );
    }

    #[tokio::test]
    async fn a_send_failing_half_way_leaves_nothing_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(SqliteOptions::in_dir(dir.path())).unwrap());
        store.append_message(message(1, &["a"], 10)).await.unwrap();
        // Inbox rows for "poison" fail after the message row was written.
        let c = Connection::open(dir.path().join("chatd.db")).unwrap();
        c.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON inbox WHEN NEW.owner = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'no inbox for poison'); END;",
        )
        .unwrap();
        drop(c);
        let err = store.append_message(message(1, &["b", "poison"], 50)).await;
        assert!(err.is_err(), "{err:?}");
        assert_eq!(
            store.max_message_id().await.unwrap(),
            10,
            "no entry of the failed send"
        );
        assert!(store.inbox_after(1, "b", 0, 10).await.unwrap().is_empty());
        let ok = store.append_message(message(1, &["b"], 60)).await.unwrap();
        assert_eq!(ok[0].seq, 1, "no sequence was used up");
        store.close().await;
    }
}
