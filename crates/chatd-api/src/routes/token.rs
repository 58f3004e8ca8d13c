//! `POST …/token`: app tokens (`client_credentials`) and user tokens
//! (`password`).

use crate::auth::check_call_rate;
use crate::body::{read_json_body, ContentTypePolicy};
use crate::error::ApiError;
use crate::routes::users::user_entity;
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chatd_auth::issued::{self, IssuedKind};
use chatd_core::user::normalize_username;
use chatd_core::AppRecord;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn invalid_grant(status: StatusCode, description: &str) -> ApiError {
    ApiError::new(
        status,
        "invalid_grant",
        description,
        "InvalidGrantException",
    )
}

fn string_field(m: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_request_body()),
    }
}

/// `ttl` in seconds, as a number or a numeric string (the service's own
/// example sends a string); 0 = never expires.
fn ttl(m: &Map<String, Value>, default: u64) -> Result<u64, ApiError> {
    let bad = || ApiError::illegal_argument("ttl must be a non-negative integer number of seconds");
    match m.get("ttl") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

pub async fn issue(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_call_rate(&state, &app, "token")?;
    let raw = read_json_body(
        &headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Lenient,
    )
    .await?;
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&raw) else {
        return Err(ApiError::invalid_request_body());
    };
    let now = chatd_core::clock::now_secs();
    let ttl = ttl(&m, state.token_ttl_secs)?;
    match string_field(&m, "grant_type")?.as_deref() {
        Some("client_credentials") => {
            let id = string_field(&m, "client_id")?
                .ok_or_else(|| ApiError::illegal_argument("client_id must be provided."))?;
            let secret = string_field(&m, "client_secret")?
                .ok_or_else(|| ApiError::illegal_argument("client_secret must be provided"))?;
            if !chatd_auth::same_secret(&id, &app.client_id) {
                return Err(invalid_grant(
                    StatusCode::BAD_REQUEST,
                    "client_id does not match",
                ));
            }
            if !chatd_auth::same_secret(&secret, &app.client_secret) {
                return Err(invalid_grant(
                    StatusCode::BAD_REQUEST,
                    "client_secret does not match",
                ));
            }
            let token = issued::issue(
                &app.app_id,
                &app.app_certificate,
                &IssuedKind::App,
                now,
                ttl,
            );
            Ok(Json(json!({
                "access_token": token,
                "expires_in": ttl,
                "application": app.uuid,
            }))
            .into_response())
        }
        Some("password") => {
            let name = string_field(&m, "username")?
                .ok_or_else(|| ApiError::illegal_argument("username must be provided."))?;
            let password = string_field(&m, "password")?
                .ok_or_else(|| ApiError::illegal_argument("password must be provided."))?;
            let username = normalize_username(&name)
                .map_err(|_| invalid_grant(StatusCode::NOT_FOUND, "user not found"))?;
            let user = state
                .store()
                .get_user(app.key, &username)
                .await?
                .ok_or_else(|| invalid_grant(StatusCode::NOT_FOUND, "user not found"))?;
            if !user.activated {
                return Err(invalid_grant(StatusCode::BAD_REQUEST, "user not activated"));
            }
            let hash = user.password_hash.clone();
            let ok = tokio::task::spawn_blocking(move || {
                hash.is_some_and(|h| chatd_auth::password::verify(&password, &h))
            })
            .await
            .map_err(ApiError::internal)?;
            if !ok {
                return Err(invalid_grant(StatusCode::BAD_REQUEST, "invalid password"));
            }
            let token = issued::issue(
                &app.app_id,
                &app.app_certificate,
                &IssuedKind::User(user.username.clone()),
                now,
                ttl,
            );
            Ok(Json(json!({
                "access_token": token,
                "expires_in": ttl,
                "user": user_entity(&user),
            }))
            .into_response())
        }
        None => Err(ApiError::illegal_argument("grant_type must be provided.")),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type {other} is not supported; use client_credentials or password"),
            "UnsupportedGrantTypeException",
        )),
    }
}
