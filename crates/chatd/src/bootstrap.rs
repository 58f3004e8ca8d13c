//! Opening the data directory and making sure the default app exists.

use anyhow::{bail, Context};
use chatd_config::Config;
use chatd_core::app::{is_valid_app_name, is_valid_hex32};
use chatd_core::AppRecord;
use chatd_storage::{
    AppStore, JournalOptions, JournalStore, SqliteApps, SqliteOptions, SqliteStore, Store,
};
use std::sync::Arc;

/// The embedded storage engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Journal,
    Sqlite,
}

impl Engine {
    const ALL: [Engine; 2] = [Engine::Journal, Engine::Sqlite];

    fn name(self) -> &'static str {
        match self {
            Engine::Journal => "journal",
            Engine::Sqlite => "sqlite",
        }
    }

    /// Whether this engine's database is in `dir`.
    fn made_in(self, dir: &std::path::Path) -> bool {
        match self {
            Engine::Journal => JournalOptions::in_dir(dir).dir.exists(),
            Engine::Sqlite => SqliteOptions::in_dir(dir).path.exists(),
        }
    }

    /// Where this engine keeps the app registry.
    fn apps_path(self, dir: &std::path::Path) -> std::path::PathBuf {
        match self {
            Engine::Journal => JournalOptions::in_dir(dir).apps_path(),
            Engine::Sqlite => SqliteOptions::in_dir(dir).path,
        }
    }
}

/// The engine to use: the configured one, once it is known that the data
/// directory holds no other engine's database (a directory of one engine is
/// never served, or given an app registry, by another as an empty store);
/// unset, the engine whose database is there, or the journal for a new
/// directory.
fn engine(config: &Config) -> anyhow::Result<Engine> {
    let dir = &config.data_dir;
    let found: Vec<Engine> = Engine::ALL.into_iter().filter(|e| e.made_in(dir)).collect();
    // An app registry alone (`apps.db`, made by a command before any server
    // ran) belongs to the journal.
    let registry_only = found.is_empty() && JournalOptions::in_dir(dir).apps_path().exists();
    let wanted = match config.storage_engine.as_str() {
        "" => return Ok(found.first().copied().unwrap_or(Engine::Journal)),
        name => Engine::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                anyhow::anyhow!("storage_engine must be \"journal\" or \"sqlite\", not {name:?}")
            })?,
    };
    if let Some(other) = found.iter().find(|e| **e != wanted) {
        if !found.contains(&wanted) {
            bail!(
                "{} holds a database of the {} engine: set storage_engine = \"{}\" \
                 (CHATD_STORAGE_ENGINE={}) to use it",
                dir.display(),
                other.name(),
                other.name(),
                other.name()
            );
        }
    }
    if registry_only && wanted == Engine::Sqlite {
        bail!(
            "{} holds the app registry of the journal engine (apps.db): unset storage_engine \
             (or set it to \"journal\") to use it",
            dir.display()
        );
    }
    Ok(wanted)
}

/// Opens the configured embedded store in the data directory.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let context = || format!("opening the data directory {}", config.data_dir.display());
    match engine(config)? {
        Engine::Journal => {
            let opts = JournalOptions {
                stale_device_ms: i64::try_from(config.storage_stale_device_secs)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000),
                ..JournalOptions::in_dir(&config.data_dir)
            };
            Ok(Arc::new(JournalStore::open(opts).with_context(context)?))
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
    let path = engine(config)?.apps_path(&config.data_dir);
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
