//! `chatd listen` and `chatd send`: watch a message travel from a terminal.

use crate::bootstrap::open_apps;
use crate::cli::Target;
use crate::commands::find_app;
use anyhow::Context;
use chatd_auth::accesstoken2;
use chatd_client::{RestClient, WsClient, WsError};
use chatd_config::Config;
use std::time::Duration;

/// The URL, App ID and token the command uses: given, or read from the
/// data directory (minting a token with the app's certificate).
async fn resolve(
    config: &Config,
    target: &Target,
    user: Option<&str>,
) -> anyhow::Result<(String, String, String)> {
    let url = target
        .url
        .clone()
        .unwrap_or_else(|| config.public_base_url());
    if let (Some(app), Some(token)) = (&target.app, &target.token) {
        return Ok((url, app.clone(), token.clone()));
    }
    let store = open_apps(config)?;
    let app = find_app(store.as_ref(), config, target.app.as_deref()).await?;
    let token = match (&target.token, user) {
        (Some(t), _) => t.clone(),
        (None, Some(u)) => {
            accesstoken2::mint_user_token(&app.app_id, &app.app_certificate, u, 86_400)
        }
        (None, None) => accesstoken2::mint_app_token(&app.app_id, &app.app_certificate, 86_400),
    };
    Ok((url, app.app_id, token))
}

pub async fn listen(
    config: &Config,
    target: &Target,
    user: &str,
    device: &str,
    json: bool,
) -> anyhow::Result<()> {
    let user = chatd_core::user::normalize_username(user)
        .map_err(|_| anyhow::anyhow!("{user} is not a legal username"))?;
    let (url, app_id, token) = resolve(config, target, Some(&user)).await?;
    let ws_url = RestClient::new(&url, &app_id).ws_url();
    let mut client = WsClient::connect(&ws_url, &token, device)
        .await
        .with_context(|| format!("connecting to {ws_url}"))?;
    eprintln!(
        "listening as {} on {ws_url} (device {device}); Ctrl-C to stop",
        client.user
    );
    loop {
        let (seq, record) = match client.next_message(Duration::from_secs(3600)).await {
            Ok(m) => m,
            Err(WsError::Timeout) => continue,
            Err(e) => return Err(e.into()),
        };
        if json {
            println!("{record}");
        } else {
            let body = &record["payload"]["bodies"][0];
            let kind = body["type"].as_str().unwrap_or("?");
            let text = match kind {
                "txt" => body["msg"].as_str().unwrap_or_default().to_string(),
                _ => body.to_string(),
            };
            println!(
                "{} -> {} [{kind}] {text}  (msg_id {})",
                record["from"].as_str().unwrap_or("?"),
                record["to"].as_str().unwrap_or("?"),
                record["msg_id"].as_str().unwrap_or("?"),
            );
        }
        client.ack(seq).await?;
    }
}

pub async fn send(
    config: &Config,
    target: &Target,
    from: Option<&str>,
    to: &[String],
    text: &str,
) -> anyhow::Result<()> {
    let (url, app_id, token) = resolve(config, target, None).await?;
    let client = RestClient::new(&url, &app_id).with_token(token);
    let mut body = serde_json::json!({"to": to, "type": "txt", "body": {"msg": text}});
    if let Some(f) = from {
        body["from"] = serde_json::json!(f);
    }
    let r = client.send_message(&body).await?;
    println!("{}", serde_json::to_string_pretty(&r.body)?);
    if r.status != 200 {
        anyhow::bail!("refused with {}", r.status);
    }
    Ok(())
}
