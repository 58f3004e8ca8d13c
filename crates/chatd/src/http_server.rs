//! Accepts TCP connections and serves HTTP/1.1, with upgrades, on them.
//!
//! This is `axum::serve` with two settings it does not expose. Without a
//! header read timeout, a connection that never sends a complete request
//! holds its socket, and a file descriptor, for as long as the client
//! likes: enough of them and the server accepts nothing more. Without
//! `TCP_NODELAY`, a frame written while the previous one is unacknowledged
//! at the TCP level waits for the client's delayed ACK (≈ 40 ms).

use axum::body::Body;
use chatd_api::Api;
use hyper::body::Incoming;
use hyper::rt::{Sleep, Timer};
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// Longest wait for a complete request head: from the accept, and on a
    /// kept-alive connection from its last answer. `None`: no limit.
    pub idle: Option<Duration>,
}

/// Serves the API on every connection `listener` accepts until `shutdown`
/// completes; then stops accepting, lets each connection finish the
/// request it is in, and returns once all have closed. Upgraded
/// connections (WebSockets) are the upgrade handler's from the upgrade on,
/// and are not waited for.
pub async fn serve(
    listener: TcpListener,
    service: Api,
    options: HttpOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver: when the last one is dropped,
    // `closed()` below returns.
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    on_accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, service, options, stop).await;
            drop(open);
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(open_rx);
    open_tx.closed().await;
}

async fn serve_connection(
    stream: TcpStream,
    service: Api,
    options: HttpOptions,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY not set on a connection: {e}");
    }
    let service =
        TowerToHyperService::new(service.map_request(|req: Request<Incoming>| req.map(Body::new)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(HeaderTimer::new());
    builder.header_read_timeout(options.idle);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A client that went away or took too long: nothing to act on.
        tracing::trace!("connection ended: {e}");
    }
}

/// Errors of one connection are skipped; others (no file descriptor left)
/// are logged and retried a moment later rather than spun on.
async fn on_accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// hyper's timer for one connection's header read timeout.
///
/// hyper asks for a new sleep for every request head it waits for. With
/// `TokioTimer` each is a new entry in tokio's timer wheel, and that cost
/// ≈ 2k instructions per request (≈ 3.5 % of a send; callgrind). Here one
/// tokio sleep per connection is moved to each new deadline; a later
/// deadline only updates the registered entry in place.
#[derive(Clone)]
struct HeaderTimer(Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>);

impl HeaderTimer {
    fn new() -> Self {
        // Armed for real by the first deadline it is polled for.
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Self(Arc::new(Mutex::new(Box::pin(tokio::time::sleep_until(
            far,
        )))))
    }
}

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline {
            sleep: self.0.clone(),
            at: deadline.into(),
        })
    }
}

/// One deadline on the connection's shared sleep. hyper keeps at most one
/// header deadline per connection, so the deadlines never compete.
struct Deadline {
    sleep: Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>,
    at: tokio::time::Instant,
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleep = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        if sleep.deadline() != self.at {
            sleep.as_mut().reset(self.at);
        }
        sleep.as_mut().poll(cx)
    }
}

impl Sleep for Deadline {}
