//! `POST …/messages/users`: one-to-one messages.

use crate::auth::{check_call_rate, require_app};
use crate::body::{read_json_body, ContentTypePolicy};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::routes::resource_uri;
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chatd_core::AppRecord;
use chatd_pipeline::{parse_send_request, Accepted, Source};
use std::io::Write;
use std::sync::Arc;

/// The route's handler; sends usually arrive by the direct path
/// (`direct.rs`), which calls [`send`] itself.
pub async fn send_to_users(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    send(&state, &app, &headers, body).await
}

pub(crate) async fn send(
    state: &ApiState,
    app: &AppRecord,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_app(state, app, headers)?;
    check_call_rate(state, app, "messages/users")?;
    let raw = read_json_body(
        headers,
        body,
        state.max_request_bytes,
        ContentTypePolicy::Json,
    )
    .await?;
    let req = parse_send_request(&raw, &app.settings.limits)?;
    let accepted = state.pipeline.send(app, req, Source::Rest).await?;

    let body = answer(
        accepted,
        &resource_uri(&state.public_url, app, "/messages/users"),
        chatd_core::clock::now_ms(),
        elapsed_ms(),
    );
    let mut resp = Body::from(body).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// The answer's JSON, written straight into bytes: the same bytes as
/// serialising `{"path", "uri", "timestamp", "action", "data", "duration"}`
/// through a `serde_json::Value` (keys in sorted order, `data` sorted by
/// recipient), without building the value first.
fn answer(mut accepted: Vec<Accepted>, uri: &str, timestamp: i64, duration: u64) -> Vec<u8> {
    accepted.sort_by(|a, b| a.to.cmp(&b.to));
    let mut out = Vec::with_capacity(128 + uri.len() + accepted.len() * 48);
    out.extend_from_slice(br#"{"action":"post","data":{"#);
    let mut first = true;
    for (i, a) in accepted.iter().enumerate() {
        // A map keeps the last value of a repeated key.
        if accepted.get(i + 1).is_some_and(|next| next.to == a.to) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        json_string(&mut out, &a.to);
        let _ = write!(out, r#":"{}""#, a.msg_id);
    }
    let _ = write!(
        out,
        r#"}},"duration":{duration},"path":"/messages/users","timestamp":{timestamp},"uri":"#
    );
    json_string(&mut out, uri);
    out.push(b'}');
    out
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    #[test]
    fn the_answer_is_what_serde_json_writes() {
        let accepted = vec![
            Accepted {
                to: "user3".into(),
                msg_id: 3,
            },
            Accepted {
                to: "User2".into(),
                msg_id: 2,
            },
            Accepted {
                to: "a\"b".into(),
                msg_id: 9,
            },
        ];
        let uri = "http://127.0.0.1:8080/acme/chat/messages/users";
        let data: Map<String, Value> = accepted
            .iter()
            .map(|a| (a.to.clone(), Value::String(a.msg_id.to_string())))
            .collect();
        let want = serde_json::to_vec(&json!({
            "path": "/messages/users",
            "uri": uri,
            "timestamp": 1795703343780i64,
            "action": "post",
            "data": data,
            "duration": 2u64,
        }))
        .unwrap();
        let got = answer(accepted, uri, 1795703343780, 2);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
