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
    let text = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

#[tokio::test]
async fn the_lsm_engine_keeps_messages_across_a_crash_and_apps_beside_it() {
    let mut server = TestServer::start_with(&[("CHATD_STORAGE_ENGINE", "lsm")]);
    server
        .admin()
        .create_user("keeper", Some("pw"))
        .await
        .unwrap();
    acknowledged_sends_survive_a_crash(&mut server, "a", "keeper", 50).await;
    assert!(server.dir.path().join("lsm").is_dir());
    assert!(!server.dir.path().join("chatd.db").exists());

    // The CLI writes the app registry while the server holds the LSM
    // directory, and the server serves the new app.
    let (id2, cert2) = server.create_app("other", "app2");
    let app2 = chatd_client::RestClient::new(&server.base, &id2)
        .with_token(chatd_auth::accesstoken2::mint_app_token(&id2, &cert2, 600));
    app2.send_text("x", &["keeper"], "from app2").await.unwrap();
}

#[tokio::test]
async fn an_engine_refuses_a_directory_of_the_other() {
    let mut lsm = TestServer::start_with(&[("CHATD_STORAGE_ENGINE", "lsm")]);
    lsm.admin().send_text("a", &["b"], "kept").await.unwrap();
    assert!(lsm.stop().success());
    let run = |engine: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"));
        cmd.arg("serve")
            .env_clear()
            .env("CHATD_DATA_DIR", lsm.dir.path())
            .env("CHATD_LISTEN", "127.0.0.1:0");
        if let Some(e) = engine {
            cmd.env("CHATD_STORAGE_ENGINE", e);
        }
        cmd.output().unwrap()
    };
    let refused = run(None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("storage_engine = \"lsm\""), "{err}");
    // Nor does a command given the wrong engine write a registry there.
    let listed = lsm
        .cli()
        .env_remove("CHATD_STORAGE_ENGINE")
        .args(["app", "list"])
        .output()
        .unwrap();
    assert!(!listed.status.success());
    assert!(
        String::from_utf8_lossy(&listed.stderr).contains("storage_engine = \"lsm\""),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        !lsm.dir.path().join("chatd.db").exists(),
        "no empty sqlite store was made"
    );

    // And the other way: a SQLite directory (here made by `app list`,
    // which opens only the registry) is not served by the lsm engine.
    let sqlite_dir = tempfile::tempdir().unwrap();
    let chatd = |args: &[&str], engine: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"));
        cmd.args(args)
            .env_clear()
            .env("CHATD_DATA_DIR", sqlite_dir.path())
            .env("CHATD_LISTEN", "127.0.0.1:0");
        if let Some(e) = engine {
            cmd.env("CHATD_STORAGE_ENGINE", e);
        }
        cmd.output().unwrap()
    };
    assert!(chatd(&["app", "list"], None).status.success());
    let refused = chatd(&["serve"], Some("lsm"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("a database of the sqlite engine"), "{err}");
    assert!(
        !sqlite_dir.path().join("lsm").exists(),
        "no empty lsm store was made"
    );

    let bad = run(Some("btree"));
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("storage_engine must be"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
