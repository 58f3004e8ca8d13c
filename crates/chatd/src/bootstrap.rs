//! Opening the data directory and making sure the default app exists.

use anyhow::{bail, Context};
use chatd_config::Config;
use chatd_core::app::{is_valid_app_name, is_valid_hex32};
use chatd_core::AppRecord;
use chatd_storage::{
    AppStore, LsmOptions, LsmStore, SqliteApps, SqliteOptions, SqliteStore, Store,
};
use std::sync::Arc;

/// The configured storage engine.
enum Engine {
    Sqlite,
    Lsm,
}

/// The configured engine, once it is known that the data directory was not
/// written by the other one: a directory of one engine is never served (or
/// given an app registry) by the other as an empty store.
fn engine(config: &Config) -> anyhow::Result<Engine> {
    let dir = &config.data_dir;
    let sqlite_made = SqliteOptions::in_dir(dir).path.exists();
    let lsm = LsmOptions::in_dir(dir);
    let lsm_made = lsm.path.exists() || lsm.apps_path().exists();
    match config.storage_engine.as_str() {
        "sqlite" if lsm_made && !sqlite_made => bail!(
            "{} holds a database of the lsm engine: set storage_engine = \"lsm\" \
             (CHATD_STORAGE_ENGINE=lsm) to use it",
            dir.display()
        ),
        "lsm" if sqlite_made && !lsm_made => bail!(
            "{} holds a database of the sqlite engine: unset storage_engine (or set it \
             to \"sqlite\") to use it",
            dir.display()
        ),
        "sqlite" => Ok(Engine::Sqlite),
        "lsm" => Ok(Engine::Lsm),
        other => bail!("storage_engine must be \"lsm\" or \"sqlite\", not {other:?}"),
    }
}

/// Opens the configured embedded store in the data directory.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let context = || format!("opening the data directory {}", config.data_dir.display());
    match engine(config)? {
        Engine::Lsm => {
            let opts = LsmOptions {
                max_batch: config.storage_max_batch,
                ..LsmOptions::in_dir(&config.data_dir)
            };
            Ok(Arc::new(LsmStore::open(opts).with_context(context)?))
        }
        Engine::Sqlite => {
            let opts = SqliteOptions {
                max_batch: config.storage_max_batch,
                readers: config.storage_readers,
                ..SqliteOptions::in_dir(&config.data_dir)
            };
            Ok(Arc::new(SqliteStore::open(opts).with_context(context)?))
        }
    }
}

/// The app registry alone, which commands may open while a server holds the
/// data directory.
pub fn open_apps(config: &Config) -> anyhow::Result<Box<dyn AppStore>> {
    let path = match engine(config)? {
        Engine::Lsm => LsmOptions::in_dir(&config.data_dir).apps_path(),
        Engine::Sqlite => SqliteOptions::in_dir(&config.data_dir).path,
    };
    let apps = SqliteApps::open(&path)
        .with_context(|| format!("opening the app registry {}", path.display()))?;
    Ok(Box::new(apps))
}

/// What `ensure_default_app` did.
pub struct DefaultApp {
    pub app: AppRecord,
    /// Generated just now: its credentials should be shown once.
    pub generated: bool,
}

/// The default app is the one configured by `app_id` (created or updated
/// from the configuration), else the first stored app, else a new
/// generated one. Its limits always follow the configuration.
pub async fn ensure_default_app(
    store: &dyn AppStore,
    config: &Config,
) -> anyhow::Result<DefaultApp> {
    let apps = store.list_apps().await?;
    let (mut app, generated) = match &config.app_id {
        Some(id) => {
            let id = id.to_ascii_lowercase();
            if !is_valid_hex32(&id) {
                bail!("CHATD_APP_ID must be 32 hexadecimal characters");
            }
            let existing = apps.iter().find(|a| a.app_id == id).cloned();
            let mut app = existing.unwrap_or_else(|| {
                AppRecord::generate(
                    config.org_name.as_deref().unwrap_or("chatd"),
                    config.app_name.as_deref().unwrap_or("default"),
                    chatd_core::clock::now_ms(),
                )
            });
            app.app_id = id;
            (app, false)
        }
        None => match apps.first() {
            Some(a) => (a.clone(), false),
            None => (
                AppRecord::generate(
                    config.org_name.as_deref().unwrap_or("chatd"),
                    config.app_name.as_deref().unwrap_or("default"),
                    chatd_core::clock::now_ms(),
                ),
                true,
            ),
        },
    };
    if let Some(cert) = &config.app_certificate {
        if !is_valid_hex32(cert) {
            bail!("CHATD_APP_CERTIFICATE must be 32 hexadecimal characters");
        }
        app.app_certificate = cert.to_ascii_lowercase();
    }
    if let Some(org) = &config.org_name {
        app.org_name = org.clone();
    }
    if let Some(name) = &config.app_name {
        app.app_name = name.clone();
    }
    if !is_valid_app_name(&app.org_name) || !is_valid_app_name(&app.app_name) {
        bail!("org and app names may hold letters, digits, '-', '_' and '.' (and not be 'app-id')");
    }
    if let Some(id) = &config.client_id {
        app.client_id = id.clone();
    }
    if let Some(secret) = &config.client_secret {
        app.client_secret = secret.clone();
    }
    app.settings.limits.calls_per_sec = config.rate_calls_per_sec;
    app.settings.limits.msgs_per_min = config.rate_msgs_per_min;
    app.settings.limits.max_file_bytes = config.file_max_bytes;
    app.settings.rest_messages_in_conversations = config.rest_messages_in_conversations;
    let app = store.upsert_app(app).await?;
    Ok(DefaultApp { app, generated })
}

/// The app credentials as printed by `app create` and on first start.
pub fn describe_app(app: &AppRecord, base_url: &str) -> String {
    format!(
        "app_id:          {}\napp_certificate: {}\norg_name:        {}\napp_name:        {}\n\
         client_id:       {}\nclient_secret:   {}\nREST base URLs:  {base_url}/app-id/{}/  and  {base_url}/{}/{}/\n",
        app.app_id,
        app.app_certificate,
        app.org_name,
        app.app_name,
        app.client_id,
        app.client_secret,
        app.app_id,
        app.org_name,
        app.app_name
    )
}
