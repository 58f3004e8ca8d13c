//! Handlers, one module per resource.

pub mod chatfiles;
pub mod history;
pub mod messages;
pub mod msync;
pub mod presence;
pub mod sdk;
pub mod system;
pub mod token;
pub mod users;
pub mod ws;

use crate::auth::{check_call_rate, require_app, require_app_or_user};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::state::ApiState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use chatd_core::user::normalize_username;
use chatd_core::AppRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The `{username}` of user-scoped routes.
#[derive(Deserialize)]
pub struct UserPath {
    pub username: String,
}

/// Who may make a call about one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// The app's administrator only.
    App,
    /// The administrator, or that user's own user token.
    AppOrSelf,
}

/// What every app-scoped handler starts from: the server, the app its path
/// named (resolved by the `apps` middleware), and the request's headers
/// (for the token).
pub struct Call {
    pub state: Arc<ApiState>,
    pub app: Arc<AppRecord>,
    pub headers: HeaderMap,
}

impl FromRequestParts<Arc<ApiState>> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let app = parts
            .extensions
            .get::<Arc<AppRecord>>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route outside the app-scoped router"))?;
        Ok(Self {
            state: state.clone(),
            app,
            headers: parts.headers.clone(),
        })
    }
}

/// The start of a call: the token's privilege, then the endpoint family's
/// call rate.
pub(crate) fn admin_call(call: &Call, route: &'static str) -> Result<(), ApiError> {
    require_app(&call.state, &call.app, &call.headers)?;
    check_call_rate(&call.state, &call.app, route)
}

/// The start of a call about one user: privilege, call rate, and the
/// canonical username (a name that cannot exist answers 404).
pub(crate) fn user_call(
    call: &Call,
    username: &str,
    allowed: Allowed,
    route: &'static str,
) -> Result<String, ApiError> {
    let Call {
        state,
        app,
        headers,
    } = call;
    match allowed {
        Allowed::App => require_app(state, app, headers)?,
        Allowed::AppOrSelf => {
            require_app_or_user(state, app, headers, username)?;
        }
    }
    check_call_rate(state, app, route)?;
    canonical(username)
}

/// The canonical form of a username from a path.
pub(crate) fn canonical(username: &str) -> Result<String, ApiError> {
    normalize_username(username).map_err(|_| ApiError::user_not_found())
}

/// The envelope of answers about users.
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

/// The envelope with the `entities: []`, `data`, `count: 0` shape of the
/// service's status-like answers.
pub(crate) fn data_envelope(
    state: &ApiState,
    app: &AppRecord,
    action: &str,
    path_suffix: &str,
    data: Value,
) -> Value {
    let mut out = envelope(state, app, action, path_suffix);
    out["entities"] = json!([]);
    out["data"] = data;
    out["count"] = json!(0);
    out
}

/// The `uri` of an app-scoped resource, in the `{org}/{app}` form the
/// service's examples use.
pub(crate) fn resource_uri(base: &str, app: &AppRecord, path: &str) -> String {
    format!("{base}/{}/{}{path}", app.org_name, app.app_name)
}
