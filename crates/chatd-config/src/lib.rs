//! chatd configuration.
//!
//! Sources, later ones winning: built-in defaults, a TOML file (`--config` or
//! `CHATD_CONFIG`), then `CHATD_*` environment variables, one per key
//! (`CHATD_LISTEN` sets `listen`). Every key is documented in
//! docs/configuration.md.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    pub listen: String,
    /// Directory holding the database and, under `files/`, uploaded files.
    pub data_dir: PathBuf,
    /// Base URL clients reach this server at, used in `uri` fields and file
    /// URLs. Empty: `http://` + `listen`.
    pub public_url: String,
    /// This node's id in message ids (0-1023).
    pub node_id: u16,
    /// Log format: `text` or `json`.
    pub log_format: String,

    /// The default app. When `app_id` is set, the default app is created or
    /// updated from these keys at start; otherwise one is generated on first
    /// start and saved in the data directory.
    pub app_id: Option<String>,
    pub app_certificate: Option<String>,
    pub org_name: Option<String>,
    pub app_name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// REST calls per second per endpoint for the default app; 0 = unlimited.
    pub rate_calls_per_sec: u32,
    /// One-to-one messages per minute (one per recipient) for the default
    /// app; 0 = unlimited.
    pub rate_msgs_per_min: u32,
    /// Whether REST-sent messages enter conversation lists (default app).
    pub rest_messages_in_conversations: bool,

    /// Lifetime of tokens issued by `POST /token` when the request has no
    /// `ttl`, in seconds.
    pub token_ttl_secs: u64,
    /// Largest request body accepted by JSON endpoints, in bytes; larger
    /// requests are refused with 413 before they are read whole.
    pub max_request_bytes: usize,
    /// The embedded database: `journal` or `sqlite`; empty (the default)
    /// means the one whose data is in `data_dir`, else `journal`.
    pub storage_engine: String,
    /// Most writes committed together in one storage transaction (`sqlite`
    /// engine).
    pub storage_max_batch: usize,
    /// Read-only database connections (`sqlite` engine).
    pub storage_readers: usize,
    /// Seconds after its last acknowledgement at which a device goes stale
    /// (`journal` engine): entries that the user's other devices have
    /// acknowledged are no longer kept in memory for it (they stay in the
    /// log and in history); should it come back, its delivery resumes after
    /// them. 0: devices never go stale.
    pub storage_stale_device_secs: u64,
    /// Seconds given to in-flight requests at shutdown.
    pub shutdown_grace_secs: u64,
    /// Seconds an HTTP connection may take to send a complete request head,
    /// counted from its accept and, kept alive, from its last answer; it is
    /// closed then. 0: no limit.
    pub http_idle_secs: u64,

    /// How long uploaded chat files are kept, in seconds; afterwards they
    /// answer `file_expired` and a background sweep removes their bytes.
    /// 0 keeps them forever.
    pub file_retention_secs: u64,
    /// Largest uploaded chat file of the default app, in bytes; larger
    /// uploads are refused with 413 as soon as they pass it.
    pub file_max_bytes: u64,
    /// Default side, in pixels, of the box image thumbnails are fitted into
    /// when the upload names no `thumbnail-width` / `thumbnail-height`.
    pub thumbnail_size: u32,

    /// Devices one user may have connected at once; one more disconnects
    /// the longest-connected.
    pub max_devices_per_user: usize,
    /// Messages sent to a device and not yet acknowledged, at most; past
    /// it, delivery to that device waits for acknowledgements.
    pub delivery_window: usize,
    /// Seconds between the server's pings on client connections.
    pub client_ping_secs: u64,
    /// Seconds without any frame from a client before it is disconnected.
    pub client_idle_secs: u64,
    /// Seconds a frame may take to reach a client before it counts as
    /// stalled and is disconnected.
    pub client_write_secs: u64,

    /// Offline push provider: `log`, `webhook` or `none`.
    pub push_provider: String,
    /// URL the webhook provider POSTs to.
    pub push_webhook_url: Option<String>,
    /// Timeout of one webhook attempt, in milliseconds.
    pub push_webhook_timeout_ms: u64,
    /// Attempts after the first one for a failed webhook call.
    pub push_webhook_retries: u32,
    /// Pushes waiting for the provider, at most; more are dropped and counted.
    pub push_queue: usize,
    /// Pushes in flight at once.
    pub push_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            public_url: String::new(),
            node_id: 0,
            log_format: "text".into(),
            app_id: None,
            app_certificate: None,
            org_name: None,
            app_name: None,
            client_id: None,
            client_secret: None,
            rate_calls_per_sec: 100,
            rate_msgs_per_min: 6000,
            rest_messages_in_conversations: false,
            token_ttl_secs: 60 * 24 * 3600,
            max_request_bytes: 256 * 1024,
            storage_engine: String::new(),
            storage_max_batch: 1024,
            storage_readers: 4,
            storage_stale_device_secs: 30 * 24 * 3600,
            shutdown_grace_secs: 10,
            http_idle_secs: 60,
            file_retention_secs: 7 * 24 * 3600,
            file_max_bytes: 10 * 1024 * 1024,
            thumbnail_size: 170,
            max_devices_per_user: 4,
            delivery_window: 256,
            client_ping_secs: 25,
            client_idle_secs: 60,
            client_write_secs: 10,
            push_provider: "log".into(),
            push_webhook_url: None,
            push_webhook_timeout_ms: 5000,
            push_webhook_retries: 3,
            push_queue: 10_000,
            push_concurrency: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// Environment variables that select the file or are read elsewhere (the
/// log filter, the client commands' token), not keys.
const NOT_KEYS: &[&str] = &["CONFIG", "LOG", "TOKEN"];

impl Config {
    /// Loads defaults, then `file` (if any), then `CHATD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig.merge(
            Env::prefixed("CHATD_")
                .filter(|k| !NOT_KEYS.iter().any(|n| k.as_str().eq_ignore_ascii_case(n))),
        );
        fig.extract().map_err(|e| ConfigError(Box::new(e)))
    }

    /// `public_url` without a trailing slash, derived from `listen` if empty.
    pub fn public_base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    pub fn db_dir(&self) -> &Path {
        &self.data_dir
    }
}

#[cfg(test)]
// figment's Jail API returns its (large) error type by value.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn env_overrides_file_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "chatd.toml",
                "listen = \"0.0.0.0:9000\"\nrate_calls_per_sec = 5\n",
            )?;
            jail.set_env("CHATD_RATE_CALLS_PER_SEC", "0");
            jail.set_env("CHATD_PUBLIC_URL", "https://chat.example.com/");
            jail.set_env("CHATD_CONFIG", "ignored-here");
            jail.set_env("CHATD_TOKEN", "read by the client commands");
            jail.set_env("CHATD_LOG", "debug");
            let c = Config::load(Some(Path::new("chatd.toml"))).expect("loads");
            assert_eq!(c.listen, "0.0.0.0:9000");
            assert_eq!(c.rate_calls_per_sec, 0);
            assert_eq!(c.rate_msgs_per_min, 6000);
            assert_eq!(c.public_base_url(), "https://chat.example.com");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("chatd.toml", "lisen = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("chatd.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn public_url_defaults_to_listen() {
        let c = Config::default();
        assert_eq!(c.public_base_url(), "http://127.0.0.1:8080");
    }
}
