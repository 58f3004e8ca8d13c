//! The behaviour every [`Store`] implementation shares, run against each
//! embedded engine (`store_contract!` in their test modules).

use crate::*;
use chatd_core::{AppRecord, MessageType, Recipient, SendOptions};
use std::path::Path;
use std::sync::Arc;

pub(crate) type Open = fn(&Path) -> Arc<dyn Store>;

pub(crate) fn message(app: i64, to: &[&str], first_id: u64) -> NewMessage {
    NewMessage {
        app,
        from: "u1".into(),
        recipients: to
            .iter()
            .enumerate()
            .map(|(i, t)| Recipient::incoming(t, "u1", first_id + i as u64, false))
            .collect(),
        msg_type: MessageType::Txt,
        body: r#"{"msg":"hi"}"#.into(),
        ext: Some(r#"{"k":"v"}"#.into()),
        timestamp_ms: 1,
        options: SendOptions {
            sync_device: true,
            ..Default::default()
        },
        conversations: true,
    }
}

pub(crate) async fn appends_are_ordered_per_inbox_and_survive_reopen(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let a = store
            .append_message(message(1, &["u2", "u3"], 10))
            .await
            .unwrap();
        assert_eq!(a.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 1]);
        let b = store.append_message(message(1, &["u2"], 20)).await.unwrap();
        assert_eq!(b[0].seq, 2);
        store.close().await;
    }
    let store = open(dir.path());
    let c = store.append_message(message(1, &["u2"], 30)).await.unwrap();
    assert_eq!(c[0].seq, 3, "sequence continues after reopen");
    let inbox = store.inbox_after(1, "u2", 0, 10).await.unwrap();
    assert_eq!(
        inbox.iter().map(|e| e.msg_id).collect::<Vec<_>>(),
        vec![10, 20, 30]
    );
    assert_eq!(inbox[0].body, r#"{"msg":"hi"}"#);
    assert!(inbox[0].options.sync_device);
    assert_eq!(store.offline_count(1, "u2").await.unwrap(), 3);
    store.save_device_cursor(1, "u2", "phone", 1).await.unwrap();
    store.save_device_cursor(1, "u2", "phone", 0).await.unwrap();
    assert_eq!(
        store.device_cursor(1, "u2", "phone").await.unwrap(),
        Some(1)
    );
    assert_eq!(store.device_cursor(1, "u2", "web").await.unwrap(), None);
    assert_eq!(store.offline_count(1, "u2").await.unwrap(), 2);
    store.save_device_cursor(1, "u2", "web", 3).await.unwrap();
    assert_eq!(store.user_cursor(1, "u2").await.unwrap(), 3);
    assert_eq!(store.offline_count(1, "u2").await.unwrap(), 0);
    assert_eq!(store.max_message_id().await.unwrap(), 30);
    store.close().await;
}

pub(crate) async fn concurrent_appends_are_group_committed_without_gaps(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move { s.append_message(message(1, &["u9"], 100 + i)).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap()[0].seq);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    store.close().await;
}

pub(crate) async fn a_failing_request_does_not_undo_its_batch_neighbours(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // The same message id twice violates the primary key.
    let ok = store.append_message(message(1, &["a"], 5));
    let dup = store.append_message(message(1, &["b"], 5));
    let (ok, dup) = tokio::join!(ok, dup);
    assert!(ok.is_ok() != dup.is_ok());
    let ok2 = store.append_message(message(1, &["b"], 6)).await.unwrap();
    assert_eq!(ok2[0].seq, 1, "the failed append left no sequence behind");
    store.close().await;
}

pub(crate) async fn history_and_conversations_follow_both_directions(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let send = |from: &str, to: &str, id: u64, ignore: &[&str]| {
        let mut m = message(1, &[to], id);
        m.from = from.into();
        m.recipients[0].peer = from.into();
        m.recipients.push(Recipient::sync_copy(from, to, id));
        m.options.roam_ignore_users = ignore.iter().map(|s| s.to_string()).collect();
        m
    };
    store.append_message(send("a", "b", 10, &[])).await.unwrap();
    store.append_message(send("b", "a", 20, &[])).await.unwrap();
    store
        .append_message(send("a", "b", 30, &["a"]))
        .await
        .unwrap();
    store.append_message(send("a", "c", 40, &[])).await.unwrap();

    let ids = |v: Vec<InboxEntry>| v.iter().map(|e| e.msg_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.history(1, "b", "a", None, 10).await.unwrap()),
        vec![30, 20, 10]
    );
    assert_eq!(
        ids(store.history(1, "a", "b", None, 10).await.unwrap()),
        vec![20, 10],
        "roam_ignore_users hides 30 from a, and sync copies are not doubled"
    );
    assert_eq!(
        ids(store.history(1, "b", "a", Some(30), 1).await.unwrap()),
        vec![20]
    );
    assert!(store
        .history(1, "b", "a", None, 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.find_entry(1, 30).await.unwrap().unwrap().owner, "b");

    let convs = store.conversations(1, "b", 10).await.unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!((convs[0].peer.as_str(), convs[0].unread), ("a", 2));
    assert_eq!(convs[0].last.msg_id, 30);
    let a = store.conversations(1, "a", 10).await.unwrap();
    assert_eq!(
        a.iter().map(|c| c.peer.as_str()).collect::<Vec<_>>(),
        vec!["c", "b"]
    );
    assert_eq!(a[1].unread, 1);
    assert!(store.mark_read(1, "b", "a").await.unwrap());
    assert_eq!(store.conversations(1, "b", 10).await.unwrap()[0].unread, 0);
    assert!(store.delete_conversation(1, "b", "a", true).await.unwrap());
    assert!(store.conversations(1, "b", 10).await.unwrap().is_empty());
    assert!(store
        .history(1, "b", "a", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.history(1, "a", "b", None, 10).await.unwrap().len(),
        2,
        "one-sided"
    );
    assert!(!store.delete_conversation(1, "b", "a", false).await.unwrap());
    store.close().await;
}

pub(crate) async fn history_pages_hold_every_message_once_whatever_the_store_order(open: Open) {
    // Sends take their ids before they reach the store, so racing sends
    // arrive out of id order.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for id in [101, 100, 102, 105, 103, 104] {
        let mut m = message(1, &["b"], id);
        m.from = "a".into();
        m.recipients[0].peer = "a".into();
        store.append_message(m).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.history(1, "b", "a", before, 2).await.unwrap();
        seen.extend(page.iter().map(|e| e.msg_id));
        match page.last() {
            Some(last) if page.len() == 2 => before = Some(last.msg_id),
            _ => break,
        }
        assert!(seen.len() <= 6, "pages repeat: {seen:?}");
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![100, 101, 102, 103, 104, 105]);
    store.close().await;
}

pub(crate) async fn a_clear_hides_what_was_stamped_before_it(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now = chatd_core::clock::now_ms();
    let send = |id: u64, at: i64| {
        let mut m = message(1, &["b"], id);
        m.from = "a".into();
        m.recipients[0].peer = "a".into();
        m.timestamp_ms = at;
        m
    };
    store.append_message(send(10, now - 600_000)).await.unwrap();
    store.delete_conversation(1, "b", "a", true).await.unwrap();
    store.append_message(send(20, now + 5_000)).await.unwrap();
    // Stamped before the clear, stored after it (it raced the clear).
    store.append_message(send(30, now - 5_000)).await.unwrap();
    let ids: Vec<u64> = store
        .history(1, "b", "a", None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.msg_id)
        .collect();
    assert_eq!(ids, vec![20]);
    store.close().await;
}

pub(crate) async fn users_are_created_once_and_deleted(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = |n: &str| NewUser {
        username: n.into(),
        password_hash: None,
        nickname: None,
    };
    let r = store
        .create_users(1, vec![u("x"), u("x"), u("y")])
        .await
        .unwrap();
    assert!(matches!(r[0], UserInsert::Created(_)));
    assert!(matches!(r[1], UserInsert::Exists(_)));
    assert!(matches!(r[2], UserInsert::Created(_)));
    assert!(store.get_user(1, "x").await.unwrap().is_some());
    assert!(
        store.get_user(2, "x").await.unwrap().is_none(),
        "apps are separate"
    );
    assert!(store.delete_user(1, "x").await.unwrap().is_some());
    assert!(store.get_user(1, "x").await.unwrap().is_none());
    assert!(store.delete_user(1, "x").await.unwrap().is_none());
    store.close().await;
}

pub(crate) async fn apps_upsert_by_app_id(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = store
        .upsert_app(AppRecord::generate("org", "app", 1))
        .await
        .unwrap();
    assert!(a.key > 0);
    let mut changed = a.clone();
    changed.client_secret = "new".into();
    changed.uuid = "ignored".into();
    let b = store.upsert_app(changed).await.unwrap();
    assert_eq!(b.key, a.key);
    assert_eq!(b.uuid, a.uuid, "the uuid of an app never changes");
    let apps = store.list_apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].client_secret, "new");
    store.close().await;
}

/// One `#[tokio::test]` per contract test, for the engine `open` returns.
macro_rules! store_contract {
    ($open:expr) => {
        #[tokio::test]
        async fn appends_are_ordered_per_inbox_and_survive_reopen() {
            crate::contract::appends_are_ordered_per_inbox_and_survive_reopen($open).await
        }
        #[tokio::test]
        async fn concurrent_appends_are_group_committed_without_gaps() {
            crate::contract::concurrent_appends_are_group_committed_without_gaps($open).await
        }
        #[tokio::test]
        async fn a_failing_request_does_not_undo_its_batch_neighbours() {
            crate::contract::a_failing_request_does_not_undo_its_batch_neighbours($open).await
        }
        #[tokio::test]
        async fn history_and_conversations_follow_both_directions() {
            crate::contract::history_and_conversations_follow_both_directions($open).await
        }
        #[tokio::test]
        async fn history_pages_hold_every_message_once_whatever_the_store_order() {
            crate::contract::history_pages_hold_every_message_once_whatever_the_store_order($open)
                .await
        }
        #[tokio::test]
        async fn a_clear_hides_what_was_stamped_before_it() {
            crate::contract::a_clear_hides_what_was_stamped_before_it($open).await
        }
        #[tokio::test]
        async fn users_are_created_once_and_deleted() {
            crate::contract::users_are_created_once_and_deleted($open).await
        }
        #[tokio::test]
        async fn apps_upsert_by_app_id() {
            crate::contract::apps_upsert_by_app_id($open).await
        }
    };
}
pub(crate) use store_contract;
