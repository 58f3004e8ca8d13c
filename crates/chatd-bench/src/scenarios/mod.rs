//! The scenarios of issue 5, one module each, and what they share.

pub mod backlog;
pub mod connections;
pub mod e2e;
pub mod overload;
pub mod send;

use crate::server::Target;
use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

/// The sender of every bench message.
pub const FROM: &str = "benchsender";

/// A send request as the seed's example has it: a short text, with
/// `em_ignore_notification` so that no push is built.
pub fn send_body(to: &[&str], text: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "from": FROM,
            "to": to,
            "type": "txt",
            "body": {"msg": text},
            "ext": {"em_ignore_notification": true},
        })
        .to_string(),
    )
}

/// Messages waiting in each user's inbox, read with the project's REST
/// client from `GET …/users/{u}/offline_msg_count`: exact for users no
/// device ever acknowledged for.
pub async fn offline_counts(t: &Target, users: &[String]) -> anyhow::Result<Vec<u64>> {
    let rest = t.rest();
    let counts: Vec<anyhow::Result<u64>> = futures::stream::iter(users.iter().map(|u| {
        let rest = rest.clone();
        async move {
            let r = rest
                .call(
                    http::Method::GET,
                    &format!("/users/{u}/offline_msg_count"),
                    None,
                )
                .await?;
            if r.status.as_u16() != 200 {
                bail!("offline_msg_count of {u}: {} {}", r.status, r.body);
            }
            r.body["data"][u.as_str()]
                .as_u64()
                .with_context(|| format!("offline_msg_count of {u}: {}", r.body))
        }
    }))
    .buffered(16)
    .collect()
    .await;
    counts.into_iter().collect()
}

/// A sanity check with the project's own clients before measuring: a
/// message sent with `RestClient` arrives on a `WsClient`.
pub async fn probe(t: &Target, user: &str) -> anyhow::Result<()> {
    let rest = t.rest();
    let mut ws = chatd_client::WsClient::connect(&rest.ws_url(), &t.user_token(user), "probe")
        .await
        .context("probe: WebSocket connect")?;
    let ids = rest
        .send_text(FROM, &[user], "probe")
        .await
        .context("probe: REST send")?;
    let (seq, msg) = ws
        .next_message(Duration::from_secs(10))
        .await
        .context("probe: the message did not arrive")?;
    let want = ids
        .first()
        .map(|(_, id)| id.to_string())
        .unwrap_or_default();
    if msg["msg_id"].as_str() != Some(want.as_str()) {
        bail!("probe: got {msg} instead of message {want}");
    }
    ws.ack(seq).await?;
    ws.close().await;
    Ok(())
}
