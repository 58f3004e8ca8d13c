//! msync over WebSocket at `/websocket`: the protocol of the official client
//! SDKs (docs/sdk.md).
//!
//! A second adapter over the delivery core the JSON WebSocket uses: the
//! same token checks, the same send pipeline, and the same per-device
//! inbox session ([`DeviceSession`]). Frames are decoded and built by
//! `chatd-msync`; this module only runs the connection.
//!
//! Acknowledgements sent by a device (delivery, read, conversation read)
//! are answered at once and relayed live, as [`Receipt`]s through the
//! connection registry, to the original sender's connected SDK devices.
//! They are not stored: a sender offline at that moment does not get them
//! later (read state itself is stored: a read ack clears the conversation's
//! unread count).

use crate::auth::is_device_id;
use crate::state::ApiState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatd_auth::{AppKeys, AuthError, Principal};
use chatd_core::{AppRecord, EntryKind, InboxEntry, MessageIdGenerator};
use chatd_delivery::{DeviceSession, InboxKey, Kick, Receipt, ReceiptKind, SaveTimer};
use chatd_msync::frame::{self, Login, Request};
use chatd_msync::meta::{self, AckKind, Uplink};
use chatd_msync::pb::statistics_body::Operation;
use chatd_msync::pb::status::ErrorCode;
use chatd_msync::pb::{self, CommSyncUl, Meta};
use chatd_msync::queues::Queues;
use chatd_pipeline::{check_send_object, SendError, Source};
use prost::Message as _;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Largest frame a client may send.
const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Metas per SYNC answer.
const SYNC_BATCH: usize = 20;
/// The node number of the ids given to receipts and client reports, which
/// are not messages: message ids carry the server's `node_id` (0 unless
/// configured; 1023 should be left to this), so the two do not meet.
const RECEIPT_ID_NODE: u16 = 1023;

fn receipt_ids() -> &'static MessageIdGenerator {
    static IDS: OnceLock<MessageIdGenerator> = OnceLock::new();
    IDS.get_or_init(|| MessageIdGenerator::new(RECEIPT_ID_NODE, 0))
}

fn now_ms() -> u64 {
    chatd_core::clock::now_ms().max(0) as u64
}

/// `GET /websocket`.
pub async fn connect(
    State(state): State<Arc<ApiState>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => ws
            .max_message_size(MAX_FRAME_BYTES)
            .on_upgrade(move |socket| async move {
                metrics::counter!("chatd_msync_connections_total").increment(1);
                run(state, socket).await
            }),
        Err(_) => crate::error::ApiError::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            "This endpoint speaks msync over WebSocket: send an Upgrade request",
            "IllegalArgumentException",
        )
        .into_response(),
    }
}

/// A logged-in device.
struct Who {
    app: Arc<AppRecord>,
    user: String,
    device: String,
    /// When the login token expires (Unix ms), if it does.
    token_expires_ms: Option<u64>,
}

/// Why a login is refused: the PROVISION status and its reason.
struct Refusal(ErrorCode, &'static str);

async fn close_socket(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })))
        .await;
}

async fn run(state: Arc<ApiState>, mut socket: WebSocket) {
    let login = tokio::time::timeout(
        Duration::from_secs(state.clients.auth_secs),
        first_provision(&mut socket),
    )
    .await;
    let login = match login {
        Ok(Some(l)) => l,
        Ok(None) => {
            close_socket(socket, 4002, "the first frame must be an msync PROVISION").await;
            return;
        }
        Err(_) => {
            close_socket(socket, 4001, "no login in time").await;
            return;
        }
    };
    let who = match authenticate(&state, &login).await {
        Ok(w) => w,
        Err(Refusal(code, reason)) => {
            tracing::debug!(?code, reason, user = ?login.user, "msync login refused");
            let answer = frame::provision_answer(code, Some(reason), login.resource.as_deref());
            let _ = socket.send(Message::Binary(answer.into())).await;
            close_socket(socket, 4001, "unauthorized").await;
            return;
        }
    };
    let mut conn = Connection {
        app_key: format!("{}#{}", who.app.org_name, who.app.app_name),
        state,
        socket,
        who,
    };
    let (code, reason) = conn.serve().await;
    tracing::debug!(user = %conn.who.user, device = %conn.who.device, code, reason, "msync connection closed");
    close_socket(conn.socket, code, reason).await;
}

/// Waits for the PROVISION frame (pings and pongs aside).
async fn first_provision(socket: &mut WebSocket) -> Option<Box<Login>> {
    loop {
        match socket.recv().await? {
            Ok(Message::Binary(b)) => {
                return match frame::decode_request(&b) {
                    Ok(Request::Provision(l)) => Some(l),
                    _ => None,
                }
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

/// The app from the SDK's appkey (`org#app`), and the user from its token:
/// an issued password-grant token or an AccessToken2 user token of that
/// app, for the user the frame names.
async fn authenticate(state: &ApiState, login: &Login) -> Result<Who, Refusal> {
    let unauthorized = |why| Refusal(ErrorCode::Unauthorized, why);
    let (org, name) = login
        .app_key
        .as_deref()
        .and_then(|k| k.split_once('#'))
        .ok_or_else(|| unauthorized("the appkey must be org#app"))?;
    let app = state
        .apps
        .by_name(org, name)
        .await
        .ok_or_else(|| unauthorized("unknown appkey"))?;
    let token = login
        .token
        .as_deref()
        .ok_or_else(|| unauthorized("no token"))?;
    let keys = AppKeys {
        app_id: &app.app_id,
        app_certificate: &app.app_certificate,
    };
    let verified = state
        .auth
        .verify(token, keys, chatd_core::clock::now_secs());
    let (user, expires_at) = match verified {
        Ok(v) => match v.principal {
            Principal::User(u) => (u, v.expires_at),
            Principal::App => return Err(unauthorized("a user token is required")),
        },
        // The SDK reports this one as "token expired", so that the app can
        // renew its token.
        Err(AuthError::Expired) => return Err(Refusal(ErrorCode::Fail, "Sorry, token expired")),
        Err(_) => {
            return Err(unauthorized(
                "Sorry, token or password does not match login info",
            ))
        }
    };
    if let Some(claimed) = &login.user {
        if !claimed.eq_ignore_ascii_case(&user) {
            return Err(unauthorized(
                "Sorry, token or password does not match login info",
            ));
        }
    }
    let device = match login.resource.as_deref() {
        Some(r) if is_device_id(r) => r.to_string(),
        _ => format!("webim_{}", chatd_core::ids::random_token(12)),
    };
    Ok(Who {
        app,
        user,
        device,
        token_expires_ms: (expires_at > 0).then(|| expires_at.saturating_mul(1000)),
    })
}

/// The peer whose queue an inbox entry goes to.
fn peer_of(e: &InboxEntry) -> &str {
    if e.kind == EntryKind::SyncCopy {
        &e.to
    } else {
        &e.from
    }
}

/// The status of a refused send, with the reasons the SDK maps to its own
/// error types.
fn send_refusal(e: &SendError) -> pb::Status {
    match e {
        SendError::RateLimited => frame::status(ErrorCode::PermissionDenied, Some("traffic limit")),
        SendError::TooLarge => frame::status(
            ErrorCode::PermissionDenied,
            Some("Sorry, data is too large"),
        ),
        SendError::Storage(err) => {
            tracing::error!(error = %err, "storing a message from an SDK failed");
            frame::status(ErrorCode::Fail, Some("internal error"))
        }
        other => frame::status(ErrorCode::WrongParameter, Some(&other.to_string())),
    }
}

struct Connection {
    state: Arc<ApiState>,
    socket: WebSocket,
    who: Who,
    app_key: String,
}

/// Connection state beside the socket.
struct Session {
    inbox: DeviceSession,
    queues: Queues,
    /// Whether the client asked for its queues (UNREAD) yet: until then
    /// new messages wait for that answer rather than being noticed one by
    /// one.
    greeted: bool,
    /// Look at the inbox again before waiting.
    look: bool,
}

impl Connection {
    fn jid(&self, name: &str) -> pb::Jid {
        chatd_msync::jid(&self.app_key, name)
    }

    async fn send(&mut self, frame: Vec<u8>) -> Result<(), (u16, &'static str)> {
        self.send_message(Message::Binary(frame.into())).await
    }

    async fn send_message(&mut self, msg: Message) -> Result<(), (u16, &'static str)> {
        let write = Duration::from_secs(self.state.clients.write_secs);
        match tokio::time::timeout(write, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err((1001, "connection lost")),
            Err(_) => {
                metrics::counter!("chatd_msync_stalled_total").increment(1);
                Err((4008, "client too slow to read"))
            }
        }
    }

    async fn serve(&mut self) -> (u16, &'static str) {
        let key = InboxKey {
            app: self.who.app.key,
            user: self.who.user.clone(),
        };
        let delivery = self.state.pipeline.delivery().clone();
        let mut registration = delivery.connections().register_with_receipts(
            &key,
            &self.who.device,
            "msync",
            self.state.clients.max_devices,
        );
        registration
            .wait_for_replaced(std::time::Duration::from_secs(2))
            .await;
        let inbox = match DeviceSession::open(
            self.state.store().clone(),
            delivery.as_ref(),
            key,
            &self.who.device,
            registration.info.connected_at_ms,
            self.state.clients.window,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "opening a device session failed");
                let answer = frame::provision_answer(ErrorCode::Fail, Some("server busy"), None);
                let _ = self.send(answer).await;
                return (4500, "storage unavailable");
            }
        };
        let ok = frame::provision_ok(&self.who.device, self.who.token_expires_ms, now_ms());
        if let Err(c) = self.send(ok).await {
            return c;
        }
        let mut session = Session {
            inbox,
            queues: Queues::new(SYNC_BATCH),
            greeted: false,
            look: true,
        };
        let mut receipts = registration
            .receipts
            .take()
            .unwrap_or_else(|| mpsc::channel(1).1);
        let closing = self
            .pump(&mut session, &mut registration.kicked, &mut receipts)
            .await;
        session.inbox.save_or_warn().await;
        closing
    }

    async fn pump(
        &mut self,
        s: &mut Session,
        kicked: &mut tokio::sync::oneshot::Receiver<Kick>,
        receipts: &mut mpsc::Receiver<Receipt>,
    ) -> (u16, &'static str) {
        let settings = self.state.clients.clone();
        let mut ping = tokio::time::interval(Duration::from_secs(settings.ping_secs.max(1)));
        ping.tick().await;
        let mut save = SaveTimer::new();
        let mut shutdown = self.state.shutdown.clone();
        let mut last_heard = Instant::now();
        loop {
            save.arm_if(s.inbox.unsaved() > 0);
            if s.look && s.inbox.has_room() {
                if let Err(c) = self.take_from_inbox(s).await {
                    return c;
                }
                continue;
            }
            tokio::select! {
                incoming = self.socket.recv() => {
                    last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Binary(b))) => {
                            match self.handle(s, &b).await {
                                Ok(true) => {}
                                Ok(false) => return (1000, "logged out"),
                                Err(c) => return c,
                            }
                            s.inbox.save_if_many_unsaved().await;
                        }
                        Some(Ok(Message::Text(_))) => {
                            return (4002, "this endpoint speaks binary msync frames");
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            return (1000, "closed by the client");
                        }
                        Some(Ok(_)) => {} // pings and pongs
                    }
                }
                _ = s.inbox.wait_for_news(), if s.inbox.has_room() && !s.look => s.look = true,
                Some(r) = receipts.recv() => {
                    if let Err(c) = self.queue_receipt(s, r).await {
                        return c;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > Duration::from_secs(settings.idle_secs) {
                        return (4008, "no heartbeat");
                    }
                    if let Err(c) = self.send_message(Message::Ping(Vec::new().into())).await {
                        return c;
                    }
                }
                _ = save.expired() => {
                    s.inbox.save_or_warn().await;
                }
                why = &mut *kicked => return self.kicked(why.ok()).await,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                    return (1001, "server shutting down");
                }
            }
        }
    }

    /// Moves entries from the inbox session into the queues, and notices
    /// the queues that grew.
    async fn take_from_inbox(&mut self, s: &mut Session) -> Result<(), (u16, &'static str)> {
        let batch = match s.inbox.next_batch().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reading an inbox failed");
                return Err((4500, "storage unavailable"));
            }
        };
        if batch.is_empty() {
            s.look = false;
            return Ok(());
        }
        let mut grown = BTreeSet::new();
        for e in &batch {
            let peer = peer_of(e).to_string();
            let meta = meta::entry_meta(e, &self.app_key);
            if s.queues.push(&peer, e.msg_id, Some(e.seq), meta) {
                grown.insert(peer);
            }
        }
        if let Some(seq) = s.queues.settle() {
            s.inbox.ack(seq);
        }
        metrics::counter!("chatd_msync_messages_queued_total").increment(batch.len() as u64);
        if s.greeted {
            for peer in grown {
                let jid = self.jid(&peer);
                self.send(frame::notice(jid)).await?;
            }
        }
        Ok(())
    }

    /// A receipt for one of this user's messages: into the reader's queue.
    async fn queue_receipt(
        &mut self,
        s: &mut Session,
        r: Receipt,
    ) -> Result<(), (u16, &'static str)> {
        let kind = match r.kind {
            ReceiptKind::Delivered => AckKind::Delivered,
            ReceiptKind::Read => AckKind::Read,
            ReceiptKind::ConversationRead => AckKind::Channel,
        };
        let m = meta::receipt_meta(
            kind,
            r.id,
            &r.reader,
            &self.who.user,
            r.msg_id,
            r.timestamp_ms,
            &self.app_key,
        );
        if s.queues.push(&r.reader, r.id, None, m) && s.greeted {
            let jid = self.jid(&r.reader);
            self.send(frame::notice(jid)).await?;
        }
        Ok(())
    }

    /// Handles one client frame; false when the client logged out.
    async fn handle(&mut self, s: &mut Session, bytes: &[u8]) -> Result<bool, (u16, &'static str)> {
        let req = match frame::decode_request(bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "unreadable msync frame");
                return Err((4002, "unreadable msync frame"));
            }
        };
        match req {
            Request::Unread => {
                s.greeted = true;
                let queues = s
                    .queues
                    .pending()
                    .into_iter()
                    .map(|(peer, n)| (self.jid(&peer), n))
                    .collect();
                self.send(frame::unread_answer(queues, now_ms())).await?;
            }
            Request::Sync(ul) => self.sync(s, *ul).await?,
            Request::Logout(_) => {
                self.send(frame::logout_answer()).await?;
                return Ok(false);
            }
            // Logging in again on a live connection: already done.
            Request::Provision(_) => {
                let ok = frame::provision_ok(&self.who.device, self.who.token_expires_ms, now_ms());
                self.send(ok).await?;
            }
            Request::Unknown(c) => tracing::debug!(command = c, "unknown msync command"),
        }
        Ok(true)
    }

    async fn sync(&mut self, s: &mut Session, ul: CommSyncUl) -> Result<(), (u16, &'static str)> {
        if let Some(meta) = ul.meta {
            let answer = self.uplink(&meta).await;
            return self.send(answer).await;
        }
        let Some(queue) = ul.queue else {
            return self.send(frame::empty_sync(now_ms())).await;
        };
        let peer = queue.name.clone().unwrap_or_default().to_ascii_lowercase();
        let metas = match ul.key.filter(|k| *k != 0) {
            Some(key) => {
                let acked = s.queues.ack(&peer, key, now_ms());
                if let Some(seq) = acked.inbox {
                    s.inbox.ack(seq);
                    s.look = true;
                    // Saved at once (one write per acknowledged batch): an
                    // SDK that logs in again with the same resource, or
                    // after a crash, is not sent these again.
                    s.inbox.save_or_warn().await;
                }
                acked.next
            }
            None => s.queues.read(&peer, now_ms()),
        };
        metrics::counter!("chatd_msync_metas_sent_total").increment(metas.len() as u64);
        // The queue is echoed as the client named it: the SDK matches it.
        self.send(frame::sync_batch(queue, metas, now_ms())).await
    }

    /// One uplink meta: a message to send, an acknowledgement, a report.
    async fn uplink(&mut self, m: &Meta) -> Vec<u8> {
        let meta_id = m.id.unwrap_or(0);
        let ok = frame::status(ErrorCode::Ok, None);
        match meta::parse_uplink(m) {
            Uplink::Statistic => frame::meta_answer(meta_id, receipt_ids().next_id(), ok, now_ms()),
            Uplink::Message(out) => {
                let mut req = out.to_request();
                req.insert("from".into(), self.who.user.clone().into());
                let sent = match check_send_object(&mut req, &self.who.app.settings.limits) {
                    Ok(r) => {
                        self.state
                            .pipeline
                            .send(&self.who.app, r, Source::Device(self.who.device.clone()))
                            .await
                    }
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(accepted) => {
                        let id = accepted.first().map_or(0, |a| a.msg_id);
                        metrics::counter!("chatd_msync_messages_sent_total").increment(1);
                        frame::meta_answer(meta_id, id, ok, now_ms())
                    }
                    Err(e) => frame::meta_answer(meta_id, 0, send_refusal(&e), now_ms()),
                }
            }
            Uplink::Ack { kind, to, msg_id } => {
                let id = receipt_ids().next_id();
                self.relay_ack(kind, &to, msg_id, id).await;
                frame::meta_answer(meta_id, id, ok, now_ms())
            }
            Uplink::Refused { code, reason } => {
                frame::meta_answer(meta_id, 0, frame::status(code, Some(reason)), now_ms())
            }
        }
    }

    /// Records a read, and relays an acknowledgement to the message's
    /// sender. Only acknowledgements of messages this user received are
    /// relayed.
    async fn relay_ack(&mut self, kind: AckKind, to: &str, msg_id: Option<u64>, id: u64) {
        let app = self.who.app.key;
        let store = self.state.store().clone();
        let sender = match (kind, msg_id) {
            (AckKind::Channel, _) => Some(to.to_ascii_lowercase()),
            (_, Some(msg)) => match store.find_entry(app, msg).await {
                Ok(Some(e)) if e.owner == self.who.user => Some(e.from),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "looking up an acknowledged message failed");
                    None
                }
            },
            (_, None) => None,
        };
        let Some(sender) = sender else {
            return;
        };
        if matches!(kind, AckKind::Read | AckKind::Channel) {
            if let Err(e) = store.mark_read(app, &self.who.user, &sender).await {
                tracing::warn!(error = %e, "marking a conversation read failed");
            }
        }
        let receipt = Receipt {
            kind: match kind {
                AckKind::Delivered => ReceiptKind::Delivered,
                AckKind::Read => ReceiptKind::Read,
                AckKind::Channel => ReceiptKind::ConversationRead,
            },
            reader: self.who.user.clone(),
            msg_id,
            id,
            timestamp_ms: chatd_core::clock::now_ms(),
        };
        let key = InboxKey { app, user: sender };
        let n = self
            .state
            .pipeline
            .delivery()
            .connections()
            .send_receipt(&key, &receipt);
        metrics::counter!("chatd_msync_receipts_relayed_total").increment(n as u64);
    }

    /// Tells the SDK why it is disconnected (so that it does not log in
    /// again in a loop), then closes.
    async fn kicked(&mut self, why: Option<Kick>) -> (u16, &'static str) {
        let (op, code, reason) = match why {
            // The same resource logged in again. Usually this very SDK,
            // reconnecting: it closed this socket first, and its close frame
            // is on the way. Otherwise another instance shares the resource
            // (two tabs with one stored device id): this one is told it
            // logged in elsewhere, so that the two do not take turns.
            Some(Kick::Replaced) => {
                let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
                loop {
                    match tokio::time::timeout_at(deadline, self.socket.recv()).await {
                        Err(_) => break,
                        Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => {
                            return (1000, "the same device connected again")
                        }
                        Ok(Some(Ok(_))) => {}
                    }
                }
                (
                    Operation::UserLoginAnotherDevice,
                    4003,
                    "the same device connected again",
                )
            }
            Some(Kick::TooManyDevices) => (
                Operation::UserLoginAnotherDevice,
                4004,
                "too many devices: the oldest was disconnected",
            ),
            Some(Kick::Disconnected) | None => (
                Operation::UserKickedByOtherDevice,
                4005,
                "disconnected by the administrator",
            ),
        };
        let body = pb::StatisticsBody {
            operation: Some(op as i32),
            ..Default::default()
        };
        let meta = Meta {
            id: Some(receipt_ids().next_id()),
            from: Some(self.jid(&self.who.user)),
            to: Some(self.jid(&self.who.user)),
            timestamp: Some(now_ms()),
            ns: Some(pb::meta::NameSpace::Statistic as i32),
            payload: Some(body.encode_to_vec()),
            ..Default::default()
        };
        let me = self.jid(&self.who.user);
        let _ = self.send(frame::push_metas(me, vec![meta], now_ms())).await;
        (code, reason)
    }
}
