//! Records the store returns.

use chatd_core::{MessageType, SendOptions, UserRecord};

/// The outcome of creating one user of a batch.
#[derive(Debug, Clone)]
pub enum UserInsert {
    Created(UserRecord),
    /// The (lowercase) username is taken.
    Exists(String),
}

/// One message in one user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    pub seq: u64,
    pub msg_id: u64,
    pub from: String,
    pub to: String,
    pub msg_type: MessageType,
    pub body: String,
    pub ext: Option<String>,
    pub timestamp_ms: i64,
    pub options: SendOptions,
}
