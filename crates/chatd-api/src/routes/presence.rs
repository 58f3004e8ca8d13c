//! Presence and connections: status, online devices, force-disconnect, and
//! the delivery state of offline messages.

use crate::body::{read_json_body, ContentTypePolicy};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::routes::{
    admin_call, data_envelope, envelope, resource_uri, user_call, Allowed, Call, UserPath,
};
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatd_core::user::normalize_username;
use chatd_core::AppRecord;
use chatd_delivery::InboxKey;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most users in one batch status query.
pub const MAX_STATUS_BATCH: usize = 100;

#[derive(Deserialize)]
pub struct MessagePath {
    username: String,
    msg_id: String,
}

#[derive(Deserialize)]
pub struct DevicePath {
    username: String,
    resource: String,
}

fn key(app: &AppRecord, user: &str) -> InboxKey {
    InboxKey {
        app: app.key,
        user: user.to_string(),
    }
}

fn online_word(state: &ApiState, app: &AppRecord, user: &str) -> &'static str {
    if state.pipeline.delivery().is_online(&key(app, user)) {
        "online"
    } else {
        "offline"
    }
}

/// `GET …/users/{username}/status`
pub async fn status(call: Call, Path(path): Path<UserPath>) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    admin_call(&call, "users")?;
    let name = path.username.to_ascii_lowercase();
    let out = data_envelope(
        state,
        app,
        "get",
        &format!("/{name}/status"),
        json!({ &path.username: online_word(state, app, &name) }),
    );
    Ok(Json(out).into_response())
}

/// `POST …/users/batch/status` with `{"usernames": [...]}` (at most 100).
pub async fn batch_status(call: Call, body: Body) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    admin_call(&call, "users")?;
    let raw = read_json_body(
        &call.headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Lenient,
    )
    .await?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| ApiError::invalid_request_body())?;
    let Some(names) = v["usernames"].as_array() else {
        return Err(ApiError::invalid_request_body());
    };
    if names.len() > MAX_STATUS_BATCH {
        return Err(ApiError::illegal_argument(format!(
            "request body exceeds maximum limit, maximum limit is {MAX_STATUS_BATCH}"
        )));
    }
    let mut data = Vec::with_capacity(names.len());
    for n in names {
        let Some(n) = n.as_str() else {
            return Err(ApiError::invalid_request_body());
        };
        data.push(json!({ n: online_word(state, app, &n.to_ascii_lowercase()) }));
    }
    Ok(Json(json!({
        "action": "get batch user status",
        "data": data,
        "timestamp": chatd_core::clock::now_ms(),
        "duration": elapsed_ms(),
    }))
    .into_response())
}

/// `GET …/users/{username}/resources`: the user's connected devices.
pub async fn resources(call: Call, Path(path): Path<UserPath>) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let name = user_call(&call, &path.username, Allowed::App, "users")?;
    let devices = state
        .pipeline
        .delivery()
        .connections()
        .devices(&key(app, &name));
    let data: Vec<Value> = devices
        .into_iter()
        .map(|d| {
            json!({
                "res": d.device,
                "device_uuid": format!("{}-{}", d.protocol, d.conn_id),
                "device_name": d.device,
                "protocol": d.protocol,
                "connected_at": d.connected_at_ms,
            })
        })
        .collect();
    let mut out = envelope(state, app, "get", &format!("/{name}/resources"));
    out["path"] = json!(format!("/users/{name}/resources"));
    out["entities"] = json!([]);
    out["data"] = Value::Array(data);
    Ok(Json(out).into_response())
}

/// `GET …/users/{username}/disconnect`: every device of the user.
pub async fn disconnect_user(call: Call, Path(path): Path<UserPath>) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let name = user_call(&call, &path.username, Allowed::App, "users")?;
    let kicked = state
        .pipeline
        .delivery()
        .connections()
        .disconnect_user(&key(app, &name));
    let out = data_envelope(
        state,
        app,
        "get",
        &format!("/{name}/disconnect"),
        json!({"result": kicked > 0}),
    );
    Ok(Json(out).into_response())
}

/// `DELETE …/users/{username}/disconnect/{resource}`: one device.
pub async fn disconnect_device(
    call: Call,
    Path(path): Path<DevicePath>,
) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let name = user_call(&call, &path.username, Allowed::App, "users")?;
    let kicked = state
        .pipeline
        .delivery()
        .connections()
        .disconnect_device(&key(app, &name), &path.resource);
    let mut out = envelope(
        state,
        app,
        "delete",
        &format!("/{name}/disconnect/{}", path.resource),
    );
    out["entities"] = json!([]);
    out["data"] = json!({"result": kicked});
    Ok(Json(out).into_response())
}

/// `GET …/users/{username}/offline_msg_status/{msg_id}`: `delivered` once a
/// device of the user acknowledged the message, else `undelivered`.
pub async fn offline_msg_status(
    call: Call,
    Path(path): Path<MessagePath>,
) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    admin_call(&call, "users")?;
    let name = normalize_username(&path.username).map_err(|_| ApiError::user_not_found())?;
    let msg_id: u64 = path.msg_id.parse().map_err(|_| {
        ApiError::illegal_argument(format!("msg_id {} is not a message id", path.msg_id))
    })?;
    let entry = state.store().find_entry(app.key, msg_id).await?;
    let delivered = match entry {
        Some(e) if e.owner == name => state.store().user_cursor(app.key, &name).await? >= e.seq,
        // Not a message to this user (or never stored: ROUTE_ONLINE to an
        // offline user): nothing is waiting.
        _ => false,
    };
    let mut out = envelope(
        state,
        app,
        "get",
        &format!("/{name}/offline_msg_status/{msg_id}"),
    );
    out["uri"] = json!(resource_uri(
        &state.public_url,
        app,
        &format!("/users/{name}/offline_msg_status/{msg_id}")
    ));
    out["entities"] = json!([]);
    out["data"] = json!({ path.msg_id: if delivered { "delivered" } else { "undelivered" } });
    out["count"] = json!(0);
    Ok(Json(out).into_response())
}
