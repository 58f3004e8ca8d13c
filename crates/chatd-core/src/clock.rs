//! Wall-clock helpers, in the units the service's JSON uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as used by every `timestamp` field.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, as used by token lifetimes.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
