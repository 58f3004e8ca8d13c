//! The ceiling: a minimal hyper HTTP/1.1 server, in this process but on its
//! own runtime and threads, that reads each request and answers a fixed
//! small JSON body. Driven with exactly the load chatd gets, it shows what
//! this machine, this client and HTTP alone allow; chatd's figures are
//! given as a ratio to it.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The answer: the shape and size of chatd's answer to a one-recipient send.
pub const BODY: &str = r#"{"path":"/messages/users","uri":"http://127.0.0.1:8080/app-id/0123456789abcdef0123456789abcdef/messages/users","timestamp":1795703343780,"action":"post","data":{"u1":"1707790329568034816"},"duration":0}"#;

pub struct Ceiling {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body, as a real handler must.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

impl Ceiling {
    /// Starts the server on `127.0.0.1:0` with `threads` runtime workers
    /// (chatd's runtime has one per core).
    pub fn start(threads: usize) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("ceiling")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("ceiling-main".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(async move {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                                    .await;
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {},
                        _ = stop_rx => {},
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
