//! chatd storage.
//!
//! [`Store`] is the narrow seam between chatd and its database. The embedded
//! default, [`sqlite::SqliteStore`], keeps everything in one SQLite file in
//! the data directory; a PostgreSQL implementation for clusters would
//! implement the same trait.
//!
//! Durability contract: when a write method returns `Ok`, the change has been
//! committed and fsynced. Concurrent writes are group-committed: one
//! transaction and one fsync per batch.

mod error;
pub mod model;
pub mod sqlite;

pub use error::StorageError;
pub use model::{InboxEntry, UserInsert};
pub use sqlite::{SqliteOptions, SqliteStore};

use async_trait::async_trait;
use chatd_core::{AppRecord, NewMessage, NewUser, StoredRecipient, UserRecord};

pub type Result<T> = std::result::Result<T, StorageError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every app.
    async fn list_apps(&self) -> Result<Vec<AppRecord>>;
    /// Inserts the app, or replaces the one with the same `app_id`;
    /// returns it with its storage key.
    async fn upsert_app(&self, app: AppRecord) -> Result<AppRecord>;

    /// Creates users one by one; a taken name fails alone.
    async fn create_users(&self, app: i64, users: Vec<NewUser>) -> Result<Vec<UserInsert>>;
    async fn get_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>>;
    /// Deletes a user and returns what it was.
    async fn delete_user(&self, app: i64, username: &str) -> Result<Option<UserRecord>>;

    /// Stores a message once and appends it to every recipient's inbox;
    /// returns each recipient's inbox position, in the order given.
    async fn append_message(&self, msg: NewMessage) -> Result<Vec<StoredRecipient>>;
    /// Entries of `owner`'s inbox with `seq > after`, oldest first.
    async fn inbox_after(
        &self,
        app: i64,
        owner: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>>;
    /// How many entries `owner`'s inbox has after `after`.
    async fn inbox_count_after(&self, app: i64, owner: &str, after: u64) -> Result<u64>;

    /// The largest message id stored, so that ids never repeat across restarts.
    async fn max_message_id(&self) -> Result<u64>;
    /// Finishes pending writes and stops accepting new ones.
    async fn close(&self);
}
