//! Client frames in, server frames out.
//!
//! Every WebSocket message is one binary `MSync` whose `payload` is the
//! command's message. This server never offers compression or encryption,
//! so payloads are plain protobuf.

use crate::pb::m_sync::Command;
use crate::pb::status::ErrorCode;
use crate::pb::{
    CommNotice, CommSyncDl, CommSyncUl, CommUnreadDl, Jid, Logout, MSync, Meta, MetaQueue,
    Provision, Status,
};
use prost::Message;

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not an MSync frame: {0}")]
    Envelope(prost::DecodeError),
    #[error("bad {command} payload: {source}")]
    Payload {
        command: &'static str,
        source: prost::DecodeError,
    },
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Login.
    Provision(Box<Login>),
    /// Queue sizes; also the heartbeat.
    Unread,
    /// An uplink meta, or a queue read / key acknowledgement.
    Sync(Box<CommSyncUl>),
    Logout(Logout),
    /// A command number this server does not know.
    Unknown(i32),
}

/// The parts of a PROVISION frame the server uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// `org#app`.
    pub app_key: Option<String>,
    pub user: Option<String>,
    /// The token without its `$t$` prefix.
    pub token: Option<String>,
    /// The device's resource.
    pub resource: Option<String>,
    pub provision: Provision,
}

/// The token the SDK puts (twice) in its login: the JSON `authToken`
/// `{"token":"$t$…"}` first, else `MSync.auth`. The `$t$` prefix is removed.
fn login_token(msync: &MSync, p: &Provision) -> Option<String> {
    let from_json = p.auth_token.as_deref().and_then(|j| {
        serde_json::from_str::<serde_json::Value>(j)
            .ok()?
            .get("token")?
            .as_str()
            .map(str::to_string)
    });
    let raw = from_json
        .or_else(|| msync.auth.clone())
        .or_else(|| p.auth.clone())?;
    let token = raw.strip_prefix("$t$").unwrap_or(&raw).trim().to_string();
    (!token.is_empty()).then_some(token)
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// Decodes one client frame.
pub fn decode_request(frame: &[u8]) -> Result<Request, FrameError> {
    let msync = MSync::decode(frame).map_err(FrameError::Envelope)?;
    let payload = msync.payload.as_deref().unwrap_or_default();
    let bad = |command, source| FrameError::Payload { command, source };
    Ok(match Command::try_from(msync.command.unwrap_or(0)) {
        Ok(Command::Provision) => {
            let provision = Provision::decode(payload).map_err(|e| bad("PROVISION", e))?;
            let guid = msync.guid.clone().unwrap_or_default();
            Request::Provision(Box::new(Login {
                app_key: non_empty(guid.app_key.as_deref()),
                user: non_empty(guid.name.as_deref()),
                token: login_token(&msync, &provision),
                resource: non_empty(provision.resource.as_deref())
                    .or_else(|| non_empty(guid.client_resource.as_deref())),
                provision,
            }))
        }
        Ok(Command::Unread) => Request::Unread,
        Ok(Command::Sync) => Request::Sync(Box::new(
            CommSyncUl::decode(payload).map_err(|e| bad("SYNC", e))?,
        )),
        Ok(Command::Logout) => {
            Request::Logout(Logout::decode(payload).map_err(|e| bad("LOGOUT", e))?)
        }
        // NOTICE is server to client only.
        Ok(Command::Notice) => Request::Unknown(Command::Notice as i32),
        Err(_) => Request::Unknown(msync.command.unwrap_or(0)),
    })
}

/// A `Status`; the reason only when given.
pub fn status(code: ErrorCode, reason: Option<&str>) -> Status {
    Status {
        error_code: Some(code as i32),
        reason: reason.map(str::to_string),
        redirect_info: Vec::new(),
    }
}

fn envelope(command: Command, payload: impl Message) -> Vec<u8> {
    MSync {
        version: Some(0),
        command: Some(command as i32),
        payload: Some(payload.encode_to_vec()),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The PROVISION answer. `resource` is the device's resource (the SDK
/// adopts it). No compression is offered, so the SDK keeps it off.
pub fn provision_answer(code: ErrorCode, reason: Option<&str>, resource: Option<&str>) -> Vec<u8> {
    envelope(
        Command::Provision,
        Provision {
            status: Some(status(code, reason)),
            resource: resource.map(str::to_string),
            ..Default::default()
        },
    )
}

/// The SDK counts down to `onTokenWillExpire` (at 4/5 of the time left)
/// and `onTokenExpired` from the token expiry the PROVISION answer gives,
/// but its timer holds at most 2^31 - 1 ms (24.8 days): a token living
/// longer would be declared expired too early, so it is not announced.
pub const MAX_ANNOUNCED_EXPIRY_MS: u64 = (1 << 31) - 1;

/// A successful PROVISION answer, announcing the token's expiry (Unix
/// milliseconds) when it is near enough for the SDK to count down to it.
pub fn provision_ok(resource: &str, token_expires_ms: Option<u64>, now_ms: u64) -> Vec<u8> {
    let auth_token = token_expires_ms
        .filter(|at| *at > now_ms && at - now_ms <= MAX_ANNOUNCED_EXPIRY_MS)
        .map(|at| serde_json::json!({ "expires_in": at }).to_string());
    envelope(
        Command::Provision,
        Provision {
            status: Some(status(ErrorCode::Ok, None)),
            resource: Some(resource.to_string()),
            auth_token,
            ..Default::default()
        },
    )
}

/// The UNREAD answer: the queues holding messages and their sizes.
pub fn unread_answer(queues: Vec<(Jid, u32)>, now_ms: u64) -> Vec<u8> {
    envelope(
        Command::Unread,
        CommUnreadDl {
            status: Some(status(ErrorCode::Ok, None)),
            unread: queues
                .into_iter()
                .map(|(queue, n)| MetaQueue {
                    queue: Some(queue),
                    n: Some(n),
                })
                .collect(),
            timestamp: Some(now_ms),
        },
    )
}

/// NOTICE: `queue` has something new.
pub fn notice(queue: Jid) -> Vec<u8> {
    envelope(Command::Notice, CommNotice { queue: Some(queue) })
}

/// A queue batch: metas with `next_key` = the last one's id and
/// `is_last: false` (the client acknowledges the key and asks again), or,
/// with no metas, `is_last: true`.
pub fn sync_batch(queue: Jid, metas: Vec<Meta>, now_ms: u64) -> Vec<u8> {
    let next_key = metas.last().and_then(|m| m.id);
    let is_last = metas.is_empty();
    envelope(
        Command::Sync,
        CommSyncDl {
            status: Some(status(ErrorCode::Ok, None)),
            queue: Some(queue),
            metas,
            next_key,
            is_last: Some(is_last),
            timestamp: Some(now_ms),
            ..Default::default()
        },
    )
}

/// The answer to one uplink meta: its client id, the id the server gave it,
/// and the outcome.
pub fn meta_answer(meta_id: u64, server_id: u64, status: Status, now_ms: u64) -> Vec<u8> {
    envelope(
        Command::Sync,
        CommSyncDl {
            status: Some(status),
            meta_id: Some(meta_id),
            server_id: Some(server_id),
            timestamp: Some(now_ms),
            ..Default::default()
        },
    )
}

/// The answer to a SYNC that names neither a meta nor a queue.
pub fn empty_sync(now_ms: u64) -> Vec<u8> {
    envelope(
        Command::Sync,
        CommSyncDl {
            status: Some(status(ErrorCode::Ok, None)),
            is_last: Some(true),
            timestamp: Some(now_ms),
            ..Default::default()
        },
    )
}

/// Unsolicited metas (a STATISTIC notice before the server closes the
/// connection) in a batch the client does not acknowledge.
pub fn push_metas(queue: Jid, metas: Vec<Meta>, now_ms: u64) -> Vec<u8> {
    envelope(
        Command::Sync,
        CommSyncDl {
            status: Some(status(ErrorCode::Ok, None)),
            queue: Some(queue),
            metas,
            is_last: Some(true),
            timestamp: Some(now_ms),
            ..Default::default()
        },
    )
}

/// The LOGOUT answer.
pub fn logout_answer() -> Vec<u8> {
    envelope(
        Command::Logout,
        Logout {
            status: Some(status(ErrorCode::Ok, None)),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provision_frame(auth: Option<&str>, auth_token: Option<&str>) -> Vec<u8> {
        MSync {
            guid: Some(crate::jid("org#app", "alice")),
            auth: auth.map(str::to_string),
            command: Some(Command::Provision as i32),
            payload: Some(
                Provision {
                    auth_token: auth_token.map(str::to_string),
                    resource: Some("webim_web_1".into()),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn the_token_is_read_without_its_prefix() {
        let Request::Provision(l) =
            decode_request(&provision_frame(Some("$t$A"), Some(r#"{"token":"$t$B"}"#))).unwrap()
        else {
            panic!()
        };
        assert_eq!(l.token.as_deref(), Some("B"));
        assert_eq!(l.app_key.as_deref(), Some("org#app"));
        assert_eq!(l.user.as_deref(), Some("alice"));
        assert_eq!(l.resource.as_deref(), Some("webim_web_1"));
        let Request::Provision(l) = decode_request(&provision_frame(Some("$t$A"), None)).unwrap()
        else {
            panic!()
        };
        assert_eq!(l.token.as_deref(), Some("A"));
        let Request::Provision(l) = decode_request(&provision_frame(None, None)).unwrap() else {
            panic!()
        };
        assert_eq!(l.token, None);
    }

    #[test]
    fn a_batch_names_its_last_key_and_an_empty_one_is_last() {
        let m = |id| Meta {
            id: Some(id),
            ..Default::default()
        };
        let f =
            MSync::decode(&sync_batch(crate::jid("o#a", "bob"), vec![m(3), m(9)], 1)[..]).unwrap();
        let dl = CommSyncDl::decode(f.payload.as_deref().unwrap()).unwrap();
        assert_eq!(dl.next_key, Some(9));
        assert_eq!(dl.is_last, Some(false));
        assert_eq!(dl.queue.unwrap().name.as_deref(), Some("bob"));
        assert_eq!(dl.status.unwrap().error_code, Some(0));
        let f = MSync::decode(&sync_batch(crate::jid("o#a", "bob"), vec![], 1)[..]).unwrap();
        let dl = CommSyncDl::decode(f.payload.as_deref().unwrap()).unwrap();
        assert_eq!((dl.next_key, dl.is_last), (None, Some(true)));
    }

    #[test]
    fn only_near_token_expiries_are_announced() {
        let answer = |exp| {
            let f = MSync::decode(&provision_ok("r", exp, 1_000)[..]).unwrap();
            Provision::decode(f.payload.as_deref().unwrap()).unwrap()
        };
        let p = answer(Some(61_000));
        assert_eq!(p.auth_token.as_deref(), Some(r#"{"expires_in":61000}"#));
        assert_eq!(p.resource.as_deref(), Some("r"));
        assert_eq!(p.status.unwrap().error_code, Some(0));
        assert_eq!(answer(None).auth_token, None);
        assert_eq!(answer(Some(1_000 + (1 << 31))).auth_token, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(&[0xff, 0xff, 0xff]).is_err());
    }
}
