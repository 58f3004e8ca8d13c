//! The subcommands other than `serve`.

use crate::bootstrap::{describe_app, ensure_default_app, open_apps};
use crate::cli::{AppCommand, Command, TokenCommand};
use anyhow::{bail, Context};
use chatd_auth::accesstoken2;
use chatd_config::Config;
use chatd_core::app::is_valid_app_name;
use chatd_core::AppRecord;
use chatd_storage::AppStore;

pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => crate::serve::serve(config).await,
        Command::App(cmd) => app(cmd, &config).await,
        Command::Token(cmd) => token(cmd, &config).await,
        Command::Listen {
            user,
            device,
            target,
            json,
        } => crate::client_commands::listen(&config, &target, &user, &device, json).await,
        Command::Send {
            from,
            to,
            text,
            target,
        } => crate::client_commands::send(&config, &target, from.as_deref(), &to, &text).await,
    }
}

async fn app(cmd: AppCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_apps(config)?;
    let result = match cmd {
        AppCommand::Create {
            org,
            name,
            calls_per_sec,
            msgs_per_min,
            max_file_bytes,
        } => {
            if !is_valid_app_name(&org) || !is_valid_app_name(&name) {
                bail!("org and app names may hold letters, digits, '-', '_' and '.'");
            }
            let apps = store.list_apps().await?;
            if apps.is_empty() {
                // The first app stored becomes the default one: make sure it is
                // the configured default, not this one.
                ensure_default_app(store.as_ref(), config).await?;
            }
            if store.list_apps().await?.iter().any(|a| {
                a.org_name.eq_ignore_ascii_case(&org) && a.app_name.eq_ignore_ascii_case(&name)
            }) {
                bail!("an app named {org}/{name} already exists");
            }
            let mut app = AppRecord::generate(&org, &name, chatd_core::clock::now_ms());
            app.settings.limits.calls_per_sec = calls_per_sec;
            app.settings.limits.msgs_per_min = msgs_per_min;
            app.settings.limits.max_file_bytes = max_file_bytes;
            let app = store.upsert_app(app).await?;
            print!("{}", describe_app(&app, &config.public_base_url()));
            Ok(())
        }
        AppCommand::List => {
            if store.list_apps().await?.is_empty() {
                ensure_default_app(store.as_ref(), config).await?;
            }
            println!(
                "{:<34} {:<20} {:<20} created",
                "app_id", "org_name", "app_name"
            );
            for a in store.list_apps().await? {
                println!(
                    "{:<34} {:<20} {:<20} {}",
                    a.app_id, a.org_name, a.app_name, a.created_ms
                );
            }
            Ok(())
        }
    };
    result
}

pub(crate) async fn find_app(
    store: &dyn AppStore,
    config: &Config,
    app_id: Option<&str>,
) -> anyhow::Result<AppRecord> {
    match app_id {
        None => Ok(ensure_default_app(store, config).await?.app),
        Some(id) => store
            .list_apps()
            .await?
            .into_iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(id))
            .with_context(|| format!("no app with app_id {id}")),
    }
}

async fn token(cmd: TokenCommand, config: &Config) -> anyhow::Result<()> {
    let store = open_apps(config)?;
    let result = async {
        match cmd {
            TokenCommand::App { ttl, app } => {
                let app = find_app(store.as_ref(), config, app.as_deref()).await?;
                println!(
                    "{}",
                    accesstoken2::mint_app_token(&app.app_id, &app.app_certificate, ttl)
                );
            }
            TokenCommand::User { name, ttl, app } => {
                let username = chatd_core::user::normalize_username(&name)
                    .map_err(|_| anyhow::anyhow!("{name} is not a legal username"))?;
                let app = find_app(store.as_ref(), config, app.as_deref()).await?;
                println!(
                    "{}",
                    accesstoken2::mint_user_token(
                        &app.app_id,
                        &app.app_certificate,
                        &username,
                        ttl
                    )
                );
            }
        }
        Ok(())
    }
    .await;
    result
}
