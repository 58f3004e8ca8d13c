//! The web chat page (docs/web.md): a handful of static files, compiled
//! into the binary, served at `/web/`, with `/` redirecting there.
//!
//! The page is plain JavaScript (ES modules, no build step). It talks to
//! chatd only through the public APIs (token, WebSocket, history,
//! conversations, chat files), so this crate knows nothing of the server
//! beyond the identity of the app the page signs in to, served as
//! `/web/config.json`.
//!
//! Every answer carries a strict `Content-Security-Policy`: scripts and
//! styles from this origin only (no inline code, no `eval`), connections to
//! this origin only (plus its `ws:`/`wss:` form), no framing, and Trusted
//! Types enforced so that no HTML can be injected through `innerHTML`.

use axum::body::Bytes;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

/// The app the page signs in to (the server's default app), as served at
/// `/web/config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultAppInfo {
    pub org_name: String,
    pub app_name: String,
    pub app_id: String,
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: &'static str,
}

/// FNV-1a, at compile time: the `ETag` of an embedded file.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// `"` + 16 hex digits + `"`, at compile time.
const fn etag_bytes(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../assets/", $name));
        const TAG: [u8; 18] = etag_bytes(BODY);
        Asset {
            name: $name,
            content_type: $content_type,
            body: BODY,
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => panic!("etags are ASCII"),
            },
        }
    }};
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("connection.js", "text/javascript; charset=utf-8"),
    asset!("render.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

const INDEX: &Asset = &ASSETS[0];

/// Whether `host` (a `Host` header) is a plain `name[:port]` or
/// `[v6]:port`, safe to repeat inside a CSP source expression.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// The page's policy. `'self'` covers `ws:`/`wss:` of this origin in CSP
/// level 3 browsers; the explicit `ws://host wss://host` covers the others.
fn content_security_policy(headers: &HeaderMap) -> HeaderValue {
    let mut connect = String::from("'self'");
    if let Some(host) = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| plain_host(h))
    {
        connect.push_str(&format!(" ws://{host} wss://{host}"));
    }
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
         media-src 'self' blob:; connect-src {connect}; form-action 'none'; base-uri 'none'; \
         frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
         media-src 'self' blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
         frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'",
    ))
}

/// Headers every answer of this router carries.
fn security_headers(request: &HeaderMap, out: &mut HeaderMap) {
    out.insert(CONTENT_SECURITY_POLICY, content_security_policy(request));
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    out.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    out.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
}

/// An embedded file; `304` when the client's copy is current. Files are
/// revalidated on every use (`no-cache`), so a new binary's page is picked
/// up at once, and an unchanged one costs a 304.
fn serve_asset(asset: &Asset, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    security_headers(request, &mut headers);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    let current = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == asset.etag || t == "*")
        });
    if current {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    (StatusCode::OK, headers, asset.body).into_response()
}

fn redirect_to_page(request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    security_headers(request, &mut headers);
    headers.insert(LOCATION, HeaderValue::from_static("/web/"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::TEMPORARY_REDIRECT, headers).into_response()
}

/// The page's routes: `/` and `/web` redirect to `/web/`, which serves the
/// page; `/web/{file}` its files; `/web/config.json` the default app.
pub fn router<S: Clone + Send + Sync + 'static>(app: DefaultAppInfo) -> Router<S> {
    let config = Bytes::from(serde_json::to_vec(&app).unwrap_or_default());
    let mut r = Router::new()
        .route("/", get(|h: HeaderMap| async move { redirect_to_page(&h) }))
        .route(
            "/web",
            get(|h: HeaderMap| async move { redirect_to_page(&h) }),
        )
        .route(
            "/web/",
            get(|h: HeaderMap| async move { serve_asset(INDEX, &h) }),
        )
        .route(
            "/web/config.json",
            get(move |h: HeaderMap| {
                let config = config.clone();
                async move {
                    let mut headers = HeaderMap::new();
                    security_headers(&h, &mut headers);
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    (StatusCode::OK, headers, config).into_response()
                }
            }),
        );
    for asset in ASSETS {
        r = r.route(
            &format!("/web/{}", asset.name),
            get(move |h: HeaderMap| async move { serve_asset(asset, &h) }),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        router(DefaultAppInfo {
            org_name: "acme".into(),
            app_name: "chat".into(),
            app_id: "0123456789abcdef0123456789abcdef".into(),
        })
    }

    async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn root_redirects_to_the_page() {
        for path in ["/", "/web"] {
            let r = get(path, &[]).await;
            assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
            assert_eq!(header(&r, "location"), "/web/");
        }
    }

    #[tokio::test]
    async fn files_have_types_caching_and_a_strict_policy() {
        let r = get("/web/", &[("host", "chat.example.com:8080")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&r, "cache-control"), "no-cache");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            csp.contains(
                "connect-src 'self' ws://chat.example.com:8080 wss://chat.example.com:8080;"
            ),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("require-trusted-types-for 'script'"), "{csp}");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(std::str::from_utf8(&body).unwrap().contains("app.js"));

        for (path, ct) in [
            ("/web/app.js", "text/javascript; charset=utf-8"),
            ("/web/connection.js", "text/javascript; charset=utf-8"),
            ("/web/app.css", "text/css; charset=utf-8"),
            ("/web/icon.svg", "image/svg+xml"),
            ("/web/index.html", "text/html; charset=utf-8"),
        ] {
            let r = get(path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, "content-type"), ct, "{path}");
        }
    }

    #[tokio::test]
    async fn a_current_copy_gets_304() {
        let r = get("/web/app.js", &[]).await;
        let etag = header(&r, "etag").to_string();
        assert_eq!(etag.len(), 18);
        let r = get("/web/app.js", &[("if-none-match", &etag)]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = get("/web/app.js", &[("if-none-match", "\"other\"")]).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn hosts_that_could_break_the_policy_are_left_out() {
        let r = get("/web/", &[("host", "evil.com; script-src *")]).await;
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("evil"), "{csp}");
    }

    #[tokio::test]
    async fn config_names_the_default_app() {
        let r = get("/web/config.json", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), "application/json");
        assert_eq!(header(&r, "cache-control"), "no-store");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["org_name"], "acme");
        assert_eq!(v["app_name"], "chat");
        assert_eq!(v["app_id"], "0123456789abcdef0123456789abcdef");
    }

    #[tokio::test]
    async fn unknown_files_are_not_served() {
        let r = get("/web/secret.txt", &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
