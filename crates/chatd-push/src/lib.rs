//! chatd offline push: when a message's recipient has no online device,
//! hand the message to a push provider so the recipient's phone can show it.
//!
//! The pipeline decides *whether* to push (recipient offline, message not
//! silent, not `ROUTE_ONLINE`), builds a [`PushNotification`] and
//! [`PushDispatcher::submit`]s it. Everything after that happens off the
//! send path: the dispatcher queues it (bounded, dropping when full) and a
//! background worker calls the configured [`PushProvider`] with bounded
//! concurrency.
//!
//! chatd speaks to no vendor push service itself. The [`WebhookProvider`]
//! POSTs the notification to a relay that holds the APNs/FCM credentials;
//! the [`LogProvider`] (default) only logs. See docs/push.md.
//!
//! Metrics: `chatd_push_sent_total{provider}`,
//! `chatd_push_failed_total{provider}`, `chatd_push_attempts_total{provider}`
//! (one per call to the provider's endpoint, retries included) and
//! `chatd_push_dropped_total` (queue full, submitted during shutdown, or
//! abandoned when the shutdown grace ran out).

mod dispatch;
mod error;
mod notification;
mod provider;
mod webhook;

pub use dispatch::PushDispatcher;
pub use error::PushError;
pub use notification::{PushFields, PushNotification};
pub use provider::{provider_from_config, DiscardProvider, LogProvider, PushProvider, MAX_RETRIES};
pub use webhook::WebhookProvider;
