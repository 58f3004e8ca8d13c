//! `POST …/messages/users`: one-to-one messages.

use crate::auth::{check_call_rate, require_app};
use crate::body::{read_json_body, ContentTypePolicy};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::routes::resource_uri;
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chatd_core::AppRecord;
use chatd_pipeline::{parse_send_request, Source};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub async fn send_to_users(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_app(&state, &app, &headers)?;
    check_call_rate(&state, &app, "messages/users")?;
    let raw = read_json_body(
        &headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Json,
    )
    .await?;
    let req = parse_send_request(&raw, &app.settings.limits)?;
    let accepted = state.pipeline.send(&app, req, Source::Rest).await?;

    let data: Map<String, Value> = accepted
        .into_iter()
        .map(|a| (a.to, Value::String(a.msg_id.to_string())))
        .collect();
    Ok(Json(json!({
        "path": "/messages/users",
        "uri": resource_uri(&state.public_url, &app, "/messages/users"),
        "timestamp": chatd_core::clock::now_ms(),
        "action": "post",
        "data": data,
        "duration": elapsed_ms(),
    }))
    .into_response())
}
