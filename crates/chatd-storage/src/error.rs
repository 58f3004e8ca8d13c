use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A record that must be unique (a message id) is already stored.
    #[error("already stored: {0}")]
    Duplicate(String),
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    /// A write the store cannot hold (too many recipients, a record larger
    /// than a log segment).
    #[error("cannot be stored: {0}")]
    Invalid(String),
    /// An earlier write failed on disk; the store refuses writes until it is
    /// opened again.
    #[error("storage failed: {0}")]
    Failed(String),
    #[error("storage is shut down")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
