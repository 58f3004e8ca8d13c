//! Reading request bodies: content type, size limit, time limit, then bytes.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

/// How strictly a route checks `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentTypePolicy {
    /// Must be `application/json`.
    Json,
    /// `application/json`, none, or `application/x-www-form-urlencoded`
    /// (what `curl -d` sends, as some of the service's own examples do);
    /// the body is parsed as JSON in every case.
    Lenient,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_entity_too_large",
        format!("Request body is larger than {limit} bytes"),
        "RequestEntityTooLargeException",
    )
}

/// The error a request body gives when its client sent nothing for too
/// long in the middle of it (set at the connection, `http_idle_secs`).
#[derive(Debug, thiserror::Error)]
#[error("no part of the request body arrived for {} s", .0.as_secs())]
pub struct BodyTimeout(pub std::time::Duration);

/// 408 when a `BodyTimeout` is somewhere in the error's chain of sources:
/// the body stopped arriving.
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut at = Some(e);
    while let Some(e) = at {
        if let Some(t) = e.downcast_ref::<BodyTimeout>() {
            return Some(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("Request body not received in full: {t}"),
                "RequestTimeoutException",
            ));
        }
        at = e.source();
    }
    None
}

fn is_json(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Reads a body of at most `limit` bytes. A declared length over the limit
/// is refused before anything is read; an undeclared one as soon as the
/// limit is passed.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    policy: ContentTypePolicy,
) -> Result<Bytes, ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepted = match policy {
        ContentTypePolicy::Json => is_json(ct),
        ContentTypePolicy::Lenient => {
            ct.is_empty()
                || is_json(ct)
                || ct.split(';').next().is_some_and(|e| {
                    e.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
        }
    };
    if !accepted {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
            "UnsupportedMediaTypeException",
        ));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| timed_out(&e).unwrap_or_else(|| too_large(limit)))
}
