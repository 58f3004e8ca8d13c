//! What the journal's records add up to, kept in memory: each inbox's
//! unacknowledged entries and its devices' positions, conversation lists,
//! the newest entry of each one-to-one conversation, history clears, and a
//! sparse index of message ids.
//!
//! Only positions live here; message content stays in the log and is read
//! back through [`EntryRef`]s. The state is built by [`State::apply`], the
//! one function that both the commit path and recovery use, so the two
//! cannot disagree.
//!
//! The maps are persistent (`imbl`): cloning the whole state is O(1), which
//! is how a snapshot is taken without stopping writes.

use super::record::{EntryRef, MessageRecord, Record};
use crate::{Result, StorageError};
use chatd_core::EntryKind;
use serde::{Deserialize, Serialize};

type Map<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// Map key built from an app and one or two names (see [`KeyBuf`]).
type Key = Box<[u8]>;

/// Message ids per block of the id index. A lookup reads the records of the
/// blocks that may hold an id (usually one).
const BLOCK_IDS: u32 = 128;

#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    /// Every record before this log offset is applied, none after.
    pub applied_to: u64,
    inboxes: Map<Key, Inbox>,
    /// Per owner: peer → conversation.
    conversations: Map<Key, Map<Box<str>, Conversation>>,
    /// Per one-to-one conversation (either direction): its newest entry,
    /// the head of the chain of `prev` links through its history.
    pairs: Map<Key, EntryRef>,
    /// Per (owner, peer): history before this time is hidden from the owner.
    clears: Map<Key, i64>,
    id_blocks: imbl::Vector<IdBlock>,
    pub max_msg_id: u64,
    /// A device this long without an acknowledgement (by the time of the
    /// newest one in its inbox) no longer holds entries in memory; 0:
    /// never. A setting, not state: not in snapshots.
    #[serde(skip)]
    pub stale_device_ms: i64,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Inbox {
    /// The newest position.
    last: u64,
    /// The entries of positions `last - len + 1 ..= last`. Older ones were
    /// acknowledged by every device of the owner: no device can ask for
    /// them again (a new device starts after the furthest any device got).
    entries: imbl::Vector<EntryRef>,
    devices: Map<Box<str>, Device>,
}

#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct Device {
    acked: u64,
    updated_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Conversation {
    /// The last message exchanged, either way.
    pub last: EntryRef,
    pub last_msg_id: u64,
    pub unread: u64,
    pub updated_ms: i64,
}

/// Where the records carrying a run of message ids start, and the ids'
/// range. Ids arrive nearly sorted, so ranges barely overlap.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct IdBlock {
    start: u64,
    min: u64,
    max: u64,
    /// The largest id of this block and every earlier one: sorted, so a
    /// lookup can skip the blocks that end before its id.
    max_so_far: u64,
    ids: u32,
}

/// What applying a record says back to the request that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// For conversation changes: whether the conversation existed.
    Existed(bool),
}

impl State {
    /// Applies the record found at log offset `offset`; the next record is
    /// at `next`.
    pub fn apply(&mut self, record: &Record<'_>, offset: u64, next: u64) -> Result<Applied> {
        let applied = match record {
            Record::Message(m) => {
                self.apply_message(m, offset)?;
                Applied::Done
            }
            Record::Cursor(c) => {
                let stale_after = self.stale_device_ms;
                let inbox = self.inbox_mut(c.app, &c.owner);
                let device = inbox.devices.entry(Box::from(&*c.device)).or_default();
                device.acked = device.acked.max(c.seq);
                device.updated_ms = c.at_ms;
                // The record's own time, not the clock: a replay trims as
                // the first run did.
                inbox.trim(c.at_ms, stale_after);
                Applied::Done
            }
            Record::MarkRead(c) => {
                let found = self
                    .conversations
                    .get_mut(KeyBuf::user(c.app, &c.owner).as_slice())
                    .and_then(|list| list.get_mut(&*c.peer));
                Applied::Existed(match found {
                    Some(conv) => {
                        conv.unread = 0;
                        true
                    }
                    None => false,
                })
            }
            Record::DeleteConversation(c, clear_history) => {
                let existed = self
                    .conversations
                    .get_mut(KeyBuf::user(c.app, &c.owner).as_slice())
                    .and_then(|list| list.remove(&*c.peer))
                    .is_some();
                if *clear_history {
                    self.clears
                        .insert(KeyBuf::clear(c.app, &c.owner, &c.peer).to_key(), c.at_ms);
                }
                Applied::Existed(existed)
            }
            Record::SegmentEnd => Applied::Done,
        };
        self.applied_to = next;
        Ok(applied)
    }

    fn inbox_mut(&mut self, app: i64, owner: &str) -> &mut Inbox {
        let key = KeyBuf::user(app, owner);
        if !self.inboxes.contains_key(key.as_slice()) {
            self.inboxes.insert(key.to_key(), Inbox::default());
        }
        self.inboxes
            .get_mut(key.as_slice())
            .expect("inserted above")
    }

    fn apply_message(&mut self, m: &MessageRecord<'_>, offset: u64) -> Result<()> {
        let ids = m.recipients.len() as u32;
        match self.id_blocks.back_mut() {
            Some(b) if b.ids < BLOCK_IDS => b.ids += ids,
            _ => {
                let max_so_far = self.id_blocks.back().map_or(0, |b| b.max_so_far);
                self.id_blocks.push_back(IdBlock {
                    start: offset,
                    min: u64::MAX,
                    max: 0,
                    max_so_far,
                    ids,
                });
            }
        }
        for (idx, r) in m.recipients.iter().enumerate() {
            let kind = m.kind(idx);
            let entry = EntryRef::new(offset, idx, kind);
            let inbox = self.inbox_mut(m.app, &r.owner);
            if r.seq != inbox.last + 1 {
                return Err(StorageError::Corrupt(format!(
                    "journal: entry {} of {}'s inbox follows {}",
                    r.seq, r.owner, inbox.last
                )));
            }
            inbox.last = r.seq;
            inbox.entries.push_back(entry);

            let block = self.id_blocks.back_mut().expect("pushed above");
            block.min = block.min.min(r.msg_id);
            block.max = block.max.max(r.msg_id);
            block.max_so_far = block.max_so_far.max(r.msg_id);
            self.max_msg_id = self.max_msg_id.max(r.msg_id);

            if kind == EntryKind::SyncCopy {
                continue;
            }
            self.pairs
                .insert(KeyBuf::pair(m.app, &m.from, &r.owner).to_key(), entry);
            if m.conversations {
                self.touch_conversation(m.app, &r.to, &m.from, entry, r.msg_id, 1, m.timestamp_ms);
                if m.from != "admin" {
                    self.touch_conversation(
                        m.app,
                        &m.from,
                        &r.to,
                        entry,
                        r.msg_id,
                        0,
                        m.timestamp_ms,
                    );
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn touch_conversation(
        &mut self,
        app: i64,
        owner: &str,
        peer: &str,
        last: EntryRef,
        msg_id: u64,
        unread: u64,
        at_ms: i64,
    ) {
        let key = KeyBuf::user(app, owner);
        if !self.conversations.contains_key(key.as_slice()) {
            self.conversations.insert(key.to_key(), Map::default());
        }
        let list = self
            .conversations
            .get_mut(key.as_slice())
            .expect("inserted above");
        match list.get_mut(peer) {
            Some(c) => {
                c.last = last;
                c.last_msg_id = msg_id;
                c.unread += unread;
                c.updated_ms = at_ms;
            }
            None => {
                list.insert(
                    Box::from(peer),
                    Conversation {
                        last,
                        last_msg_id: msg_id,
                        unread,
                        updated_ms: at_ms,
                    },
                );
            }
        }
    }

    fn inbox(&self, app: i64, owner: &str) -> Option<&Inbox> {
        self.inboxes.get(KeyBuf::user(app, owner).as_slice())
    }

    /// The newest position of `owner`'s inbox (0 when empty).
    pub fn last_seq(&self, app: i64, owner: &str) -> u64 {
        self.inbox(app, owner).map_or(0, |i| i.last)
    }

    /// Up to `limit` entries of `owner`'s inbox after position `after`,
    /// oldest first, with their positions.
    pub fn inbox_after(
        &self,
        app: i64,
        owner: &str,
        after: u64,
        limit: usize,
    ) -> Vec<(u64, EntryRef)> {
        self.inbox(app, owner)
            .map(|inbox| inbox.after(after).take(limit).collect())
            .unwrap_or_default()
    }

    pub fn device_cursor(&self, app: i64, owner: &str, device: &str) -> Option<u64> {
        self.inbox(app, owner)?.devices.get(device).map(|d| d.acked)
    }

    pub fn user_cursor(&self, app: i64, owner: &str) -> u64 {
        self.inbox(app, owner).map_or(0, Inbox::user_cursor)
    }

    /// Incoming entries (not sync copies or online-only ones) after the
    /// user's furthest acknowledged position.
    pub fn offline_count(&self, app: i64, owner: &str) -> u64 {
        let Some(inbox) = self.inbox(app, owner) else {
            return 0;
        };
        inbox
            .after(inbox.user_cursor())
            .filter(|(_, e)| e.kind() == EntryKind::Incoming)
            .count() as u64
    }

    /// `owner`'s conversations, in no particular order.
    pub fn conversations(&self, app: i64, owner: &str) -> Vec<(String, Conversation)> {
        self.conversations
            .get(KeyBuf::user(app, owner).as_slice())
            .map(|list| list.iter().map(|(p, c)| (p.to_string(), *c)).collect())
            .unwrap_or_default()
    }

    /// The newest entry of the conversation between `a` and `b`.
    pub fn pair_head(&self, app: i64, a: &str, b: &str) -> Option<EntryRef> {
        self.pairs.get(KeyBuf::pair(app, a, b).as_slice()).copied()
    }

    /// The time before which `owner` cleared their history with `peer`.
    pub fn cleared_before(&self, app: i64, owner: &str, peer: &str) -> Option<i64> {
        self.clears
            .get(KeyBuf::clear(app, owner, peer).as_slice())
            .copied()
    }

    /// The log ranges whose message records may carry `msg_id`.
    /// `window` bounds how many blocks past the first possible one are
    /// looked at: ids out of order by more than that many blocks are
    /// refused when written (see `writer`).
    pub fn id_ranges(&self, msg_id: u64, window: usize) -> Vec<(u64, u64)> {
        let first = self
            .id_blocks
            .binary_search_by(|b| {
                if b.max_so_far < msg_id {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            })
            .unwrap_or_else(|i| i);
        let mut out = Vec::new();
        for i in first..self.id_blocks.len().min(first.saturating_add(window)) {
            let b = &self.id_blocks[i];
            if b.min <= msg_id && msg_id <= b.max {
                let end = self
                    .id_blocks
                    .get(i + 1)
                    .map_or(self.applied_to, |next| next.start);
                out.push((b.start, end));
            }
        }
        out
    }
}

impl Inbox {
    fn first_seq(&self) -> u64 {
        self.last + 1 - self.entries.len() as u64
    }

    /// The entries after position `seq`, with their positions.
    fn after(&self, seq: u64) -> impl Iterator<Item = (u64, EntryRef)> + '_ {
        let first = self.first_seq();
        let skip = seq.saturating_add(1).saturating_sub(first) as usize;
        self.entries
            .iter()
            .skip(skip)
            .enumerate()
            .map(move |(i, e)| (first + (skip + i) as u64, *e))
    }

    fn user_cursor(&self) -> u64 {
        self.devices.values().map(|d| d.acked).max().unwrap_or(0)
    }

    /// Forgets the entries every device acknowledged, counting only the
    /// devices heard from within `stale_after` ms of `now_ms` (all if 0). A
    /// user whose only device is stale keeps everything: nothing trims
    /// until some device acknowledges.
    fn trim(&mut self, now_ms: i64, stale_after: i64) {
        let fresh = |d: &&Device| stale_after == 0 || d.updated_ms >= now_ms - stale_after;
        let Some(all_acked) = self.devices.values().filter(fresh).map(|d| d.acked).min() else {
            return;
        };
        let first = self.first_seq();
        let drop = all_acked.saturating_add(1).saturating_sub(first) as usize;
        if drop > 0 {
            self.entries = self.entries.skip(drop.min(self.entries.len()));
        }
    }
}

/// A map key on the stack: an app id and one or two names, each name
/// preceded by its length so that no two pairs of names collide. Usernames
/// are at most 64 bytes; longer keys go to the heap.
pub(crate) struct KeyBuf {
    len: usize,
    inline: [u8; 160],
    heap: Vec<u8>,
}

impl KeyBuf {
    fn with(app: i64, names: &[&str]) -> Self {
        let mut k = KeyBuf {
            len: 0,
            inline: [0; 160],
            heap: Vec::new(),
        };
        k.push(&app.to_be_bytes());
        for n in names {
            k.push(&(n.len() as u32).to_be_bytes());
            k.push(n.as_bytes());
        }
        k
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.heap.is_empty() && self.len + bytes.len() <= self.inline.len() {
            self.inline[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.inline[..self.len]);
            }
            self.heap.extend_from_slice(bytes);
        }
        self.len += bytes.len();
    }

    pub fn user(app: i64, name: &str) -> Self {
        Self::with(app, &[name])
    }

    /// The conversation between `a` and `b`, whichever is named first.
    pub fn pair(app: i64, a: &str, b: &str) -> Self {
        if a <= b {
            Self::with(app, &[a, b])
        } else {
            Self::with(app, &[b, a])
        }
    }

    /// `owner`'s side of the conversation with `peer`.
    fn clear(app: i64, owner: &str, peer: &str) -> Self {
        Self::with(app, &[owner, peer])
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    pub fn to_key(&self) -> Key {
        Box::from(self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{ConversationRecord, CursorRecord, MessageRecord};
    use chatd_core::{MessageType, NewMessage, Recipient, SendOptions};
    use std::borrow::Cow;

    fn message(
        from: &str,
        to: &str,
        msg_id: u64,
        seq: u64,
        sync_seq: Option<u64>,
    ) -> Record<'static> {
        let mut recipients = vec![Recipient::incoming(to, from, msg_id, false)];
        let mut links = vec![(seq, EntryRef::NONE)];
        if let Some(s) = sync_seq {
            recipients.push(Recipient::sync_copy(from, to, msg_id));
            links.push((s, EntryRef::NONE));
        }
        let msg = NewMessage {
            app: 1,
            from: from.into(),
            recipients,
            msg_type: MessageType::Txt,
            body: "{}".into(),
            ext: None,
            timestamp_ms: msg_id as i64,
            options: SendOptions::default(),
            conversations: true,
        };
        // Tests may leak: the record borrows its message.
        let msg: &'static NewMessage = Box::leak(Box::new(msg));
        Record::Message(MessageRecord::of(msg, &links))
    }

    fn cursor(owner: &str, device: &str, seq: u64) -> Record<'static> {
        Record::Cursor(CursorRecord {
            app: 1,
            owner: Cow::Owned(owner.into()),
            device: Cow::Owned(device.into()),
            seq,
            at_ms: 5,
        })
    }

    #[test]
    fn inboxes_keep_what_some_device_may_still_ask_for() {
        let mut s = State::default();
        for i in 1..=5 {
            s.apply(&message("a", "b", 100 + i, i, None), i * 100, i * 100 + 50)
                .unwrap();
        }
        assert_eq!(s.applied_to, 550);
        assert_eq!(s.last_seq(1, "b"), 5);
        let after2: Vec<u64> = s.inbox_after(1, "b", 2, 2).iter().map(|e| e.0).collect();
        assert_eq!(after2, vec![3, 4]);
        assert_eq!(s.inbox_after(1, "b", 2, 2)[0].1.offset(), 300);
        assert_eq!(s.offline_count(1, "b"), 5);

        s.apply(&cursor("b", "phone", 3), 600, 610).unwrap();
        assert_eq!(s.user_cursor(1, "b"), 3);
        assert_eq!(s.offline_count(1, "b"), 2);
        // Only one device: what it acknowledged is gone from memory.
        assert_eq!(s.inbox(1, "b").unwrap().entries.len(), 2);
        assert_eq!(s.inbox_after(1, "b", 3, 10).len(), 2);

        s.apply(&cursor("b", "web", 1), 610, 620).unwrap();
        s.apply(&cursor("b", "phone", 2), 620, 630).unwrap();
        assert_eq!(s.device_cursor(1, "b", "phone"), Some(3), "never backwards");
        assert_eq!(s.device_cursor(1, "b", "tv"), None);
        s.apply(&cursor("b", "web", 4), 630, 640).unwrap();
        s.apply(&cursor("b", "phone", 5), 640, 650).unwrap();
        assert_eq!(
            s.inbox(1, "b").unwrap().entries.len(),
            1,
            "web still lacks 5"
        );
        assert_eq!(s.inbox_after(1, "b", 4, 10)[0].0, 5);
        assert_eq!(s.offline_count(1, "b"), 0);
    }

    #[test]
    fn an_entry_out_of_sequence_is_refused() {
        let mut s = State::default();
        s.apply(&message("a", "b", 1, 1, None), 0, 10).unwrap();
        assert!(s.apply(&message("a", "b", 2, 3, None), 10, 20).is_err());
    }

    #[test]
    fn conversations_pairs_and_clears() {
        let mut s = State::default();
        s.apply(&message("a", "b", 10, 1, Some(1)), 0, 10).unwrap();
        s.apply(&message("b", "a", 20, 2, Some(2)), 10, 20).unwrap();
        let head = s.pair_head(1, "b", "a").unwrap();
        assert_eq!((head.offset(), head.idx()), (10, 0));
        assert_eq!(s.pair_head(1, "a", "b"), Some(head));
        assert_eq!(s.pair_head(1, "a", "c"), None);
        let b = s.conversations(1, "b");
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].0.as_str(), b[0].1.unread, b[0].1.last_msg_id),
            ("a", 1, 20)
        );

        let conv = |owner: &str, peer: &str| ConversationRecord {
            app: 1,
            owner: Cow::Owned(owner.into()),
            peer: Cow::Owned(peer.into()),
            at_ms: 99,
        };
        assert_eq!(
            s.apply(&Record::MarkRead(conv("b", "a")), 20, 25).unwrap(),
            Applied::Existed(true)
        );
        assert_eq!(s.conversations(1, "b")[0].1.unread, 0);
        assert_eq!(
            s.apply(&Record::MarkRead(conv("b", "z")), 25, 30).unwrap(),
            Applied::Existed(false)
        );
        let del = Record::DeleteConversation(conv("b", "a"), true);
        assert_eq!(s.apply(&del, 30, 35).unwrap(), Applied::Existed(true));
        assert_eq!(s.apply(&del, 35, 40).unwrap(), Applied::Existed(false));
        assert!(s.conversations(1, "b").is_empty());
        assert_eq!(s.cleared_before(1, "b", "a"), Some(99));
        assert_eq!(s.cleared_before(1, "a", "b"), None);
        assert_eq!(s.conversations(1, "a").len(), 1);
    }

    #[test]
    fn keys_of_different_names_never_collide() {
        assert_ne!(
            KeyBuf::pair(1, "ab", "c").as_slice(),
            KeyBuf::pair(1, "a", "bc").as_slice()
        );
        assert_ne!(
            KeyBuf::user(1, "a").as_slice(),
            KeyBuf::user(2, "a").as_slice()
        );
        let long = "x".repeat(300);
        let k = KeyBuf::pair(7, &long, "y");
        assert_eq!(k.as_slice().len(), 8 + 4 + 1 + 4 + 300);
        assert_eq!(&*k.to_key(), k.as_slice());
    }

    #[test]
    fn the_id_index_finds_the_blocks_of_an_id() {
        let mut s = State::default();
        // 300 messages, ids slightly out of order in pairs.
        let mut offset = 0;
        for i in 0..300u64 {
            let id = if i % 2 == 0 {
                1000 + i + 1
            } else {
                1000 + i - 1
            };
            s.apply(&message("a", "b", id, i + 1, None), offset, offset + 10)
                .unwrap();
            offset += 10;
        }
        for id in [1000u64, 1001, 1150, 1299] {
            let ranges = s.id_ranges(id, 8);
            assert!(!ranges.is_empty(), "{id}");
            let holds = ranges.iter().any(|(start, end)| {
                (0..300u64).any(|i| {
                    let this = if i % 2 == 0 {
                        1000 + i + 1
                    } else {
                        1000 + i - 1
                    };
                    this == id && (*start..*end).contains(&(i * 10))
                })
            });
            assert!(holds, "{id} not in {ranges:?}");
        }
        assert!(s.id_ranges(5000, 8).is_empty());
        assert!(s.id_ranges(10, 8).is_empty());
        assert_eq!(s.max_msg_id, 1299);
    }

    #[test]
    fn a_late_id_is_found_within_the_window_when_sync_copies_share_ids() {
        // A block counts entries; with a sync copy beside every message it
        // holds half as many distinct ids, and the window must still reach
        // an id as late as the writer lets through.
        let mut s = State::default();
        let mut offset = 0;
        s.apply(
            &message("a", "b", 1_000_000, 1, Some(1)),
            offset,
            offset + 10,
        )
        .unwrap();
        let late = super::super::writer::RECENT_IDS as u64 - 1;
        for i in 1..=late {
            offset += 10;
            let r = message("a", "b", 1_000_000 + i, i + 1, Some(i + 1));
            s.apply(&r, offset, offset + 10).unwrap();
        }
        offset += 10;
        let r = message("a", "b", 999_999, late + 2, Some(late + 2));
        s.apply(&r, offset, offset + 10).unwrap();
        let ranges = s.id_ranges(999_999, super::super::ID_WINDOW_BLOCKS);
        assert!(
            ranges
                .iter()
                .any(|(start, end)| (*start..*end).contains(&offset)),
            "{ranges:?} misses {offset}"
        );
    }

    #[test]
    fn a_stale_device_stops_holding_what_the_others_acknowledged() {
        let day = 24 * 3600 * 1000;
        let ack = |device: &str, seq: u64, at_ms: i64| {
            Record::Cursor(CursorRecord {
                app: 1,
                owner: Cow::Owned("b".into()),
                device: Cow::Owned(device.into()),
                seq,
                at_ms,
            })
        };
        let mut s = State {
            stale_device_ms: 30 * day,
            ..State::default()
        };
        let mut offset = 0;
        for seq in 1..=10u64 {
            s.apply(&message("a", "b", seq, seq, None), offset, offset + 10)
                .unwrap();
            offset += 10;
        }
        let mut apply = |s: &mut State, r: &Record<'_>| {
            s.apply(r, offset, offset + 10).unwrap();
            offset += 10;
        };
        apply(&mut s, &ack("old", 2, 0));
        apply(&mut s, &ack("phone", 9, 29 * day));
        assert_eq!(
            s.inbox_after(1, "b", 0, 100).len(),
            8,
            "old is not stale yet"
        );
        apply(&mut s, &ack("phone", 9, 31 * day));
        assert_eq!(
            s.inbox_after(1, "b", 0, 100)
                .iter()
                .map(|(seq, _)| *seq)
                .collect::<Vec<_>>(),
            vec![10],
            "old is stale: only what phone has not acknowledged is kept"
        );
        // Back again, old reads on from the first entry kept.
        assert_eq!(s.inbox_after(1, "b", 2, 100).len(), 1);
        // Without the setting, a device holds its entries for ever.
        let mut never = State::default();
        for seq in 1..=3u64 {
            never
                .apply(&message("a", "b", seq, seq, None), seq * 10, seq * 10 + 10)
                .unwrap();
        }
        never.apply(&ack("old", 1, 0), 40, 50).unwrap();
        never.apply(&ack("phone", 3, 365 * day), 50, 60).unwrap();
        assert_eq!(never.inbox_after(1, "b", 0, 100).len(), 2);
    }

    #[test]
    fn a_clone_is_a_snapshot() {
        let mut s = State::default();
        s.apply(&message("a", "b", 1, 1, None), 0, 10).unwrap();
        let snap = s.clone();
        s.apply(&message("a", "b", 2, 2, None), 10, 20).unwrap();
        assert_eq!(snap.last_seq(1, "b"), 1);
        assert_eq!(s.last_seq(1, "b"), 2);
        assert_eq!(snap.applied_to, 10);
    }
}
