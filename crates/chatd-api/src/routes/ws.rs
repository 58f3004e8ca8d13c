//! The JSON client protocol over WebSocket (docs/protocol.md).
//!
//! This module only translates frames: authentication goes through the same
//! token checks as REST, sends through the same pipeline, and what to
//! deliver comes from [`DeviceSession`], shared with the other client
//! protocol.

use crate::auth::{bearer_principal, is_device_id};
use crate::error::ApiError;
use crate::state::ApiState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chatd_auth::Principal;
use chatd_core::record::message_record;
use chatd_core::{AppRecord, InboxEntry};
use chatd_delivery::{DeviceSession, InboxKey, Kick, SaveTimer};
use chatd_pipeline::{check_send_object, Source};
use futures::SinkExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Close codes (docs/protocol.md).
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const UNAUTHORIZED: u16 = 4001;
    pub const PROTOCOL: u16 = 4002;
    pub const REPLACED: u16 = 4003;
    pub const TOO_MANY_DEVICES: u16 = 4004;
    pub const DISCONNECTED: u16 = 4005;
    pub const STALLED: u16 = 4008;
    pub const INTERNAL: u16 = 4500;
}

/// Largest frame a client may send.
const MAX_FRAME_BYTES: usize = 64 * 1024;

pub async fn connect(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        // Frames from clients are small: the default 128 KiB read buffer,
        // zero-filled on every read, cost most of a connection's memory and
        // a good part of the CPU per message (docs/benchmarks.md).
        Ok(ws) => ws
            .read_buffer_size(4096)
            .max_message_size(MAX_FRAME_BYTES)
            .on_upgrade(move |socket| async move {
                metrics::counter!("chatd_ws_connections_total").increment(1);
                Connection::run(state, app, socket).await
            }),
        Err(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            "This endpoint speaks WebSocket: send an Upgrade request",
            "IllegalArgumentException",
        )
        .into_response(),
    }
}

/// Why a connection ends.
struct Closing(u16, &'static str);

struct Connection {
    state: Arc<ApiState>,
    app: Arc<AppRecord>,
    socket: WebSocket,
    user: String,
    device: String,
}

fn frame(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

fn error_frame(r#ref: Option<&Value>, e: &ApiError) -> Message {
    let mut v = json!({
        "op": "error",
        "status": e.status.as_u16(),
        "error": e.error,
        "error_description": e.description,
    });
    if let Some(r) = r#ref {
        v["ref"] = r.clone();
    }
    frame(v)
}

fn protocol_error(description: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_frame",
        description.to_string(),
        "IllegalArgumentException",
    )
}

impl Connection {
    async fn run(state: Arc<ApiState>, app: Arc<AppRecord>, mut socket: WebSocket) {
        let settings = state.clients.clone();
        let auth = tokio::time::timeout(
            Duration::from_secs(settings.auth_secs),
            authenticate(&state, &app, &mut socket),
        )
        .await;
        let (user, device) = match auth {
            Ok(Ok(who)) => who,
            Ok(Err(e)) => {
                let _ = socket.send(error_frame(None, &e)).await;
                close_socket(socket, close::UNAUTHORIZED, "unauthorized").await;
                return;
            }
            Err(_) => {
                close_socket(socket, close::UNAUTHORIZED, "no auth frame in time").await;
                return;
            }
        };
        let mut conn = Connection {
            state,
            app,
            socket,
            user,
            device,
        };
        let Closing(code, reason) = conn.serve().await;
        tracing::debug!(user = %conn.user, device = %conn.device, code, reason, "client connection closed");
        close_socket(conn.socket, code, reason).await;
    }

    /// Writes one frame and flushes it.
    async fn send(&mut self, msg: Message) -> Result<(), Closing> {
        let write = self.write_timeout();
        written(tokio::time::timeout(write, self.socket.send(msg)).await)
    }

    /// Queues one frame without flushing: it reaches the socket when the
    /// write buffer fills or at the next [`Self::flush`]. Waits (within the
    /// write timeout) only when the socket cannot take more.
    async fn feed(&mut self, msg: Message) -> Result<(), Closing> {
        let write = self.write_timeout();
        written(tokio::time::timeout(write, SinkExt::feed(&mut self.socket, msg)).await)
    }

    /// Writes out everything queued by [`Self::feed`].
    async fn flush(&mut self) -> Result<(), Closing> {
        let write = self.write_timeout();
        written(tokio::time::timeout(write, SinkExt::flush(&mut self.socket)).await)
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.state.clients.write_secs)
    }

    async fn serve(&mut self) -> Closing {
        let key = InboxKey {
            app: self.app.key,
            user: self.user.clone(),
        };
        let delivery = self.state.pipeline.delivery().clone();
        let mut registration = delivery.connections().register(
            &key,
            &self.device,
            "json",
            self.state.clients.max_devices,
        );
        registration.wait_for_replaced(Duration::from_secs(2)).await;
        let mut session = match DeviceSession::open(
            self.state.store().clone(),
            delivery.as_ref(),
            key,
            &self.device,
            registration.info.connected_at_ms,
            self.state.clients.window,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "opening a device session failed");
                return Closing(close::INTERNAL, "storage unavailable");
            }
        };
        let hello = json!({"op": "auth_ok", "user": self.user, "device": self.device, "acked": session.acked()});
        if let Err(c) = self.send(frame(hello)).await {
            return c;
        }
        let closing = self.pump(&mut session, &mut registration.kicked).await;
        session.save_or_warn().await;
        closing
    }

    async fn pump(
        &mut self,
        session: &mut DeviceSession,
        kicked: &mut tokio::sync::oneshot::Receiver<Kick>,
    ) -> Closing {
        let settings = self.state.clients.clone();
        let mut ping = tokio::time::interval(Duration::from_secs(settings.ping_secs.max(1)));
        ping.tick().await;
        let mut save = SaveTimer::new();
        let mut shutdown = self.state.shutdown.clone();
        let mut last_heard = Instant::now();
        // Look at the inbox once at start, then whenever it grows or the
        // window opens.
        let mut look = true;
        loop {
            save.arm_if(session.unsaved() > 0);
            if look && session.has_room() {
                match session.next_batch().await {
                    Ok(batch) if batch.is_empty() => look = false,
                    Ok(batch) => {
                        // One flush (one write to the socket, one wake-up of
                        // the client) per batch instead of per frame; every
                        // write still has the write timeout.
                        for e in &batch {
                            if let Err(c) = self.feed(message_frame(e)).await {
                                return c;
                            }
                        }
                        if let Err(c) = self.flush().await {
                            return c;
                        }
                        metrics::counter!("chatd_ws_messages_delivered_total")
                            .increment(batch.len() as u64);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading an inbox failed");
                        return Closing(close::INTERNAL, "storage unavailable");
                    }
                }
                continue;
            }
            tokio::select! {
                incoming = self.socket.recv() => {
                    last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => {
                            match self.handle_text(session, text.as_str()).await {
                                Ok(more) => look |= more,
                                Err(c) => return c,
                            }
                            session.save_if_many_unsaved().await;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            return Closing(close::PROTOCOL, "this endpoint speaks JSON text frames");
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            return Closing(close::GOING_AWAY, "closed by the client");
                        }
                        Some(Ok(_)) => {} // pings and pongs: already answered
                    }
                }
                _ = session.wait_for_news(), if session.has_room() && !look => look = true,
                _ = ping.tick() => {
                    if last_heard.elapsed() > Duration::from_secs(settings.idle_secs) {
                        return Closing(close::STALLED, "no heartbeat");
                    }
                    if let Err(c) = self.send(Message::Ping(Vec::new().into())).await {
                        return c;
                    }
                }
                _ = save.expired() => {
                    session.save_or_warn().await;
                }
                why = &mut *kicked => {
                    return match why {
                        Ok(Kick::Replaced) => {
                            // The device is reconnecting: take in the acks it
                            // already sent here, so the new connection
                            // resumes after them.
                            self.drain_acks(session).await;
                            Closing(close::REPLACED, "the same device connected again")
                        }
                        Ok(Kick::TooManyDevices) => Closing(close::TOO_MANY_DEVICES, "too many devices: the oldest was disconnected"),
                        Ok(Kick::Disconnected) | Err(_) => Closing(close::DISCONNECTED, "disconnected by the administrator"),
                    };
                }
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                    return Closing(close::GOING_AWAY, "server shutting down");
                }
            }
        }
    }

    /// Reads, for a short while, the frames the client already sent, keeping
    /// only their acknowledgements.
    async fn drain_acks(&mut self, session: &mut DeviceSession) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout_at(deadline, self.socket.recv()).await
        {
            let seq = serde_json::from_str::<Value>(text.as_str())
                .ok()
                .filter(|v| v["op"] == "ack")
                .and_then(|v| v["seq"].as_u64());
            if let Some(seq) = seq {
                session.ack(seq);
            }
        }
    }

    /// Handles one client frame; returns whether the inbox should be looked
    /// at again (an acknowledgement opened the window).
    async fn handle_text(
        &mut self,
        session: &mut DeviceSession,
        text: &str,
    ) -> Result<bool, Closing> {
        let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
            self.send(error_frame(
                None,
                &protocol_error("frames are JSON objects"),
            ))
            .await?;
            return Ok(false);
        };
        let r#ref = m.remove("ref");
        let op = m.remove("op").and_then(|v| v.as_str().map(str::to_string));
        match op.as_deref() {
            Some("ack") => {
                let ok = m
                    .get("seq")
                    .and_then(Value::as_u64)
                    .is_some_and(|s| session.ack(s));
                if !ok {
                    self.send(error_frame(
                        r#ref.as_ref(),
                        &protocol_error("ack needs a seq that was delivered"),
                    ))
                    .await?;
                }
                Ok(ok)
            }
            Some("send") => {
                let reply = client_send(&self.state, &self.app, &self.user, &self.device, m).await;
                let msg = match reply {
                    Ok(data) => {
                        let mut v = json!({"op": "sent", "data": data, "timestamp": chatd_core::clock::now_ms()});
                        if let Some(r) = &r#ref {
                            v["ref"] = r.clone();
                        }
                        frame(v)
                    }
                    Err(e) => error_frame(r#ref.as_ref(), &e),
                };
                self.send(msg).await?;
                Ok(false)
            }
            Some("read") => {
                let peer = m
                    .get("peer")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                let msg = match peer {
                    Some(peer) => match self
                        .state
                        .store()
                        .mark_read(self.app.key, &self.user, &peer)
                        .await
                    {
                        Ok(_) => {
                            let mut v = json!({"op": "read_ok", "peer": peer});
                            if let Some(r) = &r#ref {
                                v["ref"] = r.clone();
                            }
                            frame(v)
                        }
                        Err(e) => error_frame(r#ref.as_ref(), &ApiError::from(e)),
                    },
                    None => error_frame(r#ref.as_ref(), &protocol_error("read needs a peer")),
                };
                self.send(msg).await?;
                Ok(false)
            }
            Some("ping") => {
                self.send(frame(json!({"op": "pong"}))).await?;
                Ok(false)
            }
            _ => {
                self.send(error_frame(r#ref.as_ref(), &protocol_error("unknown op")))
                    .await?;
                Ok(false)
            }
        }
    }
}

/// A one-to-one message from a device: the REST request's fields, with
/// `from` always the connected user.
async fn client_send(
    state: &ApiState,
    app: &AppRecord,
    user: &str,
    device: &str,
    mut m: serde_json::Map<String, Value>,
) -> Result<Value, ApiError> {
    m.insert("from".into(), Value::String(user.to_string()));
    let req = check_send_object(&mut m, &app.settings.limits)?;
    let accepted = state
        .pipeline
        .send(app, req, Source::Device(device.to_string()))
        .await?;
    Ok(Value::Object(
        accepted
            .into_iter()
            .map(|a| (a.to, Value::String(a.msg_id.to_string())))
            .collect(),
    ))
}

/// The outcome of a write bounded by the write timeout.
fn written(r: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>) -> Result<(), Closing> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closing(close::GOING_AWAY, "connection lost")),
        Err(_) => {
            metrics::counter!("chatd_ws_stalled_total").increment(1);
            Err(Closing(close::STALLED, "client too slow to read"))
        }
    }
}

/// `{"op":"msg","seq":N,"message":RECORD}`, serialized straight into one
/// buffer. The bytes are those of
/// `json!({"op": "msg", "seq": …, "message": message_record(e)}).to_string()`
/// (serde_json's maps sort their keys, so the fields below are declared in
/// that order; a test checks the equality), without building the record's
/// outer objects and copying its strings first.
fn message_frame(e: &InboxEntry) -> Message {
    let (body, ext) = chatd_core::record::record_parts(e);
    let f = MsgFrame {
        message: Record {
            chat_type: "chat",
            direction: "outgoing",
            from: &e.from,
            msg_id: DecimalString(e.msg_id),
            payload: Payload {
                bodies: [&body],
                ext: &ext,
                from: &e.from,
                to: &e.to,
            },
            timestamp: e.timestamp_ms,
            to: &e.to,
        },
        op: "msg",
        seq: e.seq,
    };
    let mut buf = Vec::with_capacity(256 + e.body.len() + e.ext.as_deref().map_or(0, str::len));
    match serde_json::to_writer(&mut buf, &f).map(|()| String::from_utf8(buf)) {
        Ok(Ok(text)) => Message::Text(text.into()),
        // Not reached: serializing these types cannot fail, and serde_json
        // writes UTF-8.
        _ => frame(json!({"op": "msg", "seq": e.seq, "message": message_record(e)})),
    }
}

// The fields of each struct are in serde_json's (sorted) map order.
#[derive(Serialize)]
struct MsgFrame<'a> {
    message: Record<'a>,
    op: &'static str,
    seq: u64,
}

#[derive(Serialize)]
struct Record<'a> {
    chat_type: &'static str,
    direction: &'static str,
    from: &'a str,
    msg_id: DecimalString,
    payload: Payload<'a>,
    timestamp: i64,
    to: &'a str,
}

#[derive(Serialize)]
struct Payload<'a> {
    bodies: [&'a Map<String, Value>; 1],
    ext: &'a Value,
    from: &'a str,
    to: &'a str,
}

/// A 64-bit id as a decimal JSON string (ids do not survive JavaScript
/// numbers).
struct DecimalString(u64);

impl Serialize for DecimalString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

async fn close_socket(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })))
        .await;
}

/// Waits for the `auth` frame and checks it: a user token of this app.
async fn authenticate(
    state: &ApiState,
    app: &AppRecord,
    socket: &mut WebSocket,
) -> Result<(String, String), ApiError> {
    loop {
        let Some(Ok(msg)) = socket.recv().await else {
            return Err(protocol_error("connection closed before auth"));
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => return Err(protocol_error("the first frame must be a JSON auth frame")),
        };
        let v: Value = serde_json::from_str(text.as_str())
            .map_err(|_| protocol_error("the first frame must be a JSON auth frame"))?;
        if v["op"] != "auth" {
            return Err(protocol_error(
                "the first frame must be {\"op\":\"auth\",…}",
            ));
        }
        let token = v["token"].as_str().unwrap_or("");
        let user = match bearer_principal(state, app, token).map_err(ApiError::from_auth)? {
            Principal::User(u) => u,
            Principal::App => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_op",
                    "Client connections need a user token",
                    "ForbiddenOpException",
                ))
            }
        };
        // A client may name the user it expects; it must be the token's.
        if let Some(claimed) = v.get("user").and_then(Value::as_str) {
            if !claimed.eq_ignore_ascii_case(&user) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_op",
                    "The token does not belong to this user",
                    "ForbiddenOpException",
                ));
            }
        }
        let device = match v.get("device") {
            None | Some(Value::Null) => format!("web_{}", chatd_core::ids::random_token(12)),
            Some(Value::String(d)) if is_device_id(d) => d.clone(),
            Some(_) => {
                return Err(protocol_error(
                    "device must be 1 to 64 characters of [A-Za-z0-9_.-]",
                ))
            }
        };
        return Ok((user, device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatd_core::{EntryKind, MessageType, SendOptions};

    fn entry(msg_type: MessageType, body: &str, ext: Option<&str>) -> InboxEntry {
        InboxEntry {
            seq: 42,
            msg_id: 1_707_790_329_568_034_816,
            owner: "u2".into(),
            from: "u1\"<é>\\".into(),
            to: "u2\u{1}\n".into(),
            kind: EntryKind::Incoming,
            msg_type,
            body: body.into(),
            ext: ext.map(str::to_string),
            timestamp_ms: -5,
            options: SendOptions::default(),
        }
    }

    #[test]
    fn msg_frames_are_the_records_json_byte_for_byte() {
        let cases = [
            entry(
                MessageType::Txt,
                r#"{"msg":"hello ~T1~ \u00e9\ud83d\ude00"}"#,
                None,
            ),
            entry(
                MessageType::Txt,
                r#"{"z":1,"msg":"x","a":{"y":2.5,"b":[1,"2",null,true]}}"#,
                Some(r#"{"em_ignore_notification":true,"b":{"z":1,"a":1e3}}"#),
            ),
            entry(
                MessageType::Custom,
                r#"{"customEvent":"e","customExts":{"k":"v","a":"b"}}"#,
                Some(r#"{"a":1}"#),
            ),
            entry(
                MessageType::Custom,
                r#"{"customEvent":"e"}"#,
                Some("not json"),
            ),
            entry(MessageType::Img, "not json", Some("[1,2]")),
            entry(
                MessageType::Txt,
                r#"{"type":"other","msg":"m"}"#,
                Some("null"),
            ),
        ];
        for e in &cases {
            let expected =
                json!({"op": "msg", "seq": e.seq, "message": message_record(e)}).to_string();
            let Message::Text(got) = message_frame(e) else {
                panic!("not a text frame");
            };
            assert_eq!(got.as_str(), expected);
        }
    }
}
