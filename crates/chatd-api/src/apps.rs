//! The apps this server hosts, looked up by either path form.

use crate::error::ApiError;
use crate::state::ApiState;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chatd_core::AppRecord;
use chatd_storage::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Index {
    by_app_id: HashMap<String, Arc<AppRecord>>,
    by_name: HashMap<(String, String), Arc<AppRecord>>,
}

/// An in-memory index of the stored apps. Apps created by `chatd app
/// create` while the server runs are picked up on the first request that
/// names them: a miss reloads the index, at most once a second.
pub struct AppRegistry {
    store: Arc<dyn Store>,
    index: RwLock<Index>,
    last_reload: Mutex<Option<Instant>>,
}

const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl AppRegistry {
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, chatd_storage::StorageError> {
        let r = Self {
            store,
            index: RwLock::new(Index::default()),
            last_reload: Mutex::new(None),
        };
        r.reload().await?;
        Ok(r)
    }

    async fn reload(&self) -> Result<(), chatd_storage::StorageError> {
        let apps = self.store.list_apps().await?;
        let mut idx = Index::default();
        for a in apps {
            let a = Arc::new(a);
            idx.by_app_id
                .insert(a.app_id.to_ascii_lowercase(), a.clone());
            idx.by_name.insert(
                (
                    a.org_name.to_ascii_lowercase(),
                    a.app_name.to_ascii_lowercase(),
                ),
                a,
            );
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = idx;
        Ok(())
    }

    async fn reload_if_due(&self) {
        let due = {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= RELOAD_INTERVAL);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "reloading apps failed");
            }
        }
    }

    pub async fn by_app_id(&self, app_id: &str) -> Option<Arc<AppRecord>> {
        let key = app_id.to_ascii_lowercase();
        if let Some(a) = self.lookup(|i| i.by_app_id.get(&key).cloned()) {
            return Some(a);
        }
        self.reload_if_due().await;
        self.lookup(|i| i.by_app_id.get(&key).cloned())
    }

    pub async fn by_name(&self, org: &str, app: &str) -> Option<Arc<AppRecord>> {
        let key = (org.to_ascii_lowercase(), app.to_ascii_lowercase());
        if let Some(a) = self.lookup(|i| i.by_name.get(&key).cloned()) {
            return Some(a);
        }
        self.reload_if_due().await;
        self.lookup(|i| i.by_name.get(&key).cloned())
    }

    /// Replaces one app in the index (after it was stored).
    pub fn put(&self, app: AppRecord) {
        let a = Arc::new(app);
        let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
        idx.by_app_id
            .insert(a.app_id.to_ascii_lowercase(), a.clone());
        idx.by_name.insert(
            (
                a.org_name.to_ascii_lowercase(),
                a.app_name.to_ascii_lowercase(),
            ),
            a,
        );
    }

    fn lookup(&self, f: impl FnOnce(&Index) -> Option<Arc<AppRecord>>) -> Option<Arc<AppRecord>> {
        f(&self.index.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The answer for a path that names no app this server hosts.
pub(crate) fn app_not_found(path: &str, name: &str) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "organization_application_not_found",
        format!(
            "Could not find application for {name} from URI: {}",
            path.trim_start_matches('/')
        ),
        "OrganizationApplicationNotFoundException",
    )
    .into_response()
}

fn original_path(req: &Request) -> &str {
    req.extensions()
        .get::<OriginalUri>()
        .map(|u| u.path())
        .unwrap_or_else(|| req.uri().path())
}

/// A path whose parameters are not valid percent-encoded UTF-8 names no
/// resource: answered like an unknown route, in the service's error JSON.
fn undecodable(req: &Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        format!("No resource at {}", original_path(req)),
        "ResourceNotFoundException",
    )
    .into_response()
}

/// Middleware for `/app-id/{app_id}/…`.
pub async fn resolve_by_id(
    State(state): State<Arc<ApiState>>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let Ok(Path(params)) = params else {
        return undecodable(&req);
    };
    let app_id = params.get("app_id").cloned().unwrap_or_default();
    match state.apps.by_app_id(&app_id).await {
        Some(app) => {
            req.extensions_mut().insert(app);
            next.run(req).await
        }
        None => app_not_found(original_path(&req), &app_id),
    }
}

/// Middleware for `/{org_name}/{app_name}/…`.
pub async fn resolve_by_name(
    State(state): State<Arc<ApiState>>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let Ok(Path(params)) = params else {
        return undecodable(&req);
    };
    let org = params.get("org_name").cloned().unwrap_or_default();
    let name = params.get("app_name").cloned().unwrap_or_default();
    match state.apps.by_name(&org, &name).await {
        Some(app) => {
            req.extensions_mut().insert(app);
            next.run(req).await
        }
        None => app_not_found(original_path(&req), &format!("{org}/{name}")),
    }
}
