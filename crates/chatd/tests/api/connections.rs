//! HTTP connections that send no request, or stop sending its body, do not
//! hold the server's sockets.

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

/// The head of a request to an app path, with the app token and a body of
/// `length` bytes announced.
fn head(server: &TestServer, path: &str, content_type: &str, length: usize) -> String {
    let admin = server.admin();
    let path = admin.url(path).replacen(admin.base_url(), "", 1);
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n",
        server.app_token()
    )
}

/// A connection on which the head of a one-message send to `to` is written,
/// and the body that head announces.
async fn send_head(server: &TestServer, to: &str) -> (TcpStream, String) {
    let body = format!(r#"{{"from":"a","to":["{to}"],"type":"txt","body":{{"msg":"hi"}}}}"#);
    let mut conn = open(server).await;
    let request = head(server, "/messages/users", "application/json", body.len());
    conn.write_all(request.as_bytes()).await.unwrap();
    (conn, body)
}

fn error_of(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

/// A body that stops arriving half way gets 408 once the idle limit has
/// passed since its last part, and nothing of it is kept.
#[tokio::test]
async fn a_stalled_send_body_gets_408_and_sends_nothing() {
    let server = idle_server();
    let (mut conn, body) = send_head(&server, "stalled").await;
    conn.write_all(&body.as_bytes()[..20]).await.unwrap();
    let (answer, after) = read_until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let e = error_of(&answer);
    assert_eq!(e["error"], "request_timeout");
    assert_eq!(
        e["error_description"],
        "Request body not received in full: no part of the request body arrived for 1 s"
    );
    assert!(
        after >= Duration::from_millis(900),
        "answered after {after:?}"
    );
    let count = server
        .admin()
        .call(
            reqwest::Method::GET,
            "/users/stalled/offline_msg_count",
            None,
        )
        .await
        .unwrap();
    assert_eq!(count.body["data"]["stalled"], 0);
}

/// The limit is on each wait, not on the whole body: a body that keeps
/// coming, slower than the limit in all, is read.
#[tokio::test]
async fn a_slow_but_steady_body_is_read_in_full() {
    let server = idle_server();
    let (mut conn, body) = send_head(&server, "steady").await;
    let started = Instant::now();
    for part in body.as_bytes().chunks(body.len() / 4 + 1) {
        conn.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(2));
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A chat file upload that stalls ends the same way.
#[tokio::test]
async fn a_stalled_upload_gets_408() {
    let server = idle_server();
    let part = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
                Content-Type: text/plain\r\n\r\nthe first bytes of a file";
    let mut conn = open(&server).await;
    let request = head(
        &server,
        "/chatfiles",
        "multipart/form-data; boundary=XyZ",
        10_000,
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.write_all(part.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(error_of(&answer)["error"], "request_timeout");
}
