mod common;

// Chat files (`POST …/chatfiles`, `GET …/chatfiles/{uuid}`) against the
// real server: round trips, limits, restricted files, thumbnails, ranges,
// expiry, crash leftovers, path tricks, app isolation and memory.

use common::{TestServer, APP, APP_ID, ORG};
use image::{ImageFormat, ImageReader, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
/// The default per-app file limit.
const LIMIT: usize = 10 * MIB;
const NOT_FOUND: &str = "file may not exists";

/// A response, whatever its body.
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Checks an error answer: status, `error`, `error_description` and the
    /// rest of the service's error JSON.
    fn assert_error(&self, status: u16, error: &str, description: &str) {
        let j = self.json();
        assert_eq!(self.status, status, "{j}");
        assert_eq!(j["error"], error, "{j}");
        assert_eq!(j["error_description"], description, "{j}");
        assert!(j["timestamp"].as_i64().unwrap() > 0, "{j}");
        assert!(j["duration"].is_u64(), "{j}");
        assert!(j["exception"].is_string(), "{j}");
    }

    /// The uuid and share-secret of a successful upload.
    fn uploaded(&self) -> (String, String) {
        let j = self.json();
        assert_eq!(self.status, 200, "{j}");
        let e = &j["entities"][0];
        (
            e["uuid"].as_str().unwrap().to_string(),
            e["share-secret"].as_str().unwrap().to_string(),
        )
    }
}

fn by_id(server: &TestServer, path: &str) -> String {
    format!("{}/app-id/{APP_ID}{path}", server.base)
}

fn by_name(server: &TestServer, path: &str) -> String {
    format!("{}/{ORG}/{APP}{path}", server.base)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn finish(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.expect("request completes");
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.expect("body").to_vec(),
    }
}

fn file_part(bytes: Vec<u8>, name: &str, mime: Option<&str>) -> Part {
    let p = Part::bytes(bytes).file_name(name.to_string());
    match mime {
        Some(m) => p.mime_str(m).unwrap(),
        None => p,
    }
}

/// `POST url` with `form`, a bearer token and extra headers.
async fn post_form(url: &str, token: Option<&str>, form: Form, headers: &[(&str, &str)]) -> Resp {
    let mut req = http().post(url).multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req).await
}

/// Uploads `bytes` as the `file` field with the app token.
async fn upload(server: &TestServer, bytes: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
    let form = Form::new().part("file", file_part(bytes, "data.bin", None));
    post_form(
        &by_id(server, "/chatfiles"),
        Some(&server.app_token()),
        form,
        headers,
    )
    .await
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = http().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req).await
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// Every regular file of the file store except its database.
fn stored_files(server: &TestServer) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![server.dir.path().join("files")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("files.db")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Waits until `cond` holds (up to 15 s).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Reads from `s` until end of stream or error, keeping what came.
fn read_until_closed(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status and body of a raw HTTP/1.1 answer.
fn parse_raw(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Sends one raw request (`Connection: close`) and returns the answer.
fn raw_request(server: &TestServer, request: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr(server)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    parse_raw(&read_until_closed(s))
}

const BOUNDARY: &str = "chatdTestBoundary7MA4YWxk";

fn multipart_head() -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
}

fn upload_headers(server: &TestServer, extra: &str) -> String {
    format!(
        "POST /app-id/{APP_ID}/chatfiles HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nConnection: close\r\n{extra}\r\n",
        addr(server),
        server.app_token()
    )
}

#[tokio::test]
async fn binary_files_round_trip_byte_for_byte() {
    let server = TestServer::start();
    let user = server.user_token("alice");
    for (i, size) in [0usize, 1, 9_900_000].into_iter().enumerate() {
        let bytes = noise(size, i as u64 + 7);
        // The app's token and the `/app-id` form, or a user's token and
        // the `/{org}/{app}` form: both upload.
        let (url, token) = if i % 2 == 0 {
            (by_id(&server, "/chatfiles"), server.app_token())
        } else {
            (by_name(&server, "/chatfiles"), user.clone())
        };
        let form = Form::new().part(
            "file",
            file_part(bytes.clone(), "voice.amr", Some("audio/amr")),
        );
        let r = post_form(&url, Some(&token), form, &[]).await;
        let j = r.json();
        assert_eq!(r.status, 200, "{j}");
        assert_eq!(j["action"], "post");
        assert_eq!(j["path"], "/chatfiles");
        assert_eq!(j["uri"], format!("{}/{ORG}/{APP}/chatfiles", server.base));
        assert!(j["timestamp"].as_i64().unwrap() > 0);
        assert!(j["duration"].is_u64());
        let e = &j["entities"][0];
        assert_eq!(j["entities"].as_array().unwrap().len(), 1);
        assert_eq!(e["type"], "chatfile");
        let uuid = e["uuid"].as_str().unwrap();
        assert!(is_canonical_uuid(uuid), "{uuid}");
        assert!(e["share-secret"].as_str().unwrap().len() >= 32);

        for url in [
            by_id(&server, &format!("/chatfiles/{uuid}")),
            by_name(&server, &format!("/chatfiles/{uuid}")),
        ] {
            let d = get(&url, &[("Accept", "application/octet-stream")]).await;
            assert_eq!(d.status, 200);
            assert_eq!(d.body.len(), size);
            assert!(d.body == bytes, "{size} bytes differ");
            assert_eq!(d.header("content-type"), "audio/amr");
            assert_eq!(d.header("content-length"), size.to_string());
            assert_eq!(d.header("accept-ranges"), "bytes");
            assert_eq!(d.header("x-content-type-options"), "nosniff");
            assert_eq!(
                d.header("content-disposition"),
                "inline; filename=\"voice.amr\"; filename*=UTF-8''voice.amr"
            );
        }
        // HEAD: the headers without the bytes.
        let h = finish(http().head(by_id(&server, &format!("/chatfiles/{uuid}")))).await;
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-length"), size.to_string());
        assert!(h.body.is_empty());
    }
}

#[tokio::test]
async fn uploads_need_a_token_of_the_app_and_downloads_a_valid_one_if_any() {
    let server = TestServer::start();
    let form = || Form::new().part("file", file_part(b"x".to_vec(), "x", None));
    let url = by_id(&server, "/chatfiles");
    post_form(&url, None, form(), &[]).await.assert_error(
        401,
        "unauthorized",
        "Unable to authenticate due to expired access token",
    );
    post_form(&url, Some("not-a-token"), form(), &[])
        .await
        .assert_error(
            401,
            "auth_bad_access_token",
            "Unable to authenticate due to corrupt access token",
        );

    let (uuid, _) = upload(&server, b"hello".to_vec(), &[]).await.uploaded();
    let file = by_id(&server, &format!("/chatfiles/{uuid}"));
    // No token: the URL is enough (browsers' <img>, callback receivers).
    assert_eq!(get(&file, &[]).await.body, b"hello");
    let user = format!("Bearer {}", server.user_token("bob"));
    assert_eq!(get(&file, &[("Authorization", &user)]).await.status, 200);
    get(&file, &[("Authorization", "Bearer not-a-token")])
        .await
        .assert_error(
            401,
            "auth_bad_access_token",
            "Unable to authenticate due to corrupt access token",
        );
}

#[tokio::test]
async fn upload_errors() {
    let server = TestServer::start();
    let url = by_id(&server, "/chatfiles");
    let token = server.app_token();
    const NO_FILE: &str = "file must be provided.";

    // A multipart body without a `file` field.
    let form = Form::new().text("other", "value");
    post_form(&url, Some(&token), form, &[])
        .await
        .assert_error(400, "illegal_argument", NO_FILE);
    // A browser form with no file chosen: an empty part with an empty name.
    let form = Form::new().part("file", file_part(Vec::new(), "", None));
    post_form(&url, Some(&token), form, &[])
        .await
        .assert_error(400, "illegal_argument", NO_FILE);
    // Not multipart at all.
    let r = finish(
        http()
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"file": "x"})),
    )
    .await;
    r.assert_error(400, "illegal_argument", NO_FILE);
    // A thumbnail size that is no positive integer.
    for (h, v) in [("thumbnail-width", "abc"), ("thumbnail-height", "0")] {
        upload(&server, b"x".to_vec(), &[(h, v)])
            .await
            .assert_error(
                400,
                "illegal_argument",
                &format!("{h} must be a positive integer"),
            );
    }
    // A multipart body that never closes its part.
    let r = finish(
        http()
            .post(&url)
            .bearer_auth(&token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(format!("{}some bytes and no end", multipart_head())),
    )
    .await;
    r.assert_error(
        400,
        "invalid_request_body",
        "Request body is invalid. Please check body is correct.",
    );
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
}

const TOO_LARGE: (&str, &str) = (
    "file exceeding maximum limit",
    "the file size exceeds the maximum limit.",
);

#[tokio::test]
async fn files_over_the_limit_are_refused_with_413() {
    let server = TestServer::start();
    // Exactly the limit passes, one byte more does not.
    let (uuid, _) = upload(&server, noise(LIMIT, 1), &[]).await.uploaded();
    upload(&server, noise(LIMIT + 1, 2), &[])
        .await
        .assert_error(413, TOO_LARGE.0, TOO_LARGE.1);
    let d = get(&by_id(&server, &format!("/chatfiles/{uuid}")), &[]).await;
    assert_eq!(d.body.len(), LIMIT);
    eventually("only the accepted file is stored", || {
        stored_files(&server).len() == 1
    })
    .await;
}

#[tokio::test]
async fn oversized_uploads_are_refused_before_they_are_read_whole() {
    let server = TestServer::start();
    // A declared length far over the limit: refused from the headers
    // alone, no byte of the body sent.
    let mut s = TcpStream::connect(addr(&server)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(upload_headers(&server, "Content-Length: 1073741824\r\n").as_bytes())
        .unwrap();
    let (status, body) = parse_raw(&read_until_closed(s));
    assert_eq!(status, 413);
    assert_eq!(body["error"], TOO_LARGE.0);
    assert_eq!(body["error_description"], TOO_LARGE.1);

    // No declared length (chunked): refused once the limit is passed, while
    // the client still holds back the rest of a body it never finishes.
    let s = TcpStream::connect(addr(&server)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reader = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || read_until_closed(s))
    };
    let mut w = s;
    let chunk = |data: &[u8]| {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        c
    };
    let _ = w.write_all(upload_headers(&server, "Transfer-Encoding: chunked\r\n").as_bytes());
    let _ = w.write_all(&chunk(multipart_head().as_bytes()));
    let block = noise(256 * 1024, 3);
    let mut sent = 0;
    while sent < LIMIT + 2 * MIB {
        if w.write_all(&chunk(&block)).is_err() {
            break;
        }
        sent += block.len();
    }
    // Neither the final chunk nor the closing boundary is ever sent.
    let (status, body) = parse_raw(&reader.join().unwrap());
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], TOO_LARGE.0);
    assert_eq!(body["error_description"], TOO_LARGE.1);
    drop(w);
    eventually("nothing is left of the refused upload", || {
        stored_files(&server).is_empty()
    })
    .await;
}

#[tokio::test]
async fn the_limit_is_per_app_and_configurable() {
    let server = TestServer::start_with(&[("CHATD_FILE_MAX_BYTES", "1000")]);
    upload(&server, noise(1000, 1), &[]).await.uploaded();
    upload(&server, noise(1001, 1), &[])
        .await
        .assert_error(413, TOO_LARGE.0, TOO_LARGE.1);
}

#[tokio::test]
async fn uploads_and_downloads_have_their_own_call_rate() {
    let server = TestServer::start_with(&[("CHATD_RATE_CALLS_PER_SEC", "1")]);
    let (uuid, _) = upload(&server, b"x".to_vec(), &[]).await.uploaded();
    const LIMITED: &str = "This request has reached api limit";
    upload(&server, b"y".to_vec(), &[])
        .await
        .assert_error(429, "reach_limit", LIMITED);
    // Downloads are another endpoint family, with a budget of their own.
    let url = by_id(&server, &format!("/chatfiles/{uuid}"));
    assert_eq!(get(&url, &[]).await.status, 200);
    get(&url, &[])
        .await
        .assert_error(429, "reach_limit", LIMITED);
}

#[tokio::test]
async fn restricted_files_need_their_share_secret() {
    let server = TestServer::start();
    let png = png_bytes(400, 200);
    let (uuid, secret) = upload(&server, png.clone(), &[("restrict-access", "true")])
        .await
        .uploaded();
    let url = by_id(&server, &format!("/chatfiles/{uuid}"));

    let missing = format!("file {uuid} is restricted: its share-secret is required");
    let wrong = format!("share-secret does not match file {uuid}");
    get(&url, &[])
        .await
        .assert_error(403, "forbidden_op", &missing);
    get(&url, &[("share-secret", "")])
        .await
        .assert_error(403, "forbidden_op", &missing);
    get(&url, &[("share-secret", "wrong")])
        .await
        .assert_error(403, "forbidden_op", &wrong);
    // The secret with its last character changed.
    let last = if secret.ends_with('x') { 'y' } else { 'x' };
    let almost = format!("{}{last}", &secret[..secret.len() - 1]);
    get(&url, &[("share-secret", &almost)])
        .await
        .assert_error(403, "forbidden_op", &wrong);
    get(&format!("{url}?share-secret=nope"), &[])
        .await
        .assert_error(403, "forbidden_op", &wrong);
    // Even the app's own token does not stand in for the secret.
    let admin = format!("Bearer {}", server.app_token());
    get(&url, &[("Authorization", &admin)])
        .await
        .assert_error(403, "forbidden_op", &missing);
    // The thumbnail is restricted too.
    get(&url, &[("thumbnail", "true")])
        .await
        .assert_error(403, "forbidden_op", &missing);

    // The secret as a header or in the query, as callbacks' URLs carry it.
    let d = get(&url, &[("share-secret", &secret)]).await;
    assert_eq!(d.status, 200);
    assert!(d.body == png);
    let d = get(&format!("{url}?share-secret={secret}"), &[]).await;
    assert_eq!(d.status, 200);
    assert!(d.body == png);
    let d = get(&url, &[("share-secret", &secret), ("thumbnail", "true")]).await;
    assert_eq!(d.status, 200);
    assert_eq!(image_size(&d.body), (170, 85));

    // An unrestricted upload gets a secret too, but needs none.
    let (open, open_secret) = upload(&server, b"open".to_vec(), &[("restrict-access", "false")])
        .await
        .uploaded();
    assert!(!open_secret.is_empty());
    let open_url = by_id(&server, &format!("/chatfiles/{open}"));
    assert_eq!(get(&open_url, &[]).await.body, b"open");
    assert_eq!(
        get(&open_url, &[("share-secret", "anything")]).await.body,
        b"open"
    );
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, 40, (y % 256) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn image_size(bytes: &[u8]) -> (u32, u32) {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .expect("an image")
}

fn image_format(bytes: &[u8]) -> ImageFormat {
    image::guess_format(bytes).unwrap()
}

#[tokio::test]
async fn images_get_thumbnails_of_the_right_size() {
    let server = TestServer::start();
    let thumb = |uuid: &str| by_id(&server, &format!("/chatfiles/{uuid}"));

    // A PNG, default box (170 on the long side), sent as octet-stream: the
    // store recognises it.
    let png = png_bytes(640, 480);
    let form = Form::new().part(
        "file",
        file_part(png.clone(), "photo.png", Some("application/octet-stream")),
    );
    let r = post_form(
        &by_id(&server, "/chatfiles"),
        Some(&server.app_token()),
        form,
        &[],
    )
    .await;
    let (uuid, _) = r.uploaded();
    let d = get(&thumb(&uuid), &[("thumbnail", "true")]).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.header("content-type"), "image/png");
    assert_eq!(d.header("content-length"), d.body.len().to_string());
    assert_eq!(image_format(&d.body), ImageFormat::Png);
    assert_eq!(image_size(&d.body), (170, 128));
    // Without the header (or with `false`): the original.
    let d = get(&thumb(&uuid), &[("thumbnail", "false")]).await;
    assert!(d.body == png);
    assert_eq!(d.header("content-type"), "image/png");
    // `?thumbnail=true` works as well, for <img> tags.
    let d = get(&format!("{}?thumbnail=true", thumb(&uuid)), &[]).await;
    assert_eq!(image_size(&d.body), (170, 128));

    // A portrait JPEG, default box.
    let jpeg = jpeg_bytes(300, 600);
    let (uuid, _) = upload(&server, jpeg.clone(), &[]).await.uploaded();
    let d = get(&thumb(&uuid), &[("thumbnail", "true")]).await;
    assert_eq!(d.header("content-type"), "image/jpeg");
    assert_eq!(image_format(&d.body), ImageFormat::Jpeg);
    assert_eq!(image_size(&d.body), (85, 170));

    // A JPEG with the box the upload asks for.
    let (uuid, _) = upload(
        &server,
        jpeg_bytes(600, 300),
        &[("thumbnail-width", "100"), ("thumbnail-height", "100")],
    )
    .await
    .uploaded();
    let d = get(&thumb(&uuid), &[("thumbnail", "true")]).await;
    assert_eq!(image_size(&d.body), (100, 50));
    let (uuid, _) = upload(&server, png_bytes(640, 480), &[("thumbnail-height", "60")])
        .await
        .uploaded();
    let d = get(&thumb(&uuid), &[("thumbnail", "true")]).await;
    assert_eq!(image_size(&d.body), (80, 60));

    // An image already inside the box is its own thumbnail.
    let small = png_bytes(120, 90);
    let (uuid, _) = upload(&server, small.clone(), &[]).await.uploaded();
    let d = get(&thumb(&uuid), &[("thumbnail", "true")]).await;
    assert!(d.body == small);

    // Not an image (or a broken one): the thumbnail is the original.
    for bytes in [b"just some text".to_vec(), png[..100].to_vec()] {
        let (uuid, _) = upload(&server, bytes.clone(), &[]).await.uploaded();
        let d = get(&thumb(&uuid), &[("thumbnail", "true")]).await;
        assert_eq!(d.status, 200);
        assert!(d.body == bytes);
    }
}

#[tokio::test]
async fn ranges_return_the_right_bytes() {
    let server = TestServer::start();
    let bytes = noise(1000, 5);
    let (uuid, _) = upload(&server, bytes.clone(), &[]).await.uploaded();
    let url = by_id(&server, &format!("/chatfiles/{uuid}"));

    for (range, from, to) in [
        ("bytes=10-19", 10, 20),
        ("bytes=990-", 990, 1000),
        ("bytes=-5", 995, 1000),
        ("bytes=0-0", 0, 1),
        ("bytes=900-5000", 900, 1000),
    ] {
        let d = get(&url, &[("Range", range)]).await;
        assert_eq!(d.status, 206, "{range}");
        assert_eq!(
            d.header("content-range"),
            format!("bytes {from}-{}/1000", to - 1),
            "{range}"
        );
        assert_eq!(d.header("content-length"), (to - from).to_string());
        assert!(d.body == bytes[from..to], "{range}");
    }
    // Several ranges, or an If-Range for another version: the whole file.
    let etag = get(&url, &[]).await.header("etag").to_string();
    for headers in [
        vec![("Range", "bytes=0-1,5-6")],
        vec![("Range", "bytes=0-1"), ("If-Range", "\"something-else\"")],
    ] {
        let d = get(&url, &headers).await;
        assert_eq!(d.status, 200);
        assert!(d.body == bytes);
    }
    let d = get(&url, &[("Range", "bytes=0-1"), ("If-Range", &etag)]).await;
    assert_eq!(d.status, 206);

    // Past the end: 416, with the length.
    for range in ["bytes=1000-", "bytes=5000-6000"] {
        let d = get(&url, &[("Range", range)]).await;
        d.assert_error(
            416,
            "range_not_satisfiable",
            "the range asked for lies outside the file's 1000 bytes",
        );
        assert_eq!(d.header("content-range"), "bytes */1000");
    }
}

#[tokio::test]
async fn unknown_and_expired_files_answer_404() {
    let server = TestServer::start_with(&[("CHATD_FILE_RETENTION_SECS", "1")]);
    let unknown = "5fd74830-57a1-41e9-822a-81ea50bb049d";
    get(&by_id(&server, &format!("/chatfiles/{unknown}")), &[])
        .await
        .assert_error(404, "entity_not_found", NOT_FOUND);

    let (uuid, secret) = upload(
        &server,
        b"soon gone".to_vec(),
        &[("restrict-access", "true")],
    )
    .await
    .uploaded();
    let url = by_id(&server, &format!("/chatfiles/{uuid}"));
    assert_eq!(get(&url, &[("share-secret", &secret)]).await.status, 200);
    assert_eq!(stored_files(&server).len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = format!("file {uuid} is expired");
    get(&url, &[("share-secret", &secret)])
        .await
        .assert_error(404, "file_expired", &expired);
    // The sweep removes the bytes; the file still answers as expired.
    eventually("the sweep removes the expired bytes", || {
        stored_files(&server).is_empty()
    })
    .await;
    get(&url, &[])
        .await
        .assert_error(404, "file_expired", &expired);
    get(&by_name(&server, &format!("/chatfiles/{uuid}")), &[])
        .await
        .assert_error(404, "file_expired", &expired);
}

#[tokio::test]
async fn path_tricks_get_404() {
    let server = TestServer::start();
    let (uuid, _) = upload(&server, b"secret bytes".to_vec(), &[])
        .await
        .uploaded();
    let stored = stored_files(&server);
    assert_eq!(stored.len(), 1);
    // Where the bytes sit, relative to the store: `<app key>/<xx>/<uuid>`.
    let rel = stored[0]
        .strip_prefix(server.dir.path().join("files"))
        .unwrap()
        .to_string_lossy()
        .to_string();
    let prefix = format!("/app-id/{APP_ID}/chatfiles");
    let host = addr(&server);
    let request =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");

    // Reach the handler, which refuses anything but a canonical UUID.
    let handled = [
        format!("{prefix}/.."),
        format!("{prefix}/..%2F..%2Ffiles%2Ffiles.db"),
        format!("{prefix}/%2e%2e%2f%2e%2e%2f{uuid}"),
        format!("{prefix}/..%2f{}", rel.replace('/', "%2F")),
        format!("{prefix}/{}", rel.replace('/', "%2F")),
        format!("{prefix}/{uuid}%2F.."),
        format!("{prefix}/{uuid}%00"),
        format!("{prefix}/{uuid}.thumb"),
        format!("{prefix}/{}", uuid.replace('-', "")),
        format!("{prefix}/%7B{uuid}%7D"),
    ];
    for path in &handled {
        let (status, body) = raw_request(&server, &request(path));
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "entity_not_found", "{path}: {body}");
        assert_eq!(body["error_description"], NOT_FOUND, "{path}: {body}");
    }
    // Do not even match the route.
    for path in [
        format!("{prefix}/../../files/files.db"),
        format!("{prefix}/../{uuid}"),
        format!("{prefix}/{rel}"),
        format!("{prefix}/{uuid}/.."),
    ] {
        let (status, body) = raw_request(&server, &request(&path));
        assert_eq!(status, 404, "{path}: {body}");
    }
    // The file itself is still there, by its name.
    let (status, _) = raw_request(&server, &request(&format!("{prefix}/{uuid}")));
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_app_cannot_read_another_apps_files() {
    let server = TestServer::start();
    let (app2, cert2) = server.create_app("o2", "a2");
    let token2 = chatd_auth::accesstoken2::mint_app_token(&app2, &cert2, 3600);
    let bearer2 = format!("Bearer {token2}");
    let app2_url = |path: &str| format!("{}/app-id/{app2}{path}", server.base);

    let (uuid, secret) = upload(
        &server,
        b"app one's".to_vec(),
        &[("restrict-access", "true")],
    )
    .await
    .uploaded();
    // Through app 2's paths, with app 2's token and even the right secret:
    // app 1's file does not exist there.
    for url in [
        app2_url(&format!("/chatfiles/{uuid}")),
        format!("{}/o2/a2/chatfiles/{uuid}", server.base),
    ] {
        get(
            &url,
            &[("Authorization", &bearer2), ("share-secret", &secret)],
        )
        .await
        .assert_error(404, "entity_not_found", NOT_FOUND);
    }
    // Through app 1's path, app 2's token is no token of app 1.
    get(
        &by_id(&server, &format!("/chatfiles/{uuid}")),
        &[("Authorization", &bearer2), ("share-secret", &secret)],
    )
    .await
    .assert_error(401, "auth_bad_access_token", "Unable to authenticate");
    // Nor can app 1's token upload into app 2.
    let form = Form::new().part("file", file_part(b"x".to_vec(), "x", None));
    post_form(
        &app2_url("/chatfiles"),
        Some(&server.app_token()),
        form,
        &[],
    )
    .await
    .assert_error(401, "auth_bad_access_token", "Unable to authenticate");
    // App 2's own file is its own.
    let form = Form::new().part("file", file_part(b"app two's".to_vec(), "x", None));
    let (uuid2, _) = post_form(&app2_url("/chatfiles"), Some(&token2), form, &[])
        .await
        .uploaded();
    assert_eq!(
        get(&app2_url(&format!("/chatfiles/{uuid2}")), &[])
            .await
            .body,
        b"app two's"
    );
    get(&by_id(&server, &format!("/chatfiles/{uuid2}")), &[])
        .await
        .assert_error(404, "entity_not_found", NOT_FOUND);
}

#[tokio::test]
async fn an_upload_cut_off_mid_stream_leaves_nothing_behind() {
    let mut server = TestServer::start();
    let tmp = server.dir.path().join("files").join("tmp");
    let partial = |tmp: &Path| {
        std::fs::read_dir(tmp)
            .map(|d| d.count())
            .unwrap_or_default()
    };

    // The client goes away after 1 MiB of a 5 MiB upload.
    {
        let mut s = TcpStream::connect(addr(&server)).unwrap();
        let head = multipart_head();
        let total = head.len() + 5 * MIB;
        s.write_all(upload_headers(&server, &format!("Content-Length: {total}\r\n")).as_bytes())
            .unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&noise(MIB, 9)).unwrap();
        eventually("the upload reaches the disk", || partial(&tmp) == 1).await;
    }
    eventually("the cut-off upload is removed", || {
        stored_files(&server).is_empty()
    })
    .await;

    // The server dies mid-upload: the leftover goes at the next start.
    let mut s = TcpStream::connect(addr(&server)).unwrap();
    let head = multipart_head();
    s.write_all(
        upload_headers(
            &server,
            &format!("Content-Length: {}\r\n", head.len() + 5 * MIB),
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&noise(MIB, 9)).unwrap();
    eventually("the upload reaches the disk", || partial(&tmp) == 1).await;
    server.kill();
    drop(s);
    assert_eq!(partial(&tmp), 1, "SIGKILL leaves the partial file");
    server.restart();
    assert_eq!(stored_files(&server), Vec::<PathBuf>::new());
    // And the restarted server still takes uploads.
    let (uuid, _) = upload(&server, b"after".to_vec(), &[]).await.uploaded();
    assert_eq!(
        get(&by_id(&server, &format!("/chatfiles/{uuid}")), &[])
            .await
            .body,
        b"after"
    );
}

/// The pid of the server process serving `server`'s data directory.
fn server_pid(server: &TestServer) -> u32 {
    let needle = format!("CHATD_DATA_DIR={}", server.dir.path().display());
    for e in std::fs::read_dir("/proc").unwrap() {
        let e = e.unwrap();
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if !cmdline.split(|b| *b == 0).any(|a| a == b"serve") {
            continue;
        }
        let Ok(environ) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            return pid;
        }
    }
    panic!("no chatd serving {}", server.dir.path().display());
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Ten concurrent 10 MB uploads, then ten concurrent downloads of them: the
/// server's peak RSS must not grow with the bytes in flight (100 MB).
/// docs/files.md quotes the figures this prints.
#[tokio::test]
async fn memory_stays_flat_under_concurrent_uploads_and_downloads() {
    const N: usize = 10;
    const SIZE: usize = 10_000_000;
    let server = TestServer::start();
    let pid = server_pid(&server);
    // Warm up: one small upload and download.
    let (uuid, _) = upload(&server, noise(1000, 1), &[]).await.uploaded();
    get(&by_id(&server, &format!("/chatfiles/{uuid}")), &[]).await;
    let before = peak_rss_kib(pid);

    let bodies: Vec<Vec<u8>> = (0..N).map(|i| noise(SIZE, i as u64 + 100)).collect();
    let uploads = bodies.iter().map(|b| upload(&server, b.clone(), &[]));
    let uuids: Vec<String> = futures::future::join_all(uploads)
        .await
        .iter()
        .map(|r| r.uploaded().0)
        .collect();
    let after_uploads = peak_rss_kib(pid);

    let downloads = uuids
        .iter()
        .map(|u| get_len(by_id(&server, &format!("/chatfiles/{u}"))));
    let lens = futures::future::join_all(downloads).await;
    assert!(lens.iter().all(|n| *n == SIZE as u64), "{lens:?}");
    let after_downloads = peak_rss_kib(pid);

    println!(
        "chatd peak RSS (VmHWM): {before} KiB before, {after_uploads} KiB after {N} concurrent \
         {SIZE}-byte uploads, {after_downloads} KiB after {N} concurrent downloads"
    );
    let growth = after_downloads.saturating_sub(before);
    assert!(
        growth < 40 * 1024,
        "peak RSS grew by {growth} KiB for {} MB in flight",
        N * SIZE / 1_000_000
    );
}

/// Downloads `url` chunk by chunk, keeping only the count.
async fn get_len(url: String) -> u64 {
    let mut r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut n = 0;
    while let Some(c) = r.chunk().await.unwrap() {
        n += c.len() as u64;
    }
    n
}
