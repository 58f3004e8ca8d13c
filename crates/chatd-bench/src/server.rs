//! The server under test: a chatd the bench starts itself (fresh data
//! directory, fixed app credentials, rate limits lifted), or one at a URL.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Credentials of the app the bench starts chatd with.
pub const APP_ID: &str = "0123456789abcdef0123456789abcdef";
pub const APP_CERT: &str = "fedcba9876543210fedcba9876543210";

/// Where the server is and which app to use.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`.
    pub base: String,
    pub addr: SocketAddr,
    /// `host:port` for the Host header.
    pub host: String,
    pub app_id: String,
    pub app_cert: String,
    /// The server's process, when known (RSS, CPU, open-file limit).
    pub pid: Option<u32>,
}

impl Target {
    /// A server at `url` (`http://host:port`).
    pub fn at_url(
        url: &str,
        app_id: &str,
        app_cert: &str,
        pid: Option<u32>,
    ) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        let Some(host) = base.strip_prefix("http://") else {
            bail!("--url must be http://host:port (the bench speaks plain HTTP)");
        };
        let host = host.split('/').next().unwrap_or(host).to_string();
        let with_port = if host.contains(':') {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .context("no address")?;
        Ok(Self {
            base,
            addr,
            host,
            app_id: app_id.to_string(),
            app_cert: app_cert.to_string(),
            pid,
        })
    }

    /// `/app-id/{app_id}` + `path`.
    pub fn path(&self, path: &str) -> String {
        format!("/app-id/{}{}", self.app_id, path)
    }

    pub fn app_token(&self) -> String {
        chatd_auth::accesstoken2::mint_app_token(&self.app_id, &self.app_cert, 24 * 3600)
    }

    pub fn user_token(&self, user: &str) -> String {
        chatd_auth::accesstoken2::mint_user_token(&self.app_id, &self.app_cert, user, 24 * 3600)
    }

    /// The project's REST client, with an app token (set-up and checks).
    pub fn rest(&self) -> chatd_client::RestClient {
        chatd_client::RestClient::new(&self.base, &self.app_id).with_token(self.app_token())
    }

    pub fn rss_kb(&self) -> Option<u64> {
        self.pid.and_then(crate::sys::rss_kb)
    }

    pub fn cpu_secs(&self) -> Option<f64> {
        self.pid.and_then(crate::sys::cpu_secs)
    }
}

/// A chatd started by the bench; killed when dropped, its data directory
/// kept until [`remove_stopped_data_dirs`].
pub struct ChatdProcess {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
    pub target: Target,
}

/// The chatd binary next to this executable (`target/release/chatd` for
/// `target/release/chatd-bench`).
pub fn default_chatd_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("chatd"), dir.parent()?.join("chatd")]
        .into_iter()
        .find(|p| p.is_file())
}

impl ChatdProcess {
    /// Starts `bin serve` on a free loopback port with a fresh data
    /// directory; `env` adds or overrides `CHATD_*` variables.
    pub fn start(bin: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("chatd-bench-")
            .tempdir()
            .context("creating a data directory")?;
        let log = dir.path().join("chatd.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHATD_DATA_DIR", dir.path().join("data"))
            .env("CHATD_LISTEN", "127.0.0.1:0")
            .env("CHATD_LOG", "warn")
            .env("CHATD_APP_ID", APP_ID)
            .env("CHATD_APP_CERTIFICATE", APP_CERT)
            .env("CHATD_ORG_NAME", "bench")
            .env("CHATD_APP_NAME", "bench")
            .env("CHATD_CLIENT_ID", "YXA6bench-client-id")
            .env("CHATD_CLIENT_SECRET", "YXA6bench-client-secret")
            .env("CHATD_RATE_CALLS_PER_SEC", "0")
            .env("CHATD_RATE_MSGS_PER_MIN", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe. If the bench dies (even
            // killed), the kernel kills chatd too.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("chatd listening on ") {
                    let _ = tx.send(url.trim().to_string());
                    break;
                }
            }
            // Keep draining so that chatd never blocks on stdout.
            for _ in lines {}
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            if let Ok(url) = rx.recv_timeout(Duration::from_millis(50)) {
                break url;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "chatd exited ({status}) before listening:\n{}",
                    tail(&log, 2000)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("chatd did not report its address within 60 s");
            }
        };
        let pid = child.id();
        let target = Target::at_url(&url, APP_ID, APP_CERT, Some(pid))?;
        Ok(Self {
            child: Some(child),
            dir: Some(dir),
            log,
            target,
        })
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The end of chatd's log (stderr).
    pub fn log_tail(&self) -> String {
        tail(&self.log, 2000)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) with a pid we spawned and still own (not reaped).
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChatdProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = self.dir.take() {
            STOPPED.lock().unwrap_or_else(|p| p.into_inner()).push(dir);
        }
    }
}

/// Data directories of the chatd processes that have stopped. Removing one
/// as soon as its scenario ends would put its removal inside the next
/// scenario: on a file system mounted with `discard` (as on the development
/// machine), deleting a send scenario's gigabytes of log has the disk
/// discard them for seconds, and fdatasyncs meanwhile waited up to tens of
/// ms where they otherwise take 0.2 (docs/benchmarks.md).
static STOPPED: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

/// Removes the data directories of every chatd that has stopped; the run
/// calls it once no scenario is left.
pub fn remove_stopped_data_dirs() {
    let dirs = std::mem::take(&mut *STOPPED.lock().unwrap_or_else(|p| p.into_inner()));
    drop(dirs);
}

fn tail(path: &Path, n: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}
