//! What the handlers share.

use crate::apps::AppRegistry;
use chatd_auth::Authenticator;
use chatd_pipeline::Pipeline;
use chatd_storage::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

pub struct ApiState {
    pub apps: AppRegistry,
    pub pipeline: Pipeline,
    pub auth: Authenticator,
    /// Base URL for `uri` fields, without a trailing slash.
    pub public_url: String,
    /// Largest JSON request body, in bytes.
    pub max_request_bytes: usize,
    /// Lifetime of issued tokens whose request names none.
    pub token_ttl_secs: u64,
    pub metrics: Option<PrometheusHandle>,
    /// Uploaded chat files.
    pub files: Arc<dyn chatd_files::FileStore>,
    /// Client connections' settings.
    pub clients: ClientSettings,
    /// Turns true when the server shuts down: client connections close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Settings of client (WebSocket) connections.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Devices one user may have connected at once; one more kicks the
    /// longest-connected.
    pub max_devices: usize,
    /// Messages sent to a device and not yet acknowledged, at most.
    pub window: usize,
    /// Seconds between server pings.
    pub ping_secs: u64,
    /// Seconds of silence after which a connection is closed.
    pub idle_secs: u64,
    /// Seconds a client has to authenticate after connecting.
    pub auth_secs: u64,
    /// Seconds a frame may take to be written before the client counts as
    /// stalled and is disconnected.
    pub write_secs: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            max_devices: 4,
            window: 256,
            ping_secs: 25,
            idle_secs: 60,
            auth_secs: 10,
            write_secs: 10,
        }
    }
}

impl ApiState {
    pub fn store(&self) -> &Arc<dyn Store> {
        self.pipeline.store()
    }
}
