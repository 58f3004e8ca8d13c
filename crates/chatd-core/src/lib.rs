//! Domain types shared by every chatd layer.
//!
//! Nothing here does I/O: these are the nouns (apps, users, messages, ids)
//! that the storage, pipeline, delivery and API layers pass between them.

pub mod app;
pub mod clock;
pub mod ids;
pub mod message;
pub mod record;
pub mod user;

pub use app::{AppLimits, AppRecord, AppSettings};
pub use ids::MessageIdGenerator;
pub use message::{
    EntryKind, InboxEntry, MessageType, NewMessage, Origin, Recipient, SendOptions, StoredRecipient,
};
pub use user::{NewUser, UserRecord};
