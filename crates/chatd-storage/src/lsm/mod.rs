//! The second embedded store (`storage_engine = "lsm"`): a log-structured
//! merge tree (`fjall`).
//!
//! Why an LSM beside the B-tree of SQLite: every message writes an inbox
//! entry and a conversation index entry whose keys start with their owner,
//! i.e. at random places. In a B-tree each such write dirties a whole page
//! that the commit writes to the log (≈ 8 KiB of log per one-recipient
//! message, the SQLite writer's main cost in the send profile); an LSM
//! appends the few hundred bytes of the batch to its journal, keeps them in a
//! sorted memory table, and writes sorted runs sequentially in the
//! background. What that costs instead (compactions, reads that merge several
//! runs) is measured in docs/benchmarks.md.
//!
//! Layout, one keyspace per record kind (see [`keys`]):
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `users` | app, username | `UserRecord` (JSON) |
//! | `messages` | message key (its first recipient's msg id) | [`StoredMessage`] (JSON) |
//! | `inbox` | app, owner, seq | [`keys::InboxValue`] |
//! | `by_msg` | msg id, app | owner, seq (not for sync copies) |
//! | `by_conv` | app, owner, peer, msg id | owner, seq (not for sync copies) |
//! | `devices` | app, owner, device | acked seq, updated ms |
//! | `conversations` | app, owner, peer | [`ConvRecord`] (JSON) |
//! | `clears` | app, owner, peer | time before which history is hidden |
//! | `meta` | name | value |
//!
//! Apps are in the shared SQLite registry ([`crate::apps`]): `apps.db`.
//!
//! Writes go through one writer thread that group-commits: each batch is one
//! atomic journal write and one fsync before any of its callers is answered.

pub(crate) mod keys;
mod writer;

use crate::model::{Conversation, UserInsert};
use crate::queue::{Reply, WriteQueue};
use crate::{AppStore, Result, SqliteApps, StorageError, Store};
use async_trait::async_trait;
use chatd_core::{
    AppRecord, EntryKind, InboxEntry, MessageType, NewMessage, NewUser, SendOptions,
    StoredRecipient, UserRecord,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use keys::InboxValue;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use writer::{WriteOp, Writer};

/// How to open the LSM store.
#[derive(Debug, Clone)]
pub struct LsmOptions {
    /// Directory of the database (created if missing).
    pub path: PathBuf,
    /// Most requests committed in one batch.
    pub max_batch: usize,
    /// Requests queued for the writer before callers wait.
    pub queue: usize,
    /// Block cache, bytes.
    pub cache_bytes: u64,
}

impl LsmOptions {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            path: dir.into().join("lsm"),
            max_batch: 1024,
            queue: 8192,
            cache_bytes: 32 * 1024 * 1024,
        }
    }

    /// The app registry's SQLite file, beside the LSM directory.
    pub fn apps_path(&self) -> PathBuf {
        self.path.with_file_name(APPS_FILE)
    }
}

const APPS_FILE: &str = "apps.db";

/// Inbox reads of at most this many entries run on the calling thread
/// (delivering a message to an online device reads just it); larger ones on
/// a blocking thread.
const SMALL_READ_ROWS: usize = 8;

/// A message as stored once for all its recipients.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    pub sender: String,
    pub msg_type: MessageType,
    pub body: String,
    pub ext: Option<String>,
    pub created_ms: i64,
    pub options: SendOptions,
}

/// One row of a conversation list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConvRecord {
    pub last_msg_id: u64,
    pub message: u64,
    pub last_from: String,
    pub last_to: String,
    pub unread: u64,
    pub updated_ms: i64,
}

/// The keyspaces, shared by the writer and the readers.
#[derive(Clone)]
pub(crate) struct Spaces {
    pub db: Database,
    pub users: Keyspace,
    pub messages: Keyspace,
    pub inbox: Keyspace,
    pub by_msg: Keyspace,
    pub by_conv: Keyspace,
    pub devices: Keyspace,
    pub conversations: Keyspace,
    pub clears: Keyspace,
    pub meta: Keyspace,
}

pub(crate) const MAX_MSG_ID: &[u8] = b"max_msg_id";

/// Largest memory table of a keyspace before it is written out. fjall's
/// default is 64 MiB for every keyspace, and it has no cap on all of them
/// together: under a long overload the four keyspaces written by every send
/// held ≈ 500 MB (peak RSS 524 MB in the overload scenario, still growing
/// after 30 s). Sized per keyspace, peak RSS was 294 MB and level, with the
/// same send throughput in 30-s cells (docs/benchmarks.md).
fn memtable_bytes(keyspace: &str) -> u64 {
    const MIB: u64 = 1024 * 1024;
    match keyspace {
        "messages" => 32 * MIB,
        "inbox" | "by_conv" | "by_msg" => 16 * MIB,
        _ => 4 * MIB,
    }
}

impl Spaces {
    fn open(opts: &LsmOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.path)?;
        // Journal persistence is the writer's: it fsyncs once per batch,
        // before answering (manual), never on a timer.
        let db = Database::builder(&opts.path)
            .manual_journal_persist(true)
            .cache_size(opts.cache_bytes)
            .open()?;
        let ks = |name: &str| {
            let memtable = memtable_bytes(name);
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable)
            })
        };
        Ok(Self {
            users: ks("users")?,
            messages: ks("messages")?,
            inbox: ks("inbox")?,
            by_msg: ks("by_msg")?,
            by_conv: ks("by_conv")?,
            devices: ks("devices")?,
            conversations: ks("conversations")?,
            clears: ks("clears")?,
            meta: ks("meta")?,
            db,
        })
    }

    fn message(&self, key: u64) -> Result<StoredMessage> {
        let raw = self
            .messages
            .get(key.to_be_bytes())?
            .ok_or_else(|| StorageError::Corrupt(format!("message {key} missing")))?;
        json(&raw)
    }

    fn entry(&self, owner: &str, seq: u64, v: &InboxValue) -> Result<InboxEntry> {
        let m = self.message(v.message)?;
        Ok(InboxEntry {
            seq,
            msg_id: v.msg_id,
            owner: owner.to_string(),
            from: m.sender,
            to: v.to.clone(),
            kind: v.kind,
            msg_type: m.msg_type,
            body: m.body,
            ext: m.ext,
            timestamp_ms: m.created_ms,
            options: m.options,
        })
    }

    fn entry_at(&self, app: i64, owner: &str, seq: u64) -> Result<Option<InboxEntry>> {
        match self.inbox.get(keys::inbox_key(app, owner, seq))? {
            Some(raw) => Ok(Some(self.entry(owner, seq, &InboxValue::decode(&raw)?)?)),
            None => Ok(None),
        }
    }

    fn inbox_after(
        &self,
        app: i64,
        owner: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let from = keys::inbox_key(app, owner, after.saturating_add(1));
        let to = keys::inbox_key(app, owner, u64::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.inbox.range(from..=to).take(limit) {
            let (k, v) = item.into_inner()?;
            let seq = keys::trailing_u64(&k)?;
            out.push(self.entry(owner, seq, &InboxValue::decode(&v)?)?);
        }
        Ok(out)
    }

    fn user_cursor(&self, app: i64, owner: &str) -> Result<u64> {
        let mut max = 0;
        for item in self.devices.prefix(keys::owner_prefix(app, owner)) {
            let (_, v) = item.into_inner()?;
            max = max.max(keys::u64_value(&v)?);
        }
        Ok(max)
    }

    fn user(&self, app: i64, username: &str) -> Result<Option<UserRecord>> {
        self.users
            .get(keys::user_key(app, username))?
            .map(|raw| json(&raw))
            .transpose()
    }

    /// One side's conversation entries, newest first, with ids below `before`.
    fn conversation_side(
        &self,
        app: i64,
        owner: &str,
        peer: &str,
        before: u64,
    ) -> impl Iterator<Item = Result<(u64, String, u64)>> + '_ {
        let from = keys::conv_entry_key(app, owner, peer, 0);
        let to = keys::conv_entry_key(app, owner, peer, before);
        self.by_conv.range(from..to).rev().map(|item| {
            let (k, v) = item.into_inner()?;
            let (owner, seq) = keys::decode_entry_ref(&v)?;
            Ok((keys::trailing_u64(&k)?, owner, seq))
        })
    }

    fn history(
        &self,
        app: i64,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>> {
        let cleared = match self.clears.get(keys::pair_key(app, user, peer))? {
            Some(v) => keys::u64_value(&v)? as i64,
            None => i64::MIN,
        };
        let before = before.unwrap_or(u64::MAX);
        // The user's copies of what they received and the peer's copies of
        // what the user sent, merged newest first.
        let mut mine = self.conversation_side(app, user, peer, before).peekable();
        let mut theirs = self.conversation_side(app, peer, user, before).peekable();
        let mut out = Vec::with_capacity(limit.min(1024));
        while out.len() < limit {
            let take_mine = match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Ok(a)), Some(Ok(b))) => a.0 > b.0,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
            };
            let next = if take_mine {
                mine.next()
            } else {
                theirs.next()
            };
            let Some(next) = next else { break };
            let (_, owner, seq) = next?;
            let Some(e) = self.entry_at(app, &owner, seq)? else {
                continue;
            };
            // Ids are time-ordered: everything older was cleared too.
            if e.timestamp_ms <= cleared {
                break;
            }
            if !e.options.roam_ignore_users.iter().any(|u| u == user) {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn conversations(&self, app: i64, owner: &str, limit: usize) -> Result<Vec<Conversation>> {
        let prefix = keys::owner_prefix(app, owner);
        let mut rows = Vec::new();
        for item in self.conversations.prefix(&prefix) {
            let (k, v) = item.into_inner()?;
            let peer = std::str::from_utf8(&k[prefix.len()..k.len() - 1])
                .map_err(|_| StorageError::Corrupt("conversation peer".into()))?
                .to_string();
            rows.push((peer, json::<ConvRecord>(&v)?));
        }
        rows.sort_by(|a, b| {
            (b.1.updated_ms, b.1.last_msg_id).cmp(&(a.1.updated_ms, a.1.last_msg_id))
        });
        rows.truncate(limit);
        rows.into_iter()
            .map(|(peer, c)| {
                let m = self.message(c.message)?;
                Ok(Conversation {
                    peer,
                    unread: c.unread,
                    updated_ms: c.updated_ms,
                    last: InboxEntry {
                        seq: 0,
                        msg_id: c.last_msg_id,
                        owner: owner.to_string(),
                        from: c.last_from,
                        to: c.last_to,
                        kind: EntryKind::Incoming,
                        msg_type: m.msg_type,
                        body: m.body,
                        ext: m.ext,
                        timestamp_ms: m.created_ms,
                        options: m.options,
                    },
                })
            })
            .collect()
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| StorageError::Corrupt(e.to_string()))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StorageError::Corrupt(e.to_string()))
}

pub struct LsmStore {
    spaces: Spaces,
    apps: SqliteApps,
    writer: WriteQueue<WriteOp>,
}

impl LsmStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(opts: LsmOptions) -> Result<Self> {
        let spaces = Spaces::open(&opts)?;
        let apps = SqliteApps::open(&opts.apps_path())?;
        let state = Writer::new(spaces.clone())?;
        let max_batch = opts.max_batch;
        let writer = WriteQueue::start("chatd-lsm-writer", opts.queue, move |rx| {
            state.run(rx, max_batch)
        })?;
        Ok(Self {
            spaces,
            apps,
            writer,
        })
    }

    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> WriteOp) -> Result<T> {
        self.writer.call(make).await
    }

    /// Runs a read that may touch many records (or the disk) on a blocking
    /// thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Spaces) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let spaces = self.spaces.clone();
        tokio::task::spawn_blocking(move || f(&spaces))
            .await
            .map_err(|e| StorageError::Corrupt(format!("reader task failed: {e}")))?
    }
}

#[async_trait]
impl AppStore for LsmStore {
    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        self.apps.list_apps().await
    }

    async fn upsert_app(&self, app: AppRecord) -> Result<AppRecord> {
        self.apps.upsert_app(app).await
    }
}

#[async_trait]
impl Store for LsmStore {
    async fn create_users(&self, app: i64, users: Vec<NewUser>) -> Result<Vec<UserInsert>> {
        self.write(|r| WriteOp::CreateUsers(app, users, r)).await
    }

    async fn get_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>> {
        // A point lookup: memory or one block read.
        self.spaces.user(app, username)
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
        if limit <= SMALL_READ_ROWS {
            return self.spaces.inbox_after(app, owner, after, limit);
        }
        let owner = owner.to_string();
        self.read(move |s| s.inbox_after(app, &owner, after, limit))
            .await
    }

    async fn device_cursor(&self, app: i64, owner: &str, device: &str) -> Result<Option<u64>> {
        self.spaces
            .devices
            .get(keys::device_key(app, owner, device))?
            .map(|v| keys::u64_value(&v))
            .transpose()
    }

    async fn user_cursor(&self, app: i64, owner: &str) -> Result<u64> {
        self.spaces.user_cursor(app, owner)
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
        self.read(move |s| {
            let cursor = s.user_cursor(app, &owner)?;
            let from = keys::inbox_key(app, &owner, cursor.saturating_add(1));
            let to = keys::inbox_key(app, &owner, u64::MAX);
            let mut n = 0;
            for item in s.inbox.range(from..=to) {
                let (_, v) = item.into_inner()?;
                if InboxValue::kind_of(&v) == Some(EntryKind::Incoming) {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn find_entry(&self, app: i64, msg_id: u64) -> Result<Option<InboxEntry>> {
        self.read(
            move |s| match s.by_msg.get(keys::by_msg_key(msg_id, app))? {
                Some(v) => {
                    let (owner, seq) = keys::decode_entry_ref(&v)?;
                    s.entry_at(app, &owner, seq)
                }
                None => Ok(None),
            },
        )
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
        let (user, peer) = (user.to_string(), peer.to_string());
        self.read(move |s| s.history(app, &user, &peer, before, limit))
            .await
    }

    async fn conversations(
        &self,
        app: i64,
        owner: &str,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        let owner = owner.to_string();
        self.read(move |s| s.conversations(app, &owner, limit))
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
        match self.spaces.meta.get(MAX_MSG_ID)? {
            Some(v) => keys::u64_value(&v),
            None => Ok(0),
        }
    }

    async fn close(&self) {
        self.writer.close(WriteOp::Close).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn open(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(LsmStore::open(LsmOptions::in_dir(dir)).unwrap())
    }

    crate::contract::store_contract!(open);
}
