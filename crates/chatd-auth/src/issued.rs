//! Tokens issued by chatd's token endpoint.
//!
//! Layout: `YWMt` followed by unpadded URL-safe base64 of
//! `version(1) kind(1) app_id(16) issued(8) expires(8) name_len(1) name mac(16)`
//! (integers big-endian; `expires` 0 = never). The MAC is HMAC-SHA256 over
//! everything before it, truncated to 16 bytes, keyed by a key derived from
//! the app's certificate: rotating the certificate revokes every issued
//! token of the app. Verification is stateless.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const PREFIX: &str = "YWMt";
const VERSION: u8 = 1;
const KIND_APP: u8 = 1;
const KIND_USER: u8 = 2;
const MAC_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 1 + 16 + 8 + 8 + 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuedKind {
    App,
    User(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedClaims {
    pub app_id: String,
    pub kind: IssuedKind,
    pub issued_at: u64,
    /// 0 = never expires.
    pub expires_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssuedError {
    #[error("not a well-formed issued token")]
    Corrupt,
    #[error("token of another app or another certificate")]
    Unknown,
    #[error("token has expired")]
    Expired,
}

fn mac_key(app_certificate: &str) -> Hmac<Sha256> {
    let mut derive = Hmac::<Sha256>::new_from_slice(app_certificate.as_bytes())
        .expect("HMAC accepts any key length");
    derive.update(b"chatd issued token v1");
    let key = derive.finalize().into_bytes();
    Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length")
}

/// Issues a token; `ttl_secs` 0 = never expires. Names longer than 255
/// bytes cannot be encoded (usernames are at most 64).
pub fn issue(
    app_id: &str,
    app_certificate: &str,
    kind: &IssuedKind,
    now_secs: u64,
    ttl_secs: u64,
) -> String {
    let app = hex::decode(app_id).unwrap_or_default();
    let mut app16 = [0u8; 16];
    let n = app.len().min(16);
    app16[..n].copy_from_slice(&app[..n]);
    let (kind_byte, name) = match kind {
        IssuedKind::App => (KIND_APP, ""),
        IssuedKind::User(u) => (KIND_USER, u.as_str()),
    };
    let name = &name.as_bytes()[..name.len().min(255)];
    let expires = if ttl_secs == 0 {
        0
    } else {
        now_secs.saturating_add(ttl_secs)
    };
    let mut buf = Vec::with_capacity(HEADER_LEN + name.len() + MAC_LEN);
    buf.push(VERSION);
    buf.push(kind_byte);
    buf.extend_from_slice(&app16);
    buf.extend_from_slice(&now_secs.to_be_bytes());
    buf.extend_from_slice(&expires.to_be_bytes());
    buf.push(name.len() as u8);
    buf.extend_from_slice(name);
    let mut mac = mac_key(app_certificate);
    mac.update(&buf);
    buf.extend_from_slice(&mac.finalize().into_bytes()[..MAC_LEN]);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(buf))
}

/// Whether the string has the issued-token prefix.
pub fn is_issued(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// Verifies an issued token for the given app.
pub fn verify(
    token: &str,
    app_id: &str,
    app_certificate: &str,
    now_secs: u64,
) -> Result<IssuedClaims, IssuedError> {
    let body = token.strip_prefix(PREFIX).ok_or(IssuedError::Corrupt)?;
    if body.len() > 1024 {
        return Err(IssuedError::Corrupt);
    }
    let buf = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| IssuedError::Corrupt)?;
    if buf.len() < HEADER_LEN + MAC_LEN || buf[0] != VERSION {
        return Err(IssuedError::Corrupt);
    }
    let name_len = buf[HEADER_LEN - 1] as usize;
    if buf.len() != HEADER_LEN + name_len + MAC_LEN {
        return Err(IssuedError::Corrupt);
    }
    let (signed, tag) = buf.split_at(HEADER_LEN + name_len);
    let token_app = hex::encode(&signed[2..18]);
    if !token_app.eq_ignore_ascii_case(app_id) {
        return Err(IssuedError::Unknown);
    }
    let mut mac = mac_key(app_certificate);
    mac.update(signed);
    mac.verify_truncated_left(tag)
        .map_err(|_| IssuedError::Unknown)?;
    let kind = match signed[1] {
        KIND_APP if name_len == 0 => IssuedKind::App,
        KIND_USER if name_len > 0 => IssuedKind::User(
            String::from_utf8(signed[HEADER_LEN..].to_vec()).map_err(|_| IssuedError::Corrupt)?,
        ),
        _ => return Err(IssuedError::Corrupt),
    };
    let issued_at = u64::from_be_bytes(signed[18..26].try_into().expect("8 bytes"));
    let expires_at = u64::from_be_bytes(signed[26..34].try_into().expect("8 bytes"));
    if expires_at != 0 && now_secs >= expires_at {
        return Err(IssuedError::Expired);
    }
    Ok(IssuedClaims {
        app_id: app_id.to_string(),
        kind,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "0123456789abcdef0123456789abcdef";
    const CERT: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn round_trip_app_and_user() {
        let t = issue(APP, CERT, &IssuedKind::App, 1000, 60);
        let c = verify(&t, APP, CERT, 1059).unwrap();
        assert_eq!(c.kind, IssuedKind::App);
        assert_eq!(c.expires_at, 1060);
        assert_eq!(verify(&t, APP, CERT, 1060), Err(IssuedError::Expired));

        let u = issue(APP, CERT, &IssuedKind::User("alice".into()), 1000, 0);
        let c = verify(&u, APP, CERT, u64::MAX - 1).unwrap();
        assert_eq!(c.kind, IssuedKind::User("alice".into()));
        assert_eq!(c.expires_at, 0, "ttl 0 never expires");
    }

    #[test]
    fn other_apps_certificates_and_edits_are_refused() {
        let t = issue(APP, CERT, &IssuedKind::App, 1000, 60);
        let other_app = "1123456789abcdef0123456789abcdef";
        assert_eq!(verify(&t, other_app, CERT, 1001), Err(IssuedError::Unknown));
        assert_eq!(
            verify(&t, APP, "00000000000000000000000000000000", 1001),
            Err(IssuedError::Unknown)
        );
        for i in PREFIX.len()..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(b).unwrap();
            if edited != t {
                assert!(verify(&edited, APP, CERT, 1001).is_err(), "edit at {i}");
            }
        }
        assert_eq!(verify("YWMt!!", APP, CERT, 1), Err(IssuedError::Corrupt));
        assert_eq!(verify("YWMt", APP, CERT, 1), Err(IssuedError::Corrupt));
        assert_eq!(
            verify(&t[..t.len() - 3], APP, CERT, 1),
            Err(IssuedError::Corrupt)
        );
    }
}
