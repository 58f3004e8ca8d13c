//! Clients sending over the socket, authentication, and the device limit.

use crate::common::{TestServer, APP_CERT, APP_ID};
use crate::{assert_quiet, connect, WAIT};
use chatd_auth::accesstoken2;
use chatd_client::{WsClient, WsError};
use serde_json::json;

#[tokio::test]
async fn a_client_sends_to_another_and_its_other_devices_get_a_copy() {
    let server = TestServer::start();
    let mut alice_phone = connect(&server, "alice", "phone").await;
    let mut alice_laptop = connect(&server, "alice", "laptop").await;
    let mut bob = connect(&server, "bob", "phone").await;

    let (reply, _) = alice_phone
        .send_message(
            &["bob"],
            "txt",
            json!({"msg": "hi bob"}),
            Some(json!({"mood": "good"})),
        )
        .await
        .unwrap();
    assert_eq!(reply["op"], "sent", "{reply}");
    let id = reply["data"]["bob"].as_str().unwrap().to_string();

    let (_, m) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(m["msg_id"], id.as_str());
    assert_eq!(m["from"], "alice", "from is the connected user");
    assert_eq!(m["payload"]["ext"]["mood"], "good");
    let (_, copy) = alice_laptop.next_message(WAIT).await.unwrap();
    assert_eq!(copy["msg_id"], id.as_str());
    assert_eq!(copy["to"], "bob");
    // The sending device does not get its own message back.
    assert_quiet(&mut alice_phone, 300).await;

    // The same validation as REST, answered on the socket.
    let (err, _) = alice_phone
        .send_message(&["bob"], "txt", json!({}), None)
        .await
        .unwrap();
    assert_eq!(err["op"], "error");
    assert_eq!(err["status"], 400);
    assert_eq!(err["error"], "message_send_error");
    assert_eq!(err["error_description"], "param body can't be empty");
    let (err, _) = alice_phone
        .send_message(&["bob"], "loc", json!({"lat": "1"}), None)
        .await
        .unwrap();
    assert_eq!(err["error"], "invalid_request_body");
    // A forged `from` is ignored: the sender is the token's user.
    alice_phone
        .send_json(json!({"op": "send", "ref": "x", "from": "mallory", "to": ["bob"], "type": "txt", "body": {"msg": "who"}}))
        .await
        .unwrap();
    let (_, m) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(m["from"], "alice");
}

#[tokio::test]
async fn clients_rate_limit_per_user() {
    let server = TestServer::start_with(&[("CHATD_RATE_MSGS_PER_MIN", "3")]);
    let mut alice = connect(&server, "alice", "phone").await;
    for _ in 0..3 {
        let (r, _) = alice
            .send_message(&["bob"], "txt", json!({"msg": "x"}), None)
            .await
            .unwrap();
        assert_eq!(r["op"], "sent");
    }
    let (r, _) = alice
        .send_message(&["bob"], "txt", json!({"msg": "x"}), None)
        .await
        .unwrap();
    assert_eq!(r["status"], 403);
    assert_eq!(r["error_description"], "message send reach limit");
    // Another user has its own budget.
    let mut carol = connect(&server, "carol", "phone").await;
    let (r, _) = carol
        .send_message(&["bob"], "txt", json!({"msg": "x"}), None)
        .await
        .unwrap();
    assert_eq!(r["op"], "sent");
}

async fn refused(
    server: &TestServer,
    token: &str,
    extra_user: Option<&str>,
) -> (u16, serde_json::Value) {
    let url = server.anonymous().ws_url();
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    use futures::{SinkExt, StreamExt};
    let mut auth = json!({"op": "auth", "token": token, "device": "d"});
    if let Some(u) = extra_user {
        auth["user"] = json!(u);
    }
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            auth.to_string().into(),
        ))
        .await
        .unwrap();
    let mut error = serde_json::Value::Null;
    while let Some(Ok(msg)) = socket.next().await {
        match msg {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                error = serde_json::from_str(t.as_str()).unwrap()
            }
            tokio_tungstenite::tungstenite::Message::Close(Some(f)) => {
                return (u16::from(f.code), error)
            }
            _ => {}
        }
    }
    panic!("no close frame");
}

#[tokio::test]
async fn bad_tokens_and_other_users_are_refused() {
    let server = TestServer::start();
    let (code, e) = refused(&server, "", None).await;
    assert_eq!(code, 4001);
    assert_eq!(e["error"], "unauthorized");
    let (code, e) = refused(&server, "007garbage", None).await;
    assert_eq!(code, 4001);
    assert_eq!(
        e["error_description"],
        "Unable to authenticate due to corrupt access token"
    );
    let now = chatd_core::clock::now_secs() as u32;
    let expired = accesstoken2::mint_user_token_at(APP_ID, APP_CERT, "bob", 10, now - 100, 1);
    let (code, e) = refused(&server, &expired, None).await;
    assert_eq!(code, 4001);
    assert_eq!(e["error"], "unauthorized");
    let other_app =
        accesstoken2::mint_user_token("1123456789abcdef0123456789abcdef", APP_CERT, "bob", 600);
    let (code, e) = refused(&server, &other_app, None).await;
    assert_eq!(code, 4001);
    assert_eq!(e["error_description"], "Unable to authenticate");
    let (code, e) = refused(&server, &server.app_token(), None).await;
    assert_eq!(code, 4001);
    assert_eq!(e["error"], "forbidden_op");
    // A token for alice cannot connect as bob.
    let (code, e) = refused(&server, &server.user_token("alice"), Some("bob")).await;
    assert_eq!(code, 4001);
    assert_eq!(
        e["error_description"],
        "The token does not belong to this user"
    );

    // Issued password tokens work too.
    let admin = server.admin();
    admin.create_user("dave", Some("pw")).await.unwrap();
    let t = server
        .anonymous()
        .user_token("dave", "pw")
        .await
        .unwrap()
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let c = WsClient::connect(&server.anonymous().ws_url(), &t, "web")
        .await
        .unwrap();
    assert_eq!(c.user, "dave");
}

#[tokio::test]
async fn one_device_too_many_disconnects_the_oldest() {
    let server = TestServer::start_with(&[("CHATD_MAX_DEVICES_PER_USER", "2")]);
    let mut first = connect(&server, "bob", "d1").await;
    let _second = connect(&server, "bob", "d2").await;
    let _third = connect(&server, "bob", "d3").await;
    match first.next_message(WAIT).await {
        Err(WsError::Closed { code, .. }) => assert_eq!(code, 4004),
        other => panic!("expected 4004, got {other:?}"),
    }
    // The same device connecting again replaces its old connection.
    let mut again = connect(&server, "bob", "d3").await;
    match _third_closed(_third).await {
        4003 => {}
        code => panic!("expected 4003, got {code}"),
    }
    server
        .admin()
        .send_text("a", &["bob"], "still here")
        .await
        .unwrap();
    assert!(again.next_message(WAIT).await.is_ok());
}

async fn _third_closed(mut c: WsClient) -> u16 {
    match c.next_message(WAIT).await {
        Err(WsError::Closed { code, .. }) => code,
        other => panic!("expected a close, got {other:?}"),
    }
}
