//! What the journal writes: one record per write request, framed on disk as
//! `[payload length: u32 LE][CRC-32C of the payload: u32 LE][payload]`, the
//! payload being the record in postcard encoding.
//!
//! The on-disk structs are the journal's own, not the domain types of
//! `chatd-core`, so that a change to those never changes the file format
//! unnoticed. Strings are `Cow`s: a record is built borrowing a request's
//! strings, and read back borrowing them from the read buffer.

use crate::{Result, StorageError};
use chatd_core::{EntryKind, InboxEntry, MessageType, NewMessage, Origin, SendOptions};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Bytes before each payload: its length and its checksum.
pub(crate) const FRAME_HEADER: usize = 8;
/// Largest payload a frame may announce. A message has at most 1 200
/// recipients (600, and a sync copy of each) and 5 KB of content: far below.
pub(crate) const MAX_PAYLOAD: usize = 4 << 20;
/// Length of the frame of [`Record::SegmentEnd`].
pub(crate) const SEGMENT_END_FRAME: usize = FRAME_HEADER + 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) enum Record<'a> {
    Message(#[serde(borrow)] MessageRecord<'a>),
    /// A device acknowledged its inbox up to `seq`.
    Cursor(#[serde(borrow)] CursorRecord<'a>),
    /// The owner read the conversation with the peer.
    MarkRead(#[serde(borrow)] ConversationRecord<'a>),
    /// The owner removed the conversation from their list; with
    /// `clear_history`, its messages so far leave their history too.
    DeleteConversation(#[serde(borrow)] ConversationRecord<'a>, bool),
    /// Nothing follows in this segment: the log goes on in the next one.
    SegmentEnd,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct MessageRecord<'a> {
    pub app: i64,
    #[serde(borrow)]
    pub from: Cow<'a, str>,
    pub msg_type: u8,
    #[serde(borrow)]
    pub body: Cow<'a, str>,
    pub ext: Option<Cow<'a, str>>,
    pub timestamp_ms: i64,
    pub options: OptionsRecord<'a>,
    pub conversations: bool,
    pub recipients: Vec<RecipientRecord<'a>>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct OptionsRecord<'a> {
    pub sync_device: bool,
    pub route_online: bool,
    pub ignore_notification: bool,
    /// 0 REST, 1 a client connection.
    pub origin: u8,
    pub roam_ignore_users: Vec<Cow<'a, str>>,
    pub origin_device: Option<Cow<'a, str>>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct RecipientRecord<'a> {
    #[serde(borrow)]
    pub owner: Cow<'a, str>,
    #[serde(borrow)]
    pub peer: Cow<'a, str>,
    #[serde(borrow)]
    pub to: Cow<'a, str>,
    pub msg_id: u64,
    /// [`EntryKind::code`].
    pub kind: u8,
    /// Position in the owner's inbox.
    pub seq: u64,
    /// The previous entry of the same one-to-one conversation, either way
    /// ([`EntryRef::NONE`] for the first one and for sync copies, which are
    /// not part of a conversation's history).
    pub prev: EntryRef,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct CursorRecord<'a> {
    pub app: i64,
    #[serde(borrow)]
    pub owner: Cow<'a, str>,
    #[serde(borrow)]
    pub device: Cow<'a, str>,
    pub seq: u64,
    pub at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct ConversationRecord<'a> {
    pub app: i64,
    #[serde(borrow)]
    pub owner: Cow<'a, str>,
    #[serde(borrow)]
    pub peer: Cow<'a, str>,
    pub at_ms: i64,
}

/// Where one recipient entry of a message record is: the record's log
/// offset, the recipient's index in it, and its kind, packed in 64 bits
/// (offsets up to 2^50 bytes, 4 096 recipients per record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct EntryRef(u64);

impl EntryRef {
    pub const NONE: EntryRef = EntryRef(u64::MAX);
    pub const MAX_RECIPIENTS: usize = 1 << 12;
    pub const MAX_OFFSET: u64 = 1 << 50;

    pub fn new(offset: u64, idx: usize, kind: EntryKind) -> Self {
        debug_assert!(offset < Self::MAX_OFFSET && idx < Self::MAX_RECIPIENTS);
        EntryRef(offset << 14 | (idx as u64) << 2 | kind.code() as u64)
    }

    pub fn is_none(self) -> bool {
        self == Self::NONE
    }

    pub fn offset(self) -> u64 {
        self.0 >> 14
    }

    pub fn idx(self) -> usize {
        ((self.0 >> 2) & (Self::MAX_RECIPIENTS as u64 - 1)) as usize
    }

    pub fn kind(self) -> EntryKind {
        EntryKind::from_code((self.0 & 3) as i64).unwrap_or(EntryKind::Incoming)
    }
}

fn type_code(t: MessageType) -> u8 {
    MessageType::ALL.iter().position(|x| *x == t).unwrap_or(0) as u8
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("journal record: {what}"))
}

impl<'a> MessageRecord<'a> {
    /// The record of `msg`, borrowing its strings; `links[i]` is the inbox
    /// position and conversation link of recipient `i`.
    pub fn of(msg: &'a NewMessage, links: &[(u64, EntryRef)]) -> Self {
        let o = &msg.options;
        MessageRecord {
            app: msg.app,
            from: Cow::Borrowed(&msg.from),
            msg_type: type_code(msg.msg_type),
            body: Cow::Borrowed(&msg.body),
            ext: msg.ext.as_deref().map(Cow::Borrowed),
            timestamp_ms: msg.timestamp_ms,
            options: OptionsRecord {
                sync_device: o.sync_device,
                route_online: o.route_online,
                ignore_notification: o.ignore_notification,
                origin: match o.origin {
                    Origin::Rest => 0,
                    Origin::Client => 1,
                },
                roam_ignore_users: o
                    .roam_ignore_users
                    .iter()
                    .map(|u| Cow::Borrowed(u.as_str()))
                    .collect(),
                origin_device: o.origin_device.as_deref().map(Cow::Borrowed),
            },
            conversations: msg.conversations,
            recipients: msg
                .recipients
                .iter()
                .zip(links)
                .map(|(r, &(seq, prev))| RecipientRecord {
                    owner: Cow::Borrowed(&r.owner),
                    peer: Cow::Borrowed(&r.peer),
                    to: Cow::Borrowed(&r.to),
                    msg_id: r.msg_id,
                    kind: r.kind.code() as u8,
                    seq,
                    prev,
                })
                .collect(),
        }
    }
}

impl MessageRecord<'_> {
    pub fn kind(&self, idx: usize) -> EntryKind {
        EntryKind::from_code(i64::from(self.recipients[idx].kind)).unwrap_or(EntryKind::Incoming)
    }

    fn options(&self) -> SendOptions {
        let o = &self.options;
        SendOptions {
            sync_device: o.sync_device,
            route_online: o.route_online,
            roam_ignore_users: o.roam_ignore_users.iter().map(|u| u.to_string()).collect(),
            ignore_notification: o.ignore_notification,
            origin: if o.origin == 1 {
                Origin::Client
            } else {
                Origin::Rest
            },
            origin_device: o.origin_device.as_deref().map(str::to_string),
        }
    }

    pub fn hidden_from(&self, user: &str) -> bool {
        self.options.roam_ignore_users.iter().any(|u| u == user)
    }

    /// Recipient `idx`'s copy, as its inbox holds it.
    pub fn entry(&self, idx: usize) -> Result<InboxEntry> {
        let r = self
            .recipients
            .get(idx)
            .ok_or_else(|| corrupt(format!("no recipient {idx}")))?;
        Ok(InboxEntry {
            seq: r.seq,
            msg_id: r.msg_id,
            owner: r.owner.to_string(),
            from: self.from.to_string(),
            to: r.to.to_string(),
            kind: EntryKind::from_code(i64::from(r.kind))
                .ok_or_else(|| corrupt(format!("entry kind {}", r.kind)))?,
            msg_type: *MessageType::ALL
                .get(usize::from(self.msg_type))
                .ok_or_else(|| corrupt(format!("message type {}", self.msg_type)))?,
            body: self.body.to_string(),
            ext: self.ext.as_deref().map(str::to_string),
            timestamp_ms: self.timestamp_ms,
            options: self.options(),
        })
    }
}

/// Appends the framed `record` to `out`; returns the frame's length.
pub(crate) fn frame(record: &Record<'_>, out: &mut Vec<u8>) -> Result<usize> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    if let Err(e) = postcard::to_io(record, &mut *out) {
        out.truncate(start);
        return Err(corrupt(e));
    }
    let len = out.len() - start - FRAME_HEADER;
    if len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(corrupt(format!("{len} bytes is too large a record")));
    }
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

/// What the bytes at a record position hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A whole, intact frame of this many bytes, header included.
    Record(usize),
    /// Zeros: nothing was written here.
    Empty,
    /// A frame whose payload runs past the bytes given: read this many.
    Incomplete(usize),
    /// Not a frame that was written whole: a torn write or damage.
    Invalid,
}

/// Checks the frame at the start of `buf`.
pub(crate) fn check_frame(buf: &[u8]) -> Frame {
    if buf.len() < FRAME_HEADER {
        return if buf.iter().all(|b| *b == 0) {
            Frame::Empty
        } else {
            Frame::Incomplete(FRAME_HEADER)
        };
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        return if crc == 0 {
            Frame::Empty
        } else {
            Frame::Invalid
        };
    }
    if len > MAX_PAYLOAD {
        return Frame::Invalid;
    }
    let total = FRAME_HEADER + len;
    if buf.len() < total {
        return Frame::Incomplete(total);
    }
    if crc32c::crc32c(&buf[FRAME_HEADER..total]) == crc {
        Frame::Record(total)
    } else {
        Frame::Invalid
    }
}

/// The record in a frame that [`check_frame`] found whole.
pub(crate) fn decode(frame: &[u8]) -> Result<Record<'_>> {
    postcard::from_bytes(&frame[FRAME_HEADER..]).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatd_core::Recipient;

    fn sample() -> NewMessage {
        NewMessage {
            app: 3,
            from: "Ann".into(),
            recipients: vec![
                Recipient::incoming("bob", "ann", 77, false),
                Recipient::sync_copy("ann", "bob", 77),
            ],
            msg_type: MessageType::Loc,
            body: r#"{"lat":"1","lng":"2","addr":"x"}"#.into(),
            ext: Some(r#"{"k":[1,null]}"#.into()),
            timestamp_ms: 1_700_000_000_123,
            options: SendOptions {
                sync_device: true,
                route_online: false,
                roam_ignore_users: vec!["zed".into()],
                ignore_notification: true,
                origin: Origin::Client,
                origin_device: Some("phone".into()),
            },
            conversations: true,
        }
    }

    #[test]
    fn a_message_reads_back_as_the_entries_it_was_made_of() {
        let msg = sample();
        let links = [
            (4, EntryRef::new(1000, 0, EntryKind::Incoming)),
            (9, EntryRef::NONE),
        ];
        let rec = Record::Message(MessageRecord::of(&msg, &links));
        let mut buf = vec![7u8; 3];
        let n = frame(&rec, &mut buf).unwrap();
        assert_eq!(buf.len(), 3 + n);
        assert_eq!(check_frame(&buf[3..]), Frame::Record(n));
        let back = decode(&buf[3..]).unwrap();
        assert_eq!(back, rec);
        let Record::Message(m) = back else {
            panic!("not a message")
        };
        let e = m.entry(0).unwrap();
        assert_eq!(
            (
                e.seq,
                e.msg_id,
                e.owner.as_str(),
                e.from.as_str(),
                e.to.as_str()
            ),
            (4, 77, "bob", "Ann", "bob")
        );
        assert_eq!(
            (e.kind, e.msg_type),
            (EntryKind::Incoming, MessageType::Loc)
        );
        assert_eq!((e.body, e.ext), (msg.body.clone(), msg.ext.clone()));
        assert_eq!(e.options, msg.options);
        assert_eq!(e.timestamp_ms, msg.timestamp_ms);
        assert_eq!(m.entry(1).unwrap().kind, EntryKind::SyncCopy);
        assert_eq!(m.recipients[0].prev.offset(), 1000);
        assert!(m.recipients[1].prev.is_none());
        assert!(m.entry(2).is_err());
    }

    #[test]
    fn frames_tell_written_from_empty_and_torn() {
        let mut buf = Vec::new();
        frame(&Record::SegmentEnd, &mut buf).unwrap();
        assert_eq!(buf.len(), SEGMENT_END_FRAME);
        assert_eq!(check_frame(&buf), Frame::Record(SEGMENT_END_FRAME));
        assert_eq!(check_frame(&[0; 16]), Frame::Empty);
        assert_eq!(check_frame(&[0; 3]), Frame::Empty);
        assert_eq!(check_frame(&buf[..5]), Frame::Incomplete(FRAME_HEADER));
        assert_eq!(check_frame(&buf[..8]), Frame::Incomplete(SEGMENT_END_FRAME));
        let mut flipped = buf.clone();
        flipped[8] ^= 1;
        assert_eq!(check_frame(&flipped), Frame::Invalid);
        let mut huge = buf.clone();
        huge[3] = 0xff;
        assert_eq!(check_frame(&huge), Frame::Invalid);
        let mut zero_len = vec![0u8; 12];
        zero_len[5] = 1;
        assert_eq!(check_frame(&zero_len), Frame::Invalid);
    }

    #[test]
    fn entry_refs_pack_offset_index_and_kind() {
        let r = EntryRef::new(EntryRef::MAX_OFFSET - 1, 4095, EntryKind::SyncCopy);
        assert_eq!(r.offset(), EntryRef::MAX_OFFSET - 1);
        assert_eq!(r.idx(), 4095);
        assert_eq!(r.kind(), EntryKind::SyncCopy);
        assert!(!r.is_none());
        let r = EntryRef::new(0, 0, EntryKind::OnlineOnly);
        assert_eq!(
            (r.offset(), r.idx(), r.kind()),
            (0, 0, EntryKind::OnlineOnly)
        );
    }
}
