use std::time::Duration;
use thiserror::Error;

/// Why a push provider could not be built or a push did not go through.
#[derive(Debug, Error)]
pub enum PushError {
    /// The configuration names no usable provider. Raised at start, never
    /// for a single push.
    #[error("push configuration: {0}")]
    Config(String),
    /// The endpoint answered with a status that says the request itself is
    /// wrong (4xx, or a redirect, which is not followed): sending the same
    /// bytes again cannot help.
    #[error("push endpoint refused the notification with status {status}")]
    Rejected { status: u16 },
    /// The endpoint answered 5xx: it may work on a later attempt.
    #[error("push endpoint failed with status {status}")]
    Status { status: u16 },
    /// No complete answer within the per-attempt timeout.
    #[error("push endpoint did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be made or broke before an answer came.
    #[error("push request failed: {0}")]
    Transport(String),
    /// Any other failure reported by a provider.
    #[error("push provider: {0}")]
    Provider(String),
}

impl PushError {
    /// Whether another attempt with the same notification may succeed.
    /// Retrying a 4xx would only repeat the refusal, and hammer an endpoint
    /// that has already told us what it thinks.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PushError::Status { .. } | PushError::Timeout(_) | PushError::Transport(_)
        )
    }
}
