//! Agora AccessToken2 ("007" tokens) for the Chat service: verification and minting.
//!
//! chatd accepts the tokens that Agora's own token builders hand out, so that
//! existing app servers keep working unchanged. The format is defined by Agora's
//! public reference implementations: `AccessToken2` + `ChatTokenBuilder2` in
//! <https://github.com/AgoraIO/Tools/tree/master/DynamicKey/AgoraDynamicKey>
//! (`nodejs/src/AccessToken2.js`, `python3/src/AccessToken2.py`,
//! `go/src/accesstoken2/accesstoken.go`) and the `agora-token` npm package.
//!
//! ```text
//! token        = "007" base64_std( zlib( bytes(signature) signing_info ) )
//! signing_info = string(app_id) u32(issue_ts) u32(expire) u32(salt)
//!                u16(service_count) { u16(service_type) service_body }*
//! chat body    = map(privilege: u16 -> expire: u32) string(user_id)   (service type 5)
//! key          = HMAC-SHA256(key = u32(salt), HMAC-SHA256(key = u32(issue_ts), app_certificate))
//! signature    = HMAC-SHA256(key, signing_info)
//! ```
//!
//! Integers are little-endian; `string`/`bytes` are a u16 length followed by the
//! bytes; a map is a u16 count followed by its entries. `expire` and the
//! privilege values are durations in seconds counted from `issue_ts`; a
//! privilege value of 0 puts no limit beyond the token's own. Chat privilege 1
//! is a user token for `user_id`, privilege 2 an app (server) token.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "007";

const SERVICE_RTC: u16 = 1;
const SERVICE_RTM: u16 = 2;
const SERVICE_STREAMING: u16 = 3;
const SERVICE_FPA: u16 = 4;
const SERVICE_CHAT: u16 = 5;
const SERVICE_FCDN: u16 = 6;
const SERVICE_APAAS: u16 = 7;
const SERVICE_RTM2: u16 = 8;
const SERVICE_CONVOAI: u16 = 9;
const SERVICE_STT: u16 = 10;

const PRIVILEGE_CHAT_USER: u16 = 1;
const PRIVILEGE_CHAT_APP: u16 = 2;

/// Real tokens are a few hundred characters; anything far larger is refused
/// before spending effort on base64 and zlib.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Bounds the memory a hostile token can make us inflate (zlib bombs).
const MAX_INFLATED_LEN: usize = 64 * 1024;

const SIGNATURE_LEN: usize = 32;

/// What a verified Chat token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatPrivilege {
    /// App (server) token: acts on behalf of the whole app.
    App,
    /// User token for the given user id.
    User(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub app_id: String,
    pub privilege: ChatPrivilege,
    pub issued_at: u32,
    /// Unix seconds after which the token is no longer valid (the earliest of the token's and the privilege's expiry).
    ///
    /// The lifetime is the half-open interval `[issued_at, expires_at)`: at
    /// `now == expires_at` the token is already expired, so a token minted with
    /// `expire = N` is usable for exactly N seconds and `expire = 0` never is.
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed AccessToken2")]
    Corrupt,
    #[error("token was signed by another certificate")]
    BadSignature,
    #[error("token belongs to another app")]
    WrongApp,
    #[error("token has expired")]
    Expired,
}

/// Cheap check: does this string look like an AccessToken2 (starts with "007")?
pub fn is_access_token2(token: &str) -> bool {
    token.starts_with(VERSION)
}

/// Decode without verifying the signature; used to learn which app a token claims to be for.
pub fn peek_app_id(token: &str) -> Result<String, TokenError> {
    decode(token).map(|decoded| decoded.app_id)
}

/// Full verification for the given app. Order: decode (Corrupt), app_id compare (WrongApp), signature (BadSignature, constant-time compare), chat service present with privilege 1 or 2 (else Corrupt), expiry vs now_secs (Expired).
///
/// The token is expired once `now_secs >= expires_at` (see [`Claims::expires_at`]).
/// A chat service granting both the user and the app privilege, or the user
/// privilege with an empty user id, is refused as `Corrupt`: no reference
/// builder produces one and its meaning would be ambiguous.
pub fn verify(
    token: &str,
    app_id: &str,
    app_certificate: &str,
    now_secs: u64,
) -> Result<Claims, TokenError> {
    let decoded = decode(token)?;
    if decoded.app_id != app_id {
        return Err(TokenError::WrongApp);
    }
    let mut mac = signing_mac(app_certificate, decoded.issue_ts, decoded.salt);
    mac.update(&decoded.signing_info);
    mac.verify_slice(&decoded.signature)
        .map_err(|_| TokenError::BadSignature)?;

    let chat = decoded.chat.ok_or(TokenError::Corrupt)?;
    let (privilege, privilege_expire) = match (chat.user_expire, chat.app_expire) {
        (None, Some(expire)) => (ChatPrivilege::App, expire),
        (Some(expire), None) => {
            let user_id = String::from_utf8(chat.user_id).map_err(|_| TokenError::Corrupt)?;
            if user_id.is_empty() {
                return Err(TokenError::Corrupt);
            }
            (ChatPrivilege::User(user_id), expire)
        }
        _ => return Err(TokenError::Corrupt),
    };

    let issued_at = u64::from(decoded.issue_ts);
    let mut expires_at = issued_at + u64::from(decoded.expire);
    if privilege_expire != 0 {
        expires_at = expires_at.min(issued_at + u64::from(privilege_expire));
    }
    if now_secs >= expires_at {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        app_id: decoded.app_id,
        privilege,
        issued_at: decoded.issue_ts,
        expires_at,
    })
}

/// Mint like ChatTokenBuilder2.buildAppToken / buildUserToken with explicit issue_ts and salt (deterministic, for tests)
///
/// `expire_secs` is used both as the token lifetime and as the privilege
/// lifetime, as the reference builder does. Returns an empty string (which never
/// verifies) if `app_id` is longer than the format can carry (65535 bytes),
/// mirroring the reference builders, which return `""` for unusable input.
pub fn mint_app_token_at(
    app_id: &str,
    app_certificate: &str,
    expire_secs: u32,
    issue_ts: u32,
    salt: u32,
) -> String {
    chat_service(PRIVILEGE_CHAT_APP, expire_secs, "")
        .and_then(|service| {
            build(
                app_id,
                app_certificate,
                issue_ts,
                expire_secs,
                salt,
                &[service],
            )
        })
        .unwrap_or_default()
}

/// See [`mint_app_token_at`]; also returns an empty string if `user_id` is
/// longer than 65535 bytes, since truncating it would name another user.
pub fn mint_user_token_at(
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    expire_secs: u32,
    issue_ts: u32,
    salt: u32,
) -> String {
    chat_service(PRIVILEGE_CHAT_USER, expire_secs, user_id)
        .and_then(|service| {
            build(
                app_id,
                app_certificate,
                issue_ts,
                expire_secs,
                salt,
                &[service],
            )
        })
        .unwrap_or_default()
}

/// Same with issue_ts = now and a random salt (1..=99999999 as the reference does)
pub fn mint_app_token(app_id: &str, app_certificate: &str, expire_secs: u32) -> String {
    mint_app_token_at(
        app_id,
        app_certificate,
        expire_secs,
        now_u32(),
        random_salt(),
    )
}

/// Same with issue_ts = now and a random salt (1..=99999999 as the reference does)
pub fn mint_user_token(
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    expire_secs: u32,
) -> String {
    mint_user_token_at(
        app_id,
        app_certificate,
        user_id,
        expire_secs,
        now_u32(),
        random_salt(),
    )
}

fn now_u32() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn random_salt() -> u32 {
    rand::rng().random_range(1..=99_999_999)
}

/// The key is derived from the certificate, issue time and salt so that the
/// signature can only be reproduced with the certificate itself.
fn signing_mac(app_certificate: &str, issue_ts: u32, salt: u32) -> HmacSha256 {
    let step = hmac_sha256(&issue_ts.to_le_bytes(), app_certificate.as_bytes());
    let key = hmac_sha256(&salt.to_le_bytes(), &step);
    new_mac(&key)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(key);
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC hashes or pads keys of any length; InvalidLength cannot occur.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

// ---------------------------------------------------------------------------
// Minting

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// `None` when the length does not fit the u16 prefix: writing a wrapped
/// length would make the token parse as something else.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    put_u16(out, u16::try_from(bytes.len()).ok()?);
    out.extend_from_slice(bytes);
    Some(())
}

/// A packed chat service (type included), as `ServiceChat.pack()` writes it.
fn chat_service(privilege: u16, expire: u32, user_id: &str) -> Option<(u16, Vec<u8>)> {
    let mut body = Vec::new();
    put_u16(&mut body, SERVICE_CHAT);
    put_u16(&mut body, 1);
    put_u16(&mut body, privilege);
    put_u32(&mut body, expire);
    put_bytes(&mut body, user_id.as_bytes())?;
    Some((SERVICE_CHAT, body))
}

/// Assembles, signs and encodes a token from already packed services. The
/// references pack services in ascending type order; the signature covers the
/// bytes as written, so the order only matters for matching their output.
fn build(
    app_id: &str,
    app_certificate: &str,
    issue_ts: u32,
    expire: u32,
    salt: u32,
    services: &[(u16, Vec<u8>)],
) -> Option<String> {
    let mut sorted: Vec<&(u16, Vec<u8>)> = services.iter().collect();
    sorted.sort_by_key(|(service_type, _)| *service_type);

    let mut signing_info = Vec::new();
    put_bytes(&mut signing_info, app_id.as_bytes())?;
    put_u32(&mut signing_info, issue_ts);
    put_u32(&mut signing_info, expire);
    put_u32(&mut signing_info, salt);
    put_u16(&mut signing_info, u16::try_from(sorted.len()).ok()?);
    for (_, packed) in sorted {
        signing_info.extend_from_slice(packed);
    }

    let mut mac = signing_mac(app_certificate, issue_ts, salt);
    mac.update(&signing_info);
    let signature = mac.finalize().into_bytes();

    let mut content = Vec::with_capacity(2 + signature.len() + signing_info.len());
    put_bytes(&mut content, &signature)?;
    content.extend_from_slice(&signing_info);
    Some(format!("{VERSION}{}", STANDARD.encode(deflate(&content))))
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Decoding

struct ChatService {
    user_expire: Option<u32>,
    app_expire: Option<u32>,
    user_id: Vec<u8>,
}

struct Decoded {
    signature: Vec<u8>,
    /// Everything after the signature: exactly the bytes that were signed.
    signing_info: Vec<u8>,
    app_id: String,
    issue_ts: u32,
    expire: u32,
    salt: u32,
    chat: Option<ChatService>,
}

/// Bounds-checked little-endian reader; every short read is `Corrupt`.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if n > self.buf.len() {
            return Err(TokenError::Corrupt);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, TokenError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, TokenError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], TokenError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Duplicate keys overwrite earlier ones, as they do in every reference
    /// implementation (they all read the map into a dictionary).
    fn privileges(&mut self, mut each: impl FnMut(u16, u32)) -> Result<(), TokenError> {
        let n = self.u16()?;
        for _ in 0..n {
            let key = self.u16()?;
            let value = self.u32()?;
            each(key, value);
        }
        Ok(())
    }

    fn skip_privileges(&mut self) -> Result<(), TokenError> {
        self.privileges(|_, _| {})
    }
}

fn decode(token: &str) -> Result<Decoded, TokenError> {
    let encoded = token.strip_prefix(VERSION).ok_or(TokenError::Corrupt)?;
    if encoded.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Corrupt);
    }
    // Strict standard alphabet with padding, like the Python and Go references:
    // a lenient decoder would accept several spellings of one token.
    let compressed = STANDARD.decode(encoded).map_err(|_| TokenError::Corrupt)?;
    let content = inflate(&compressed)?;

    let mut r = Reader { buf: &content };
    let signature = r.bytes()?;
    if signature.len() != SIGNATURE_LEN {
        return Err(TokenError::Corrupt);
    }
    let signing_info = r.buf;

    let app_id = std::str::from_utf8(r.bytes()?).map_err(|_| TokenError::Corrupt)?;
    let issue_ts = r.u32()?;
    let expire = r.u32()?;
    let salt = r.u32()?;
    let chat = parse_services(&mut r)?;

    Ok(Decoded {
        signature: signature.to_vec(),
        signing_info: signing_info.to_vec(),
        app_id: app_id.to_owned(),
        issue_ts,
        expire,
        salt,
        chat,
    })
}

/// Walks all services to find the chat one. Bodies carry no length, so every
/// type's layout (from the references) must be known to step over it.
fn parse_services(r: &mut Reader<'_>) -> Result<Option<ChatService>, TokenError> {
    let count = r.u16()?;
    let mut chat = None;
    for _ in 0..count {
        match r.u16()? {
            SERVICE_CHAT => {
                let mut service = ChatService {
                    user_expire: None,
                    app_expire: None,
                    user_id: Vec::new(),
                };
                r.privileges(|key, value| match key {
                    PRIVILEGE_CHAT_USER => service.user_expire = Some(value),
                    PRIVILEGE_CHAT_APP => service.app_expire = Some(value),
                    _ => {}
                })?;
                service.user_id = r.bytes()?.to_vec();
                // Two chat services could grant different things; refuse to pick one.
                if chat.replace(service).is_some() {
                    return Err(TokenError::Corrupt);
                }
            }
            SERVICE_FPA | SERVICE_CONVOAI | SERVICE_STT => r.skip_privileges()?,
            SERVICE_RTM => {
                r.skip_privileges()?;
                r.bytes()?;
            }
            SERVICE_RTC | SERVICE_STREAMING | SERVICE_FCDN => {
                r.skip_privileges()?;
                r.bytes()?;
                r.bytes()?;
            }
            SERVICE_APAAS => {
                r.skip_privileges()?;
                r.bytes()?;
                r.bytes()?;
                r.take(2)?; // i16 role
            }
            SERVICE_RTM2 => {
                r.skip_privileges()?;
                r.bytes()?;
                for _ in 0..r.u16()? {
                    r.u16()?; // resource type
                    for _ in 0..r.u16()? {
                        r.u16()?; // permission type
                        for _ in 0..r.u16()? {
                            r.bytes()?;
                        }
                    }
                }
            }
            // A service type newer than this code: its length is unknown, so
            // the rest cannot be walked. The JS reference stops here and keeps
            // what it has; the bytes stay covered by the signature either way.
            _ => return Ok(chat),
        }
    }
    if !r.buf.is_empty() {
        return Err(TokenError::Corrupt);
    }
    Ok(chat)
}

/// Inflates one complete zlib stream, refusing truncated streams, bad
/// checksums, trailing bytes and output beyond `MAX_INFLATED_LEN`.
fn inflate(data: &[u8]) -> Result<Vec<u8>, TokenError> {
    let mut z = Decompress::new(true);
    // decompress_vec never grows the Vec, so its capacity is the hard cap; one
    // byte of headroom tells "exactly at the limit" from "beyond it".
    let mut out = Vec::with_capacity(MAX_INFLATED_LEN + 1);
    loop {
        let consumed = usize::try_from(z.total_in()).map_err(|_| TokenError::Corrupt)?;
        let input = data.get(consumed..).ok_or(TokenError::Corrupt)?;
        let before = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(input, &mut out, FlushDecompress::Finish)
            .map_err(|_| TokenError::Corrupt)?;
        if out.len() > MAX_INFLATED_LEN {
            return Err(TokenError::Corrupt);
        }
        match status {
            Status::StreamEnd => break,
            _ if (z.total_in(), z.total_out()) == before => return Err(TokenError::Corrupt),
            _ => {}
        }
    }
    if usize::try_from(z.total_in()).ok() != Some(data.len()) {
        return Err(TokenError::Corrupt);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_ID: &str = "0123456789abcdef0123456789abcdef";
    const CERT: &str = "fedcba9876543210fedcba9876543210";

    // From tests/vectors/accesstoken2.json (agora-token npm 2.0.6).
    const VECTOR_APP: &str = "007eJxTYJh/6tD6CXff8vpu7ymvdLX6pl6SELqOv0Bhz+VpcRE3+hQVGAwMjYxNTM3MLSwTk5JTUtPQ+Qwfg1MF+BgYLA0YGBgZWBkYGZgYQHwGBgCbQhuR";
    const VECTOR_USER: &str = "007eJxTYDglybuN82TH4jmC0ubfpP9sko69qxq2ollF1jHAdNVda08FBgNDI2MTUzNzC8vEpOSU1DR0PsPH4NSGQEYGTmYGBkYGVgZGBkYGEJ+VobQ4tcgQAExrG8k=";

    // From AgoraIO/Tools go/src/accesstoken2/accesstoken_test.go: tokens built
    // by the Python (stock zlib) and Go (flushed deflate) references, for the
    // RTC and RTM services only.
    const REF_APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const REF_CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";
    const REF_PY_RTC: &str = "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj";
    const REF_PY_RTC_RTM: &str = "007eJxTYOAQsrQ5s3TfH+1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGRgYmIAkCxCD+ExgkhlMsoBJBQbzFHMjYzPT1CRLC2MTC1NjS/NU41TjNMsUEzODpJSURC4GIwsLI2MTQyNzY5BZEJM4GUpSi0viS4tTiwAipyp4";
    const REF_GO_RTC: &str = "007eJxSYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxoAAAAD//8JqJOM=";

    fn inflated(token: &str) -> Vec<u8> {
        inflate(&STANDARD.decode(&token[3..]).unwrap()).unwrap()
    }

    fn signature_ok(token: &str, cert: &str) -> bool {
        let d = decode(token).unwrap();
        let mut mac = signing_mac(cert, d.issue_ts, d.salt);
        mac.update(&d.signing_info);
        mac.verify_slice(&d.signature).is_ok()
    }

    fn token_from(services: &[(u16, Vec<u8>)]) -> String {
        build(APP_ID, CERT, 1_700_000_000, 3600, 42, services).unwrap()
    }

    fn packed(service_type: u16, body: &[u8]) -> (u16, Vec<u8>) {
        let mut v = service_type.to_le_bytes().to_vec();
        v.extend_from_slice(body);
        (service_type, v)
    }

    /// Token whose content (after the zlib layer) is `content`, unsigned.
    fn raw_token(content: &[u8]) -> String {
        format!("{VERSION}{}", STANDARD.encode(deflate(content)))
    }

    #[test]
    fn vectors_decode_to_expected_fields() {
        let d = decode(VECTOR_APP).unwrap();
        assert_eq!((d.issue_ts, d.expire, d.salt), (1_700_000_000, 3600, 12345));
        let d = decode(VECTOR_USER).unwrap();
        assert_eq!((d.issue_ts, d.expire, d.salt), (1_700_000_000, 86400, 777));
    }

    // The token strings themselves cannot match: Node's bundled zlib (Chromium
    // fork) picks different matches than miniz_oxide, so the compressed bytes
    // differ. Everything under the zlib layer (signature included) must match.
    #[test]
    fn minting_reproduces_reference_tokens() {
        let app = mint_app_token_at(APP_ID, CERT, 3600, 1_700_000_000, 12345);
        assert_eq!(inflated(&app), inflated(VECTOR_APP));
        let user = mint_user_token_at(APP_ID, CERT, "user1", 86400, 1_700_000_000, 777);
        assert_eq!(inflated(&user), inflated(VECTOR_USER));
    }

    #[test]
    fn vectors_verify() {
        let claims = verify(VECTOR_APP, APP_ID, CERT, 1_700_000_100).unwrap();
        assert_eq!(claims.privilege, ChatPrivilege::App);
        assert_eq!(claims.issued_at, 1_700_000_000);
        assert_eq!(claims.expires_at, 1_700_003_600);
        let claims = verify(VECTOR_USER, APP_ID, CERT, 1_700_000_100).unwrap();
        assert_eq!(claims.privilege, ChatPrivilege::User("user1".into()));
        assert_eq!(claims.expires_at, 1_700_086_400);
    }

    #[test]
    fn user_token_round_trip() {
        let token = mint_user_token_at(APP_ID, CERT, "alice@例え", 600, 1_000_000, 99);
        let claims = verify(&token, APP_ID, CERT, 1_000_000).unwrap();
        assert_eq!(
            claims,
            Claims {
                app_id: APP_ID.into(),
                privilege: ChatPrivilege::User("alice@例え".into()),
                issued_at: 1_000_000,
                expires_at: 1_000_600,
            }
        );
        assert!(verify(&token, APP_ID, CERT, 1_000_599).is_ok());
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_000_600),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(
                &token,
                APP_ID,
                "00000000000000000000000000000000",
                1_000_000
            ),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&token, "ffffffffffffffffffffffffffffffff", CERT, 1_000_000),
            Err(TokenError::WrongApp)
        );
    }

    #[test]
    fn random_salt_tokens_verify_now() {
        let now = u64::from(now_u32());
        let token = mint_user_token(APP_ID, CERT, "bob", 3600);
        let claims = verify(&token, APP_ID, CERT, now).unwrap();
        assert_eq!(claims.privilege, ChatPrivilege::User("bob".into()));
        let salt = decode(&token).unwrap().salt;
        assert!((1..=99_999_999).contains(&salt));
        let token = mint_app_token(APP_ID, CERT, 3600);
        assert_eq!(
            verify(&token, APP_ID, CERT, now).unwrap().privilege,
            ChatPrivilege::App
        );
    }

    #[test]
    fn zero_expire_is_never_valid() {
        let token = mint_app_token_at(APP_ID, CERT, 0, 1_000, 1);
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn every_truncation_is_rejected() {
        for token in [VECTOR_APP, VECTOR_USER] {
            for end in 0..token.len() {
                assert!(
                    verify(&token[..end], APP_ID, CERT, 1_700_000_100).is_err(),
                    "{end}"
                );
                let _ = peek_app_id(&token[..end]);
            }
        }
    }

    // The last deflate byte carries padding bits after the end-of-block code
    // that inflaters ignore, so a few edits there leave the signed content
    // untouched; every other edit must be refused.
    #[test]
    fn every_single_character_change_is_rejected_or_harmless() {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        let original_content = inflated(VECTOR_APP);
        let mut harmless = 0;
        for pos in 0..VECTOR_APP.len() {
            let original = VECTOR_APP.as_bytes()[pos];
            for c in alphabet.bytes().filter(|&c| c != original) {
                let mut t = VECTOR_APP.as_bytes().to_vec();
                t[pos] = c;
                let t = String::from_utf8(t).unwrap();
                if verify(&t, APP_ID, CERT, 1_700_000_100).is_ok() {
                    assert_eq!(inflated(&t), original_content, "{t}");
                    harmless += 1;
                }
            }
        }
        assert!(harmless < 8, "{harmless}");
    }

    #[test]
    fn peek_app_id_reads_without_verifying() {
        assert_eq!(peek_app_id(VECTOR_APP).unwrap(), APP_ID);
        let other = mint_app_token_at("ffeeddccbbaa99887766554433221100", "x", 60, 1, 1);
        assert_eq!(
            peek_app_id(&other).unwrap(),
            "ffeeddccbbaa99887766554433221100"
        );
        assert_eq!(peek_app_id("007notbase64!!"), Err(TokenError::Corrupt));
        assert_eq!(peek_app_id("006abc"), Err(TokenError::Corrupt));
        assert_eq!(peek_app_id(""), Err(TokenError::Corrupt));
    }

    #[test]
    fn is_access_token2_checks_prefix() {
        assert!(is_access_token2(VECTOR_APP));
        assert!(!is_access_token2("006abc"));
        assert!(!is_access_token2(""));
    }

    #[test]
    fn wrong_app_wins_over_bad_signature() {
        let token = mint_app_token_at(APP_ID, "some other certificate", 3600, 1, 1);
        assert_eq!(
            verify(&token, "another app", CERT, 2),
            Err(TokenError::WrongApp)
        );
        assert_eq!(
            verify(&token, APP_ID, CERT, 2),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn reference_tokens_of_other_services() {
        for token in [REF_PY_RTC, REF_PY_RTC_RTM, REF_GO_RTC] {
            let d = decode(token).unwrap();
            assert_eq!(d.app_id, REF_APP_ID);
            assert_eq!((d.issue_ts, d.expire, d.salt), (1_111_111, 600, 1));
            assert!(d.chat.is_none());
            assert!(signature_ok(token, REF_CERT), "{token}");
            // Authentic, but grants nothing in chat.
            assert_eq!(
                verify(token, REF_APP_ID, REF_CERT, 1_111_112),
                Err(TokenError::Corrupt)
            );
        }
    }

    #[test]
    fn chat_is_found_among_other_services() {
        let chat = chat_service(PRIVILEGE_CHAT_USER, 3600, "carol").unwrap();
        let mut rtc = vec![1, 0, 1, 0, 0x10, 0x0e, 0, 0];
        rtc.extend_from_slice(&[2, 0, b'c', b'h', 1, 0, b'7']);
        let mut apaas = vec![0, 0];
        apaas.extend_from_slice(&[1, 0, b'r', 1, 0, b'u', 0xff, 0xff]);
        // user id "u", one resource type with one permission listing two names
        let rtm2 = [
            0, 0, 1, 0, b'u', 1, 0, 0, 0, 1, 0, 1, 0, 2, 0, 1, 0, b'a', 2, 0, b'b', b'c',
        ];
        let token = token_from(&[
            packed(SERVICE_RTM2, &rtm2),
            packed(SERVICE_APAAS, &apaas),
            chat,
            packed(SERVICE_RTC, &rtc),
            packed(SERVICE_FPA, &[0, 0]),
            packed(SERVICE_STT, &[0, 0]),
        ]);
        let claims = verify(&token, APP_ID, CERT, 1_700_000_000).unwrap();
        assert_eq!(claims.privilege, ChatPrivilege::User("carol".into()));
    }

    #[test]
    fn unknown_service_types() {
        let chat = chat_service(PRIVILEGE_CHAT_APP, 3600, "").unwrap();
        // Sorted by type, an unknown type after chat leaves chat readable.
        let token = token_from(&[chat.clone(), packed(200, &[9, 9, 9])]);
        assert!(verify(&token, APP_ID, CERT, 1_700_000_000).is_ok());
        // Before chat, the rest cannot be walked.
        let token = token_from(&[chat, packed(0, &[9, 9, 9])]);
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_000),
            Err(TokenError::Corrupt)
        );
    }

    #[test]
    fn ambiguous_chat_grants_are_rejected() {
        let both = packed(
            SERVICE_CHAT,
            &[2, 0, 1, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 0, 1, 0, b'u'],
        );
        let token = token_from(&[both]);
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_000),
            Err(TokenError::Corrupt)
        );

        let nameless_user = chat_service(PRIVILEGE_CHAT_USER, 3600, "").unwrap();
        let token = token_from(&[nameless_user]);
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_000),
            Err(TokenError::Corrupt)
        );

        let no_privilege = packed(SERVICE_CHAT, &[0, 0, 1, 0, b'u']);
        let token = token_from(&[no_privilege]);
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_000),
            Err(TokenError::Corrupt)
        );

        let a = chat_service(PRIVILEGE_CHAT_APP, 3600, "").unwrap();
        let b = chat_service(PRIVILEGE_CHAT_USER, 3600, "u").unwrap();
        let token = token_from(&[a, b]);
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_000),
            Err(TokenError::Corrupt)
        );
    }

    #[test]
    fn privilege_expiry_can_end_the_token_early() {
        let short = chat_service(PRIVILEGE_CHAT_APP, 60, "").unwrap();
        let claims = verify(&token_from(&[short]), APP_ID, CERT, 1_700_000_000).unwrap();
        assert_eq!(claims.expires_at, 1_700_000_060);

        let unlimited = chat_service(PRIVILEGE_CHAT_APP, 0, "").unwrap();
        let claims = verify(&token_from(&[unlimited]), APP_ID, CERT, 1_700_000_000).unwrap();
        assert_eq!(claims.expires_at, 1_700_003_600);

        let longer = chat_service(PRIVILEGE_CHAT_APP, 999_999, "").unwrap();
        let claims = verify(&token_from(&[longer]), APP_ID, CERT, 1_700_000_000).unwrap();
        assert_eq!(claims.expires_at, 1_700_003_600);
    }

    #[test]
    fn expiry_does_not_overflow() {
        let token = mint_app_token_at(APP_ID, CERT, u32::MAX, u32::MAX, 1);
        let claims = verify(&token, APP_ID, CERT, 0).unwrap();
        assert_eq!(claims.expires_at, 2 * u64::from(u32::MAX));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut content = inflated(VECTOR_APP);
        content.push(0);
        assert_eq!(
            verify(&raw_token(&content), APP_ID, CERT, 1_700_000_100),
            Err(TokenError::Corrupt)
        );

        let mut compressed = STANDARD.decode(&VECTOR_APP[3..]).unwrap();
        compressed.push(0);
        let token = format!("{VERSION}{}", STANDARD.encode(&compressed));
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_100),
            Err(TokenError::Corrupt)
        );
    }

    #[test]
    fn bad_zlib_checksum_is_rejected() {
        let mut compressed = STANDARD.decode(&VECTOR_APP[3..]).unwrap();
        let last = compressed.len() - 1;
        compressed[last] ^= 1;
        let token = format!("{VERSION}{}", STANDARD.encode(&compressed));
        assert_eq!(
            verify(&token, APP_ID, CERT, 1_700_000_100),
            Err(TokenError::Corrupt)
        );
    }

    #[test]
    fn zlib_bombs_are_refused() {
        let at_limit = raw_token(&vec![0; MAX_INFLATED_LEN]);
        assert_eq!(
            inflate(&STANDARD.decode(&at_limit[3..]).unwrap())
                .unwrap()
                .len(),
            MAX_INFLATED_LEN
        );
        assert_eq!(peek_app_id(&at_limit), Err(TokenError::Corrupt));

        let bomb = raw_token(&vec![0; 8 * 1024 * 1024]);
        assert!(bomb.len() <= MAX_TOKEN_LEN);
        assert_eq!(peek_app_id(&bomb), Err(TokenError::Corrupt));
        assert_eq!(verify(&bomb, APP_ID, CERT, 0), Err(TokenError::Corrupt));

        let huge = format!("007{}", "A".repeat(MAX_TOKEN_LEN + 4));
        assert_eq!(verify(&huge, APP_ID, CERT, 0), Err(TokenError::Corrupt));
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        // Signature length claims 65535 bytes.
        assert_eq!(
            peek_app_id(&raw_token(&[0xff, 0xff, 1, 2, 3])),
            Err(TokenError::Corrupt)
        );
        // Short signature.
        assert_eq!(
            peek_app_id(&raw_token(&[1, 0, 7])),
            Err(TokenError::Corrupt)
        );
        // Valid header, service count huge, nothing behind it.
        let mut content = vec![32, 0];
        content.extend_from_slice(&[0; 32]);
        content.extend_from_slice(&[1, 0, b'a']);
        content.extend_from_slice(&[0; 12]);
        content.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(peek_app_id(&raw_token(&content)), Err(TokenError::Corrupt));
        // Chat privilege map claiming 65535 entries.
        content.truncate(content.len() - 2);
        content.extend_from_slice(&[1, 0, 5, 0, 0xff, 0xff, 1, 0]);
        assert_eq!(peek_app_id(&raw_token(&content)), Err(TokenError::Corrupt));
        // Non-UTF-8 app id.
        let mut content = vec![32, 0];
        content.extend_from_slice(&[0; 32]);
        content.extend_from_slice(&[1, 0, 0xff]);
        content.extend_from_slice(&[0; 14]);
        assert_eq!(peek_app_id(&raw_token(&content)), Err(TokenError::Corrupt));
        // Empty but well-formed inflated content, and empty compressed data.
        assert_eq!(peek_app_id(&raw_token(&[])), Err(TokenError::Corrupt));
        assert_eq!(peek_app_id("007"), Err(TokenError::Corrupt));
    }

    #[test]
    fn oversized_fields_mint_nothing() {
        let long = "u".repeat(usize::from(u16::MAX) + 1);
        assert_eq!(mint_user_token_at(APP_ID, CERT, &long, 60, 1, 1), "");
        assert_eq!(mint_app_token_at(&long, CERT, 60, 1, 1), "");
        assert_eq!(verify("", APP_ID, CERT, 0), Err(TokenError::Corrupt));
        let max = "u".repeat(usize::from(u16::MAX));
        assert!(!mint_user_token_at(APP_ID, CERT, &max, 60, 1, 1).is_empty());
    }
}
