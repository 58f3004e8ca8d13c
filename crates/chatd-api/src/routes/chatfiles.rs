//! `POST …/chatfiles` (upload) and `GET …/chatfiles/{uuid}` (download):
//! the files image, voice, video and file messages point to. Behaviour and
//! decisions: docs/files.md.
//!
//! Both directions stream: an upload goes from the socket through the
//! multipart parser to the [`chatd_files::FileStore`] chunk by chunk, and a
//! download from the store to the socket, so memory does not grow with the
//! file.

use crate::auth::{check_call_rate, principal};
use crate::envelope::elapsed_ms;
use crate::error::ApiError;
use crate::routes::resource_uri;
use crate::state::ApiState;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chatd_core::AppRecord;
use chatd_files::{canonical_uuid, FileError, FileWriter, Lookup, NewFile, Variant};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a multipart body may carry beyond the file itself (boundaries, part
/// headers, small extra fields). A declared `Content-Length` above the
/// file limit plus this is refused before anything is read; a body that
/// streams past it is cut off.
pub const MULTIPART_ALLOWANCE: u64 = 64 * 1024;

/// Longest stored file name, in bytes.
const MAX_FILENAME_BYTES: usize = 255;

fn file_required() -> ApiError {
    ApiError::illegal_argument("file must be provided.")
}

fn file_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file exceeding maximum limit",
        "the file size exceeds the maximum limit.",
        "FileSizeExceedsLimitException",
    )
}

fn file_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "entity_not_found",
        "file may not exists",
        "EntityNotFoundException",
    )
}

fn file_expired(uuid: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "file_expired",
        format!("file {uuid} is expired"),
        "FileExpiredException",
    )
}

fn secret_refused(description: String) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_op",
        description,
        "ForbiddenOpException",
    )
}

fn store_error(e: FileError, uuid: &str) -> ApiError {
    match e {
        // Swept between the lookup and the read: it had just expired.
        FileError::Gone => file_expired(uuid),
        other => ApiError::internal(other),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn is_true(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

/// `thumbnail-width` / `thumbnail-height`: absent, or a positive integer.
fn thumbnail_side(headers: &HeaderMap, name: &str) -> Result<Option<u32>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::illegal_argument(format!("{name} must be a positive integer"))
            }),
    }
}

/// The last path component of an uploaded file's name (browsers on Windows
/// may send a whole path), without control characters, at most
/// [`MAX_FILENAME_BYTES`] long.
fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::new();
    for c in base.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_FILENAME_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// The request body as a stream that fails once more than `cap` bytes
/// came, with the count kept in `received`.
fn capped_body(
    body: Body,
    cap: u64,
    received: Arc<AtomicU64>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        let n = chunk.len() as u64;
        if received.fetch_add(n, Ordering::Relaxed) + n > cap {
            return Err(std::io::Error::other("request body over the file limit"));
        }
        Ok(chunk)
    })
}

/// A multipart failure: the body passed its cap, stopped arriving, or was
/// cut off or malformed.
fn multipart_error(e: multer::Error, received: &AtomicU64, cap: u64) -> ApiError {
    if received.load(Ordering::Relaxed) > cap {
        return file_too_large();
    }
    if let Some(timeout) = crate::body::timed_out(&e) {
        return timeout;
    }
    tracing::debug!(error = %e, "unreadable multipart upload");
    ApiError::invalid_request_body()
}

/// `POST …/chatfiles`: one multipart field `file`, streamed to the store.
pub async fn upload(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The app's administrator or any of its users: the SDKs upload with
    // the user's own token.
    principal(&state, &app, &headers).map_err(ApiError::from_auth)?;
    check_call_rate(&state, &app, "chatfiles")?;
    let restricted = header(&headers, "restrict-access").is_some_and(is_true);
    let thumbnail_width = thumbnail_side(&headers, "thumbnail-width")?;
    let thumbnail_height = thumbnail_side(&headers, "thumbnail-height")?;
    let boundary = header(&headers, CONTENT_TYPE.as_str())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(file_required)?;

    let limit = app.settings.limits.max_file_bytes;
    let cap = limit.saturating_add(MULTIPART_ALLOWANCE);
    let declared = header(&headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(file_too_large());
    }
    let received = Arc::new(AtomicU64::new(0));
    let mut multipart = multer::Multipart::new(capped_body(body, cap, received.clone()), boundary);

    // The first `file` field; other fields are skipped (and still count
    // against the cap).
    let mut upload: Option<(Box<dyn FileWriter>, String, Option<String>)> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, &received, cap)),
        };
        if upload.is_some() || field.name() != Some("file") {
            continue;
        }
        let raw_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let mut writer = state
            .files
            .begin(app.key)
            .await
            .map_err(ApiError::internal)?;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    // Dropping the writer on the way out discards it.
                    if writer.len() + chunk.len() as u64 > limit {
                        return Err(file_too_large());
                    }
                    writer.write(chunk).await.map_err(ApiError::internal)?;
                }
                Ok(None) => break,
                Err(e) => return Err(multipart_error(e, &received, cap)),
            }
        }
        // What a browser form sends when no file was chosen.
        if writer.is_empty() && raw_name.as_deref() == Some("") {
            continue;
        }
        let filename = raw_name.as_deref().map(clean_filename).unwrap_or_default();
        upload = Some((writer, filename, content_type));
    }
    let (writer, filename, content_type) = upload.ok_or_else(file_required)?;
    let stored = writer
        .commit(NewFile {
            filename,
            content_type,
            restricted,
            thumbnail_width,
            thumbnail_height,
        })
        .await
        .map_err(ApiError::internal)?;
    metrics::counter!("chatd_chatfiles_uploaded_bytes_total").increment(stored.size);
    Ok(Json(json!({
        "action": "post",
        "path": "/chatfiles",
        "uri": resource_uri(&state.public_url, &app, "/chatfiles"),
        "entities": [{
            "uuid": stored.uuid,
            "type": "chatfile",
            "share-secret": stored.share_secret,
        }],
        "timestamp": chatd_core::clock::now_ms(),
        "duration": elapsed_ms(),
    }))
    .into_response())
}

/// What a `Range` header asks of a representation `len` bytes long.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No usable range (absent, another unit, several ranges, bad syntax):
    /// the whole representation, as RFC 9110 allows.
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

fn parse_range(value: &str, len: u64) -> Wanted {
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| value[6..].trim())
    else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last `n` bytes.
        let Ok(n) = last.parse::<u64>() else {
            return Wanted::Whole;
        };
        if n == 0 || len == 0 {
            return Wanted::Unsatisfiable;
        }
        return Wanted::Part(len - n.min(len)..len);
    }
    let Ok(start) = first.parse::<u64>() else {
        return Wanted::Whole;
    };
    let end = if last.is_empty() {
        len
    } else {
        match last.parse::<u64>() {
            Ok(l) if l >= start => l.saturating_add(1).min(len),
            _ => return Wanted::Whole,
        }
    };
    if start >= len {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part(start..end)
}

fn range_not_satisfiable(len: u64) -> Response {
    let mut r = ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the range asked for lies outside the file's {len} bytes"),
        "RangeNotSatisfiableException",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        r.headers_mut().insert(CONTENT_RANGE, v);
    }
    r
}

/// `inline` for media a browser shows safely, `attachment` for the rest
/// (HTML or SVG uploaded to this origin must not run as a page), with the
/// upload's file name.
fn content_disposition(filename: &str, content_type: &str) -> HeaderValue {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let inline = (essence.starts_with("image/") && essence != "image/svg+xml")
        || essence.starts_with("audio/")
        || essence.starts_with("video/");
    let mut v = String::from(if inline { "inline" } else { "attachment" });
    if !filename.is_empty() {
        let ascii: String = filename
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        v.push_str(&format!("; filename=\"{ascii}\"; filename*=UTF-8''"));
        for b in filename.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                v.push(b as char);
            } else {
                v.push_str(&format!("%{b:02X}"));
            }
        }
    }
    HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("attachment"))
}

#[derive(Deserialize)]
pub struct FilePath {
    uuid: String,
}

/// `GET …/chatfiles/{uuid}`: the file, or its thumbnail with
/// `thumbnail: true`, whole or one byte range.
pub async fn download(
    State(state): State<Arc<ApiState>>,
    Extension(app): Extension<Arc<AppRecord>>,
    path: Result<Path<FilePath>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // No token needed (message URLs are fetched by browsers' <img> and by
    // callback receivers); one that is given must be valid for this app.
    if headers.contains_key(AUTHORIZATION) {
        principal(&state, &app, &headers).map_err(ApiError::from_auth)?;
    }
    check_call_rate(&state, &app, "chatfiles/download")?;
    let uuid = path
        .ok()
        .and_then(|Path(p)| canonical_uuid(&p.uuid))
        .ok_or_else(file_not_found)?;
    let file = match state
        .files
        .lookup(app.key, &uuid)
        .await
        .map_err(ApiError::internal)?
    {
        Lookup::Found(f) => f,
        Lookup::Expired => return Err(file_expired(&uuid)),
        Lookup::NotFound => return Err(file_not_found()),
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    if file.restricted {
        let given = header(&headers, "share-secret")
            .or_else(|| query.get("share-secret").map(String::as_str))
            .filter(|s| !s.is_empty());
        match given {
            None => {
                return Err(secret_refused(format!(
                    "file {uuid} is restricted: its share-secret is required"
                )))
            }
            Some(s) if !chatd_auth::same_secret(s, &file.share_secret) => {
                return Err(secret_refused(format!(
                    "share-secret does not match file {uuid}"
                )))
            }
            Some(_) => {}
        }
    }
    let thumbnail = header(&headers, "thumbnail").is_some_and(is_true)
        || query.get("thumbnail").is_some_and(|v| is_true(v));
    let (variant, len, content_type) = file.variant(thumbnail);
    let etag = match variant {
        Variant::Original => format!("\"{uuid}\""),
        Variant::Thumbnail => format!("\"{uuid}-thumbnail\""),
    };
    // A range applies only to the representation the client has (If-Range).
    let same_representation = header(&headers, IF_RANGE.as_str()).is_none_or(|v| v == etag);
    let wanted = match header(&headers, RANGE.as_str()) {
        Some(r) if same_representation => parse_range(r, len),
        _ => Wanted::Whole,
    };
    let range = match wanted {
        Wanted::Unsatisfiable => return Ok(range_not_satisfiable(len)),
        Wanted::Whole => None,
        Wanted::Part(r) => Some(r),
    };
    let stream = state
        .files
        .read(&file, variant, range.clone())
        .await
        .map_err(|e| store_error(e, &uuid))?;

    let mut out = HeaderMap::new();
    out.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    out.insert(
        CONTENT_LENGTH,
        HeaderValue::from(range.as_ref().map_or(len, |r| r.end - r.start)),
    );
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(ETAG, v);
    }
    out.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    // The same URL answers the original or the thumbnail, and refuses
    // without the secret: caches must key on these headers too.
    out.insert(
        VARY,
        HeaderValue::from_static("thumbnail, share-secret, authorization"),
    );
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(
        CONTENT_DISPOSITION,
        content_disposition(&file.filename, content_type),
    );
    let status = match &range {
        Some(r) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start, r.end - 1))
            {
                out.insert(CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        None => StatusCode::OK,
    };
    Ok((status, out, Body::from_stream(stream)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use Wanted::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(
            parse_range("BYTES = 10-", 100),
            Whole,
            "no spaces in the unit"
        );
        assert_eq!(parse_range("bytes=10-", 100), Part(10..100));
        assert_eq!(parse_range("bytes=90-200", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-500", 100), Part(0..100));
        assert_eq!(parse_range("Bytes=99-99", 100), Part(99..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-4", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Whole);
    }

    #[test]
    fn filenames_lose_directories_and_control_characters() {
        assert_eq!(clean_filename("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_filename(&"é".repeat(200)).len(), 254);
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("", "image/png"),
            HeaderValue::from_static("inline")
        );
        assert_eq!(
            content_disposition("a b\"é.svg", "image/svg+xml"),
            HeaderValue::from_static(
                "attachment; filename=\"a b__.svg\"; filename*=UTF-8''a%20b%22%C3%A9.svg"
            )
        );
    }
}
