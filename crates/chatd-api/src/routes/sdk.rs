//! The REST calls the official client SDKs make for one-to-one chat,
//! besides the token (docs/sdk.md):
//!
//! - `POST …/users/{me}/messageroaming`: history (`getHistoryMessages`),
//!   as base64 msync `Meta` records with a cursor;
//! - `GET …/sdk/user/{me}/user_channels/list`: the conversation list
//!   (`getServerConversations`);
//! - `GET …/sdk/users/{me}/token/expires`: a token's expiry
//!   (`renewToken`).

use crate::auth::check_call_rate;
use crate::body::{read_json_body, ContentTypePolicy};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::routes::{canonical, resource_uri, user_call, Allowed, Call, UserPath};
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chatd_auth::{AppKeys, Principal};
use chatd_core::record::message_record;
use chatd_core::{AppRecord, InboxEntry, MessageType};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Default and largest page of history.
const PAGE: usize = 20;
const PAGE_MAX: usize = 100;
/// Messages read from storage per history query.
const SCAN_PAGE: usize = 100;
/// Most messages looked at to answer one history call (filters, and the
/// `down` direction, which storage serves newest first).
const SCAN_MAX: usize = 10_000;
/// Default and largest conversation page.
const CONVERSATIONS_PAGE: usize = 20;
const CONVERSATIONS_MAX: usize = 100;

fn answer(state: &ApiState, app: &AppRecord, action: &str, path: &str, data: Value) -> Response {
    Json(json!({
        "action": action,
        "application": app.uuid,
        "path": path,
        "uri": resource_uri(&state.public_url, app, path),
        "entities": [],
        "data": data,
        "timestamp": chatd_core::clock::now_ms(),
        "duration": elapsed_ms(),
        "organization": app.org_name,
        "applicationName": app.app_name,
    }))
    .into_response()
}

/// A number, or a numeric string; `-1`, `""` and null mean none.
fn cursor_value(v: Option<&Value>) -> Result<Option<u64>, ApiError> {
    let bad = || ApiError::illegal_argument("start is not a valid message id");
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() || s.trim() == "-1" => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn millis(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The SDK's history filters.
struct Filter {
    types: Vec<MessageType>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

impl Filter {
    fn keeps(&self, e: &InboxEntry) -> bool {
        (self.types.is_empty() || self.types.contains(&e.msg_type))
            && self.from_ms.is_none_or(|t| e.timestamp_ms >= t)
            && self.to_ms.is_none_or(|t| e.timestamp_ms <= t)
    }
}

/// `POST …/users/{me}/messageroaming` with
/// `{queue: "peer@easemob.com", start, pull_number, is_positive, msgType,
/// startTime, endTime}`. `start` is the cursor (the last message id of the
/// previous page, excluded; `-1` for the newest). Messages come newest
/// first, or with `is_positive: true` oldest first after `start`. The
/// answer's `data` is `{msgs: [{msg: <base64 Meta>}], next_key, is_last}`.
pub async fn message_roaming(
    call: Call,
    Path(path): Path<UserPath>,
    body: Body,
) -> Result<Response, ApiError> {
    let user = user_call(&call, &path.username, Allowed::AppOrSelf, "history")?;
    let (state, app, headers) = (&call.state, &call.app, &call.headers);
    let raw = read_json_body(
        headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Lenient,
    )
    .await?;
    let req: Map<String, Value> = if raw.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(&raw) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ApiError::invalid_request_body()),
        }
    };
    let queue = req
        .get("queue")
        .and_then(Value::as_str)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::illegal_argument("queue must be provided."))?;
    let route = format!("/users/{user}/messageroaming");
    let (peer, domain) = queue.split_once('@').unwrap_or((queue, ""));
    if domain.starts_with("conference") {
        // Groups and chat rooms do not exist here: an empty history.
        let data = json!({"msgs": [], "next_key": "", "is_last": true});
        return Ok(answer(state, app, "post", &route, data));
    }
    let peer = peer.to_ascii_lowercase();
    let start = cursor_value(req.get("start"))?;
    let limit = req
        .get("pull_number")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
        .map_or(PAGE, |n| n as usize)
        .clamp(1, PAGE_MAX);
    let forward = matches!(req.get("is_positive"), Some(Value::Bool(true)));
    let types = req
        .get("msgType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(',')
        .filter_map(|t| t.trim().parse::<MessageType>().ok())
        .collect();
    let filter = Filter {
        types,
        from_ms: millis(req.get("startTime")),
        to_ms: millis(req.get("endTime")),
    };

    let store = state.store();
    let mut before = if forward { None } else { start };
    let mut found: Vec<InboxEntry> = Vec::new();
    let mut scanned = 0;
    // Whether nothing older is left to look at.
    let mut exhausted;
    'scan: loop {
        let page = store
            .history(app.key, &user, &peer, before, SCAN_PAGE)
            .await?;
        exhausted = page.len() < SCAN_PAGE;
        for e in page {
            before = Some(e.msg_id);
            scanned += 1;
            // Past the cursor (forward), or before the time window: done.
            if (forward && start.is_some_and(|s| e.msg_id <= s))
                || filter.from_ms.is_some_and(|t| e.timestamp_ms < t)
            {
                exhausted = true;
                break 'scan;
            }
            if filter.keeps(&e) {
                found.push(e);
                if !forward && found.len() == limit {
                    exhausted = false;
                    break 'scan;
                }
            }
        }
        if exhausted || scanned >= SCAN_MAX {
            break;
        }
    }
    let (page, is_last) = if forward {
        // Oldest first, right after the cursor.
        found.reverse();
        let more = found.len() > limit;
        found.truncate(limit);
        (found, !more)
    } else {
        let full = found.len() == limit;
        (found, exhausted || !full)
    };
    let app_key = format!("{}#{}", app.org_name, app.app_name);
    let msgs: Vec<Value> = page
        .iter()
        .map(|e| {
            json!({
                "msg": chatd_msync::meta::history_record(e, &app_key),
                "msg_id": e.msg_id.to_string(),
                "timestamp": e.timestamp_ms,
            })
        })
        .collect();
    let next_key = page
        .last()
        .map(|e| e.msg_id.to_string())
        .unwrap_or_default();
    let data = json!({"msgs": msgs, "next_key": next_key, "is_last": is_last});
    Ok(answer(state, app, "post", &route, data))
}

/// `GET …/sdk/users/{me}/token/expires` with the (new) token as bearer:
/// `{expire_timestamp}` in Unix ms, which the SDK's `renewToken` uses to
/// count down to the token's expiry again. A token that never expires
/// answers a date a century away.
pub async fn token_expires(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    Path(path): Path<UserPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_call_rate(&state, &app, "token")?;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    let keys = AppKeys {
        app_id: &app.app_id,
        app_certificate: &app.app_certificate,
    };
    let now = chatd_core::clock::now_secs();
    let verified = state
        .auth
        .verify(token, keys, now)
        .map_err(ApiError::from_auth)?;
    match &verified.principal {
        Principal::User(u) if u.eq_ignore_ascii_case(&path.username) => {}
        _ => return Err(ApiError::app_token_required()),
    }
    let expires = match verified.expires_at {
        0 => (now + 100 * 365 * 86_400) * 1000,
        at => at * 1000,
    };
    let user = canonical(&path.username)?;
    let route = format!("/sdk/users/{user}/token/expires");
    // The SDK reads `expire_timestamp` at the top level.
    Ok(Json(json!({
        "action": "get",
        "path": route,
        "uri": resource_uri(&state.public_url, &app, &route),
        "expire_timestamp": expires,
        "timestamp": chatd_core::clock::now_ms(),
        "duration": elapsed_ms(),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct ConversationQuery {
    limit: Option<String>,
    cursor: Option<String>,
    is_top: Option<String>,
}

/// `GET …/sdk/user/{me}/user_channels/list?limit=&cursor=`: one-to-one
/// conversations, most recent first, each with its unread count and last
/// message (`meta`, the service's record with `payload` as a JSON string).
/// `cursor` is an offset into the list. Pinning does not exist here: the
/// pinned list (`is_top=true`) is empty.
pub async fn conversations(
    call: Call,
    Path(path): Path<UserPath>,
    Query(q): Query<ConversationQuery>,
) -> Result<Response, ApiError> {
    let user = user_call(&call, &path.username, Allowed::AppOrSelf, "users")?;
    let (state, app) = (&call.state, &call.app);
    let route = format!("/sdk/user/{user}/user_channels/list");
    if q.is_top.as_deref() == Some("true") {
        return Ok(answer(
            state,
            app,
            "get",
            &route,
            json!({"cursor": "", "channel_infos": []}),
        ));
    }
    let limit = q
        .limit
        .as_deref()
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(CONVERSATIONS_PAGE)
        .clamp(1, CONVERSATIONS_MAX);
    let offset = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<usize>()
                .map_err(|_| ApiError::illegal_argument("cursor is not valid"))
        })
        .transpose()?
        .unwrap_or(0);
    let list = state
        .store()
        .conversations(app.key, &user, offset + limit + 1)
        .await?;
    let more = list.len() > offset + limit;
    let channels: Vec<Value> = list
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| {
            let mut record = message_record(&c.last);
            let mut payload = record["payload"].take();
            payload["type"] = json!("chat");
            json!({
                "session_to": c.peer,
                "session_type": "chat",
                "unread_num": c.unread,
                "is_top": false,
                "update_top_status_time": 0,
                "marks": [],
                "meta": {
                    "id": record["msg_id"],
                    "msg_id": record["msg_id"],
                    "from": record["from"],
                    "to": record["to"],
                    "timestamp": record["timestamp"],
                    "direction": record["direction"],
                    "chat_type": "chat",
                    "payload": payload.to_string(),
                },
            })
        })
        .collect();
    let cursor = if more {
        (offset + limit).to_string()
    } else {
        String::new()
    };
    Ok(answer(
        state,
        app,
        "get",
        &route,
        json!({"cursor": cursor, "channel_infos": channels}),
    ))
}
