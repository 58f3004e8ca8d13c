use chatd_storage::StorageError;
use thiserror::Error;

/// Why a send request was refused. The API layer maps each variant to the
/// service's status, `error` and `error_description`.
#[derive(Debug, Error)]
pub enum SendError {
    /// Malformed JSON, or a field of the wrong JSON type or shape.
    #[error("request body is invalid: {0}")]
    InvalidBody(String),
    #[error("param from can't be empty")]
    EmptyFrom,
    #[error("param to can't be empty")]
    EmptyTo,
    #[error("param type can't be empty")]
    EmptyType,
    #[error("param type {0} is not supported")]
    UnknownType(String),
    #[error("param body can't be empty")]
    EmptyBody,
    #[error("param ext must be JSONObject")]
    ExtNotObject,
    #[error("params to's size can't exceed limit {0}")]
    TooManyRecipients(u32),
    #[error("message is too large")]
    TooLarge,
    #[error("message send reach limit")]
    RateLimited,
    #[error(transparent)]
    Storage(#[from] StorageError),
}
