//! Nothing lost, nothing doubled: reconnects, unacknowledged messages,
//! crashes, and slow clients.

use crate::common::TestServer;
use crate::{assert_quiet, connect, WAIT};
use chatd_client::WsError;
use std::time::{Duration, Instant};

#[tokio::test]
async fn offline_messages_arrive_in_order_on_reconnect() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(
            admin
                .send_text("alice", &["bob"], &format!("m{i}"))
                .await
                .unwrap()[0]
                .1,
        );
    }
    let mut bob = connect(&server, "bob", "phone").await;
    let mut got = Vec::new();
    for _ in 0..50 {
        let (seq, m) = bob.next_message(WAIT).await.unwrap();
        got.push(m["msg_id"].as_str().unwrap().parse::<u64>().unwrap());
        bob.ack(seq).await.unwrap();
    }
    assert_eq!(got, sent);
    assert_quiet(&mut bob, 200).await;
    bob.close().await;
    // Acknowledged: a reconnect brings nothing again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = connect(&server, "bob", "phone").await;
    assert_quiet(&mut bob, 300).await;
}

#[tokio::test]
async fn an_unacknowledged_message_comes_again_after_reconnect() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut bob = connect(&server, "bob", "phone").await;
    admin.send_text("alice", &["bob"], "first").await.unwrap();
    admin.send_text("alice", &["bob"], "second").await.unwrap();
    let (seq1, m1) = bob.next_message(WAIT).await.unwrap();
    bob.ack(seq1).await.unwrap();
    let (_, m2) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(m2["payload"]["bodies"][0]["msg"], "second");
    bob.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = connect(&server, "bob", "phone").await;
    let (_, again) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(
        again["msg_id"], m2["msg_id"],
        "the unacknowledged one, same id"
    );
    assert_ne!(again["msg_id"], m1["msg_id"]);
    assert_quiet(&mut bob, 200).await;
}

#[tokio::test]
async fn undelivered_messages_survive_sigkill() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            admin
                .send_text("alice", &["bob"], &format!("m{i}"))
                .await
                .unwrap()[0]
                .1,
        );
    }
    server.kill();
    server.restart();
    let mut bob = connect(&server, "bob", "phone").await;
    for id in ids {
        let (seq, m) = bob.next_message(WAIT).await.unwrap();
        assert_eq!(m["msg_id"], id.to_string().as_str());
        bob.ack(seq).await.unwrap();
    }
}

#[tokio::test]
async fn an_acknowledged_position_is_saved_while_the_connection_stays_open() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let mut bob = connect(&server, "bob", "phone").await;
    // Idle first, longer than the save interval: nothing to save yet.
    tokio::time::sleep(chatd_delivery::SAVE_INTERVAL + Duration::from_secs(1)).await;
    admin.send_text("alice", &["bob"], "once").await.unwrap();
    let (seq, _) = bob.next_message(WAIT).await.unwrap();
    // One acknowledgement: far fewer than make a connection save at once.
    bob.ack(seq).await.unwrap();
    tokio::time::sleep(chatd_delivery::SAVE_INTERVAL + Duration::from_secs(1)).await;
    // No shutdown save: only the periodic one can have kept the position.
    server.kill();
    server.restart();
    let mut bob = connect(&server, "bob", "phone").await;
    assert_quiet(&mut bob, 500).await;
}

#[tokio::test]
async fn clients_reconnect_after_a_graceful_restart_without_loss_or_repeat() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let mut bob = connect(&server, "bob", "phone").await;
    admin.send_text("alice", &["bob"], "before").await.unwrap();
    let (seq, _) = bob.next_message(WAIT).await.unwrap();
    bob.ack(seq).await.unwrap();
    // Give the ack time to be read before the shutdown saves it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.restart();
    match bob.next_message(WAIT).await {
        Err(WsError::Closed { code, .. }) => assert!(code == 1001 || code == 1006, "{code}"),
        other => panic!("expected the server to close, got {other:?}"),
    }
    admin_after(&server).await;
    let mut bob = connect(&server, "bob", "phone").await;
    let (_, m) = bob.next_message(WAIT).await.unwrap();
    assert_eq!(m["payload"]["bodies"][0]["msg"], "after");
    assert_quiet(&mut bob, 200).await;
}

async fn admin_after(server: &TestServer) {
    server
        .admin()
        .send_text("alice", &["bob"], "after")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stalled_client_does_not_delay_others() {
    let server = TestServer::start_with(&[("CHATD_DELIVERY_WINDOW", "8")]);
    let admin = server.admin();
    // The stalled client never reads nor acknowledges.
    let _stalled = connect(&server, "slow", "phone").await;
    let mut fast = connect(&server, "fast", "phone").await;
    let big = "x".repeat(4000);
    for _ in 0..200 {
        admin.send_text("alice", &["slow"], &big).await.unwrap();
    }
    let started = Instant::now();
    admin.send_text("alice", &["fast"], "quick").await.unwrap();
    let (_, m) = fast.next_message(WAIT).await.unwrap();
    assert_eq!(m["payload"]["bodies"][0]["msg"], "quick");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_window_bounds_unacknowledged_messages() {
    let server = TestServer::start_with(&[("CHATD_DELIVERY_WINDOW", "5")]);
    let admin = server.admin();
    let mut bob = connect(&server, "bob", "phone").await;
    for i in 0..12 {
        admin
            .send_text("alice", &["bob"], &format!("m{i}"))
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    for _ in 0..5 {
        seqs.push(bob.next_message(WAIT).await.unwrap().0);
    }
    assert_quiet(&mut bob, 300).await;
    bob.ack(seqs[4]).await.unwrap();
    for _ in 0..5 {
        bob.next_message(WAIT).await.unwrap();
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_loses_nothing() {
    let server = TestServer::start_with(&[
        ("CHATD_DELIVERY_WINDOW", "100000"),
        ("CHATD_CLIENT_WRITE_SECS", "1"),
    ]);
    let admin = server.admin();
    // Authenticates, then never reads again.
    let stalled = connect(&server, "slow", "phone").await;
    let big = "x".repeat(4500);
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    let gone = loop {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let admin = admin.clone();
                let big = big.clone();
                tokio::spawn(async move { admin.send_text("alice", &["slow"], &big).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
            sent += 1;
        }
        let r = admin
            .call(reqwest::Method::GET, "/users/slow/resources", None)
            .await
            .unwrap();
        if r.body["data"].as_array().unwrap().is_empty() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        gone,
        "the stalled connection was not closed after {sent} messages"
    );
    drop(stalled);
    // Everything is still there for the next connection.
    let mut again = connect(&server, "slow", "phone").await;
    for _ in 0..sent {
        let (seq, _) = again.next_message(WAIT).await.unwrap();
        again.ack(seq).await.unwrap();
    }
    assert_quiet(&mut again, 200).await;
}
