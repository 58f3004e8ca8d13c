//! Per-request observation: the request clock, metrics by route and status,
//! and a trace span.

use crate::envelope;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

pub async fn observe(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let span = tracing::debug_span!("request", %method, path = %req.uri().path());
    let started = Instant::now();
    let response = envelope::timed(next.run(req)).instrument(span).await;
    record(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Counts one answered request and its duration.
pub fn record(route: String, method: String, status: u16, seconds: f64) {
    metrics::counter!("chatd_http_requests_total", "route" => route.clone(), "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("chatd_http_request_duration_seconds", "route" => route).record(seconds);
}
