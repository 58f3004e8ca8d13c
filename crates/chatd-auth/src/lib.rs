//! Authentication for chatd.
//!
//! Two token families are accepted on every endpoint:
//! - [`accesstoken2`]: Agora AccessToken2 (`007…`), minted by app servers
//!   from the App ID and App Certificate;
//! - [`issued`]: tokens chatd issues itself from `POST …/token`.
//!
//! [`Authenticator`] verifies either and caches successes, because an
//! AccessToken2 costs an inflate and three HMACs while a keep-alive client
//! sends the same token with every request.

pub mod accesstoken2;
mod authenticator;
pub mod issued;
pub mod password;

pub use authenticator::{AppKeys, AuthError, Authenticator, Principal, Verified};

/// Compares two secrets in time that depends on their length only, so that
/// an attacker cannot learn a secret byte by byte from response times.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(super::same_secret("abc", "abc"));
        assert!(!super::same_secret("abc", "abd"));
        assert!(!super::same_secret("abc", "abcd"));
        assert!(super::same_secret("", ""));
    }
}
