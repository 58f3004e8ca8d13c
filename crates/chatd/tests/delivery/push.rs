//! Offline recipients are handed to the push webhook; silent messages and
//! online recipients are not.

use crate::common::TestServer;
use crate::connect;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn offline_recipients_are_pushed_through_the_webhook() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/push",
        post(move |Json(v): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = format!("http://{addr}/push");
    let server = TestServer::start_with(&[
        ("CHATD_PUSH_PROVIDER", "webhook"),
        ("CHATD_PUSH_WEBHOOK_URL", url.as_str()),
    ]);
    let admin = server.admin();
    let _online = connect(&server, "online", "phone").await;
    admin
        .send_message(&json!({"from": "alice", "to": ["offline", "online"], "type": "txt",
            "body": {"msg": "ping"}, "ext": {"em_push_title": "Alice", "em_push_content": "ping!"}}))
        .await
        .unwrap();
    admin
        .send_message(&json!({"from": "alice", "to": ["offline"], "type": "txt",
            "body": {"msg": "silent"}, "ext": {"em_ignore_notification": true}}))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["to"], "offline");
    assert_eq!(got[0]["from"], "alice");
    assert_eq!(got[0]["push"]["title"], "Alice");
    assert_eq!(got[0]["push"]["content"], "ping!");
    assert_eq!(got[0]["message"]["payload"]["bodies"][0]["msg"], "ping");
    assert_eq!(got[0]["app_id"], crate::common::APP_ID);
}
