//! chatd storage.
//!
//! [`Store`] is the narrow seam between chatd and its database. The embedded
//! default, [`journal::JournalStore`], is an append-only log of records with
//! an index in memory; [`sqlite::SqliteStore`] keeps everything in one
//! SQLite file instead (`storage_engine = "sqlite"`). Both live in the data
//! directory. A PostgreSQL implementation for clusters would implement the
//! same trait.
//!
//! Durability contract: when a write method returns `Ok`, the change has been
//! written and fsynced. Concurrent writes are group-committed: one write and
//! one fsync per batch.

pub mod apps;
mod error;
mod io_priority;
pub mod journal;
pub mod model;
mod queue;
pub mod sqlite;
mod users;

#[cfg(test)]
mod contract;

pub use apps::{AppStore, SqliteApps};
pub use chatd_core::InboxEntry;
pub use error::StorageError;
pub use journal::{JournalOptions, JournalStore};
pub use model::{Conversation, UserInsert};
pub use sqlite::{SqliteOptions, SqliteStore};

use async_trait::async_trait;
use chatd_core::{NewMessage, NewUser, StoredRecipient, UserRecord};

pub type Result<T> = std::result::Result<T, StorageError>;

#[async_trait]
pub trait Store: AppStore + 'static {
    /// Creates users one by one; a taken name fails alone.
    async fn create_users(&self, app: i64, users: Vec<NewUser>) -> Result<Vec<UserInsert>>;
    async fn get_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>>;
    /// Deletes a user and returns what it was.
    async fn delete_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>>;

    /// Stores a message once and writes each of its inbox entries (and, if
    /// asked, updates conversation lists); returns each entry's inbox
    /// position, in the order of `msg.recipients`.
    async fn append_message(&self, msg: NewMessage) -> Result<Vec<StoredRecipient>>;
    /// Entries of `owner`'s inbox with `seq > after`, oldest first. An
    /// engine may have let go of entries that every device of `owner`
    /// acknowledged (the journal does, and also of those a stale device
    /// alone had not): asked for positions before what it keeps, it answers
    /// from the first entry it keeps.
    async fn inbox_after(
        &self,
        app: i64,
        owner: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;
    /// The inbox position a device has acknowledged, if the device is known.
    async fn device_cursor(&self, app: i64, owner: &str, device: &str) -> Result<Option<u64>>;
    /// The furthest position any device of `owner` has acknowledged.
    async fn user_cursor(&self, app: i64, owner: &str) -> Result<u64>;
    /// Records that `device` acknowledged everything up to `seq` (never
    /// moves backwards).
    async fn save_device_cursor(&self, app: i64, owner: &str, device: &str, seq: u64)
        -> Result<()>;
    /// Messages waiting for `owner`: kept entries after the user's cursor.
    async fn offline_count(&self, app: i64, owner: &str) -> Result<u64>;
    /// The recipient's copy of message `msg_id`.
    async fn find_entry(&self, app: i64, msg_id: u64) -> Result<Option<InboxEntry>>;
    /// The one-to-one conversation of `user` with `peer`, newest first,
    /// older than `before` (a message id) if given; hides what `user`
    /// cleared and what `roam_ignore_users` hides from them.
    async fn history(
        &self,
        app: i64,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;
    /// `owner`'s conversations, most recent first.
    async fn conversations(&self, app: i64, owner: &str, limit: usize)
        -> Result<Vec<Conversation>>;
    /// Clears the unread count of one conversation; false if there is none.
    async fn mark_read(&self, app: i64, owner: &str, peer: &str) -> Result<bool>;
    /// Removes one conversation from `owner`'s list, and with `clear_history`
    /// also hides its messages so far from `owner`'s history. False if there
    /// was no such conversation.
    async fn delete_conversation(
        &self,
        app: i64,
        owner: &str,
        peer: &str,
        clear_history: bool,
    ) -> Result<bool>;

    /// The largest message id stored, so that ids never repeat across restarts.
    async fn max_message_id(&self) -> Result<u64>;
    /// Finishes pending writes and stops accepting new ones.
    async fn close(&self);
}
