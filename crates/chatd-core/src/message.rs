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

/// One recipient of a message with the id the message has for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Canonical (lowercase) username: the inbox owner.
    pub username: String,
    pub msg_id: u64,
}

/// A validated message, ready to be stored once with one inbox entry per
/// recipient.
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
