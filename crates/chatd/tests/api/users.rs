//! `POST …/users`, `GET` and `DELETE …/users/{username}`.

use crate::common::TestServer;
use chatd_client::ApiResponse;
use reqwest::Method;
use serde_json::{json, Value};

fn assert_error(r: &ApiResponse, status: u16, error: &str, description: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.error(), error, "{}", r.body);
    assert_eq!(r.description(), description, "{}", r.body);
}

#[tokio::test]
async fn register_get_and_delete() {
    let server = TestServer::start();
    let admin = server.admin();

    let r = admin.create_user("User1", Some("pw")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["action"], "post");
    assert_eq!(r.body["path"], "/users");
    let e = &r.body["entities"][0];
    assert_eq!(e["username"], "user1", "usernames are stored lowercase");
    assert_eq!(e["type"], "user");
    assert_eq!(e["activated"], true);
    assert_eq!(e["uuid"].as_str().unwrap().len(), 36);
    assert!(e.get("password").is_none() && e.get("password_hash").is_none());

    let r = admin.call(Method::GET, "/users/USER1", None).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["entities"][0]["uuid"], e["uuid"]);

    let r = admin
        .call(Method::DELETE, "/users/user1", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["action"], "delete");
    assert_eq!(r.body["entities"][0]["username"], "user1");

    let r = admin.call(Method::GET, "/users/user1", None).await.unwrap();
    assert_error(
        &r,
        404,
        "service_resource_not_found",
        "Service resource not found",
    );
    let r = admin
        .call(Method::DELETE, "/users/user1", None)
        .await
        .unwrap();
    assert_error(
        &r,
        404,
        "service_resource_not_found",
        "Service resource not found",
    );
}

#[tokio::test]
async fn batches_report_existing_users_and_refuse_oversize() {
    let server = TestServer::start();
    let admin = server.admin();
    admin.create_user("user3", None).await.unwrap();

    let batch =
        json!([{"username":"user1","password":"p"},{"username":"user2"},{"username":"user3"}]);
    let r = admin
        .call(Method::POST, "/users", Some(&batch))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r.body["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user1", "user2"]);
    assert_eq!(
        r.body["data"],
        json!([{"username":"user3","registerUserFailReason":"the user3 already exists"}])
    );

    let sixty: Vec<Value> = (0..60)
        .map(|i| json!({"username": format!("b{i}")}))
        .collect();
    let r = admin
        .call(Method::POST, "/users", Some(&json!(sixty)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 60);
    let sixty_one: Vec<Value> = (0..61)
        .map(|i| json!({"username": format!("c{i}")}))
        .collect();
    let r = admin
        .call(Method::POST, "/users", Some(&json!(sixty_one)))
        .await
        .unwrap();
    assert_error(
        &r,
        400,
        "illegal_argument",
        "Request body array size[61] had almost reached or been greater than the upper range value[60]",
    );
    let r = admin.call(Method::GET, "/users/c0", None).await.unwrap();
    assert_eq!(r.status, 404, "a refused batch registers nobody");
}

#[tokio::test]
async fn registration_errors() {
    let server = TestServer::start();
    let admin = server.admin();
    admin.create_user("taken", None).await.unwrap();

    let r = admin.create_user("taken", None).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "duplicate_unique_property_exists");
    assert!(r
        .description()
        .ends_with("requires that property named username be unique, value of taken exists"));

    let r = admin.create_user("bad name", None).await.unwrap();
    assert_error(
        &r,
        400,
        "illegal_argument",
        "username bad name is not legal",
    );
    let r = admin.create_user(&"x".repeat(65), None).await.unwrap();
    assert_error(&r, 400, "illegal_argument", "USERNAME_TOO_LONG");
    let r = admin
        .call(
            Method::POST,
            "/users",
            Some(&json!({"username":"n1","nickname":"x".repeat(101)})),
        )
        .await
        .unwrap();
    assert_error(&r, 400, "illegal_argument", "NICKNAME_TOO_LONG");
    let r = admin
        .call(
            Method::POST,
            "/users",
            Some(&json!([{"username":"d","password":"1"},{"username":"D","password":"2"}])),
        )
        .await
        .unwrap();
    assert_error(
        &r,
        400,
        "duplicate_unique_property_exists",
        "the same user d has a different password",
    );

    // Registration's own wording for token failures.
    for anon in [
        server.anonymous(),
        server.anonymous().with_token("007garbage"),
    ] {
        let r = anon.create_user("someone", None).await.unwrap();
        assert_error(
            &r,
            401,
            "unauthorized",
            "registration is not open, please contact the app admin",
        );
    }
    let r = server
        .anonymous()
        .with_token(server.user_token("taken"))
        .create_user("someone", None)
        .await
        .unwrap();
    assert_eq!(r.status, 403);

    // The service's own example posts without a Content-Type (curl -d).
    let r = admin
        .raw(
            admin
                .http()
                .post(admin.url("/users"))
                .bearer_auth(server.app_token())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(r#"[{"username":"formuser"}]"#),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn sending_needs_no_registered_users() {
    let server = TestServer::start();
    let admin = server.admin();
    let ids = admin
        .send_text("nobody1", &["nobody2"], "hi")
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
}
