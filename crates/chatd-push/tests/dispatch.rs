//! The dispatcher's bounds and shutdown, with providers that block or
//! record instead of doing I/O.

mod common;

use async_trait::async_trait;
use chatd_push::{PushDispatcher, PushError, PushFields, PushNotification, PushProvider};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

fn notification(i: usize) -> PushNotification {
    PushNotification {
        app_id: "0123456789abcdef0123456789abcdef".into(),
        org_name: "acme".into(),
        app_name: "chat".into(),
        to: "u2".into(),
        from: "u1".into(),
        msg_id: i.to_string(),
        timestamp: 1_795_703_343_792,
        message: serde_json::json!({"msg_id": i.to_string()}),
        push: PushFields::default(),
    }
}

/// Records what it pushed, after waiting for the gate (if any) and then
/// `delay`; tracks how many pushes run at once.
#[derive(Default)]
struct Recorder {
    gate: Option<Semaphore>,
    delay: Duration,
    started: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    pushed: Mutex<Vec<String>>,
}

impl Recorder {
    fn gated() -> Self {
        Recorder {
            gate: Some(Semaphore::new(0)),
            ..Recorder::default()
        }
    }

    fn slow(delay: Duration) -> Self {
        Recorder {
            delay,
            ..Recorder::default()
        }
    }

    fn open_gate(&self) {
        self.gate.as_ref().unwrap().add_permits(1000);
    }

    fn pushed(&self) -> Vec<String> {
        let mut ids = self.pushed.lock().unwrap().clone();
        ids.sort_by_key(|id| id.parse::<usize>().unwrap());
        ids
    }
}

#[async_trait]
impl PushProvider for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn push(&self, n: &PushNotification) -> Result<(), PushError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(now, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            let _pass = gate.acquire().await.unwrap();
        }
        tokio::time::sleep(self.delay).await;
        match n.msg_id.as_str() {
            "panic" => panic!("provider bug"),
            "fail" => {
                self.running.fetch_sub(1, Ordering::SeqCst);
                return Err(PushError::Provider("refused".into()));
            }
            _ => {}
        }
        self.pushed.lock().unwrap().push(n.msg_id.clone());
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test]
async fn full_queue_drops_without_blocking() {
    let provider = Arc::new(Recorder::gated());
    let dispatcher = PushDispatcher::start(provider.clone(), 2, 1);

    // The worker takes the first one and blocks in the provider...
    assert!(dispatcher.submit(notification(0)));
    wait_until("the first push", || {
        provider.started.load(Ordering::SeqCst) == 1
    })
    .await;
    // ...so two fill the queue and the next is refused at once.
    assert!(dispatcher.submit(notification(1)));
    assert!(dispatcher.submit(notification(2)));
    let started = Instant::now();
    assert!(!dispatcher.submit(notification(3)));
    assert!(!dispatcher.submit(notification(4)));
    assert!(started.elapsed() < Duration::from_millis(50));

    provider.open_gate();
    dispatcher.shutdown(Duration::from_secs(1)).await;
    assert_eq!(provider.pushed(), ids(0..3));
}

#[tokio::test]
async fn shutdown_drains_queued_work_and_refuses_more() {
    let provider = Arc::new(Recorder::slow(Duration::from_millis(20)));
    let dispatcher = PushDispatcher::start(provider.clone(), 100, 2);
    let other_handle = dispatcher.clone();

    for i in 0..10 {
        assert!(dispatcher.submit(notification(i)));
    }
    let started = Instant::now();
    dispatcher.shutdown(Duration::from_secs(2)).await;

    // Ten pushes of 20 ms, two at a time.
    assert!(started.elapsed() >= Duration::from_millis(90));
    assert_eq!(provider.pushed(), ids(0..10));
    assert!(!other_handle.submit(notification(10)));
    // A second shutdown has nothing to wait for.
    other_handle.shutdown(Duration::from_secs(1)).await;
    assert_eq!(provider.pushed().len(), 10);
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace() {
    let provider = Arc::new(Recorder::gated());
    let dispatcher = PushDispatcher::start(provider.clone(), 10, 2);
    for i in 0..5 {
        assert!(dispatcher.submit(notification(i)));
    }

    let started = Instant::now();
    dispatcher.shutdown(Duration::from_millis(100)).await;

    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    // The aborted pushes never complete, even once the gate opens.
    provider.open_gate();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(provider.pushed().is_empty());
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let provider = Arc::new(Recorder::slow(Duration::from_millis(20)));
    let dispatcher = PushDispatcher::start(provider.clone(), 100, 3);
    for i in 0..12 {
        assert!(dispatcher.submit(notification(i)));
    }
    dispatcher.shutdown(Duration::from_secs(2)).await;

    assert_eq!(provider.pushed(), ids(0..12));
    assert_eq!(provider.most_running.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_panicking_provider_loses_one_push_not_the_worker() {
    let provider = Arc::new(Recorder::default());
    let dispatcher = PushDispatcher::start(provider.clone(), 10, 1);
    let mut bad = notification(0);
    bad.msg_id = "panic".into();

    assert!(dispatcher.submit(bad));
    assert!(dispatcher.submit(notification(1)));
    assert!(dispatcher.submit(notification(2)));
    dispatcher.shutdown(Duration::from_secs(1)).await;

    assert_eq!(provider.pushed(), ids(1..3));
}

#[tokio::test]
async fn dropping_every_handle_still_finishes_queued_work() {
    let provider = Arc::new(Recorder::slow(Duration::from_millis(5)));
    let dispatcher = PushDispatcher::start(provider.clone(), 10, 1);
    for i in 0..3 {
        assert!(dispatcher.submit(notification(i)));
    }
    drop(dispatcher);

    wait_until("the queued pushes", || provider.pushed().len() == 3).await;
    assert_eq!(provider.pushed(), ids(0..3));
}

#[tokio::test]
async fn metrics_count_sent_failed_and_dropped() {
    let counters = common::Counters::default();
    let _installed = metrics::set_default_local_recorder(&counters);
    let provider = Arc::new(Recorder::gated());
    let dispatcher = PushDispatcher::start(provider.clone(), 1, 1);

    assert!(dispatcher.submit(notification(0)));
    wait_until("the first push", || {
        provider.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut failing = notification(1);
    failing.msg_id = "fail".into();
    assert!(dispatcher.submit(failing));
    assert!(!dispatcher.submit(notification(2)));
    provider.open_gate();
    dispatcher.shutdown(Duration::from_secs(1)).await;

    assert_eq!(counters.get("chatd_push_sent_total{provider=recorder}"), 1);
    assert_eq!(
        counters.get("chatd_push_failed_total{provider=recorder}"),
        1
    );
    assert_eq!(counters.get("chatd_push_dropped_total"), 1);
}
