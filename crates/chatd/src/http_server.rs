//! Accepts TCP connections and serves HTTP/1.1, with upgrades, on them.
//!
//! This is `axum::serve` with what it does not offer. Without a limit on
//! the wait for a request head, or for the next part of a request body, a
//! connection that sends nothing holds its socket, and a file descriptor,
//! for as long as the client likes: enough of them and the server accepts
//! nothing more. Without `TCP_NODELAY`, a frame written while the previous
//! one is unacknowledged at the TCP level waits for the client's delayed
//! ACK (≈ 40 ms).

use axum::body::Body;
use chatd_api::body::BodyTimeout;
use chatd_api::Api;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
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
    /// Longest wait for a complete request head (from the accept, and on a
    /// kept-alive connection from its last answer), and for each next part
    /// of a request body. `None`: no limit.
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
    let timer = IdleTimer::new();
    let body_timer = timer.clone();
    let service = TowerToHyperService::new(service.map_request(move |req: Request<Incoming>| {
        match options.idle {
            Some(gap) => req.map(|body| {
                Body::new(GapLimited {
                    body,
                    gap,
                    timer: body_timer.clone(),
                    waiting: None,
                })
            }),
            None => req.map(Body::new),
        }
    }));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(timer);
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

/// One connection's timer: the deadline for its request head (hyper's
/// header read timeout) or for the next part of a request body.
///
/// hyper asks for a new sleep for every request head it waits for. With
/// `TokioTimer` each is a new entry in tokio's timer wheel, and that cost
/// ≈ 2k instructions per request (≈ 3.5 % of a send; callgrind). Here one
/// tokio sleep per connection is moved to each new deadline; a later
/// deadline only updates the registered entry in place. A connection waits
/// for one thing at a time, so the deadlines never compete.
#[derive(Clone)]
struct IdleTimer(Arc<Mutex<Pin<Box<tokio::time::Sleep>>>>);

impl IdleTimer {
    fn new() -> Self {
        // Armed for real by the first deadline it is polled for.
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Self(Arc::new(Mutex::new(Box::pin(tokio::time::sleep_until(
            far,
        )))))
    }

    /// Whether `at` has passed; if not, the task is woken when it does.
    fn poll_until(&self, at: tokio::time::Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleep = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        sleep.as_mut().poll(cx)
    }
}

impl Timer for IdleTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline {
            timer: self.clone(),
            at: deadline.into(),
        })
    }
}

/// One deadline of hyper's on the connection's timer.
struct Deadline {
    timer: IdleTimer,
    at: tokio::time::Instant,
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll_until(self.at, cx)
    }
}

impl Sleep for Deadline {}

/// A request body whose next part must arrive within `gap` of the previous
/// one (or of the head), as nginx's `client_body_timeout`: a slow upload
/// goes on, a stalled one ends with `BodyTimeout`. The clock starts only
/// when a read finds nothing ready, so a body that came with its head
/// costs no timer.
struct GapLimited {
    body: Incoming,
    gap: Duration,
    timer: IdleTimer,
    /// Since when nothing was ready: `Some` while waiting.
    waiting: Option<tokio::time::Instant>,
}

impl HttpBody for GapLimited {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let since = *this.waiting.get_or_insert_with(tokio::time::Instant::now);
                match this.timer.poll_until(since + this.gap, cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.gap).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
