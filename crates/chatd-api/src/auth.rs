//! Bearer tokens on requests.

use crate::error::ApiError;
use crate::state::ApiState;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use chatd_auth::{AppKeys, AuthError, Principal};
use chatd_core::AppRecord;

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::Corrupt)?.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Corrupt);
    }
    let token = token.trim();
    Ok((!token.is_empty()).then_some(token))
}

/// Who the request's token speaks for in `app`.
pub fn principal(
    state: &ApiState,
    app: &AppRecord,
    headers: &HeaderMap,
) -> Result<Principal, AuthError> {
    let token = bearer(headers)?.ok_or(AuthError::Missing)?;
    bearer_principal(state, app, token)
}

/// Who `token` speaks for in `app`.
pub fn bearer_principal(
    state: &ApiState,
    app: &AppRecord,
    token: &str,
) -> Result<Principal, AuthError> {
    let keys = AppKeys {
        app_id: &app.app_id,
        app_certificate: &app.app_certificate,
    };
    state
        .auth
        .verify(token, keys, chatd_core::clock::now_secs())
        .map(|v| v.principal)
}

/// Requires the app's administrator.
pub fn require_app(state: &ApiState, app: &AppRecord, headers: &HeaderMap) -> Result<(), ApiError> {
    match principal(state, app, headers).map_err(ApiError::from_auth)? {
        Principal::App => Ok(()),
        Principal::User(_) => Err(ApiError::app_token_required()),
    }
}

/// Requires the app's administrator or the user `username` itself.
pub fn require_app_or_user(
    state: &ApiState,
    app: &AppRecord,
    headers: &HeaderMap,
    username: &str,
) -> Result<Principal, ApiError> {
    let p = principal(state, app, headers).map_err(ApiError::from_auth)?;
    match &p {
        Principal::App => Ok(p),
        Principal::User(u) if u.eq_ignore_ascii_case(username) => Ok(p),
        Principal::User(_) => Err(ApiError::app_token_required()),
    }
}

/// Applies the app's calls-per-second limit to one endpoint family.
pub fn check_call_rate(
    state: &ApiState,
    app: &AppRecord,
    route: &'static str,
) -> Result<(), ApiError> {
    if state
        .pipeline
        .rate_limits()
        .check_call(app.key, &app.settings.limits, route)
    {
        Ok(())
    } else {
        metrics::counter!("chatd_http_rate_limited_total", "route" => route).increment(1);
        Err(ApiError::rate_limited())
    }
}

/// Whether `d` is acceptable as a device (resource) id.
pub fn is_device_id(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 64
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}
