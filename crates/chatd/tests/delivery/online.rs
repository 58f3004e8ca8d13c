//! Every message type sent by REST arrives at once, with its fields.

use crate::common::TestServer;
use crate::{assert_quiet, connect, WAIT};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn all_eight_types_arrive_online_with_their_fields() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut bob = connect(&server, "bob", "phone").await;
    let cases: Vec<(&str, Value)> = vec![
        ("txt", json!({"msg": "hello"})),
        (
            "img",
            json!({"url": "https://x/chatfiles/1", "filename": "a.jpg", "secret": "s", "size": {"width": 480, "height": 720}}),
        ),
        (
            "audio",
            json!({"url": "https://x/chatfiles/2", "filename": "a.amr", "length": 10, "secret": "s"}),
        ),
        (
            "video",
            json!({"url": "https://x/chatfiles/3", "filename": "v.mp4", "thumb": "https://x/chatfiles/4", "length": 5, "secret": "s", "file_length": 58103, "thumb_secret": "t"}),
        ),
        (
            "file",
            json!({"url": "https://x/chatfiles/5", "filename": "f.txt", "secret": "s"}),
        ),
        (
            "loc",
            json!({"lat": "39.966", "lng": "116.322", "addr": "somewhere"}),
        ),
        ("cmd", json!({"action": "action1"})),
        (
            "custom",
            json!({"customEvent": "gift", "customExts": {"k": "v"}}),
        ),
    ];
    for (t, body) in &cases {
        let r = admin
            .send_message(
                &json!({"from": "alice", "to": ["bob"], "type": t, "body": body, "ext": {"k": 1}}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let id = r.body["data"]["bob"].as_str().unwrap().to_string();
        let (seq, m) = bob.next_message(WAIT).await.unwrap();
        assert_eq!(m["msg_id"], id.as_str());
        assert_eq!(m["from"], "alice");
        assert_eq!(m["to"], "bob");
        assert_eq!(m["chat_type"], "chat");
        assert_eq!(m["payload"]["ext"], json!({"k": 1}));
        let got = &m["payload"]["bodies"][0];
        assert_eq!(got["type"], *t);
        for (k, v) in body.as_object().unwrap() {
            assert_eq!(&got[k], v, "{t}.{k}");
        }
        bob.ack(seq).await.unwrap();
    }
    assert_quiet(&mut bob, 200).await;
}

#[tokio::test]
async fn two_devices_both_receive_and_each_acknowledges_its_own() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut phone = connect(&server, "bob", "phone").await;
    let mut laptop = connect(&server, "bob", "laptop").await;
    let ids = admin.send_text("alice", &["bob"], "to both").await.unwrap();
    for d in [&mut phone, &mut laptop] {
        let (seq, m) = d.next_message(WAIT).await.unwrap();
        assert_eq!(m["msg_id"], ids[0].1.to_string().as_str());
        d.ack(seq).await.unwrap();
    }
    // The laptop goes away without more acks; the phone keeps receiving.
    laptop.close().await;
    admin
        .send_text("alice", &["bob"], "phone only")
        .await
        .unwrap();
    let (_, m) = phone.next_message(WAIT).await.unwrap();
    assert_eq!(m["payload"]["bodies"][0]["msg"], "phone only");
    // The laptop, back, gets what it missed.
    let mut laptop = connect(&server, "bob", "laptop").await;
    let (_, m) = laptop.next_message(WAIT).await.unwrap();
    assert_eq!(m["payload"]["bodies"][0]["msg"], "phone only");
}

#[tokio::test]
async fn a_device_back_after_going_stale_resumes_after_what_the_others_acknowledged() {
    let server = TestServer::start_with(&[("CHATD_STORAGE_STALE_DEVICE_SECS", "1")]);
    let admin = server.admin();
    let mut laptop = connect(&server, "bob", "laptop").await;
    let mut phone = connect(&server, "bob", "phone").await;
    admin.send_text("alice", &["bob"], "one").await.unwrap();
    for d in [&mut laptop, &mut phone] {
        let (seq, _) = d.next_message(WAIT).await.unwrap();
        d.ack(seq).await.unwrap();
    }
    laptop.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for text in ["two", "three"] {
        admin.send_text("alice", &["bob"], text).await.unwrap();
        let (seq, _) = phone.next_message(WAIT).await.unwrap();
        phone.ack(seq).await.unwrap();
    }
    // The phone's position is saved as it leaves; until then the laptop's
    // older one counts "two" and "three" as still offline.
    phone.close().await;
    let offline = || async {
        admin
            .call(reqwest::Method::GET, "/users/bob/offline_msg_count", None)
            .await
            .unwrap()
            .body["data"]["bob"]
            .clone()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while offline().await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the phone's position was never saved"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    admin.send_text("alice", &["bob"], "four").await.unwrap();

    let mut laptop = connect(&server, "bob", "laptop").await;
    let (_, m) = laptop.next_message(WAIT).await.unwrap();
    let first = m["payload"]["bodies"][0]["msg"].clone();
    if std::env::var("CHATD_TEST_STORAGE_ENGINE").as_deref() == Ok("sqlite") {
        // SQLite keeps every entry: a returning device gets all it missed.
        assert_eq!(first, "two");
    } else {
        // The journal forgot, for the stale laptop, what the phone had.
        assert_eq!(first, "four");
        assert_quiet(&mut laptop, 200).await;
    }
}

#[tokio::test]
async fn sync_device_copies_to_the_senders_online_devices() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut alice = connect(&server, "alice", "phone").await;
    let mut bob = connect(&server, "bob", "phone").await;
    let r = admin
        .send_message(&json!({"from": "alice", "to": ["bob"], "type": "txt", "body": {"msg": "synced"}, "sync_device": true}))
        .await
        .unwrap();
    let id = r.body["data"]["bob"].as_str().unwrap().to_string();
    let (_, copy) = alice.next_message(WAIT).await.unwrap();
    assert_eq!(copy["from"], "alice", "marked as sent by alice");
    assert_eq!(copy["to"], "bob");
    assert_eq!(copy["msg_id"], id.as_str());
    let (_, m) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(m["msg_id"], id.as_str());

    // Without sync_device the sender gets nothing.
    admin
        .send_text("alice", &["bob"], "not synced")
        .await
        .unwrap();
    bob.next_message(WAIT).await.unwrap();
    assert_quiet(&mut alice, 300).await;
}

#[tokio::test]
async fn route_online_reaches_only_devices_online_at_send_time() {
    let server = TestServer::start();
    let admin = server.admin();
    let online_only = |to: &str| json!({"from": "alice", "to": [to], "type": "txt", "body": {"msg": "now or never"}, "routetype": "ROUTE_ONLINE"});
    // Offline recipient: acknowledged, but kept nowhere.
    let r = admin.send_message(&online_only("carol")).await.unwrap();
    assert_eq!(r.status, 200);
    let count = admin
        .call(reqwest::Method::GET, "/users/carol/offline_msg_count", None)
        .await
        .unwrap();
    assert_eq!(count.body["data"]["carol"], 0);
    let mut carol = connect(&server, "carol", "phone").await;
    assert_quiet(&mut carol, 300).await;
    let history = admin
        .call(
            reqwest::Method::GET,
            "/users/carol/history?peer=alice",
            None,
        )
        .await
        .unwrap();
    assert_eq!(history.body["count"], 0);

    // Online recipient: delivered; a device connecting later does not get it.
    admin.send_message(&online_only("carol")).await.unwrap();
    let (_, m) = carol.next_message(WAIT).await.unwrap();
    assert_eq!(m["payload"]["bodies"][0]["msg"], "now or never");
    let mut tablet = connect(&server, "carol", "tablet").await;
    assert_quiet(&mut tablet, 300).await;
}

/// Two messages sent to one client a moment apart both arrive at once.
/// Without TCP_NODELAY on the server's sockets the second frame, written
/// while the first was unacknowledged at the TCP level, waited for the
/// client's delayed ACK: ≈ 40 ms on Linux, in every round. The client here
/// sends nothing between the two frames, as an SDK that acknowledges in
/// batches would not. The median of the rounds is compared, with half the
/// delayed-ACK time as the bound, so a slow moment of the machine does not
/// decide it.
#[tokio::test]
async fn a_second_quick_message_is_not_held_back() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut bob = connect(&server, "bob", "phone").await;
    // Enough traffic for the client's TCP to leave its quick-ACK start.
    for i in 0..40 {
        admin
            .send_text("alice", &["bob"], &format!("warm-up {i}"))
            .await
            .unwrap();
        let (seq, _) = bob.next_message(WAIT).await.unwrap();
        bob.ack(seq).await.unwrap();
    }
    let mut waits = Vec::new();
    for i in 0..15 {
        let (first, second) = (format!("first {i}"), format!("second {i}"));
        let (a, b) = tokio::join!(admin.send_text("alice", &["bob"], &first), async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            admin.send_text("alice", &["bob"], &second).await
        });
        a.unwrap();
        b.unwrap();
        // Both are stored and acknowledged: from here on only delivery waits.
        let acknowledged = Instant::now();
        let (_, m1) = bob.next_message(WAIT).await.unwrap();
        let (seq, m2) = bob.next_message(WAIT).await.unwrap();
        waits.push(acknowledged.elapsed());
        assert_eq!(m1["payload"]["bodies"][0]["msg"], first.as_str());
        assert_eq!(m2["payload"]["bodies"][0]["msg"], second.as_str());
        bob.ack(seq).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waits.sort();
    let median = waits[waits.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "the second message arrived {median:?} after both were acknowledged (median; all: {waits:?})"
    );
}

/// The HTTP idle limit ends connections that send no request; a WebSocket,
/// once upgraded, is not one of them (its own pings keep it in check).
#[tokio::test]
async fn a_websocket_outlives_the_http_idle_limit() {
    let server = TestServer::start_with(&[("CHATD_HTTP_IDLE_SECS", "1")]);
    let mut bob = connect(&server, "bob", "phone").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server
        .admin()
        .send_text("alice", &["bob"], "still here")
        .await
        .unwrap();
    let (_, m) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(m["payload"]["bodies"][0]["msg"], "still here");
}
