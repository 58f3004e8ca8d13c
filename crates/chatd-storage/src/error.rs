use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("corrupt stored record: {0}")]
    Corrupt(String),
    #[error("storage is shut down")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
