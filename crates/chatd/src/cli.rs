//! Command-line arguments.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "chatd",
    version,
    about = "A self-hosted instant-messaging server"
)]
pub struct Cli {
    /// TOML configuration file (keys: docs/configuration.md).
    #[arg(long, global = true, env = "CHATD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Manage apps (tenants).
    #[command(subcommand)]
    App(AppCommand),
    /// Print a token for the default app (or --app), to curl at once.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Connect as a user and print every message that arrives.
    Listen {
        /// The user to listen as.
        #[arg(long)]
        user: String,
        /// Device (resource) name of this connection.
        #[arg(long, default_value = "cli")]
        device: String,
        #[command(flatten)]
        target: Target,
        /// Print each message record as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Send a text message through the REST API.
    Send {
        /// Sender (default: admin).
        #[arg(long)]
        from: Option<String>,
        /// Recipient; repeat for several.
        #[arg(long, required = true)]
        to: Vec<String>,
        /// The text.
        #[arg(long)]
        text: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Which server and app the client commands talk to.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// Base URL of the server (default: `public_url`, else `http://` + `listen`).
    #[arg(long)]
    pub url: Option<String>,
    /// App ID (default: the default app of the data directory).
    #[arg(long)]
    pub app: Option<String>,
    /// Token to use (default: one minted from the app's certificate).
    #[arg(long, env = "CHATD_TOKEN")]
    pub token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Create an app and print its credentials.
    Create {
        /// Organization name of the `/{org_name}/{app_name}` path form.
        #[arg(long)]
        org: String,
        /// App name of the `/{org_name}/{app_name}` path form.
        #[arg(long)]
        name: String,
        /// REST calls per second per endpoint (0 = unlimited).
        #[arg(long, default_value_t = 100)]
        calls_per_sec: u32,
        /// Messages per minute, one per recipient (0 = unlimited).
        #[arg(long, default_value_t = 6000)]
        msgs_per_min: u32,
        /// Largest uploaded chat file, in bytes.
        #[arg(long, default_value_t = 10 * 1024 * 1024)]
        max_file_bytes: u64,
    },
    /// List the apps.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// An AccessToken2 with app privilege (the app's admin).
    App {
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u32,
        /// App ID of the app (default: the default app).
        #[arg(long)]
        app: Option<String>,
    },
    /// An AccessToken2 with user privilege for one user.
    User {
        /// The username.
        name: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u32,
        /// App ID of the app (default: the default app).
        #[arg(long)]
        app: Option<String>,
    },
}
