//! One entry point for every token, with a cache of verified tokens.

use crate::accesstoken2::{self, ChatPrivilege, TokenError};
use crate::issued::{self, IssuedError, IssuedKind};
use quick_cache::sync::Cache;
use std::sync::Arc;

/// Who a token speaks for, within its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The app's administrator.
    App,
    /// One user (lowercase username).
    User(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: Principal,
    /// Unix seconds at which the token stops being valid; 0 = never.
    pub expires_at: u64,
}

/// The failures the API distinguishes, one per row of the service's token
/// error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token is malformed")]
    Corrupt,
    /// Well-formed but not valid here: another app, another certificate or
    /// a forged signature.
    #[error("token not recognised")]
    Unknown,
}

/// The credentials a token is checked against.
#[derive(Debug, Clone, Copy)]
pub struct AppKeys<'a> {
    pub app_id: &'a str,
    pub app_certificate: &'a str,
}

struct CacheEntry {
    app_id: String,
    app_certificate: String,
    verified: Verified,
}

pub struct Authenticator {
    /// Entries are shared: a hit costs a reference count, not copies of the
    /// app's keys.
    cache: Cache<String, Arc<CacheEntry>>,
}

impl Authenticator {
    /// `capacity`: how many verified tokens to remember.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: Cache::new(capacity.max(1)),
        }
    }

    /// Verifies `token` for the app with `keys` at `now_secs`.
    pub fn verify(
        &self,
        token: &str,
        keys: AppKeys<'_>,
        now_secs: u64,
    ) -> Result<Verified, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if let Some(hit) = self.cache.get(token) {
            // The entry is only good for the same app and certificate: a
            // rotated certificate must not keep old tokens alive.
            if hit.app_id == keys.app_id && hit.app_certificate == keys.app_certificate {
                if hit.verified.expires_at != 0 && now_secs >= hit.verified.expires_at {
                    self.cache.remove(token);
                    return Err(AuthError::Expired);
                }
                return Ok(hit.verified.clone());
            }
        }
        let verified = verify_uncached(token, keys, now_secs)?;
        // Only successes are cached: a flood of bad tokens cannot evict good ones
        // faster than it could by sending good ones.
        self.cache.insert(
            token.to_string(),
            Arc::new(CacheEntry {
                app_id: keys.app_id.to_string(),
                app_certificate: keys.app_certificate.to_string(),
                verified: verified.clone(),
            }),
        );
        Ok(verified)
    }
}

fn verify_uncached(token: &str, keys: AppKeys<'_>, now_secs: u64) -> Result<Verified, AuthError> {
    if accesstoken2::is_access_token2(token) {
        let claims = accesstoken2::verify(token, keys.app_id, keys.app_certificate, now_secs)
            .map_err(|e| match e {
                TokenError::Corrupt => AuthError::Corrupt,
                TokenError::BadSignature | TokenError::WrongApp => AuthError::Unknown,
                TokenError::Expired => AuthError::Expired,
            })?;
        let principal = match claims.privilege {
            ChatPrivilege::App => Principal::App,
            ChatPrivilege::User(u) => Principal::User(u.to_ascii_lowercase()),
        };
        return Ok(Verified {
            principal,
            expires_at: claims.expires_at,
        });
    }
    if issued::is_issued(token) {
        let claims = issued::verify(token, keys.app_id, keys.app_certificate, now_secs).map_err(
            |e| match e {
                IssuedError::Corrupt => AuthError::Corrupt,
                IssuedError::Unknown => AuthError::Unknown,
                IssuedError::Expired => AuthError::Expired,
            },
        )?;
        let principal = match claims.kind {
            IssuedKind::App => Principal::App,
            IssuedKind::User(u) => Principal::User(u),
        };
        return Ok(Verified {
            principal,
            expires_at: claims.expires_at,
        });
    }
    Err(AuthError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "0123456789abcdef0123456789abcdef";
    const CERT: &str = "fedcba9876543210fedcba9876543210";
    const KEYS: AppKeys<'static> = AppKeys {
        app_id: APP,
        app_certificate: CERT,
    };

    #[test]
    fn both_families_verify_and_map_to_principals() {
        let a = Authenticator::new(100);
        let now = 1_700_000_100;
        let t = accesstoken2::mint_user_token_at(APP, CERT, "Bob", 3600, 1_700_000_000, 7);
        assert_eq!(
            a.verify(&t, KEYS, now).unwrap().principal,
            Principal::User("bob".into())
        );
        let i = issued::issue(APP, CERT, &IssuedKind::App, now, 10);
        assert_eq!(a.verify(&i, KEYS, now).unwrap().principal, Principal::App);
        assert_eq!(a.verify("", KEYS, now), Err(AuthError::Missing));
        assert_eq!(a.verify("garbage", KEYS, now), Err(AuthError::Corrupt));
    }

    #[test]
    fn cached_tokens_still_expire_and_stay_bound_to_their_app() {
        let a = Authenticator::new(100);
        let t = accesstoken2::mint_app_token_at(APP, CERT, 100, 1_000, 1);
        assert!(a.verify(&t, KEYS, 1_050).is_ok());
        assert_eq!(a.verify(&t, KEYS, 1_100), Err(AuthError::Expired));
        assert!(
            a.verify(&t, KEYS, 1_050).is_ok(),
            "re-verified from scratch"
        );
        let rotated = AppKeys {
            app_id: APP,
            app_certificate: "00000000000000000000000000000000",
        };
        assert_eq!(a.verify(&t, rotated, 1_050), Err(AuthError::Unknown));
        let other = AppKeys {
            app_id: "1123456789abcdef0123456789abcdef",
            app_certificate: CERT,
        };
        assert_eq!(a.verify(&t, other, 1_050), Err(AuthError::Unknown));
    }
}
