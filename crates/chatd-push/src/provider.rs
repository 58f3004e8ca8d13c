//! The provider trait, the built-in providers without I/O, and the choice
//! of provider from configuration.

use crate::{PushError, PushNotification, WebhookProvider};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Largest `push_webhook_retries` accepted: with the 2 s backoff cap and a
/// 5 s timeout, ten retries already hold a concurrency slot for about a
/// minute, and more only keeps a dead relay's notifications from being
/// dropped in favour of newer ones.
pub const MAX_RETRIES: u32 = 10;

/// Something that can deliver a notification to a device, or hand it to a
/// service that does.
///
/// Providers are called from the [`crate::PushDispatcher`]'s background
/// tasks, never on the send path, so they may take their time; they must
/// not retry forever, since each call holds one of the dispatcher's
/// concurrency slots.
#[async_trait]
pub trait PushProvider: Send + Sync + 'static {
    /// Short, fixed name, used as the `provider` label of the metrics.
    fn name(&self) -> &'static str;
    async fn push(&self, n: &PushNotification) -> Result<(), PushError>;
}

/// The default provider: writes one `info` line per notification and
/// delivers nothing, so that a fresh server shows when a push would have
/// gone out. The line names the app, the users and the message id, not
/// the title or text, which would put message content in the logs.
pub struct LogProvider;

#[async_trait]
impl PushProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn push(&self, n: &PushNotification) -> Result<(), PushError> {
        metrics::counter!("chatd_push_attempts_total", "provider" => self.name()).increment(1);
        tracing::info!(
            app_id = %n.app_id,
            from = %n.from,
            to = %n.to,
            msg_id = %n.msg_id,
            has_title = n.push.title.is_some(),
            force = n.push.force_notification,
            "offline push (log provider: not delivered)"
        );
        Ok(())
    }
}

/// `push_provider = "none"`: accepts every notification and does nothing.
pub struct DiscardProvider;

#[async_trait]
impl PushProvider for DiscardProvider {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn push(&self, _n: &PushNotification) -> Result<(), PushError> {
        Ok(())
    }
}

/// Builds the provider named by configuration: "log" (default), "webhook"
/// (needs url), "none". The kind is matched without regard to case.
///
/// The webhook URL must be `http://`: this build of chatd has no TLS client,
/// and refusing an `https://` URL at start beats failing every push later.
/// Put the relay next to chatd (localhost or a private network) or behind a
/// local TLS-originating proxy.
pub fn provider_from_config(
    kind: &str,
    webhook_url: Option<&str>,
    timeout: Duration,
    retries: u32,
) -> Result<Arc<dyn PushProvider>, PushError> {
    let url = webhook_url.map(str::trim).filter(|u| !u.is_empty());
    let provider: Arc<dyn PushProvider> = match kind.trim().to_ascii_lowercase().as_str() {
        "log" => Arc::new(LogProvider),
        "none" => Arc::new(DiscardProvider),
        "webhook" => {
            let url = url.ok_or_else(|| {
                PushError::Config("push_provider \"webhook\" needs push_webhook_url".into())
            })?;
            check_url(url)?;
            if timeout.is_zero() {
                return Err(PushError::Config(
                    "push_webhook_timeout_ms must be greater than 0".into(),
                ));
            }
            if retries > MAX_RETRIES {
                return Err(PushError::Config(format!(
                    "push_webhook_retries must be at most {MAX_RETRIES}, not {retries}"
                )));
            }
            return Ok(Arc::new(WebhookProvider::new(
                url.to_owned(),
                timeout,
                retries,
            )));
        }
        _ => {
            return Err(PushError::Config(format!(
                "push_provider must be \"log\", \"webhook\" or \"none\", not {kind:?}"
            )))
        }
    };
    if url.is_some() {
        // Likely a half-done switch to the webhook: say so rather than
        // silently pushing nowhere.
        tracing::warn!(
            provider = provider.name(),
            "push_webhook_url is set but push_provider is not \"webhook\"; the url is not used"
        );
    }
    Ok(provider)
}

fn check_url(url: &str) -> Result<(), PushError> {
    let bad = |why: String| PushError::Config(format!("push_webhook_url {url:?}: {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err(bad(
                "https is not supported (chatd is built without a TLS client); \
                 use an http:// relay on localhost or a private network"
                    .into(),
            ))
        }
        other => return Err(bad(format!("scheme {other:?} is not http"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn name(kind: &str, url: Option<&str>) -> Result<&'static str, String> {
        provider_from_config(kind, url, T, 3)
            .map(|p| p.name())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn picks_the_named_provider() {
        assert_eq!(name("log", None), Ok("log"));
        assert_eq!(name("LOG", Some("http://ignored")), Ok("log"));
        assert_eq!(name("none", None), Ok("none"));
        assert_eq!(
            name("webhook", Some("http://127.0.0.1:9000/push")),
            Ok("webhook")
        );
    }

    #[test]
    fn refuses_unusable_configuration() {
        let err = |kind, url| name(kind, url).unwrap_err();
        assert!(err("apns", None).contains("push_provider must be"));
        assert!(err("", None).contains("push_provider must be"));
        assert!(err("webhook", None).contains("needs push_webhook_url"));
        assert!(err("webhook", Some("  ")).contains("needs push_webhook_url"));
        assert!(err("webhook", Some("https://relay.example/push")).contains("https"));
        assert!(err("webhook", Some("ftp://relay/push")).contains("scheme"));
        assert!(err("webhook", Some("not a url")).contains("push_webhook_url"));
        let zero = provider_from_config("webhook", Some("http://h/p"), Duration::ZERO, 3);
        assert!(matches!(zero, Err(PushError::Config(_))));
        let many = provider_from_config("webhook", Some("http://h/p"), T, MAX_RETRIES + 1);
        assert!(matches!(many, Err(PushError::Config(_))));
    }
}
