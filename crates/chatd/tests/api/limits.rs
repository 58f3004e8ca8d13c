//! Per-app limits: reached, refused without side effects, and recovered.

use crate::common::TestServer;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn calls_per_second_reach_429_and_recover() {
    let server = TestServer::start_with(&[("CHATD_RATE_CALLS_PER_SEC", "5")]);
    let admin = server.admin();
    let body = json!({"to":["u"],"type":"txt","body":{"msg":"x"}});
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(admin.send_message(&body).await.unwrap());
    }
    let limited: Vec<_> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(!limited.is_empty(), "20 calls at once exceed 5/s");
    assert_eq!(limited[0].error(), "reach_limit");
    assert_eq!(
        limited[0].description(),
        "This request has reached api limit"
    );
    let accepted = statuses.iter().filter(|r| r.status == 200).count();
    let count = admin
        .call(Method::GET, "/users/u/offline_msg_count", None)
        .await
        .unwrap();
    assert_eq!(
        count.body["data"]["u"],
        json!(accepted),
        "429s stored nothing"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(admin.send_message(&body).await.unwrap().status, 200);
}

#[tokio::test]
async fn messages_per_minute_reach_403_all_or_nothing_and_recover() {
    // 60 a minute = one more every second.
    let server = TestServer::start_with(&[("CHATD_RATE_MSGS_PER_MIN", "60")]);
    let admin = server.admin();
    let to: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let r = admin
        .send_message(&json!({"to": to, "type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // 20 more recipients do not fit in the 10 left: nobody gets it.
    let more: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    let r = admin
        .send_message(&json!({"to": more, "type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error(), "message_send_error");
    assert_eq!(r.description(), "message send reach limit");
    for user in ["s0", "s19"] {
        let c = admin
            .call(
                Method::GET,
                &format!("/users/{user}/offline_msg_count"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(c.body["data"][user], json!(0), "no partial fan-out");
    }

    // The 10 left still go through, then the budget refills with time.
    let ten: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let r = admin
        .send_message(&json!({"to": ten, "type":"txt","body":{"msg":"x"}}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let one = json!({"to": ["late"], "type":"txt","body":{"msg":"x"}});
    assert_eq!(admin.send_message(&one).await.unwrap().status, 403);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(admin.send_message(&one).await.unwrap().status, 200);
}
