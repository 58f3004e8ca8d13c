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
}

impl ApiState {
    pub fn store(&self) -> &Arc<dyn Store> {
        self.pipeline.store()
    }
}
