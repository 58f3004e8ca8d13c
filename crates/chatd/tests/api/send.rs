//! Every example request of the send API, on both path forms.

use crate::common::{TestServer, APP, APP_ID, ORG};
use serde_json::{json, Value};

fn seed_examples() -> Vec<Value> {
    vec![
        json!({"from":"user1","to":["user2"],"type":"txt","roam_ignore_users":[],
               "body":{"msg":"testmessages"},"ext":{"em_ignore_notification":true}}),
        json!({"from":"user1","to":["user2"],"type":"txt","roam_ignore_users":[],
               "body":{"msg":"testmessages"},"ext":{"em_ignore_notification":true},
               "routetype":"ROUTE_ONLINE","sync_device":true}),
        json!({"from":"user1","to":["user2"],"type":"img","body":{"filename":"testimg.jpg",
               "secret":"VfXXXXNb_","url":"https://XXXX/app-id/XXXX/chatfiles/55f12940-XXXX-XXXX-8a5b-ff2336f03252",
               "size":{"width":480,"height":720}}}),
        json!({"from":"user1","to":["user2"],"type":"audio","body":{
               "url":"https://XXXX/XXXX/XXXX/chatfiles/1dfc7f50-XXXX-XXXX-8a07-7d75b8fb3d42",
               "filename":"testaudio.amr","length":10,"secret":"HfXXXXCjM"}}),
        json!({"from":"user1","to":["user2"],"type":"video","body":{"filename":"test.avi",
               "thumb":"https://XXXX/app-id/XXXX/chatfiles/67279b20-7f69-11e4-8eee-21d3334b3a97",
               "length":0,"secret":"VfXXXXNb_","file_length":58103,"thumb_secret":"ZyXXXX2I",
               "url":"https://XXXX/app-id/XXXX/chatfiles/671dfe30-XXXX-XXXX-ba67-8fef0d502f46"}}),
        json!({"from":"user1","to":["user2"],"type":"file","body":{"filename":"test.txt",
               "secret":"1-g0XXXXua","url":"https://XXXX/app-id/XXXX/chatfiles/d7eXXXX7444"}}),
        json!({"from":"user1","to":["user2"],"type":"loc","body":{"lat":"39.966","lng":"116.322",
               "addr":"中国北京市海淀区中关村"}}),
        json!({"from":"user1","to":["user2"],"type":"cmd","body":{"action":"action1"}}),
        json!({"from":"user1","to":["user2"],"type":"custom","body":{"customEvent":"custom_event",
               "customExts":{"ext_key1":"ext_value1"}}}),
    ]
}

fn assert_send_envelope(body: &Value, base: &str, recipients: &[&str]) {
    assert_eq!(body["path"], "/messages/users");
    assert_eq!(body["action"], "post");
    assert_eq!(body["uri"], format!("{base}/{ORG}/{APP}/messages/users"));
    assert!(body["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(body["duration"].is_u64());
    let data = body["data"].as_object().expect("data is an object");
    assert_eq!(data.len(), recipients.len());
    for r in recipients {
        let id: u64 = data[*r]
            .as_str()
            .expect("ids are strings")
            .parse()
            .expect("ids are 64-bit integers");
        assert!(id > 0);
    }
}

#[tokio::test]
async fn every_seed_example_is_accepted_on_both_path_forms() {
    let server = TestServer::start();
    let by_id = server.admin();
    let by_name = by_id.with_org_app(ORG, APP);
    let mut ids = Vec::new();
    for client in [&by_id, &by_name] {
        for example in seed_examples() {
            let r = client.send_message(&example).await.unwrap();
            assert_eq!(r.status, 200, "{example}: {}", r.body);
            assert_send_envelope(&r.body, &server.base, &["user2"]);
            ids.push(
                r.body["data"]["user2"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "every message id is unique");
    assert_eq!(sorted, ids, "ids grow with time");

    // Every message is in user2's inbox, except the ROUTE_ONLINE example
    // (once per path form): user2 is offline, so it is kept nowhere.
    let count = by_id
        .call(reqwest::Method::GET, "/users/user2/offline_msg_count", None)
        .await
        .unwrap();
    assert_eq!(count.status, 200);
    assert_eq!(count.body["data"]["user2"], json!(ids.len() - 2));
    assert!(server.base.contains("127.0.0.1"));
    assert_eq!(
        by_id.url("/x"),
        format!("{}/app-id/{APP_ID}/x", server.base)
    );
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_same_endpoint() {
    let server = TestServer::start();
    let by_id = server.admin();
    let by_name = by_id.with_org_app(ORG, APP);
    let example = &seed_examples()[0];
    for client in [&by_id, &by_name] {
        let r = client
            .call(reqwest::Method::POST, "/messages/users/", Some(example))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_send_envelope(&r.body, &server.base, &["user2"]);
        let count = client
            .call(
                reqwest::Method::GET,
                "/users/user2/offline_msg_count//",
                None,
            )
            .await
            .unwrap();
        assert_eq!(count.status, 200, "{}", count.body);
    }
    let count = by_id
        .call(reqwest::Method::GET, "/users/user2/offline_msg_count", None)
        .await
        .unwrap();
    assert_eq!(count.body["data"]["user2"], json!(2));
    // Errors are the endpoint's own, not a 404 of the router's.
    let r = by_id
        .call(reqwest::Method::POST, "/messages/users/", Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let health = reqwest::get(format!("{}/health/", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // The web page keeps its directory URL: `/` leads to `/web/` (through
    // redirects, which a trimmed `/web/` would turn into a loop).
    let page = reqwest::get(format!("{}/", server.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.url().path(), "/web/");
}

#[tokio::test]
async fn one_id_per_recipient_and_from_defaults_to_admin() {
    let server = TestServer::start();
    let admin = server.admin();
    let to: Vec<String> = (0..600).map(|i| format!("u{i}")).collect();
    let r = admin
        .send_message(&json!({"to": to, "type": "txt", "body": {"msg": "hello all"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = to.iter().map(String::as_str).collect();
    assert_send_envelope(&r.body, &server.base, &names);
    let mut ids: Vec<&str> = r.body["data"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 600);

    // Recipients are case-insensitive: two spellings are one inbox entry.
    let r = admin
        .send_message(&json!({"to": ["Bob", "bob"], "type": "txt", "body": {"msg": "x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_object().unwrap().len(), 1);
    assert!(r.body["data"]["Bob"].is_string());
}

/// Sends take a direct path past the router (crates/chatd-api/src/direct.rs):
/// their answers carry the same CORS headers as the rest of the API's, and
/// a path the router must decode still reaches the same handler.
#[tokio::test]
async fn sends_answer_like_the_rest_of_the_api() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let token = server.app_token();
    let body = json!({"from":"a","to":["b"],"type":"txt","body":{"msg":"x"}});
    let post = |path: String, token: Option<&str>| {
        let mut r = http
            .post(format!("{}{path}", server.base))
            .header("Origin", "https://app.example")
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let other = http
        .post(format!("{}/app-id/{APP_ID}/users", server.base))
        .header("Origin", "https://app.example")
        .bearer_auth(&token)
        .json(&json!({"username":"cors-check"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let cors = |r: &reqwest::Response| {
        ["access-control-allow-origin", "vary"]
            .map(|h| r.headers().get(h).map(|v| v.to_str().unwrap().to_string()))
    };
    let want = cors(&other);
    assert_eq!(want[0].as_deref(), Some("*"));

    let ok = post(format!("/app-id/{APP_ID}/messages/users"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(cors(&ok), want);
    let by_name = post(format!("/{ORG}/{APP}/messages/users"), Some(&token))
        .await
        .unwrap();
    assert_eq!(by_name.status(), 200);
    assert_eq!(cors(&by_name), want);
    let refused = post(format!("/app-id/{APP_ID}/messages/users"), None)
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(cors(&refused), want);

    // `%30` is `0`: the router decodes it and serves the same app.
    let encoded = format!("/app-id/%30{}/messages/users", &APP_ID[1..]);
    let r = post(encoded, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let metrics = server.metrics_text().await;
    for line in [
        r#"chatd_http_requests_total{route="/app-id/{app_id}/messages/users",method="POST",status="200"} 2"#,
        r#"chatd_http_requests_total{route="/app-id/{app_id}/messages/users",method="POST",status="401"} 1"#,
        r#"chatd_http_requests_total{route="/{org_name}/{app_name}/messages/users",method="POST",status="200"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}
