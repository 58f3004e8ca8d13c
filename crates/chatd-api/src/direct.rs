//! The direct path of `POST …/messages/users`, the route app servers call
//! for every message: the request goes straight to its handler instead of
//! through the router and its layers (CORS, observation, app resolution),
//! whose generic machinery (boxed services cloned per request, nested
//! routers, path parameters in a map, metric labels built as strings) took
//! the server from ≈ 20 to ≈ 30 µs of CPU per send (docs/benchmarks.md). It does what
//! those layers do, for this one route, with the same results: every other
//! request, and a send whose path needs decoding, goes through the router.

use crate::error::ApiError;
use crate::state::ApiState;
use crate::{apps, envelope, observe, routes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::future::{BoxFuture, Either};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::Service;
use tracing::Instrument;

/// The API: [`crate::router`], with sends taken straight to their handler.
#[derive(Clone)]
pub struct Api {
    router: Router,
    state: Arc<ApiState>,
}

impl Api {
    pub(crate) fn new(router: Router, state: Arc<ApiState>) -> Self {
        Self { router, state }
    }
}

/// Which app a send's path names.
enum Target {
    ById(String),
    ByName(String, String),
}

impl Target {
    /// The route's pattern, as the router's metrics name it.
    fn route(&self) -> &'static str {
        match self {
            Target::ById(_) => ROUTE_BY_ID,
            Target::ByName(..) => ROUTE_BY_NAME,
        }
    }
}

const ROUTE_BY_ID: &str = "/app-id/{app_id}/messages/users";
const ROUTE_BY_NAME: &str = "/{org_name}/{app_name}/messages/users";

/// The app of a `POST /app-id/{app_id}/messages/users` or `POST
/// /{org_name}/{app_name}/messages/users`; none for anything else, or for a
/// path with percent-escapes (the router decodes those).
fn send_target(method: &Method, path: &str) -> Option<Target> {
    if method != Method::POST || path.contains('%') {
        return None;
    }
    let mut parts = path.strip_prefix('/')?.split('/');
    let (a, b) = (parts.next()?, parts.next()?);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if (parts.next(), parts.next(), parts.next()) != (Some("messages"), Some("users"), None) {
        return None;
    }
    Some(if a == "app-id" {
        Target::ById(b.to_string())
    } else {
        Target::ByName(a.to_string(), b.to_string())
    })
}

impl Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        BoxFuture<'static, Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <Router as Service<Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        crate::trailing_slash::trim(&mut req);
        match send_target(req.method(), req.uri().path()) {
            Some(target) => {
                let state = self.state.clone();
                Either::Right(Box::pin(async move { Ok(send(state, target, req).await) }))
            }
            None => Either::Left(self.router.call(req)),
        }
    }
}

/// What the router's layers and the handler would do for a send.
async fn send(state: Arc<ApiState>, target: Target, req: Request) -> Response {
    let started = Instant::now();
    let route = target.route();
    let span = tracing::debug_span!("request", method = "POST", path = %req.uri().path());
    let handle = envelope::timed(async {
        let app = match &target {
            Target::ById(id) => state.apps.by_app_id(id).await,
            Target::ByName(org, name) => state.apps.by_name(org, name).await,
        };
        let Some(app) = app else {
            let name = match &target {
                Target::ById(id) => id.clone(),
                Target::ByName(org, name) => format!("{org}/{name}"),
            };
            return apps::app_not_found(req.uri().path(), &name);
        };
        let (parts, body) = req.into_parts();
        routes::messages::send(&state, &app, &parts.headers, body)
            .await
            .unwrap_or_else(ApiError::into_response)
    });
    // Without debug logging the span is disabled: not wrapping the future
    // in it saves its polling, visible in the send profile.
    let mut response = if span.is_disabled() {
        handle.await
    } else {
        handle.instrument(span).await
    };
    add_cors_headers(response.headers_mut());
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if status == 200 {
        let m = ok_metrics(route);
        m.0.increment(1);
        m.1.record(elapsed);
    } else {
        observe::record(route.to_string(), "POST".to_string(), status, elapsed);
    }
    response
}

/// The handles of a successful send's metrics, per route: the same series
/// as [`observe::record`] feeds, without building their labels each time.
fn ok_metrics(route: &'static str) -> &'static (metrics::Counter, metrics::Histogram) {
    static BY_ID: OnceLock<(metrics::Counter, metrics::Histogram)> = OnceLock::new();
    static BY_NAME: OnceLock<(metrics::Counter, metrics::Histogram)> = OnceLock::new();
    let cell = if route == ROUTE_BY_ID {
        &BY_ID
    } else {
        &BY_NAME
    };
    cell.get_or_init(|| {
        (
            metrics::counter!("chatd_http_requests_total", "route" => route, "method" => "POST", "status" => "200"),
            metrics::histogram!("chatd_http_request_duration_seconds", "route" => route),
        )
    })
}

/// What the CORS layer ([`crate::cors`]) adds to the answer of a request
/// that is not a preflight: any origin, and the headers the answer varies
/// with.
fn add_cors_headers(headers: &mut HeaderMap) {
    headers.insert(
        axum::http::header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    headers.insert(
        axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(method: Method, path: &str) -> Option<(&'static str, Vec<String>)> {
        send_target(&method, path).map(|t| {
            let route = t.route();
            let names = match t {
                Target::ById(id) => vec![id],
                Target::ByName(o, a) => vec![o, a],
            };
            (route, names)
        })
    }

    #[test]
    fn only_sends_take_the_direct_path() {
        assert_eq!(
            target(Method::POST, "/app-id/abc/messages/users"),
            Some((ROUTE_BY_ID, vec!["abc".to_string()]))
        );
        assert_eq!(
            target(Method::POST, "/acme/chat/messages/users"),
            Some((ROUTE_BY_NAME, vec!["acme".to_string(), "chat".to_string()]))
        );
        for (method, path) in [
            (Method::GET, "/app-id/abc/messages/users"),
            (Method::OPTIONS, "/acme/chat/messages/users"),
            (Method::POST, "/acme/chat/messages/users/"),
            (Method::POST, "/acme/chat/messages/user"),
            (Method::POST, "/acme/chat/messages"),
            (Method::POST, "/acme//messages/users"),
            (Method::POST, "//chat/messages/users"),
            (Method::POST, "/acme/chat/x/messages/users"),
            (Method::POST, "/ac%6De/chat/messages/users"),
            (Method::POST, "acme/chat/messages/users"),
        ] {
            assert!(target(method.clone(), path).is_none(), "{method} {path}");
        }
    }
}
