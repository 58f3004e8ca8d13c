//! A path's trailing slashes, dropped before the request is routed:
//! `…/messages/users/` is `…/messages/users`, so that a client that writes
//! one reaches the endpoint (and its own errors) rather than a 404.
//!
//! Written here rather than taken from tower-http (`NormalizePath`): the
//! web page lives at the directory URL `/web/`, which its relative links
//! need, and that layer trims every path, which turned the page's redirect
//! from `/web` to `/web/` into a loop.

use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Uri};

/// Where the web page lives, left as written.
const WEB: &str = "/web/";

/// Drops the trailing slashes of `req`'s path, if it has any and is not
/// the root or under [`WEB`].
pub(crate) fn trim(req: &mut Request) {
    let path = req.uri().path();
    if path.len() <= 1 || !path.ends_with('/') || path.starts_with(WEB) {
        return;
    }
    let kept = match path.trim_end_matches('/') {
        "" => "/",
        kept => kept,
    };
    let with_query = match req.uri().query() {
        Some(q) => format!("{kept}?{q}"),
        None => kept.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    // Both come from a valid URI minus some slashes, so they parse; if one
    // did not, the request goes on as it came.
    let Ok(pq) = PathAndQuery::try_from(with_query) else {
        return;
    };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(uri: &str) -> String {
        let mut req = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        trim(&mut req);
        req.uri().to_string()
    }

    #[test]
    fn trailing_slashes_go_and_the_rest_stays() {
        assert_eq!(trimmed("/a/messages/users/"), "/a/messages/users");
        assert_eq!(trimmed("/a/messages/users//"), "/a/messages/users");
        assert_eq!(
            trimmed("/a/users/u1/history/?peer=b&limit=2"),
            "/a/users/u1/history?peer=b&limit=2"
        );
        assert_eq!(trimmed("http://h:1/health/"), "http://h:1/health");
        assert_eq!(trimmed("/a/messages/users"), "/a/messages/users");
        assert_eq!(trimmed("/"), "/");
        assert_eq!(trimmed("//"), "/");
        assert_eq!(trimmed("/web/"), "/web/");
        assert_eq!(trimmed("/web/x/"), "/web/x/");
        assert_eq!(trimmed("/webhook/"), "/webhook");
    }
}
