//! Status, devices, force-disconnect and offline message state over REST.

use crate::common::TestServer;
use crate::{connect, WAIT};
use chatd_client::WsError;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn status_resources_and_disconnects() {
    let server = TestServer::start();
    let admin = server.admin();
    let r = admin
        .call(Method::GET, "/users/bob/status", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["bob"], "offline");

    let mut phone = connect(&server, "bob", "phone").await;
    let mut web = connect(&server, "bob", "web_1").await;
    let r = admin
        .call(Method::GET, "/users/bob/status", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["bob"], "online");
    let r = admin
        .call(
            Method::POST,
            "/users/batch/status",
            Some(&json!({"usernames": ["bob", "nobody"]})),
        )
        .await
        .unwrap();
    assert_eq!(r.body["action"], "get batch user status");
    assert_eq!(
        r.body["data"],
        json!([{"bob": "online"}, {"nobody": "offline"}])
    );
    let too_many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let r = admin
        .call(
            Method::POST,
            "/users/batch/status",
            Some(&json!({"usernames": too_many})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.description(),
        "request body exceeds maximum limit, maximum limit is 100"
    );

    let r = admin
        .call(Method::GET, "/users/bob/resources", None)
        .await
        .unwrap();
    let mut res: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["res"].as_str().unwrap())
        .collect();
    res.sort();
    assert_eq!(res, vec!["phone", "web_1"]);

    let r = admin
        .call(Method::DELETE, "/users/bob/disconnect/web_1", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["result"], true);
    match web.next_message(WAIT).await {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 4005),
        other => panic!("{other:?}"),
    }
    let r = admin
        .call(Method::GET, "/users/bob/disconnect", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["result"], true);
    match phone.next_message(WAIT).await {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 4005),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = admin
        .call(Method::GET, "/users/bob/status", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["bob"], "offline");
    let r = admin
        .call(Method::GET, "/users/bob/disconnect", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["result"], false);
}

#[tokio::test]
async fn offline_count_and_status_follow_acknowledgements() {
    let server = TestServer::start();
    let admin = server.admin();
    let ids = admin.send_text("alice", &["bob"], "one").await.unwrap();
    admin.send_text("alice", &["bob"], "two").await.unwrap();
    let id = ids[0].1;
    let count = |admin: chatd_client::RestClient| async move {
        admin
            .call(Method::GET, "/users/bob/offline_msg_count", None)
            .await
            .unwrap()
            .body["data"]["bob"]
            .clone()
    };
    let status = |admin: chatd_client::RestClient| async move {
        admin
            .call(
                Method::GET,
                &format!("/users/bob/offline_msg_status/{id}"),
                None,
            )
            .await
            .unwrap()
            .body["data"][id.to_string()]
        .clone()
    };
    assert_eq!(count(admin.clone()).await, 2);
    assert_eq!(status(admin.clone()).await, "undelivered");

    let mut bob = connect(&server, "bob", "phone").await;
    let (seq, _) = bob.next_message(WAIT).await.unwrap();
    bob.ack(seq).await.unwrap();
    bob.close().await; // closing saves the acknowledged position
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(status(admin.clone()).await, "delivered");
    assert_eq!(count(admin.clone()).await, 1);
}

#[tokio::test]
async fn malformed_delivery_queries_get_their_errors() {
    let server = TestServer::start();
    let admin = server.admin();
    let r = admin
        .call(
            Method::GET,
            "/users/bob/offline_msg_status/notanumber",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "illegal_argument");
    assert_eq!(r.description(), "msg_id notanumber is not a message id");
    let r = admin
        .call(
            Method::GET,
            "/users/bob/history?peer=alice&cursor=abc",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "illegal_argument");
    assert_eq!(r.description(), "cursor is not valid");
    let r = admin.call(Method::GET, "/ws", None).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "websocket_required");
    assert_eq!(
        r.description(),
        "This endpoint speaks WebSocket: send an Upgrade request"
    );
}
