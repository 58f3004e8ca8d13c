//! The single writer of the LSM store: group commit.
//!
//! Requests queue on a channel; the writer takes all that are waiting (up to
//! `max_batch`), applies each to a staging area, writes the whole batch to the
//! journal as one atomic batch, fsyncs once, then answers every request of
//! the batch. A request that fails (a message id stored before, a corrupt
//! record) leaves nothing staged: it fails alone.

use super::keys::{self, InboxValue};
use super::{json, to_json, ConvRecord, Spaces, StoredMessage, MAX_MSG_ID};
use crate::model::UserInsert;
use crate::queue::{self, answer, Answer, Reply};
use crate::{Result, StorageError};
use chatd_core::{EntryKind, NewMessage, NewUser, StoredRecipient, UserRecord};
use fjall::{Keyspace, PersistMode};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub(crate) enum WriteOp {
    CreateUsers(i64, Vec<NewUser>, Reply<Vec<UserInsert>>),
    DeleteUser(i64, String, Reply<Option<UserRecord>>),
    AppendMessage(Box<NewMessage>, Reply<Vec<StoredRecipient>>),
    SaveCursor(i64, String, String, u64, Reply<()>),
    MarkRead(i64, String, String, Reply<bool>),
    DeleteConversation(i64, String, String, bool, Reply<bool>),
    Close(oneshot::Sender<()>),
}

/// Which keyspace a staged write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Space {
    Users,
    Messages,
    Inbox,
    ByMsg,
    ByConv,
    Devices,
    Conversations,
    Clears,
    Meta,
}

fn space(s: &Spaces, sp: Space) -> &Keyspace {
    match sp {
        Space::Users => &s.users,
        Space::Messages => &s.messages,
        Space::Inbox => &s.inbox,
        Space::ByMsg => &s.by_msg,
        Space::ByConv => &s.by_conv,
        Space::Devices => &s.devices,
        Space::Conversations => &s.conversations,
        Space::Clears => &s.clears,
        Space::Meta => &s.meta,
    }
}

type Writes = BTreeMap<(Space, Vec<u8>), Option<Vec<u8>>>;

/// Bound on the sequence cache; past it the cache starts over (a miss costs
/// one lookup of the inbox's last key).
const SEQ_CACHE_MAX: usize = 1_000_000;

pub(crate) struct Writer {
    s: Spaces,
    /// Last inbox sequence per (app, owner), so that appends need no read.
    seqs: HashMap<(i64, String), u64>,
    /// Largest message id written: ids above it need no duplicate check.
    max_msg_id: u64,
}

/// One request's view while it is applied: its own writes, over the batch's
/// writes so far, over the committed store.
struct Tx<'a> {
    s: &'a Spaces,
    batch: &'a Writes,
    own: Writes,
    seqs: HashMap<(i64, String), u64>,
}

impl Tx<'_> {
    fn get(&self, sp: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = (sp, key.to_vec());
        if let Some(v) = self.own.get(&k).or_else(|| self.batch.get(&k)) {
            return Ok(v.clone());
        }
        Ok(space(self.s, sp).get(key)?.map(|v| v.to_vec()))
    }

    fn put(&mut self, sp: Space, key: Vec<u8>, value: Vec<u8>) {
        self.own.insert((sp, key), Some(value));
    }

    fn remove(&mut self, sp: Space, key: Vec<u8>) {
        self.own.insert((sp, key), None);
    }
}

impl Writer {
    pub(crate) fn new(s: Spaces) -> Result<Self> {
        let max_msg_id = match s.meta.get(MAX_MSG_ID)? {
            Some(v) => keys::u64_value(&v)?,
            None => 0,
        };
        Ok(Self {
            s,
            seqs: HashMap::new(),
            max_msg_id,
        })
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<WriteOp>, max_batch: usize) {
        let mut closing: Option<oneshot::Sender<()>> = None;
        while closing.is_none() {
            let Some(ops) = queue::next_batch(&mut rx, max_batch) else {
                break;
            };
            let started = Instant::now();
            let size = ops.len();
            let mut batch = Writes::new();
            let mut staged_seqs: HashMap<(i64, String), u64> = HashMap::new();
            let mut done: Vec<Answer> = Vec::with_capacity(size);
            let max_before = self.max_msg_id;
            for op in ops {
                if let WriteOp::Close(tx) = op {
                    closing = Some(tx);
                    continue;
                }
                let mut tx = Tx {
                    s: &self.s,
                    batch: &batch,
                    own: Writes::new(),
                    seqs: HashMap::new(),
                };
                let answer =
                    Self::apply(&mut tx, &mut self.max_msg_id, &self.seqs, &staged_seqs, op);
                if answer.0 {
                    let Tx { own, seqs, .. } = tx;
                    batch.extend(own);
                    staged_seqs.extend(seqs);
                }
                done.push(answer.1);
            }
            if self.max_msg_id > max_before {
                batch.insert(
                    (Space::Meta, MAX_MSG_ID.to_vec()),
                    Some(self.max_msg_id.to_be_bytes().to_vec()),
                );
            }
            let commit = self.commit(batch);
            let commit_error = match commit {
                Ok(()) => {
                    if self.seqs.len() + staged_seqs.len() > SEQ_CACHE_MAX {
                        self.seqs.clear();
                    }
                    self.seqs.extend(staged_seqs);
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage batch commit failed");
                    self.max_msg_id = max_before;
                    Some(e.to_string())
                }
            };
            queue::record_batch(size, started);
            for d in done {
                d(commit_error.as_deref());
            }
        }
        queue::refuse_rest(&mut rx, |op| match op {
            WriteOp::Close(tx) => Some(tx),
            _ => None,
        });
        if let Err(e) = self.s.db.persist(PersistMode::SyncAll) {
            tracing::warn!(error = %e, "final journal sync failed");
        }
        if let Some(tx) = closing {
            let _ = tx.send(());
        }
    }

    /// Writes the batch as one atomic journal entry and fsyncs it.
    fn commit(&self, writes: Writes) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut wb = self.s.db.batch();
        for ((sp, key), value) in writes {
            let ks = space(&self.s, sp);
            match value {
                Some(v) => wb.insert(ks, key, v),
                None => wb.remove(ks, key),
            }
        }
        wb.commit()?;
        self.s.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    /// Applies one request to `tx`; returns whether it succeeded and how to
    /// answer it once the batch is committed.
    fn apply(
        tx: &mut Tx<'_>,
        max_msg_id: &mut u64,
        seqs: &HashMap<(i64, String), u64>,
        staged_seqs: &HashMap<(i64, String), u64>,
        op: WriteOp,
    ) -> (bool, Answer) {
        match op {
            WriteOp::CreateUsers(app, users, reply) => pending(reply, create_users(tx, app, users)),
            WriteOp::DeleteUser(app, name, reply) => pending(reply, delete_user(tx, app, &name)),
            WriteOp::AppendMessage(msg, reply) => {
                let before = *max_msg_id;
                let r = append_message(tx, max_msg_id, seqs, staged_seqs, &msg);
                if r.is_err() {
                    *max_msg_id = before;
                }
                pending(reply, r)
            }
            WriteOp::SaveCursor(app, owner, device, seq, reply) => {
                pending(reply, save_cursor(tx, app, &owner, &device, seq))
            }
            WriteOp::MarkRead(app, owner, peer, reply) => {
                pending(reply, mark_read(tx, app, &owner, &peer))
            }
            WriteOp::DeleteConversation(app, owner, peer, clear, reply) => {
                pending(reply, delete_conversation(tx, app, &owner, &peer, clear))
            }
            WriteOp::Close(_) => unreachable!("handled by the batch loop"),
        }
    }
}

fn pending<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> (bool, Answer) {
    (result.is_ok(), answer(reply, result))
}

fn create_users(tx: &mut Tx<'_>, app: i64, users: Vec<NewUser>) -> Result<Vec<UserInsert>> {
    let now = chatd_core::clock::now_ms();
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let key = keys::user_key(app, &u.username);
        if tx.get(Space::Users, &key)?.is_some() {
            out.push(UserInsert::Exists(u.username));
            continue;
        }
        let rec = UserRecord {
            uuid: chatd_core::ids::uuid_v4_string(),
            username: u.username,
            password_hash: u.password_hash,
            nickname: u.nickname,
            created_ms: now,
            modified_ms: now,
            activated: true,
        };
        tx.put(Space::Users, key, to_json(&rec)?);
        out.push(UserInsert::Created(rec));
    }
    Ok(out)
}

fn delete_user(tx: &mut Tx<'_>, app: i64, username: &str) -> Result<Option<UserRecord>> {
    let key = keys::user_key(app, username);
    let Some(raw) = tx.get(Space::Users, &key)? else {
        return Ok(None);
    };
    let rec = json(&raw)?;
    tx.remove(Space::Users, key);
    Ok(Some(rec))
}

fn save_cursor(tx: &mut Tx<'_>, app: i64, owner: &str, device: &str, seq: u64) -> Result<()> {
    let key = keys::device_key(app, owner, device);
    let acked = match tx.get(Space::Devices, &key)? {
        Some(v) => keys::u64_value(&v)?.max(seq),
        None => seq,
    };
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&acked.to_be_bytes());
    v.extend_from_slice(&chatd_core::clock::now_ms().to_be_bytes());
    tx.put(Space::Devices, key, v);
    Ok(())
}

fn mark_read(tx: &mut Tx<'_>, app: i64, owner: &str, peer: &str) -> Result<bool> {
    let key = keys::pair_key(app, owner, peer);
    let Some(raw) = tx.get(Space::Conversations, &key)? else {
        return Ok(false);
    };
    let mut c: ConvRecord = json(&raw)?;
    if c.unread != 0 {
        c.unread = 0;
        tx.put(Space::Conversations, key, to_json(&c)?);
    }
    Ok(true)
}

fn delete_conversation(
    tx: &mut Tx<'_>,
    app: i64,
    owner: &str,
    peer: &str,
    clear: bool,
) -> Result<bool> {
    let key = keys::pair_key(app, owner, peer);
    let existed = tx.get(Space::Conversations, &key)?.is_some();
    if existed {
        tx.remove(Space::Conversations, key.clone());
    }
    if clear {
        tx.put(
            Space::Clears,
            key,
            (chatd_core::clock::now_ms() as u64).to_be_bytes().to_vec(),
        );
    }
    Ok(existed)
}

fn append_message(
    tx: &mut Tx<'_>,
    max_msg_id: &mut u64,
    seqs: &HashMap<(i64, String), u64>,
    staged_seqs: &HashMap<(i64, String), u64>,
    msg: &NewMessage,
) -> Result<Vec<StoredRecipient>> {
    let Some(first) = msg.recipients.first() else {
        return Ok(Vec::new());
    };
    let message = first.msg_id;
    let message_key = message.to_be_bytes().to_vec();
    // Ids come from a generator that never repeats; a lookup is needed only
    // for one not above every id written (sends reach the writer slightly
    // out of order).
    if message <= *max_msg_id && tx.get(Space::Messages, &message_key)?.is_some() {
        return Err(StorageError::Duplicate(format!(
            "message {message} is already stored"
        )));
    }
    tx.put(
        Space::Messages,
        message_key,
        to_json(&StoredMessage {
            sender: msg.from.clone(),
            msg_type: msg.msg_type,
            body: msg.body.clone(),
            ext: msg.ext.clone(),
            created_ms: msg.timestamp_ms,
            options: msg.options.clone(),
        })?,
    );
    let mut out = Vec::with_capacity(msg.recipients.len());
    for r in &msg.recipients {
        *max_msg_id = (*max_msg_id).max(r.msg_id);
        let key = (msg.app, r.owner.clone());
        let last = match tx
            .seqs
            .get(&key)
            .or_else(|| staged_seqs.get(&key))
            .or_else(|| seqs.get(&key))
        {
            Some(s) => *s,
            None => last_seq(tx.s, msg.app, &r.owner)?,
        };
        let seq = last + 1;
        tx.put(
            Space::Inbox,
            keys::inbox_key(msg.app, &r.owner, seq),
            InboxValue {
                kind: r.kind,
                msg_id: r.msg_id,
                message,
                peer: r.peer.clone(),
                to: r.to.clone(),
            }
            .encode(),
        );
        if r.kind != EntryKind::SyncCopy {
            let at = keys::entry_ref(&r.owner, seq);
            tx.put(
                Space::ByMsg,
                keys::by_msg_key(r.msg_id, msg.app),
                at.clone(),
            );
            tx.put(
                Space::ByConv,
                keys::conv_entry_key(msg.app, &r.owner, &r.peer, r.msg_id),
                at,
            );
        }
        tx.seqs.insert(key, seq);
        out.push(StoredRecipient {
            msg_id: r.msg_id,
            seq,
        });
        if msg.conversations && r.kind != EntryKind::SyncCopy {
            touch_conversation(tx, msg, message, r, &r.to, &msg.from, true)?;
            if msg.from != "admin" {
                touch_conversation(tx, msg, message, r, &msg.from, &r.to, false)?;
            }
        }
    }
    Ok(out)
}

/// The last sequence of an owner's inbox, from the store.
fn last_seq(s: &Spaces, app: i64, owner: &str) -> Result<u64> {
    match s.inbox.prefix(keys::owner_prefix(app, owner)).next_back() {
        Some(item) => keys::trailing_u64(&item.key()?),
        None => Ok(0),
    }
}

/// Makes `(owner, peer)`'s conversation end with this message.
fn touch_conversation(
    tx: &mut Tx<'_>,
    msg: &NewMessage,
    message: u64,
    r: &chatd_core::Recipient,
    owner: &str,
    peer: &str,
    unread: bool,
) -> Result<()> {
    let key = keys::pair_key(msg.app, owner, peer);
    let before = match tx.get(Space::Conversations, &key)? {
        Some(raw) => json::<ConvRecord>(&raw)?.unread,
        None => 0,
    };
    let c = ConvRecord {
        last_msg_id: r.msg_id,
        message,
        last_from: msg.from.clone(),
        last_to: r.to.clone(),
        unread: before + u64::from(unread),
        updated_ms: msg.timestamp_ms,
    };
    tx.put(Space::Conversations, key, to_json(&c)?);
    Ok(())
}
