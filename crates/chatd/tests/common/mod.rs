//! Starts the real `chatd` binary on a free port with its own data
//! directory, and talks to it over real sockets.

#![allow(dead_code)]

use chatd_auth::accesstoken2;
use chatd_client::RestClient;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const APP_ID: &str = "0123456789abcdef0123456789abcdef";
pub const APP_CERT: &str = "fedcba9876543210fedcba9876543210";
pub const ORG: &str = "acme";
pub const APP: &str = "chat";
pub const CLIENT_ID: &str = "YXA6test-client-id";
pub const CLIENT_SECRET: &str = "YXA6test-client-secret";

pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub base: String,
    port: u16,
    env: Vec<(String, String)>,
}

impl TestServer {
    /// A server with the test app and unlimited rates.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `CHATD_*` variables (they override the defaults).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let mut all: Vec<(String, String)> = [
            ("CHATD_APP_ID", APP_ID),
            ("CHATD_APP_CERTIFICATE", APP_CERT),
            ("CHATD_ORG_NAME", ORG),
            ("CHATD_APP_NAME", APP),
            ("CHATD_CLIENT_ID", CLIENT_ID),
            ("CHATD_CLIENT_SECRET", CLIENT_SECRET),
            ("CHATD_RATE_CALLS_PER_SEC", "0"),
            ("CHATD_RATE_MSGS_PER_MIN", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // `CHATD_TEST_STORAGE_ENGINE=sqlite cargo test` runs the suites on
        // the other engine (scripts/test.sh does, for the server's suites).
        if let Ok(engine) = std::env::var("CHATD_TEST_STORAGE_ENGINE") {
            all.push(("CHATD_STORAGE_ENGINE".into(), engine));
        }
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        let mut s = Self {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            base: String::new(),
            port: 0,
            env: all,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatd"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHATD_DATA_DIR", self.dir.path())
            .env("CHATD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("CHATD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("chatd starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            assert!(
                Instant::now() < deadline,
                "chatd did not report its address"
            );
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("chatd listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => panic!("chatd exited before listening"),
            }
        };
        // Keep draining stdout so that the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        self.port = base.rsplit(':').next().unwrap().parse().unwrap();
        self.base = base;
        self.child = Some(child);
    }

    /// The `chatd` command on this server's data directory and engine, for
    /// the subcommands (`app create`, …) that run beside a serving chatd.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatd"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHATD_DATA_DIR", self.dir.path());
        for (k, v) in &self.env {
            if k == "CHATD_STORAGE_ENGINE" {
                cmd.env(k, v);
            }
        }
        cmd
    }

    /// Creates an app with the CLI beside the running server; returns its
    /// app ID and certificate.
    pub fn create_app(&self, org: &str, name: &str) -> (String, String) {
        let out = self
            .cli()
            .args(["app", "create", "--org", org, "--name", name])
            .output()
            .expect("chatd app create runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .trim()
                .to_string()
        };
        (field("app_id:"), field("app_certificate:"))
    }

    /// Stops with SIGTERM (graceful) and waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        child.wait().expect("chatd exits")
    }

    /// Kills with SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// A client without a token (`/app-id/…` form).
    /// The server's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn anonymous(&self) -> RestClient {
        RestClient::new(&self.base, APP_ID)
    }

    /// A client with an app-privilege AccessToken2.
    pub fn admin(&self) -> RestClient {
        self.anonymous().with_token(self.app_token())
    }

    pub fn app_token(&self) -> String {
        accesstoken2::mint_app_token(APP_ID, APP_CERT, 3600)
    }

    pub fn user_token(&self, user: &str) -> String {
        accesstoken2::mint_user_token(APP_ID, APP_CERT, user, 3600)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
