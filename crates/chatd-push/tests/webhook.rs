//! The webhook provider against a real HTTP server on a real socket.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chatd_push::{
    PushDispatcher, PushError, PushFields, PushNotification, PushProvider, WebhookProvider,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Given the 1-based number of a request, what the relay answers and how
/// long it waits first.
type Script = dyn Fn(usize) -> (StatusCode, Duration) + Send + Sync;

/// A stand-in for a push relay: counts every request it gets and keeps the
/// ones it accepted.
#[derive(Clone)]
struct Relay {
    url: String,
    hits: Arc<AtomicUsize>,
    /// Headers of every request, in arrival order.
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    /// Bodies of the requests answered 2xx.
    accepted: Arc<Mutex<Vec<Bytes>>>,
    script: Arc<Script>,
}

impl Relay {
    async fn start(
        script: impl Fn(usize) -> (StatusCode, Duration) + Send + Sync + 'static,
    ) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            url: format!("http://{}/push", listener.local_addr().unwrap()),
            hits: Arc::default(),
            headers: Arc::default(),
            accepted: Arc::default(),
            script: Arc::new(script),
        };
        let app = Router::new()
            .route("/push", post(receive))
            .with_state(relay.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        relay
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> Vec<PushNotification> {
        let bodies = self.accepted.lock().unwrap();
        bodies
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect()
    }

    fn attempt_header(&self, i: usize) -> String {
        let headers = self.headers.lock().unwrap();
        headers[i]["x-chatd-push-attempt"]
            .to_str()
            .unwrap()
            .to_owned()
    }
}

async fn receive(State(relay): State<Relay>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = relay.hits.fetch_add(1, Ordering::SeqCst) + 1;
    relay.headers.lock().unwrap().push(headers);
    let (status, delay) = (relay.script)(n);
    tokio::time::sleep(delay).await;
    if status.is_success() {
        relay.accepted.lock().unwrap().push(body);
    }
    status
}

fn notification(msg_id: u64) -> PushNotification {
    let ext = json!({
        "em_push_title": "New message",
        "em_push_content": "u1: hello",
        "em_apns_ext": {"em_push_sound": "a.caf", "em_push_badge": 2},
        "em_android_push_ext": {"fcm_channel_id": "chat"},
        "em_push_ext": {"custom": {"k": [1, 2]}},
        "em_force_notification": true
    });
    PushNotification {
        app_id: "0123456789abcdef0123456789abcdef".into(),
        org_name: "acme".into(),
        app_name: "chat".into(),
        to: "u2".into(),
        from: "u1".into(),
        msg_id: msg_id.to_string(),
        timestamp: 1_795_703_343_792,
        message: json!({
            "msg_id": msg_id.to_string(),
            "timestamp": 1_795_703_343_792_i64,
            "direction": "outgoing",
            "from": "u1",
            "to": "u2",
            "chat_type": "chat",
            "payload": {
                "bodies": [{"type": "txt", "msg": "hello"}],
                "ext": ext,
                "from": "u1",
                "to": "u2"
            }
        }),
        push: PushFields::from_ext(ext.as_object()),
    }
}

const OK: (StatusCode, Duration) = (StatusCode::OK, Duration::ZERO);

#[tokio::test]
async fn delivers_the_notification_as_json() {
    let relay = Relay::start(|_| OK).await;
    let webhook = WebhookProvider::new(relay.url.clone(), Duration::from_secs(1), 3);
    let n = notification(1_234_567_890_123_456_789);

    webhook.push(&n).await.unwrap();

    assert_eq!(relay.hits(), 1);
    assert_eq!(relay.accepted(), vec![n.clone()]);
    let headers = relay.headers.lock().unwrap()[0].clone();
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("chatd-push/"));
    assert_eq!(relay.attempt_header(0), "1");
    // The wire names a relay author reads in docs/push.md.
    let raw: serde_json::Value =
        serde_json::from_slice(&relay.accepted.lock().unwrap()[0]).unwrap();
    assert_eq!(raw["msg_id"], "1234567890123456789");
    assert_eq!(raw["push"]["title"], "New message");
    assert_eq!(raw["push"]["apns_ext"]["em_push_badge"], 2);
    assert_eq!(raw["message"]["payload"]["bodies"][0]["msg"], "hello");
}

#[tokio::test]
async fn server_error_is_retried_and_delivered_once() {
    let relay = Relay::start(|n| {
        if n == 1 {
            (StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO)
        } else {
            OK
        }
    })
    .await;
    let webhook = WebhookProvider::new(relay.url.clone(), Duration::from_secs(1), 3);
    let n = notification(7);

    webhook.push(&n).await.unwrap();

    assert_eq!(relay.hits(), 2);
    assert_eq!(relay.accepted(), vec![n]);
    assert_eq!(relay.attempt_header(1), "2");
}

#[tokio::test]
async fn client_error_is_not_retried() {
    let relay = Relay::start(|_| (StatusCode::BAD_REQUEST, Duration::ZERO)).await;
    let webhook = WebhookProvider::new(relay.url.clone(), Duration::from_secs(1), 3);

    let err = webhook.push(&notification(7)).await.unwrap_err();

    assert!(
        matches!(err, PushError::Rejected { status: 400 }),
        "{err:?}"
    );
    assert_eq!(relay.hits(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_given_up() {
    let relay = Relay::start(|_| (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO)).await;
    let webhook = WebhookProvider::new(relay.url.clone(), Duration::from_secs(1), 2);

    let err = webhook.push(&notification(7)).await.unwrap_err();

    assert!(matches!(err, PushError::Status { status: 503 }), "{err:?}");
    // The first attempt and two retries.
    assert_eq!(relay.hits(), 3);
    assert!(relay.accepted().is_empty());
}

#[tokio::test]
async fn slow_server_is_retried_then_given_up() {
    let counters = common::Counters::default();
    let _installed = metrics::set_default_local_recorder(&counters);
    let relay = Relay::start(|_| (StatusCode::OK, Duration::from_secs(2))).await;
    let timeout = Duration::from_millis(150);
    let webhook = WebhookProvider::new(relay.url.clone(), timeout, 2);
    let started = Instant::now();

    let err = webhook.push(&notification(7)).await.unwrap_err();

    let took = started.elapsed();
    assert!(
        matches!(err, PushError::Timeout(t) if t == timeout),
        "{err:?}"
    );
    assert_eq!(relay.hits(), 3);
    assert!(relay.accepted().is_empty());
    // Three timeouts plus backoffs of 100 ms and 200 ms.
    assert!(took >= Duration::from_millis(750), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(
        counters.get("chatd_push_attempts_total{provider=webhook}"),
        3
    );
}

#[tokio::test]
async fn refused_connection_is_retried_then_given_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    drop(listener);
    let webhook = WebhookProvider::new(url, Duration::from_secs(1), 1);
    let started = Instant::now();

    let err = webhook.push(&notification(7)).await.unwrap_err();

    assert!(matches!(err, PushError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
    // One backoff between the two attempts.
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn dispatcher_delivers_through_the_webhook() {
    let relay = Relay::start(|_| OK).await;
    let webhook = Arc::new(WebhookProvider::new(
        relay.url.clone(),
        Duration::from_secs(1),
        3,
    ));
    let dispatcher = PushDispatcher::start(webhook, 100, 4);

    for i in 0..20 {
        assert!(dispatcher.submit(notification(i)));
    }
    dispatcher.shutdown(Duration::from_secs(2)).await;

    let mut ids: Vec<u64> = relay
        .accepted()
        .iter()
        .map(|n| n.msg_id.parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
}
