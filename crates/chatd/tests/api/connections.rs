//! HTTP connections that send no request do not hold the server's sockets.

use crate::common::TestServer;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn idle_server() -> TestServer {
    TestServer::start_with(&[("CHATD_HTTP_IDLE_SECS", "1")])
}

async fn open(server: &TestServer) -> TcpStream {
    let addr = server
        .anonymous()
        .base_url()
        .trim_start_matches("http://")
        .to_string();
    TcpStream::connect(addr).await.expect("connects")
}

/// Reads until the server closes the connection; returns what it sent and
/// how long that took. Panics if it is still open after 10 s.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after 10 s; received {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_limit() {
    let server = idle_server();
    let mut silent = open(&server).await;
    let (got, after) = read_until_closed(&mut silent).await;
    assert_eq!(got, "", "nothing is answered to no request");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );

    // Half a request head is no better than none.
    let mut partial = open(&server).await;
    partial
        .write_all(b"POST /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut partial).await;
    assert_eq!(got, "");
}

#[tokio::test]
async fn a_kept_alive_connection_is_answered_then_closed_when_idle() {
    let server = idle_server();
    let mut conn = open(&server).await;
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, after) = read_until_closed(&mut conn).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains(r#"{"status":"ok"}"#), "{got}");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

/// The limit counts from the last answer: a connection that keeps asking
/// stays open well past it.
#[tokio::test]
async fn each_answer_restarts_the_idle_limit() {
    let server = idle_server();
    let mut conn = open(&server).await;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    for i in 0..6 {
        conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(
            got.starts_with("HTTP/1.1 200"),
            "request {i} after {:?}: {got:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(3));
    let (_, after) = read_until_closed(&mut conn).await;
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}"
    );
}
