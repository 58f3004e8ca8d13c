//! Every token case: missing, corrupt, expired, other app, user vs app
//! privilege, issued tokens and the token endpoint's errors.

use crate::common::{TestServer, APP_CERT, APP_ID, CLIENT_ID, CLIENT_SECRET};
use chatd_auth::accesstoken2;
use chatd_client::ApiResponse;
use reqwest::Method;
use serde_json::json;

fn assert_error(r: &ApiResponse, status: u16, error: &str, description: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.error(), error, "{}", r.body);
    assert_eq!(r.description(), description, "{}", r.body);
}

fn text() -> serde_json::Value {
    json!({"from":"a","to":["b"],"type":"txt","body":{"msg":"x"}})
}

#[tokio::test]
async fn the_token_error_table() {
    let server = TestServer::start();
    let anon = server.anonymous();

    let r = anon.send_message(&text()).await.unwrap();
    assert_error(
        &r,
        401,
        "unauthorized",
        "Unable to authenticate due to expired access token",
    );

    let now = chatd_core::clock::now_secs() as u32;
    let expired = accesstoken2::mint_app_token_at(APP_ID, APP_CERT, 60, now - 120, 1);
    let r = anon
        .with_token(expired)
        .send_message(&text())
        .await
        .unwrap();
    assert_error(
        &r,
        401,
        "unauthorized",
        "Unable to authenticate due to expired access token",
    );

    for corrupt in ["007notbase64!!", "garbage", "007eJxTYA=="] {
        let r = anon
            .with_token(corrupt)
            .send_message(&text())
            .await
            .unwrap();
        assert_error(
            &r,
            401,
            "auth_bad_access_token",
            "Unable to authenticate due to corrupt access token",
        );
    }

    // Well-formed, but of another app, or signed with another certificate.
    let other_app = accesstoken2::mint_app_token("1123456789abcdef0123456789abcdef", APP_CERT, 600);
    let other_cert = accesstoken2::mint_app_token(APP_ID, "00000000000000000000000000000000", 600);
    for t in [other_app, other_cert] {
        let r = anon.with_token(t).send_message(&text()).await.unwrap();
        assert_error(&r, 401, "auth_bad_access_token", "Unable to authenticate");
    }

    // A user token may not call admin endpoints.
    let r = anon
        .with_token(server.user_token("a"))
        .send_message(&text())
        .await
        .unwrap();
    assert_error(
        &r,
        403,
        "forbidden_op",
        "This operation needs an app token; a user token may not perform it",
    );

    // The app token works, and keeps working from the cache.
    let admin = server.admin();
    for _ in 0..3 {
        assert_eq!(admin.send_message(&text()).await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn the_vectors_are_judged_by_the_server_as_by_the_library() {
    // The vectors' tokens are for the test app's id and certificate, so the
    // server must accept or refuse each as the library does (now is later
    // than every vector's expiry, so valid ones read as expired).
    let cases: serde_json::Value = serde_json::from_str(include_str!(
        "../../../chatd-auth/tests/vectors/accesstoken2.json"
    ))
    .unwrap();
    assert_eq!(cases["app_id"], APP_ID);
    assert_eq!(cases["app_certificate"], APP_CERT);
    let server = TestServer::start();
    let anon = server.anonymous();
    for case in cases["cases"].as_array().unwrap() {
        let token = case["token"].as_str().unwrap();
        let r = anon.with_token(token).send_message(&text()).await.unwrap();
        let expected = match case["expected"].as_str().unwrap() {
            "app" | "user:user1" | "expired" => (
                "unauthorized",
                "Unable to authenticate due to expired access token",
            ),
            "bad_signature" | "wrong_app" => ("auth_bad_access_token", "Unable to authenticate"),
            "invalid" => (
                "auth_bad_access_token",
                "Unable to authenticate due to corrupt access token",
            ),
            _ => (r.error(), r.description()),
        };
        assert_eq!(r.status, 401, "{}: {}", case["name"], r.body);
        assert_eq!((r.error(), r.description()), expected, "{}", case["name"]);
    }
}

#[tokio::test]
async fn client_credentials_and_password_grants() {
    let server = TestServer::start();
    let anon = server.anonymous();

    let r = anon.app_token(CLIENT_ID, CLIENT_SECRET).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(r.body["expires_in"], 60 * 24 * 3600);
    assert!(r.body["application"].as_str().unwrap().len() == 36);
    let admin = anon.with_token(&token);
    assert_eq!(admin.send_message(&text()).await.unwrap().status, 200);
    // The same token works on the other path form.
    let by_name = admin.with_org_app(crate::common::ORG, crate::common::APP);
    assert_eq!(by_name.send_message(&text()).await.unwrap().status, 200);

    // ttl, also as a string as in the service's example; 0 = never expires.
    let r = anon
        .call(
            Method::POST,
            "/token",
            Some(&json!({"grant_type":"client_credentials","client_id":CLIENT_ID,"client_secret":CLIENT_SECRET,"ttl":"1024000"})),
        )
        .await
        .unwrap();
    assert_eq!(r.body["expires_in"], 1024000);

    // Password grant.
    assert_eq!(
        admin
            .create_user("Alice", Some("pw1"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        admin.create_user("bob", Some("pw2")).await.unwrap().status,
        200
    );
    let r = anon.user_token("alice", "pw1").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["username"], "alice");
    assert_eq!(r.body["user"]["type"], "user");
    assert_eq!(r.body["user"]["activated"], true);
    let alice = anon.with_token(r.body["access_token"].as_str().unwrap());
    let me = alice.call(Method::GET, "/users/alice", None).await.unwrap();
    assert_eq!(me.status, 200, "{}", me.body);
    let other = alice.call(Method::GET, "/users/bob", None).await.unwrap();
    assert_eq!(other.status, 403);
    let send = alice.send_message(&text()).await.unwrap();
    assert_eq!(send.status, 403);

    // Issued tokens of one app are refused by another.
    let r = anon
        .with_org_app("nope", "nope")
        .app_token(CLIENT_ID, CLIENT_SECRET)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "organization_application_not_found");
}

#[tokio::test]
async fn the_token_endpoint_errors() {
    let server = TestServer::start();
    let anon = server.anonymous();
    let post = |body: serde_json::Value| {
        let anon = anon.clone();
        async move {
            anon.call(Method::POST, "/token", Some(&body))
                .await
                .unwrap()
        }
    };
    let r = post(json!({"grant_type":"client_credentials","client_secret":CLIENT_SECRET})).await;
    assert_error(&r, 400, "illegal_argument", "client_id must be provided.");
    let r = post(json!({"grant_type":"client_credentials","client_id":CLIENT_ID})).await;
    assert_error(
        &r,
        400,
        "illegal_argument",
        "client_secret must be provided",
    );
    let r = post(json!({"grant_type":"client_credentials","client_id":"YXA6nope","client_secret":CLIENT_SECRET})).await;
    assert_error(&r, 400, "invalid_grant", "client_id does not match");
    let r = post(
        json!({"grant_type":"client_credentials","client_id":CLIENT_ID,"client_secret":"YXA6nope"}),
    )
    .await;
    assert_error(&r, 400, "invalid_grant", "client_secret does not match");
    let r = post(json!({"grant_type":"password","username":"ghost","password":"x"})).await;
    assert_error(&r, 404, "invalid_grant", "user not found");
    let r = post(json!({"grant_type":"magic"})).await;
    assert_error(
        &r,
        400,
        "unsupported_grant_type",
        "grant_type magic is not supported; use client_credentials or password",
    );
    let r = post(json!({"grant_type":"client_credentials","client_id":CLIENT_ID,"client_secret":CLIENT_SECRET,"ttl":-5})).await;
    assert_eq!(r.status, 400);

    let admin = server.admin();
    admin.create_user("carol", Some("right")).await.unwrap();
    admin.create_user("dave", None).await.unwrap();
    let r = post(json!({"grant_type":"password","username":"carol","password":"wrong"})).await;
    assert_error(&r, 400, "invalid_grant", "invalid password");
    let r = post(json!({"grant_type":"password","username":"dave","password":"anything"})).await;
    assert_error(&r, 400, "invalid_grant", "invalid password");
}

#[tokio::test]
async fn the_token_endpoint_names_each_missing_field() {
    let server = TestServer::start();
    let anon = server.anonymous();
    for (body, description) in [
        (json!({}), "grant_type must be provided."),
        (
            json!({"grant_type":"password","password":"x"}),
            "username must be provided.",
        ),
        (
            json!({"grant_type":"password","username":"x"}),
            "password must be provided.",
        ),
        (
            json!({"grant_type":"client_credentials","client_id":CLIENT_ID,"client_secret":CLIENT_SECRET,"ttl":-5}),
            "ttl must be a non-negative integer number of seconds",
        ),
    ] {
        let r = anon
            .call(Method::POST, "/token", Some(&body))
            .await
            .unwrap();
        assert_error(&r, 400, "illegal_argument", description);
    }
}
