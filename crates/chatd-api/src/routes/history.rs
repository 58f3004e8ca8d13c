//! History of one-to-one conversations, and conversation lists.

use crate::body::{read_json_body, ContentTypePolicy};
use crate::error::ApiError;
use crate::routes::{envelope, user_call, Allowed, Call, UserPath};
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatd_core::record::message_record;
use serde::Deserialize;
use serde_json::{json, Value};

/// Default and largest page of history.
pub const HISTORY_PAGE: usize = 20;
pub const HISTORY_PAGE_MAX: usize = 100;
/// Largest conversation list returned.
pub const CONVERSATIONS_MAX: usize = 100;

#[derive(Deserialize)]
pub struct HistoryQuery {
    peer: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET …/users/{username}/history?peer=P&limit=N&cursor=C`: the
/// conversation of `username` with `P`, newest first; `cursor` (from the
/// previous page) continues with older messages.
pub async fn history(
    call: Call,
    Path(path): Path<UserPath>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let user = user_call(&call, &path.username, Allowed::AppOrSelf, "history")?;
    let peer = q
        .peer
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::illegal_argument("peer must be provided."))?
        .to_ascii_lowercase();
    let limit = q.limit.unwrap_or(HISTORY_PAGE).clamp(1, HISTORY_PAGE_MAX);
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| ApiError::illegal_argument("cursor is not valid"))?,
        ),
    };
    let entries = state
        .store()
        .history(app.key, &user, &peer, before, limit)
        .await?;
    let cursor = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.msg_id.to_string()))
        .flatten();
    let mut out = envelope(state, app, "get", &format!("/{user}/history"));
    out["entities"] = Value::Array(entries.iter().map(message_record).collect());
    out["count"] = json!(entries.len());
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(Json(out).into_response())
}

/// `GET …/users/{username}/user_channels`: the user's one-to-one
/// conversations, most recent first, with unread counts.
pub async fn conversations(call: Call, Path(path): Path<UserPath>) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let user = user_call(&call, &path.username, Allowed::AppOrSelf, "users")?;
    let list = state
        .store()
        .conversations(app.key, &user, CONVERSATIONS_MAX)
        .await?;
    let channels: Vec<Value> = list
        .iter()
        .map(|c| {
            json!({
                "channel_id": c.peer,
                "type": "chat",
                "unread_num": c.unread,
                "updated": c.updated_ms,
                "last_message": message_record(&c.last),
            })
        })
        .collect();
    let mut out = envelope(state, app, "get", &format!("/{user}/user_channels"));
    out["entities"] = json!([]);
    out["data"] = json!({"channel_infos": channels});
    out["count"] = json!(list.len());
    Ok(Json(out).into_response())
}

/// `DELETE …/users/{username}/user_channel` with
/// `{"channel": peer, "type": "chat", "delete_roam": bool}`.
pub async fn delete_conversation(
    call: Call,
    Path(path): Path<UserPath>,
    body: Body,
) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let user = user_call(&call, &path.username, Allowed::App, "users")?;
    let raw = read_json_body(
        &call.headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Lenient,
    )
    .await?;
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&raw) else {
        return Err(ApiError::invalid_request_body());
    };
    let text = |k: &str| -> Result<String, ApiError> {
        match m.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) | Some(Value::String(_)) => Err(ApiError::illegal_argument(
                format!("field {k} cannot be null or empty"),
            )),
            Some(_) => Err(ApiError::invalid_request_body()),
        }
    };
    let channel = text("channel")?.to_ascii_lowercase();
    let kind = text("type")?;
    let delete_roam = match m.get("delete_roam") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => {
            return Err(ApiError::illegal_argument(
                "field delete_roam cannot be null",
            ))
        }
        Some(_) => return Err(ApiError::invalid_request_body()),
    };
    if kind != "chat" {
        return Err(ApiError::illegal_argument(format!(
            "type {kind} is not supported: chatd has one-to-one conversations (chat) only"
        )));
    }
    state
        .store()
        .delete_conversation(app.key, &user, &channel, delete_roam)
        .await?;
    let mut out = envelope(state, app, "delete", &format!("/{user}/user_channel"));
    out["path"] = json!("/users/user_channel");
    out["data"] = json!({"result": "ok"});
    Ok(Json(out).into_response())
}
