//! A client of chatd's JSON WebSocket protocol (docs/protocol.md).

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("websocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("refused: {0}")]
    Refused(Value),
    #[error("closed by the server ({code}: {reason})")]
    Closed { code: u16, reason: String },
    #[error("timed out")]
    Timeout,
    #[error("unexpected frame: {0}")]
    Unexpected(String),
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message: its inbox position and its record.
    Message { seq: u64, message: Value },
    /// Any other JSON frame (`sent`, `error`, `read_ok`, `pong`).
    Frame(Value),
}

/// A connected, authenticated device.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub user: String,
    pub device: String,
    next_ref: u64,
}

impl WsClient {
    /// Connects to `ws_url` (e.g. `ws://127.0.0.1:8080/app-id/{id}/ws`) and
    /// authenticates with a user token as `device`.
    pub async fn connect(ws_url: &str, token: &str, device: &str) -> Result<Self, WsError> {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await?;
        socket
            .send(Message::Text(
                json!({"op": "auth", "token": token, "device": device})
                    .to_string()
                    .into(),
            ))
            .await?;
        let mut c = Self {
            socket,
            user: String::new(),
            device: device.to_string(),
            next_ref: 0,
        };
        match c.next_frame(Duration::from_secs(10)).await? {
            Event::Frame(v) if v["op"] == "auth_ok" => {
                c.user = v["user"].as_str().unwrap_or_default().to_string();
                Ok(c)
            }
            Event::Frame(v) => Err(WsError::Refused(v)),
            other => Err(WsError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The next frame from the server, answering pings on the way.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Event, WsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| WsError::Timeout)?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .map_err(|_| WsError::Unexpected(t.to_string()))?;
                    if v["op"] == "msg" {
                        return Ok(Event::Message {
                            seq: v["seq"].as_u64().unwrap_or(0),
                            message: v["message"].clone(),
                        });
                    }
                    return Ok(Event::Frame(v));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((u16::from(CloseCode::Status), String::new()));
                    return Err(WsError::Closed { code, reason });
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(WsError::Closed {
                        code: 1006,
                        reason: "connection dropped".into(),
                    })
                }
            }
        }
    }

    /// The next message, skipping other frames; does not acknowledge it.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<(u64, Value), WsError> {
        loop {
            if let Event::Message { seq, message } = self.next_frame(timeout).await? {
                return Ok((seq, message));
            }
        }
    }

    /// Acknowledges everything up to `seq`.
    pub async fn ack(&mut self, seq: u64) -> Result<(), WsError> {
        self.send_json(json!({"op": "ack", "seq": seq})).await
    }

    /// Sends one frame.
    pub async fn send_json(&mut self, v: Value) -> Result<(), WsError> {
        self.socket
            .send(Message::Text(v.to_string().into()))
            .await?;
        Ok(())
    }

    /// Sends a one-to-one message (`type`, `body`, optional `ext`) and waits
    /// for the server's answer; messages arriving meanwhile are returned too.
    pub async fn send_message(
        &mut self,
        to: &[&str],
        msg_type: &str,
        body: Value,
        ext: Option<Value>,
    ) -> Result<(Value, Vec<(u64, Value)>), WsError> {
        self.next_ref += 1;
        let r = format!("r{}", self.next_ref);
        let mut frame = json!({"op": "send", "ref": r, "to": to, "type": msg_type, "body": body});
        if let Some(e) = ext {
            frame["ext"] = e;
        }
        self.send_json(frame).await?;
        let mut arrived = Vec::new();
        loop {
            match self.next_frame(Duration::from_secs(10)).await? {
                Event::Message { seq, message } => arrived.push((seq, message)),
                Event::Frame(v) if v["ref"] == r.as_str() => return Ok((v, arrived)),
                Event::Frame(_) => {}
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
