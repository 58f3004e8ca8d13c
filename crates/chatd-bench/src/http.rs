//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection per
//! concurrency slot, straight on `hyper::client::conn`.
//!
//! The project's `RestClient` (reqwest) is made for convenience: a shared
//! pool, JSON in and out, redirects, timeouts per request. Each of those
//! costs CPU on the same two cores the server runs on, and a pool can hand
//! one slot's requests to another's connection. Here a slot owns its socket,
//! the request is pre-serialised bytes and the answer is read as bytes, so
//! the client spends as little as possible per request and the ceiling run
//! (same client, trivial server) shows what the client itself can do.

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpSocket;

/// What every request of a load carries.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: HeaderValue,
    pub uri: Uri,
    pub auth: Option<HeaderValue>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, host: &str, path: &str, token: Option<&str>) -> Self {
        Self {
            addr,
            host: HeaderValue::from_str(host).expect("host header"),
            uri: path.parse().expect("request path"),
            auth: token.map(|t| HeaderValue::from_str(&format!("Bearer {t}")).expect("token")),
        }
    }
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

/// A TCP connection to `addr` from source address `src` (port chosen by the
/// kernel), with Nagle off.
pub async fn tcp_connect(addr: SocketAddr, src: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if src.is_ipv4() == addr.is_ipv4() && addr.ip().is_loopback() {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    let stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Conn {
    pub async fn connect(addr: SocketAddr, src: IpAddr) -> anyhow::Result<Self> {
        let stream = tcp_connect(addr, src).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// POSTs `body` as JSON; returns the status once the whole answer is read.
    pub async fn post(&mut self, ep: &Endpoint, body: Bytes) -> anyhow::Result<StatusCode> {
        self.request(ep, Method::POST, Some(body))
            .await
            .map(|r| r.0)
    }

    /// Any request; returns the status and the answer's bytes.
    pub async fn request(
        &mut self,
        ep: &Endpoint,
        method: Method,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut b = Request::builder()
            .method(method)
            .uri(ep.uri.clone())
            .header(HOST, ep.host.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if body.is_some() {
            b = b.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(a) = &ep.auth {
            b = b.header(AUTHORIZATION, a.clone());
        }
        let req = b.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}
