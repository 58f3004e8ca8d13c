use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Lsm(#[from] fjall::Error),
    /// A record that must be unique (a message id) is already stored.
    #[error("already stored: {0}")]
    Duplicate(String),
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    #[error("storage is shut down")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
