//! Many WebSocket clients at once: connected from several loopback source
//! addresses, authenticated as one user each, acknowledging what they get.
//!
//! The project's `WsClient` parses every frame into a `serde_json::Value`
//! and acknowledges one message at a time, which is right for tests; here
//! tens of thousands of clients share the server's two cores, so frames are
//! only scanned for `seq` and the send-time marker, and acknowledgements are
//! batched (the protocol acknowledges "everything up to seq").

use crate::http::tcp_connect;
use crate::server::Target;
use crate::stats::{Progress, SharedHist};
use crate::sys::Sources;
use anyhow::{bail, Context};
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// Device id every bench client uses.
pub const DEVICE: &str = "bench";

/// The marker a message body carries: `~T<ns>~`, the bench clock when sent.
pub fn marker(ns: u64) -> String {
    format!("~T{ns}~")
}

fn parse_marker(text: &str) -> Option<u64> {
    let i = text.find("~T")? + 2;
    let rest = &text[i..];
    let j = rest.find('~')?;
    rest[..j].parse().ok()
}

fn parse_seq(text: &str) -> Option<u64> {
    let i = text.rfind("\"seq\":")? + 6;
    let digits: &str = &text[i..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Connects and authenticates one client as `user`.
pub async fn connect(t: &Target, src: std::net::IpAddr, user: &str) -> anyhow::Result<Ws> {
    let token = t.user_token(user);
    let tcp = tcp_connect(t.addr, src).await.context("tcp connect")?;
    let url = format!("ws://{}{}", t.host, t.path("/ws"));
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(cfg))
        .await
        .context("websocket handshake")?;
    let auth = serde_json::json!({"op": "auth", "token": token, "device": DEVICE});
    ws.send(Message::Text(auth.to_string().into())).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .context("no auth_ok within 30 s")?;
        match frame {
            Some(Ok(Message::Text(t))) if t.contains("\"auth_ok\"") => return Ok(ws),
            Some(Ok(Message::Text(t))) => bail!("auth refused: {t}"),
            Some(Ok(Message::Close(c))) => bail!("closed during auth: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection dropped during auth"),
        }
    }
}

/// Connects `users` (client `i` as `users[i]`, from `sources.pick(i)`),
/// `parallel` connection attempts at a time. Failures are retried a few
/// times; the clients that could not connect are `None`.
pub async fn connect_many(
    t: &Target,
    users: &[String],
    sources: &Sources,
    parallel: usize,
) -> Vec<Option<Ws>> {
    let progress = Progress::global();
    let results = futures::stream::iter(users.iter().enumerate().map(|(i, u)| {
        let t = t.clone();
        let u = u.clone();
        let src = sources.pick(i);
        async move {
            for attempt in 0..5u64 {
                match connect(&t, src, &u).await {
                    Ok(ws) => {
                        progress.ok.fetch_add(1, Ordering::Relaxed);
                        return (i, Some(ws));
                    }
                    Err(e) => {
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                        if attempt == 4 {
                            progress.note(&format!("client {u} could not connect: {e:#}"));
                        }
                        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                    }
                }
            }
            (i, None)
        }
    }))
    .buffer_unordered(parallel.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut out: Vec<Option<Ws>> = (0..users.len()).map(|_| None).collect();
    for (i, ws) in results {
        out[i] = ws;
    }
    out
}

/// What the receiving clients share.
pub struct Receivers {
    /// Messages received, per client.
    pub received: Vec<AtomicU64>,
    pub total: AtomicU64,
    /// Clients whose connection ended while they were meant to be up.
    pub dropped: AtomicU64,
    /// Why they ended: the server's close code and reason, or what the
    /// client saw instead.
    drop_reasons: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Send → receive latency of marked messages sent at or after
    /// `measure_from_ns`.
    pub e2e: SharedHist,
    pub measure_from_ns: AtomicU64,
    /// Acknowledge after this many unacknowledged messages, or when no
    /// more arrive for [`ACK_DELAY`].
    pub ack_every: u64,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Receivers {
    /// Starts one receiving task per connected client.
    pub fn start(clients: Vec<Option<Ws>>, ack_every: u64) -> Arc<Self> {
        let (stop, _) = watch::channel(false);
        let r = Arc::new(Self {
            received: (0..clients.len()).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            drop_reasons: std::sync::Mutex::new(BTreeMap::new()),
            e2e: SharedHist::new(),
            measure_from_ns: AtomicU64::new(u64::MAX),
            ack_every: ack_every.max(1),
            stop,
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::with_capacity(clients.len());
        for (i, ws) in clients.into_iter().enumerate() {
            if let Some(ws) = ws {
                let rx = r.stop.subscribe();
                tasks.push(tokio::spawn(receive(ws, i, r.clone(), rx)));
            }
        }
        *r.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        r
    }

    /// Counts one client lost for `why`.
    fn lost(&self, why: String) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let mut reasons = self.drop_reasons.lock().unwrap_or_else(|p| p.into_inner());
        *reasons.entry(why).or_default() += 1;
    }

    /// How many clients were lost, by reason.
    pub fn drop_reasons(&self) -> BTreeMap<String, u64> {
        self.drop_reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn connected(&self) -> usize {
        self.tasks.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Waits until every client `i` got at least `expected[i]` messages, or
    /// `timeout`; returns whether it happened.
    pub async fn wait_for(&self, expected: &[u64], timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let done = expected
                .iter()
                .zip(&self.received)
                .all(|(e, r)| r.load(Ordering::Relaxed) >= *e);
            if done {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes every client and waits for their tasks.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// How long a client with unacknowledged messages waits for more before
/// acknowledging them: messages arriving in a burst share one ack.
const ACK_DELAY: Duration = Duration::from_millis(2);

async fn receive(mut ws: Ws, i: usize, r: Arc<Receivers>, mut stop: watch::Receiver<bool>) {
    let mut unacked = 0u64;
    let mut last_seq = 0u64;
    loop {
        let next = match ws.next().now_or_never() {
            Some(m) => m,
            None if unacked > 0 => match tokio::time::timeout(ACK_DELAY, ws.next()).await {
                Ok(m) => m,
                Err(_) => {
                    if let Err(e) = send_ack(&mut ws, last_seq).await {
                        r.lost(format!("ack not sent: {e}"));
                        return;
                    }
                    unacked = 0;
                    continue;
                }
            },
            None => {
                tokio::select! {
                    m = ws.next() => m,
                    _ = stop.changed() => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                        return;
                    }
                }
            }
        };
        match next {
            Some(Ok(Message::Text(t))) => {
                let text = t.as_str();
                if !text.contains("\"op\":\"msg\"") {
                    continue;
                }
                let Some(seq) = parse_seq(text) else {
                    continue;
                };
                let now = crate::sys::now_ns();
                if let Some(sent) = parse_marker(text) {
                    if sent >= r.measure_from_ns.load(Ordering::Relaxed) {
                        r.e2e.record_us(now.saturating_sub(sent) / 1_000);
                    }
                }
                r.received[i].fetch_add(1, Ordering::Relaxed);
                r.total.fetch_add(1, Ordering::Relaxed);
                last_seq = seq;
                unacked += 1;
                if unacked >= r.ack_every {
                    if let Err(e) = send_ack(&mut ws, last_seq).await {
                        r.lost(format!("ack not sent: {e}"));
                        return;
                    }
                    unacked = 0;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                if !*stop.borrow() {
                    r.lost(match frame {
                        Some(f) => {
                            format!("closed by the server: {} {}", u16::from(f.code), f.reason)
                        }
                        None => "closed by the server without a code".to_string(),
                    });
                }
                return;
            }
            Some(Err(e)) => {
                if !*stop.borrow() {
                    r.lost(format!("read failed: {e}"));
                }
                return;
            }
            None => {
                if !*stop.borrow() {
                    r.lost("connection ended without a close".to_string());
                }
                return;
            }
            Some(Ok(_)) => {}
        }
    }
}

async fn send_ack(ws: &mut Ws, seq: u64) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Text(
        format!(r#"{{"op":"ack","seq":{seq}}}"#).into(),
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_scanned_for_seq_and_marker() {
        let f = r#"{"message":{"msg_id":"1","payload":{"bodies":[{"msg":"~T12345~","type":"txt"}]}},"op":"msg","seq":42}"#;
        assert_eq!(parse_seq(f), Some(42));
        assert_eq!(parse_marker(f), Some(12345));
        assert_eq!(parse_marker("{}"), None);
    }
}
