//! A fresh `kraken-server` for `--spawn-server` (temporary data directory,
//! a free loopback port), and the memory of a local server process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// How long a fresh server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A server this run started.
pub struct Spawned {
    child: Child,
    /// Its base URL.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    log: PathBuf,
    // Dropped last: removes the data directory and the log.
    _dir: tempfile::TempDir,
}

/// The kraken-server binary: `explicit`, or the one next to this executable.
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--server-bin {}: no such file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe().context("cannot locate this executable")?;
    let dir = me.parent().context("this executable has no directory")?;
    let candidate = dir.join(format!("kraken-server{}", std::env::consts::EXE_SUFFIX));
    if !candidate.is_file() {
        bail!(
            "no kraken-server next to {} (build it with `cargo build -p kraken-server`, or pass --server-bin)",
            me.display()
        );
    }
    Ok(candidate)
}

impl Spawned {
    /// Start `bin` on a free loopback port with a temporary data directory
    /// and `agents` built-in agents; wait until it answers.
    pub async fn start(bin: &Path, agents: usize, password: &str) -> Result<Spawned> {
        let dir = tempfile::Builder::new()
            .prefix("kraken-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let port = free_port()?;
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .context("cannot duplicate the server log handle")?;
        let child = Command::new(bin)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--agents")
            .arg(agents.to_string())
            .arg("--log-level")
            .arg("warn")
            // A fresh embedded database whatever the caller's environment says.
            .env_remove("KRAKEN_DB_URL")
            .env("KRAKEN_ADMIN_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the spawned server has no pid")?;
        let mut s = Spawned {
            child,
            url: format!("http://127.0.0.1:{port}"),
            pid,
            log,
            _dir: dir,
        };
        s.wait_ready().await?;
        Ok(s)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::new();
        let end = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the spawned server exited ({status}) before answering; its log:\n{}",
                    self.log_tail()
                );
            }
            let probe = http
                .get(format!("{}/api/version", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            // Any HTTP answer (401 without a token) means it serves.
            if probe.is_ok() {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "the spawned server did not answer within {START_TIMEOUT:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of the server's log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stop it with SIGTERM (SIGKILL if it does not stop in time).
    pub async fn stop(mut self) -> Result<()> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = i32::try_from(self.pid).context("pid out of range")?;
        if kill(Pid::from_raw(pid), Signal::SIGTERM).is_err() {
            // Already gone.
            let _ = self.child.wait().await;
            return Ok(());
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "the spawned server stopped with {status}; its log:\n{}",
                        self.log_tail()
                    );
                }
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the spawned server did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed")
            }
        }
    }
}

/// A free TCP port on loopback (bound and released at once; the server
/// binds it a moment later).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MiB.
pub fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field).map(|kib| kib as f64 / 1024.0)
}

fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let text = "Name:\tkraken-server\nVmHWM:\t  204800 kB\nVmRSS:\t   102400 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(102_400));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(204_800));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
        // Our own process exists and has a resident size.
        assert!(proc_status_mib(std::process::id(), "VmRSS").is_some_and(|m| m > 0.0));
    }
}
