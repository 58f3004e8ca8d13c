//! How records are laid out as keys and values in the LSM store.
//!
//! Keys sort the way they are read: integers are big-endian, and a string
//! inside a key ends with a 0 byte (usernames and device ids never hold one),
//! so that every key of one owner shares a prefix and `seq`s or message ids
//! that follow it sort numerically.

use crate::{Result, StorageError};
use chatd_core::EntryKind;

/// A key under construction.
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn app(app: i64) -> Self {
        let mut k = Vec::with_capacity(32);
        k.extend_from_slice(&(app as u64).to_be_bytes());
        Key(k)
    }

    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn str(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }

    pub(crate) fn done(self) -> Vec<u8> {
        self.0
    }
}

/// `app | owner` — the prefix of one owner's inbox, devices or conversations.
pub(crate) fn owner_prefix(app: i64, owner: &str) -> Vec<u8> {
    Key::app(app).str(owner).done()
}

/// `app | owner | seq`
pub(crate) fn inbox_key(app: i64, owner: &str, seq: u64) -> Vec<u8> {
    Key::app(app).str(owner).u64(seq).done()
}

/// `app | owner | peer | msg_id` — one side's copy of a conversation's message.
pub(crate) fn conv_entry_key(app: i64, owner: &str, peer: &str, msg_id: u64) -> Vec<u8> {
    Key::app(app).str(owner).str(peer).u64(msg_id).done()
}

/// `app | owner | peer` — a conversation-list row or a history clear.
pub(crate) fn pair_key(app: i64, owner: &str, peer: &str) -> Vec<u8> {
    Key::app(app).str(owner).str(peer).done()
}

/// `app | owner | device`
pub(crate) fn device_key(app: i64, owner: &str, device: &str) -> Vec<u8> {
    Key::app(app).str(owner).str(device).done()
}

/// `app | username`
pub(crate) fn user_key(app: i64, username: &str) -> Vec<u8> {
    Key::app(app).str(username).done()
}

/// `msg_id | app` — where a recipient's copy of a message is.
pub(crate) fn by_msg_key(msg_id: u64, app: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.extend_from_slice(&msg_id.to_be_bytes());
    k.extend_from_slice(&(app as u64).to_be_bytes());
    k
}

/// The trailing big-endian integer of a key.
pub(crate) fn trailing_u64(key: &[u8]) -> Result<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::Corrupt("short key".into()))
}

pub(crate) fn u64_value(v: &[u8]) -> Result<u64> {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::Corrupt("short value".into()))
}

/// The value of an inbox entry: what the entry adds to its message.
///
/// Binary rather than JSON because it is written for every recipient of
/// every message and its first byte (the kind) is read alone when counting
/// offline messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InboxValue {
    pub kind: EntryKind,
    pub msg_id: u64,
    /// Key of the stored message in the `messages` keyspace.
    pub message: u64,
    pub peer: String,
    pub to: String,
}

impl InboxValue {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 16 + 4 + self.peer.len() + self.to.len());
        v.push(self.kind.code() as u8);
        v.extend_from_slice(&self.msg_id.to_be_bytes());
        v.extend_from_slice(&self.message.to_be_bytes());
        put_str(&mut v, &self.peer);
        put_str(&mut v, &self.to);
        v
    }

    pub(crate) fn decode(v: &[u8]) -> Result<Self> {
        let bad = || StorageError::Corrupt("inbox entry".into());
        let kind = v
            .first()
            .and_then(|k| EntryKind::from_code(i64::from(*k)))
            .ok_or_else(bad)?;
        let msg_id = u64_value(v.get(1..).ok_or_else(bad)?)?;
        let message = u64_value(v.get(9..).ok_or_else(bad)?)?;
        let mut rest = v.get(17..).ok_or_else(bad)?;
        let peer = take_str(&mut rest).ok_or_else(bad)?;
        let to = take_str(&mut rest).ok_or_else(bad)?;
        Ok(Self {
            kind,
            msg_id,
            message,
            peer,
            to,
        })
    }

    /// The kind alone, from the first byte.
    pub(crate) fn kind_of(v: &[u8]) -> Option<EntryKind> {
        v.first().and_then(|k| EntryKind::from_code(i64::from(*k)))
    }
}

/// Where a message's copy is: the value of the `by_msg` and `by_conv`
/// indexes.
pub(crate) fn entry_ref(owner: &str, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + owner.len());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(owner.as_bytes());
    v
}

pub(crate) fn decode_entry_ref(v: &[u8]) -> Result<(String, u64)> {
    let seq = u64_value(v)?;
    let owner = std::str::from_utf8(&v[8..])
        .map_err(|_| StorageError::Corrupt("entry owner".into()))?
        .to_string();
    Ok((owner, seq))
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
}

fn take_str(rest: &mut &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_string();
    *rest = &rest[4 + len..];
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_values_round_trip() {
        let v = InboxValue {
            kind: EntryKind::SyncCopy,
            msg_id: 7,
            message: 6,
            peer: "bob".into(),
            to: "".into(),
        };
        assert_eq!(InboxValue::decode(&v.encode()).unwrap(), v);
        assert_eq!(InboxValue::kind_of(&v.encode()), Some(EntryKind::SyncCopy));
        assert!(InboxValue::decode(&v.encode()[..10]).is_err());
    }

    #[test]
    fn an_owners_keys_sort_by_sequence_and_stay_apart_from_longer_names() {
        let a9 = inbox_key(1, "a", 9);
        let a10 = inbox_key(1, "a", 10);
        let ab1 = inbox_key(1, "ab", 1);
        assert!(a9 < a10);
        assert!(a10 < ab1);
        assert!(a10.starts_with(&owner_prefix(1, "a")));
        assert!(!ab1.starts_with(&owner_prefix(1, "a")));
        assert_eq!(trailing_u64(&a10).unwrap(), 10);
    }
}
