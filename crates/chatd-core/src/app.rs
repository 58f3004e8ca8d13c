//! Apps: the tenants of a chatd server.

use serde::{Deserialize, Serialize};

/// Per-app limits. Defaults are the hosted service's documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppLimits {
    /// REST calls per second per endpoint; 0 = unlimited.
    pub calls_per_sec: u32,
    /// One-to-one messages per minute, counted per recipient; 0 = unlimited.
    pub msgs_per_min: u32,
    /// Largest `to` list of one send request.
    pub max_recipients: u32,
    /// Largest `body` + `ext`, in bytes of their compact JSON.
    pub max_message_bytes: u32,
    /// Largest uploaded chat file, in bytes.
    pub max_file_bytes: u64,
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            calls_per_sec: 100,
            msgs_per_min: 6000,
            max_recipients: 600,
            max_message_bytes: 5 * 1024,
            max_file_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Per-app behaviour switches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub limits: AppLimits,
    /// Whether messages sent through REST enter the conversation list
    /// (off by default, as on the hosted service).
    pub rest_messages_in_conversations: bool,
}

/// One app as stored: identity, credentials and settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Storage key, assigned by the store; 0 until stored.
    pub key: i64,
    /// The `application` UUID returned by the token endpoint.
    pub uuid: String,
    /// 32 lowercase hex characters.
    pub app_id: String,
    /// 32 lowercase hex characters; signs AccessToken2 tokens.
    pub app_certificate: String,
    pub org_name: String,
    pub app_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub created_ms: i64,
    pub settings: AppSettings,
}

impl AppRecord {
    /// A new app with freshly generated identifiers and credentials.
    pub fn generate(org_name: &str, app_name: &str, now_ms: i64) -> Self {
        Self {
            key: 0,
            uuid: crate::ids::uuid_v4_string(),
            app_id: crate::ids::random_hex(16),
            app_certificate: crate::ids::random_hex(16),
            org_name: org_name.to_string(),
            app_name: app_name.to_string(),
            client_id: format!("YXA6{}", crate::ids::random_token(22)),
            client_secret: format!("YXA6{}", crate::ids::random_token(27)),
            created_ms: now_ms,
            settings: AppSettings::default(),
        }
    }

    /// `org#app`, the "app key" of the hosted service.
    pub fn app_key(&self) -> String {
        format!("{}#{}", self.org_name, self.app_name)
    }
}

/// Whether `s` is a valid org or app name: the hosted service allows
/// letters, digits and `-`; chatd also allows `_` and `.`.
pub fn is_valid_app_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s != "app-id"
}

/// Whether `s` is a valid App ID or App Certificate: 32 hex characters.
pub fn is_valid_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
