//! `POST …/users`, `GET` and `DELETE …/users/{username}`.

use crate::auth::{check_call_rate, require_app};
use crate::body::{read_json_body, ContentTypePolicy};
use crate::error::ApiError;
use crate::routes::{data_envelope, envelope, user_call, Allowed, Call, UserPath};
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatd_core::user::{normalize_username, UsernameProblem, MAX_NICKNAME_BYTES};
use chatd_core::{NewUser, UserRecord};
use chatd_storage::UserInsert;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Most users registered by one request.
pub const MAX_USERS_PER_REQUEST: usize = 60;

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

pub async fn create(call: Call, body: Body) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    // Registration answers every token failure with its own wording.
    require_app(state, app, &call.headers).map_err(|e| {
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
    check_call_rate(state, app, "users")?;
    let raw = read_json_body(
        &call.headers,
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
    let mut out = envelope(state, app, "post", "");
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

pub async fn get_one(call: Call, Path(path): Path<UserPath>) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let name = user_call(&call, &path.username, Allowed::AppOrSelf, "users")?;
    let user = state
        .store()
        .get_user(app.key, &name)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    let mut out = envelope(state, app, "get", &format!("/{name}"));
    out["entities"] = json!([user_entity(&user)]);
    out["count"] = json!(1);
    Ok(Json(out).into_response())
}

pub async fn delete_one(call: Call, Path(path): Path<UserPath>) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let name = user_call(&call, &path.username, Allowed::App, "users")?;
    let user = state
        .store()
        .delete_user(app.key, &name)
        .await?
        .ok_or_else(ApiError::user_not_found)?;
    let mut out = envelope(state, app, "delete", &format!("/{name}"));
    out["entities"] = json!([user_entity(&user)]);
    Ok(Json(out).into_response())
}

/// `GET …/users/{username}/offline_msg_count`: messages waiting in the
/// user's inbox.
pub async fn offline_msg_count(
    call: Call,
    Path(path): Path<UserPath>,
) -> Result<Response, ApiError> {
    let (state, app) = (&call.state, &call.app);
    let name = user_call(&call, &path.username, Allowed::App, "users")?;
    let count = state.store().offline_count(app.key, &name).await?;
    let out = data_envelope(
        state,
        app,
        "get",
        &format!("/{name}/offline_msg_count"),
        json!({ &name: count }),
    );
    Ok(Json(out).into_response())
}
