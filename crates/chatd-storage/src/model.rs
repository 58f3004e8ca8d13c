//! Records the store returns.

use chatd_core::{InboxEntry, UserRecord};

/// The outcome of creating one user of a batch.
#[derive(Debug, Clone)]
pub enum UserInsert {
    Created(UserRecord),
    /// The (lowercase) username is taken.
    Exists(String),
}

/// One entry of a user's conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub peer: String,
    /// Messages from the peer not yet read.
    pub unread: u64,
    pub updated_ms: i64,
    /// The last message exchanged, either way.
    pub last: InboxEntry,
}
