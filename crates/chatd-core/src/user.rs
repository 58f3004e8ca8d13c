//! Users of an app.

use serde::{Deserialize, Serialize};

/// Longest username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;
/// Longest push nickname, in bytes.
pub const MAX_NICKNAME_BYTES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub uuid: String,
    /// Always lowercase: usernames are case-insensitive.
    pub username: String,
    pub password_hash: Option<String>,
    pub nickname: Option<String>,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub activated: bool,
}

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: Option<String>,
    pub nickname: Option<String>,
}

/// Why a username is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameProblem {
    Empty,
    TooLong,
    IllegalCharacter,
}

/// Checks a username against the service's rules (a-z, A-Z, 0-9, `_`, `-`, `.`;
/// at most 64 bytes) and returns its canonical lowercase form.
pub fn normalize_username(name: &str) -> Result<String, UsernameProblem> {
    if name.is_empty() {
        return Err(UsernameProblem::Empty);
    }
    if name.len() > MAX_USERNAME_BYTES {
        return Err(UsernameProblem::TooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(UsernameProblem::IllegalCharacter);
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_case_insensitive_and_checked() {
        assert_eq!(normalize_username("User_1.a-b").unwrap(), "user_1.a-b");
        assert_eq!(normalize_username(""), Err(UsernameProblem::Empty));
        assert_eq!(
            normalize_username(&"a".repeat(65)),
            Err(UsernameProblem::TooLong)
        );
        assert!(normalize_username(&"a".repeat(64)).is_ok());
        assert_eq!(
            normalize_username("a b"),
            Err(UsernameProblem::IllegalCharacter)
        );
        assert_eq!(
            normalize_username("名字"),
            Err(UsernameProblem::IllegalCharacter)
        );
    }
}
