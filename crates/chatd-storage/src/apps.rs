//! The app registry: the tenants of one chatd and their credentials.
//!
//! Apps are few and rarely written, but they are written by more than one
//! process: `chatd app create` and `chatd token app` run beside a serving
//! chatd, which reloads the registry when a request names an app it does not
//! know. So the registry is a SQLite table (several processes may share a
//! SQLite file) whatever engine holds the messages: inside `chatd.db` for the
//! `sqlite` engine, in its own `apps.db` beside the journal, whose log one
//! process holds at a time.

use crate::{Result, StorageError};
use async_trait::async_trait;
use chatd_core::AppRecord;
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The registry's own file, for the engines whose database one process
/// holds at a time.
pub(crate) const APPS_FILE: &str = "apps.db";

pub(crate) const APPS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS apps (
    key INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL UNIQUE,
    app_certificate TEXT NOT NULL,
    org_name TEXT NOT NULL,
    app_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    settings TEXT NOT NULL,
    UNIQUE (org_name, app_name)
);
"#;

/// Reads and writes the app registry.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Every app.
    async fn list_apps(&self) -> Result<Vec<AppRecord>>;
    /// Inserts the app, or replaces the one with the same `app_id`;
    /// returns it with its storage key.
    async fn upsert_app(&self, app: AppRecord) -> Result<AppRecord>;
}

pub(crate) fn list_apps(c: &Connection) -> Result<Vec<AppRecord>> {
    let mut st = c.prepare_cached(
        "SELECT key, uuid, app_id, app_certificate, org_name, app_name, client_id, \
         client_secret, created_ms, settings FROM apps ORDER BY key",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            AppRecord {
                key: r.get(0)?,
                uuid: r.get(1)?,
                app_id: r.get(2)?,
                app_certificate: r.get(3)?,
                org_name: r.get(4)?,
                app_name: r.get(5)?,
                client_id: r.get(6)?,
                client_secret: r.get(7)?,
                created_ms: r.get(8)?,
                settings: Default::default(),
            },
            r.get::<_, String>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut app, settings) = row?;
        app.settings = serde_json::from_str(&settings)
            .map_err(|e| StorageError::Corrupt(format!("app settings: {e}")))?;
        out.push(app);
    }
    Ok(out)
}

pub(crate) fn upsert_app(c: &Connection, mut app: AppRecord) -> Result<AppRecord> {
    let settings =
        serde_json::to_string(&app.settings).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let (key, uuid, created_ms) = c
        .prepare_cached(
            "INSERT INTO apps (uuid, app_id, app_certificate, org_name, app_name, client_id, \
             client_secret, created_ms, settings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (app_id) DO UPDATE SET app_certificate = excluded.app_certificate, \
             org_name = excluded.org_name, app_name = excluded.app_name, \
             client_id = excluded.client_id, client_secret = excluded.client_secret, \
             settings = excluded.settings RETURNING key, uuid, created_ms",
        )?
        .query_row(
            params![
                app.uuid,
                app.app_id,
                app.app_certificate,
                app.org_name,
                app.app_name,
                app.client_id,
                app.client_secret,
                app.created_ms,
                settings
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
    app.key = key;
    app.uuid = uuid;
    app.created_ms = created_ms;
    Ok(app)
}

/// The registry in a SQLite file of its own connection.
pub struct SqliteApps {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteApps {
    /// Opens (creating if needed) the registry in the SQLite file `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(APPS_SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Creates the tables of `schema` if they are missing.
    pub(crate) fn execute_schema(&self, schema: &str) -> Result<()> {
        let c = self.conn.lock().map_err(|_| StorageError::Closed)?;
        c.execute_batch(schema)?;
        Ok(())
    }

    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().map_err(|_| StorageError::Closed)?;
            f(&c)
        })
        .await
        .map_err(|e| StorageError::Corrupt(format!("app registry task failed: {e}")))?
    }
}

#[async_trait]
impl AppStore for SqliteApps {
    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        self.with(list_apps).await
    }

    async fn upsert_app(&self, app: AppRecord) -> Result<AppRecord> {
        // One statement: atomic on its own.
        self.with(move |c| upsert_app(c, app)).await
    }
}
