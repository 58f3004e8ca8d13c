//! Every error the send API documents, plus the generic HTTP errors.

use crate::common::TestServer;
use chatd_client::{ApiResponse, RestClient};
use serde_json::{json, Value};

async fn send(c: &RestClient, body: Value) -> ApiResponse {
    c.send_message(&body).await.unwrap()
}

fn assert_error(r: &ApiResponse, status: u16, error: &str, description: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.error(), error, "{}", r.body);
    assert_eq!(r.description(), description, "{}", r.body);
    // The service's error JSON carries these too.
    assert!(r.body["timestamp"].as_i64().unwrap() > 0);
    assert!(r.body["duration"].is_u64());
    assert!(r.body["exception"].is_string());
}

const INVALID: &str = "Request body is invalid. Please check body is correct.";

#[tokio::test]
async fn the_seed_error_table() {
    let server = TestServer::start();
    let c = server.admin();
    let txt = json!({"msg": "x"});

    let r = send(
        &c,
        json!({"from":"user1","to":["u"],"type":"txt","body":{"msg":5}}),
    )
    .await;
    assert_error(&r, 400, "invalid_request_body", INVALID);
    let r = send(
        &c,
        json!({"from":"user1","to":["u"],"type":"img","body":{"filename":"a.jpg"}}),
    )
    .await;
    assert_error(&r, 400, "invalid_request_body", INVALID);
    let r = send(&c, json!({"from":"","to":["u"],"type":"txt","body":txt})).await;
    assert_error(&r, 400, "message_send_error", "param from can't be empty");
    let r = send(&c, json!({"from":"a","to":[],"type":"txt","body":txt})).await;
    assert_error(&r, 400, "message_send_error", "param to can't be empty");
    let r = send(&c, json!({"from":"a","to":["u"],"type":"","body":txt})).await;
    assert_error(&r, 400, "message_send_error", "param type can't be empty");
    let r = send(&c, json!({"from":"a","to":["u"],"type":"txt","body":{}})).await;
    assert_error(&r, 400, "message_send_error", "param body can't be empty");
    let r = send(
        &c,
        json!({"from":"a","to":["u"],"type":"txt","body":txt,"ext":null}),
    )
    .await;
    assert_error(
        &r,
        400,
        "message_send_error",
        "param ext must be JSONObject",
    );
    let r = send(
        &c,
        json!({"from":"a","to":["u"],"type":"txt","body":txt,"ext":[1]}),
    )
    .await;
    assert_error(
        &r,
        400,
        "message_send_error",
        "param ext must be JSONObject",
    );
    let many: Vec<String> = (0..601).map(|i| format!("u{i}")).collect();
    let r = send(&c, json!({"from":"a","to":many,"type":"txt","body":txt})).await;
    assert_error(
        &r,
        400,
        "message_send_error",
        "params to's size can't exceed limit 600",
    );
    let r = send(
        &c,
        json!({"from":"a","to":["u"],"type":"txt","body":{"msg":"x".repeat(5200)}}),
    )
    .await;
    assert_error(&r, 400, "message_send_error", "message is too large");
    let r = send(
        &c,
        json!({"from":"a","to":["u"],"type":"txt","body":{"msg":"x".repeat(3000)},"ext":{"k":"y".repeat(3000)}}),
    )
    .await;
    assert_error(&r, 400, "message_send_error", "message is too large");
    let r = send(
        &c,
        json!({"from":"a","to":["u"],"type":"sticker","body":txt}),
    )
    .await;
    assert_error(
        &r,
        400,
        "message_send_error",
        "param type sticker is not supported",
    );

    // Nothing refused reached an inbox.
    let count = c
        .call(reqwest::Method::GET, "/users/u/offline_msg_count", None)
        .await
        .unwrap();
    assert_eq!(count.body["data"]["u"], json!(0));
}

#[tokio::test]
async fn every_type_checks_its_body_fields() {
    let server = TestServer::start();
    let c = server.admin();
    let bad_bodies = [
        ("txt", json!({"text": "x"})),
        ("img", json!({"url": "u", "size": {"width": "480"}})),
        ("audio", json!({"url": "u", "length": "ten"})),
        ("audio", json!({"filename": "a.amr"})),
        ("video", json!({"url": "u", "file_length": "big"})),
        ("video", json!({"url": "u", "thumb": 1})),
        ("file", json!({"filename": "f.txt"})),
        ("loc", json!({"lat": "1", "lng": "2"})),
        ("loc", json!({"lat": true, "lng": "2", "addr": "x"})),
        ("cmd", json!({"msg": "x"})),
        ("custom", json!({"customEvent": "bad event!"})),
        ("custom", json!({"customExts": {"k": 1}})),
        (
            "custom",
            json!({"customExts": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        ),
    ];
    for (t, body) in bad_bodies {
        let r = send(&c, json!({"to":["u"],"type":t,"body":body})).await;
        assert_error(&r, 400, "invalid_request_body", INVALID);
    }
    for bad in [
        json!({"to":"u","type":"txt","body":{"msg":"x"}}),
        json!({"to":["u"],"type":"txt","body":{"msg":"x"},"sync_device":"true"}),
        json!({"to":["u"],"type":"txt","body":{"msg":"x"},"routetype":"ROUTE_SOMETIMES"}),
        json!({"to":["u"],"type":"txt","body":{"msg":"x"},"roam_ignore_users":[1]}),
        json!({"from":42,"to":["u"],"type":"txt","body":{"msg":"x"}}),
    ] {
        let r = send(&c, bad).await;
        assert_error(&r, 400, "invalid_request_body", INVALID);
    }
}

#[tokio::test]
async fn malformed_requests_get_the_error_json() {
    let server = TestServer::start();
    let c = server.admin();
    let url = c.url("/messages/users");
    let token = server.app_token();

    // Malformed JSON.
    let r = c
        .raw(
            c.http()
                .post(&url)
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body("{\"to\": [\"u\""),
        )
        .await
        .unwrap();
    assert_error(&r, 400, "invalid_request_body", INVALID);

    // Wrong content type.
    let r = c
        .raw(
            c.http()
                .post(&url)
                .bearer_auth(&token)
                .header("Content-Type", "text/plain")
                .body(r#"{"to":["u"],"type":"txt","body":{"msg":"x"}}"#),
        )
        .await
        .unwrap();
    assert_error(
        &r,
        415,
        "unsupported_media_type",
        "Content-Type must be application/json",
    );

    // Far over the limit, declared: refused without reading it.
    let huge = vec![b' '; 8 * 1024 * 1024];
    let r = c
        .raw(
            c.http()
                .post(&url)
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(huge),
        )
        .await;
    match r {
        Ok(r) => {
            assert_eq!(r.status, 413, "{}", r.body);
            assert_eq!(r.error(), "request_entity_too_large");
        }
        // The server may answer and close before the client finished
        // writing; then the client sees a reset, which is also a refusal.
        Err(e) => assert!(e.to_string().contains("error"), "{e}"),
    }

    // Over the limit, streamed without a length: cut off at the limit.
    let chunks = futures_stream(40, 16 * 1024);
    let r = c
        .raw(
            c.http()
                .post(&url)
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(reqwest::Body::wrap_stream(chunks)),
        )
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(r.error(), "request_entity_too_large");
    }

    // The server closes a connection whose body it refused unread: go on
    // with a fresh connection pool rather than a connection it closed.
    let c = server.admin();

    // A path that is not valid percent-encoded UTF-8 names nothing.
    let r = c
        .call(reqwest::Method::GET, "/users/%FF%FE", None)
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.error(), "resource_not_found");

    // Wrong method, unknown route, unknown app.
    let r = c
        .call(reqwest::Method::GET, "/messages/users", None)
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.error(), "method_not_allowed");
    let r = c
        .call(reqwest::Method::POST, "/messages/nowhere", None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "resource_not_found");

    let other =
        RestClient::new(&server.base, "ffffffffffffffffffffffffffffffff").with_token(&token);
    let r = other
        .send_message(&json!({"to":["u"],"type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_error(
        &r,
        404,
        "organization_application_not_found",
        "Could not find application for ffffffffffffffffffffffffffffffff from URI: app-id/ffffffffffffffffffffffffffffffff/messages/users",
    );
    let r = c
        .with_org_app("no-org", "no-app")
        .send_message(&json!({"to":["u"],"type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_error(
        &r,
        404,
        "organization_application_not_found",
        "Could not find application for no-org/no-app from URI: no-org/no-app/messages/users",
    );
}

fn futures_stream(
    n: usize,
    size: usize,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter((0..n).map(move |_| Ok(vec![b' '; size])))
}
