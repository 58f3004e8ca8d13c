//! chatd message pipeline: validate, rate-limit, store, then notify.
//!
//! The order is the durability contract: a message is acknowledged only
//! after storage has committed it, and recipients are notified only after
//! that, so a crash at any point either loses an unacknowledged request or
//! nothing.

pub mod error;
pub mod rate;
pub mod send;
pub mod validate;

pub use error::SendError;
pub use rate::RateLimiters;
pub use send::{Accepted, OfflineSink, Pipeline, Source};
pub use validate::{check_send_object, parse_send_request, SendRequest};
