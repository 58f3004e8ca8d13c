//! One-to-one messages as the pipeline hands them to storage.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The eight message types of the send API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Txt,
    Img,
    Audio,
    Video,
    File,
    Loc,
    Cmd,
    Custom,
}

impl MessageType {
    pub const ALL: [MessageType; 8] = [
        MessageType::Txt,
        MessageType::Img,
        MessageType::Audio,
        MessageType::Video,
        MessageType::File,
        MessageType::Loc,
        MessageType::Cmd,
        MessageType::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Txt => "txt",
            MessageType::Img => "img",
            MessageType::Audio => "audio",
            MessageType::Video => "video",
            MessageType::File => "file",
            MessageType::Loc => "loc",
            MessageType::Cmd => "cmd",
            MessageType::Custom => "custom",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        MessageType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// The delivery options of the send API, stored with every message so that
/// delivery can honour them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOptions {
    /// `sync_device`: copy the message to the sender's online devices.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync_device: bool,
    /// `routetype: ROUTE_ONLINE`: only recipients online at send time get it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub route_online: bool,
    /// `roam_ignore_users`: these users do not see it in history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roam_ignore_users: Vec<String>,
    /// `ext.em_ignore_notification`: no offline push.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_notification: bool,
    /// Where the message came from (`rest` or `client`).
    #[serde(default)]
    pub origin: Origin,
    /// The device that sent it, for messages from a client connection: that
    /// device already has the message and is not sent its own copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_device: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The entry point a message came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    #[default]
    Rest,
    Client,
}

/// What an inbox entry is to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A message to the owner, kept until a device of theirs takes it.
    Incoming,
    /// A message to the owner sent with `routetype: ROUTE_ONLINE`: only
    /// devices online at send time get it.
    OnlineOnly,
    /// The owner's own message, copied to their other devices that were
    /// online at send time (`sync_device`, or multi-device sync).
    SyncCopy,
}

impl EntryKind {
    pub fn code(self) -> i64 {
        match self {
            EntryKind::Incoming => 0,
            EntryKind::OnlineOnly => 1,
            EntryKind::SyncCopy => 2,
        }
    }

    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(EntryKind::Incoming),
            1 => Some(EntryKind::OnlineOnly),
            2 => Some(EntryKind::SyncCopy),
            _ => None,
        }
    }

    /// Whether only devices online at send time may receive it.
    pub fn online_only(self) -> bool {
        !matches!(self, EntryKind::Incoming)
    }
}

/// One inbox entry to write for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Canonical (lowercase) username of the inbox owner.
    pub owner: String,
    /// The other side of the conversation, from the owner's point of view.
    pub peer: String,
    /// The message's recipient (the owner, except for sync copies).
    pub to: String,
    pub msg_id: u64,
    pub kind: EntryKind,
}

impl Recipient {
    /// The recipient's own copy of a message from `from`.
    pub fn incoming(to: &str, from: &str, msg_id: u64, online_only: bool) -> Self {
        Self {
            owner: to.to_string(),
            peer: from.to_string(),
            to: to.to_string(),
            msg_id,
            kind: if online_only {
                EntryKind::OnlineOnly
            } else {
                EntryKind::Incoming
            },
        }
    }

    /// The sender's copy of its message to `to`.
    pub fn sync_copy(from: &str, to: &str, msg_id: u64) -> Self {
        Self {
            owner: from.to_string(),
            peer: to.to_string(),
            to: to.to_string(),
            msg_id,
            kind: EntryKind::SyncCopy,
        }
    }
}

/// One message as an inbox holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    pub seq: u64,
    pub msg_id: u64,
    pub owner: String,
    pub from: String,
    pub to: String,
    pub kind: EntryKind,
    pub msg_type: MessageType,
    /// Compact JSON of `body`.
    pub body: String,
    /// Compact JSON of `ext`.
    pub ext: Option<String>,
    pub timestamp_ms: i64,
    pub options: SendOptions,
}

/// A validated message, ready to be stored once with one inbox entry per
/// [`Recipient`].
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub app: i64,
    pub from: String,
    pub recipients: Vec<Recipient>,
    pub msg_type: MessageType,
    /// Compact JSON of `body`.
    pub body: String,
    /// Compact JSON of `ext`, if given.
    pub ext: Option<String>,
    pub timestamp_ms: i64,
    pub options: SendOptions,
    /// Whether the message enters the conversation lists of its sender and
    /// recipients.
    pub conversations: bool,
}

/// Where a recipient's copy landed: its position in the recipient's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecipient {
    pub msg_id: u64,
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_names() {
        for t in MessageType::ALL {
            assert_eq!(t.as_str().parse::<MessageType>(), Ok(t));
        }
        assert!("text".parse::<MessageType>().is_err());
    }
}
