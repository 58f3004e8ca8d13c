//! Acknowledged messages survive restarts and crashes; the server reports
//! its health and metrics.

use crate::common::TestServer;
use reqwest::Method;
use serde_json::json;

async fn offline_count(server: &TestServer, user: &str) -> u64 {
    let r = server
        .admin()
        .call(
            Method::GET,
            &format!("/users/{user}/offline_msg_count"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"][user].as_u64().unwrap()
}

/// Sends `n` messages from `from` to `to` concurrently (so that several
/// share one group commit), kills the server once all are acknowledged,
/// restarts it, and checks that all `n` are there and that the next id is
/// larger than every acknowledged one.
async fn acknowledged_sends_survive_a_crash(server: &mut TestServer, from: &str, to: &str, n: u64) {
    let admin = server.admin();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (admin, from, to) = (admin.clone(), from.to_string(), to.to_string());
        tasks.push(tokio::spawn(async move {
            admin
                .send_text(&from, &[to.as_str()], &format!("m{i}"))
                .await
        }));
    }
    let mut max_id = 0;
    for t in tasks {
        max_id = max_id.max(t.await.unwrap().unwrap()[0].1);
    }
    server.kill();
    server.restart();
    assert_eq!(offline_count(server, to).await, n);
    let after = server
        .admin()
        .send_text(from, &[to], "after the crash")
        .await
        .unwrap();
    assert!(after[0].1 > max_id, "ids never repeat after a restart");
}

#[tokio::test]
async fn acknowledged_messages_survive_sigkill_and_ids_keep_growing() {
    let mut server = TestServer::start();
    acknowledged_sends_survive_a_crash(&mut server, "sender", "victim", 100).await;
}

#[tokio::test]
async fn graceful_restart_keeps_users_and_messages() {
    let mut server = TestServer::start();
    let admin = server.admin();
    admin.create_user("keeper", Some("pw")).await.unwrap();
    admin.send_text("a", &["keeper"], "one").await.unwrap();
    let status = server.stop();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    server.restart();
    assert_eq!(offline_count(&server, "keeper").await, 1);
    let r = server.anonymous().user_token("keeper", "pw").await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    server
        .admin()
        .send_text("a", &["b", "c"], "x")
        .await
        .unwrap();
    let text = server.metrics_text().await;
    assert!(text.contains("chatd_messages_accepted_total 2"), "{text}");
    assert!(text.contains(
        r#"chatd_http_requests_total{route="/app-id/{app_id}/messages/users",method="POST",status="200"} 1"#
    ));
    assert!(text.contains("chatd_storage_batch_size_bucket"));
    assert!(text.contains("chatd_storage_commit_seconds_bucket"));
}

#[tokio::test]
async fn a_second_app_is_isolated_from_the_first() {
    let server = TestServer::start();
    let (id2, cert2) = server.create_app("other", "app2");

    let app2 = chatd_client::RestClient::new(&server.base, &id2)
        .with_token(chatd_auth::accesstoken2::mint_app_token(&id2, &cert2, 600));
    assert_eq!(app2.send_text("x", &["y"], "hi").await.unwrap().len(), 1);
    let app2_by_name = app2.with_org_app("other", "app2");
    assert_eq!(
        app2_by_name
            .send_text("x", &["y"], "hi")
            .await
            .unwrap()
            .len(),
        1
    );

    // Tokens never cross apps.
    let first_app_token = server.app_token();
    let r = app2
        .with_token(&first_app_token)
        .send_message(&json!({"to":["y"],"type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = server
        .admin()
        .with_token(chatd_auth::accesstoken2::mint_app_token(&id2, &cert2, 600))
        .send_message(&json!({"to":["y"],"type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // Inboxes are per app.
    let r = server
        .admin()
        .call(Method::GET, "/users/y/offline_msg_count", None)
        .await
        .unwrap();
    assert_eq!(r.body["data"]["y"], 0);
}

/// On `engine`: acknowledged messages survive a crash, the engine's files
/// are the ones in the data directory, and the CLI writes the app registry
/// beside the running server, which then serves the new app.
async fn engine_keeps_messages_and_apps_beside_it(engine: &str, made: &str, not_made: &str) {
    let mut server = TestServer::start_with(&[("CHATD_STORAGE_ENGINE", engine)]);
    server
        .admin()
        .create_user("keeper", Some("pw"))
        .await
        .unwrap();
    acknowledged_sends_survive_a_crash(&mut server, "a", "keeper", 50).await;
    assert!(server.dir.path().join(made).exists());
    assert!(!server.dir.path().join(not_made).exists());
    let (id2, cert2) = server.create_app("other", "app2");
    let app2 = chatd_client::RestClient::new(&server.base, &id2)
        .with_token(chatd_auth::accesstoken2::mint_app_token(&id2, &cert2, 600));
    app2.send_text("x", &["keeper"], "from app2").await.unwrap();
    let r = server.anonymous().user_token("keeper", "pw").await.unwrap();
    assert_eq!(r.status, 200, "users are kept too");
}

#[tokio::test]
async fn the_journal_keeps_messages_across_a_crash_and_apps_beside_it() {
    engine_keeps_messages_and_apps_beside_it("journal", "journal", "chatd.db").await;
}

#[tokio::test]
async fn the_sqlite_engine_keeps_messages_across_a_crash_and_apps_beside_it() {
    engine_keeps_messages_and_apps_beside_it("sqlite", "chatd.db", "journal").await;
}

#[tokio::test]
async fn an_engine_refuses_a_directory_of_the_other() {
    let mut sqlite = TestServer::start_with(&[("CHATD_STORAGE_ENGINE", "sqlite")]);
    sqlite.admin().send_text("a", &["b"], "kept").await.unwrap();
    assert!(sqlite.stop().success());
    let chatd = |dir: &std::path::Path, args: &[&str], engine: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"));
        cmd.args(args)
            .env_clear()
            .env("CHATD_DATA_DIR", dir)
            .env("CHATD_LISTEN", "127.0.0.1:0");
        if let Some(e) = engine {
            cmd.env("CHATD_STORAGE_ENGINE", e);
        }
        cmd.output().unwrap()
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();

    // Unset, the engine is the one whose database is there.
    let listed = chatd(sqlite.dir.path(), &["app", "list"], None);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(crate::common::APP_ID));
    // Named, another engine is refused, and writes nothing there.
    let refused = chatd(sqlite.dir.path(), &["serve"], Some("journal"));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("storage_engine = \"sqlite\""),
        "{}",
        stderr(&refused)
    );
    let refused = chatd(sqlite.dir.path(), &["app", "list"], Some("journal"));
    assert!(!refused.status.success());
    assert!(
        !sqlite.dir.path().join("journal").exists() && !sqlite.dir.path().join("apps.db").exists(),
        "no empty journal was made"
    );

    // And the other way: a journal's directory, or only its registry (here
    // made by `app list` on a new directory), is not served by sqlite.
    let fresh = tempfile::tempdir().unwrap();
    assert!(chatd(fresh.path(), &["app", "list"], None).status.success());
    assert!(fresh.path().join("apps.db").exists());
    let refused = chatd(fresh.path(), &["serve"], Some("sqlite"));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("app registry of the journal"),
        "{}",
        stderr(&refused)
    );
    let mut journal = TestServer::start_with(&[("CHATD_STORAGE_ENGINE", "journal")]);
    journal
        .admin()
        .send_text("a", &["b"], "kept")
        .await
        .unwrap();
    assert!(journal.stop().success());
    let refused = chatd(journal.dir.path(), &["serve"], Some("sqlite"));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("storage_engine = \"journal\""),
        "{}",
        stderr(&refused)
    );
    assert!(
        !journal.dir.path().join("chatd.db").exists(),
        "no empty sqlite store was made"
    );

    let bad = chatd(fresh.path(), &["serve"], Some("btree"));
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("storage_engine must be"),
        "{}",
        stderr(&bad)
    );
}
