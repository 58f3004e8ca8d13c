//! History with a cursor, and conversation lists with unread counts.

use crate::common::TestServer;
use crate::{connect, WAIT};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn history_pages_newest_first_and_honours_roam_ignore_users() {
    let server = TestServer::start();
    let admin = server.admin();
    for i in 0..5 {
        admin
            .send_text("alice", &["bob"], &format!("a{i}"))
            .await
            .unwrap();
        admin
            .send_text("bob", &["alice"], &format!("b{i}"))
            .await
            .unwrap();
    }
    admin
        .send_message(&json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "hidden from bob"}, "roam_ignore_users": ["bob"]}))
        .await
        .unwrap();

    let page = |cursor: Option<String>| {
        let admin = admin.clone();
        async move {
            let mut path = "/users/bob/history?peer=alice&limit=4".to_string();
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            admin.call(Method::GET, &path, None).await.unwrap().body
        }
    };
    let mut texts = Vec::new();
    let mut cursor = None;
    loop {
        let body = page(cursor.clone()).await;
        for e in body["entities"].as_array().unwrap() {
            texts.push(
                e["payload"]["bodies"][0]["msg"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        match body["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5)
        .rev()
        .flat_map(|i| [format!("b{i}"), format!("a{i}")])
        .collect();
    assert_eq!(texts, expected);

    // Alice sees the hidden message; a user token reads its own history only.
    let alice = server.anonymous().with_token(server.user_token("alice"));
    let r = alice
        .call(Method::GET, "/users/alice/history?peer=bob&limit=1", None)
        .await
        .unwrap();
    assert_eq!(
        r.body["entities"][0]["payload"]["bodies"][0]["msg"],
        "hidden from bob"
    );
    let r = alice
        .call(Method::GET, "/users/bob/history?peer=alice", None)
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = admin
        .call(Method::GET, "/users/bob/history", None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.description(), "peer must be provided.");
}

#[tokio::test]
async fn client_messages_enter_conversations_and_read_acks_clear_unread() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut alice = connect(&server, "alice", "phone").await;
    let mut bob = connect(&server, "bob", "phone").await;
    // REST messages do not enter conversation lists by default.
    admin
        .send_text("carol", &["bob"], "from rest")
        .await
        .unwrap();
    bob.next_message(WAIT).await.unwrap();
    for text in ["one", "two"] {
        alice
            .send_message(&["bob"], "txt", json!({"msg": text}), None)
            .await
            .unwrap();
        bob.next_message(WAIT).await.unwrap();
    }
    let list = admin
        .call(Method::GET, "/users/bob/user_channels", None)
        .await
        .unwrap();
    assert_eq!(list.status, 200, "{}", list.body);
    let channels = list.body["data"]["channel_infos"].as_array().unwrap();
    assert_eq!(channels.len(), 1, "{channels:?}");
    assert_eq!(channels[0]["channel_id"], "alice");
    assert_eq!(channels[0]["unread_num"], 2);
    assert_eq!(
        channels[0]["last_message"]["payload"]["bodies"][0]["msg"],
        "two"
    );
    let sender_side = admin
        .call(Method::GET, "/users/alice/user_channels", None)
        .await
        .unwrap();
    assert_eq!(
        sender_side.body["data"]["channel_infos"][0]["unread_num"],
        0
    );

    bob.send_json(json!({"op": "read", "peer": "alice", "ref": "r"}))
        .await
        .unwrap();
    loop {
        if let chatd_client::Event::Frame(f) = bob.next_frame(WAIT).await.unwrap() {
            assert_eq!(f["op"], "read_ok");
            break;
        }
    }
    let list = admin
        .call(Method::GET, "/users/bob/user_channels", None)
        .await
        .unwrap();
    assert_eq!(list.body["data"]["channel_infos"][0]["unread_num"], 0);

    // Deleting the conversation, with its history.
    let r = admin
        .call(
            Method::DELETE,
            "/users/bob/user_channel",
            Some(&json!({"channel": "alice", "type": "chat", "delete_roam": true})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["result"], "ok");
    let list = admin
        .call(Method::GET, "/users/bob/user_channels", None)
        .await
        .unwrap();
    assert!(list.body["data"]["channel_infos"]
        .as_array()
        .unwrap()
        .is_empty());
    let h = admin
        .call(Method::GET, "/users/bob/history?peer=alice", None)
        .await
        .unwrap();
    assert_eq!(h.body["count"], 0);
    let h = admin
        .call(Method::GET, "/users/alice/history?peer=bob", None)
        .await
        .unwrap();
    assert_eq!(h.body["count"], 2, "the other side keeps its history");

    for (body, description) in [
        (
            json!({"type": "chat", "delete_roam": true}),
            "field channel cannot be null or empty",
        ),
        (
            json!({"channel": "alice", "delete_roam": true}),
            "field type cannot be null or empty",
        ),
        (
            json!({"channel": "alice", "type": "chat"}),
            "field delete_roam cannot be null",
        ),
    ] {
        let r = admin
            .call(Method::DELETE, "/users/bob/user_channel", Some(&body))
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.error(), "illegal_argument");
        assert_eq!(r.description(), description);
    }
}

#[tokio::test]
async fn the_app_setting_puts_rest_messages_in_conversations() {
    let server = TestServer::start_with(&[("CHATD_REST_MESSAGES_IN_CONVERSATIONS", "true")]);
    let admin = server.admin();
    admin
        .send_text("carol", &["bob"], "from rest")
        .await
        .unwrap();
    let list = admin
        .call(Method::GET, "/users/bob/user_channels", None)
        .await
        .unwrap();
    assert_eq!(list.body["data"]["channel_infos"][0]["channel_id"], "carol");
    assert_eq!(list.body["data"]["channel_infos"][0]["unread_num"], 1);
}
