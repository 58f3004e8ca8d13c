//! `POST …/users`, `GET` and `DELETE …/users/{username}`.

use crate::auth::{check_call_rate, require_app, require_app_or_user};
use crate::body::{read_json_body, ContentTypePolicy};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::routes::resource_uri;
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chatd_core::user::{normalize_username, UsernameProblem, MAX_NICKNAME_BYTES};
use chatd_core::{AppRecord, NewUser, UserRecord};
use chatd_storage::UserInsert;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Most users registered by one request.
pub const MAX_USERS_PER_REQUEST: usize = 60;

#[derive(Deserialize)]
pub struct UserPath {
    username: String,
}

/// A user as the API shows it.
pub fn user_entity(u: &UserRecord) -> Value {
    let mut e = json!({
        "uuid": u.uuid,
        "type": "user",
        "created": u.created_ms,
        "modified": u.modified_ms,
        "username": u.username,
        "activated": u.activated,
    });
    if let Some(n) = &u.nickname {
        e["nickname"] = json!(n);
    }
    e
}

pub(crate) fn envelope(
    state: &ApiState,
    app: &AppRecord,
    action: &str,
    path_suffix: &str,
) -> Value {
    json!({
        "action": action,
        "path": "/users",
        "uri": resource_uri(&state.public_url, app, &format!("/users{path_suffix}")),
        "timestamp": chatd_core::clock::now_ms(),
        "duration": elapsed_ms(),
    })
}

struct Registration {
    username: String,
    password: Option<String>,
    nickname: Option<String>,
}

fn parse_registration(v: &Value) -> Result<Registration, ApiError> {
    let Value::Object(m) = v else {
        return Err(ApiError::invalid_request_body());
    };
    let name = match m.get("username") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(ApiError::invalid_request_body()),
    };
    let username = normalize_username(&name).map_err(|p| match p {
        UsernameProblem::TooLong => ApiError::illegal_argument("USERNAME_TOO_LONG"),
        UsernameProblem::Empty | UsernameProblem::IllegalCharacter => {
            ApiError::illegal_argument(format!("username {name} is not legal"))
        }
    })?;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid_request_body()),
        }
    };
    let password = text("password")?;
    let nickname = text("nickname")?;
    if nickname
        .as_ref()
        .is_some_and(|n| n.len() > MAX_NICKNAME_BYTES)
    {
        return Err(ApiError::illegal_argument("NICKNAME_TOO_LONG"));
    }
    Ok(Registration {
        username,
        password,
        nickname,
    })
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Registration answers every token failure with its own wording.
    require_app(&state, &app, &headers).map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "registration is not open, please contact the app admin",
                "UnauthorizedException",
            )
        } else {
            e
        }
    })?;
    check_call_rate(&state, &app, "users")?;
    let raw = read_json_body(
        &headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Lenient,
    )
    .await?;
    let value: Value =
        serde_json::from_slice(&raw).map_err(|_| ApiError::invalid_request_body())?;
    let (batch, items) = match value {
        Value::Array(a) => (true, a),
        v @ Value::Object(_) => (false, vec![v]),
        _ => return Err(ApiError::invalid_request_body()),
    };
    if items.is_empty() {
        return Err(ApiError::invalid_request_body());
    }
    if items.len() > MAX_USERS_PER_REQUEST {
        return Err(ApiError::illegal_argument(format!(
            "Request body array size[{}] had almost reached or been greater than the upper range value[{MAX_USERS_PER_REQUEST}]",
            items.len()
        )));
    }
    let regs = items
        .iter()
        .map(parse_registration)
        .collect::<Result<Vec<_>, _>>()?;

    // The same name twice in one request: same password is a plain
    // duplicate, a different one is a conflict of the whole request.
    let mut seen: HashMap<&str, &Option<String>> = HashMap::new();
    for r in &regs {
        if let Some(prev) = seen.insert(&r.username, &r.password) {
            if prev != &r.password {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "duplicate_unique_property_exists",
                    format!("the same user {} has a different password", r.username),
                    "DuplicateUniquePropertyExistsException",
                ));
            }
        }
    }

    let new_users: Vec<NewUser> = tokio::task::spawn_blocking(move || {
        regs.into_iter()
            .map(|r| NewUser {
                username: r.username,
                password_hash: r.password.as_deref().map(chatd_auth::password::hash),
                nickname: r.nickname,
            })
            .collect()
    })
    .await
    .map_err(ApiError::internal)?;
    let results = state.store().create_users(app.key, new_users).await?;

    let mut entities = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            UserInsert::Created(u) => entities.push(user_entity(&u)),
            UserInsert::Exists(name) => failed.push(name),
        }
    }
    if !batch {
        if let Some(name) = failed.first() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "duplicate_unique_property_exists",
                format!(
                    "Application {} Entity user requires that property named username be unique, value of {name} exists",
                    app.uuid
                ),
                "DuplicateUniquePropertyExistsException",
            ));
        }
    }
    let mut out = envelope(&state, &app, "post", "");
    out["entities"] = Value::Array(entities);
    if batch {
        out["data"] = failed
            .into_iter()
            .map(|name| {
                json!({
                    "username": name,
                    "registerUserFailReason": format!("the {name} already exists"),
                })
            })
            .collect();
    }
    Ok(Json(out).into_response())
}

pub(crate) fn canonical(username: &str) -> Result<String, ApiError> {
    normalize_username(username).map_err(|_| ApiError::user_not_found())
}

pub async fn get_one(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    Path(path): Path<UserPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_app_or_user(&state, &app, &headers, &path.username)?;
    check_call_rate(&state, &app, "users")?;
    let name = canonical(&path.username)?;
    let user = state
        .store()
        .get_user(app.key, &name)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    let mut out = envelope(&state, &app, "get", &format!("/{name}"));
    out["entities"] = json!([user_entity(&user)]);
    out["count"] = json!(1);
    Ok(Json(out).into_response())
}

pub async fn delete_one(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    Path(path): Path<UserPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_app(&state, &app, &headers)?;
    check_call_rate(&state, &app, "users")?;
    let name = canonical(&path.username)?;
    let user = state
        .store()
        .delete_user(app.key, &name)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    let mut out = envelope(&state, &app, "delete", &format!("/{name}"));
    out["entities"] = json!([user_entity(&user)]);
    Ok(Json(out).into_response())
}

/// `GET …/users/{username}/offline_msg_count`: messages waiting in the
/// user's inbox.
pub async fn offline_msg_count(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    Path(path): Path<UserPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_app(&state, &app, &headers)?;
    check_call_rate(&state, &app, "users")?;
    let name = canonical(&path.username)?;
    let count = state.store().offline_count(app.key, &name).await?;
    let mut out = envelope(&state, &app, "get", &format!("/{name}/offline_msg_count"));
    out["entities"] = json!([]);
    out["data"] = json!({ name: count });
    out["count"] = json!(0);
    Ok(Json(out).into_response())
}
