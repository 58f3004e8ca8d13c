//! The webhook provider: POST each notification as JSON to one URL, so that
//! any relay (APNs, FCM, a vendor's service, a queue) can sit behind it
//! without chatd knowing its credentials.

use crate::{PushError, PushNotification, PushProvider};
use async_trait::async_trait;
use std::time::Duration;

/// First wait between attempts; it doubles after each failed one.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between attempts, so a large retry count cannot stretch one
/// push into minutes.
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Bytes of a refusal's body kept for the log line.
const ERROR_BODY_LIMIT: usize = 512;

/// POSTs the [`PushNotification`] as JSON to a URL.
///
/// Each attempt has its own timeout (connecting, sending and reading the
/// answer). A connect error, a timeout, a broken connection or a 5xx is
/// retried, up to `retries` more times, after 100 ms, 200 ms, 400 ms, ...
/// (at most 2 s). A 4xx is final: the relay has judged the request, not
/// failed on it. Redirects are not followed (a POST would turn into a GET)
/// and count as a refusal.
///
/// A retry after a timeout may deliver a notification the relay had in fact
/// received; relays deduplicate on `(app_id, msg_id)`.
pub struct WebhookProvider {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    retries: u32,
}

impl WebhookProvider {
    /// `retries` is the number of attempts after the first, so `0` tries
    /// once. The URL is not checked here; [`crate::provider_from_config`]
    /// does that for configured providers.
    pub fn new(url: String, timeout: Duration, retries: u32) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatd-push/", env!("CARGO_PKG_VERSION")))
            .build()
            // Building fails only when a TLS backend cannot start, and this
            // crate's client has none.
            .expect("an HTTP client without TLS always builds");
        WebhookProvider {
            client,
            url,
            timeout,
            retries,
        }
    }

    /// One POST; `Ok` on 2xx.
    async fn attempt(&self, n: &PushNotification, attempt: u32) -> Result<(), PushError> {
        metrics::counter!("chatd_push_attempts_total", "provider" => self.name()).increment(1);
        let sent = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header("X-Chatd-Push-Attempt", attempt)
            .json(n)
            .send()
            .await;
        let mut resp = sent.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status.is_success() {
            // Read the (normally empty) answer so the connection can be
            // reused; its content does not matter.
            while let Ok(Some(_)) = resp.chunk().await {}
            return Ok(());
        }
        let body = body_prefix(&mut resp).await;
        tracing::debug!(status = status.as_u16(), %body, "push webhook answered with an error");
        if status.is_server_error() {
            Err(PushError::Status {
                status: status.as_u16(),
            })
        } else {
            Err(PushError::Rejected {
                status: status.as_u16(),
            })
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> PushError {
        if e.is_timeout() {
            PushError::Timeout(self.timeout)
        } else if e.is_builder() {
            // A URL reqwest cannot use: no attempt can succeed.
            PushError::Provider(format!("push webhook url {:?}: {e}", self.url))
        } else {
            // Connect errors and connections closed before the answer: the
            // relay may be restarting.
            PushError::Transport(error_chain(&e))
        }
    }
}

#[async_trait]
impl PushProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn push(&self, n: &PushNotification) -> Result<(), PushError> {
        let mut backoff = BACKOFF_START;
        let mut attempt = 1;
        loop {
            match self.attempt(n, attempt).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && attempt <= self.retries => {
                    tracing::debug!(
                        to = %n.to,
                        msg_id = %n.msg_id,
                        attempt,
                        error = %e,
                        "push webhook attempt failed; retrying in {backoff:?}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The start of an error answer's body, for the log: enough to show the
/// relay's reason without reading an arbitrarily large page.
async fn body_prefix(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(ERROR_BODY_LIMIT);
    String::from_utf8_lossy(&buf).into_owned()
}

/// reqwest's top-level message ("error sending request") hides the cause
/// ("connection refused"); the log needs both.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = BACKOFF_START;
        let mut seen = vec![];
        for _ in 0..8 {
            seen.push(b.as_millis());
            b = (b * 2).min(BACKOFF_CAP);
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }
}
