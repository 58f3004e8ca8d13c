//! Integration tests of the receive side: real-time delivery over the JSON
//! WebSocket, offline messages, multi-device, history, conversations,
//! presence and push, against the real server.

#[path = "../common/mod.rs"]
mod common;

mod clients;
mod conversations;
mod online;
mod presence;
mod push;
mod reliability;

use chatd_client::{WsClient, WsError};
use common::TestServer;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

/// Connects `user` as `device` with a user AccessToken2.
pub async fn connect(server: &TestServer, user: &str, device: &str) -> WsClient {
    WsClient::connect(
        &server.anonymous().ws_url(),
        &server.user_token(user),
        device,
    )
    .await
    .unwrap_or_else(|e| panic!("{user}/{device} connects: {e}"))
}

/// Asserts that nothing arrives within `ms`.
pub async fn assert_quiet(c: &mut WsClient, ms: u64) {
    match c.next_message(Duration::from_millis(ms)).await {
        Err(WsError::Timeout) => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}
