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
