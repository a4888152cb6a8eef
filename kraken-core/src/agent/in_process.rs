//! The in-process agent of a database opened with [`crate::api::Kraken::open`]
//! (`kraken --db ...`, `kraken-tui --db ...`): one agent per database and
//! host, whichever process runs it.
//!
//! Its work dir is `<data dir>/agents/in-process`; its identity is generated
//! into that dir once (as for the server's built-in agents), so every
//! `kraken --db` command is the same agent and a job assigned to it by a
//! command that has since exited is picked up by the next one. The work dir
//! is locked while a process runs the agent: a second process on the same
//! database waits for the lock and takes over when the first exits, instead
//! of acting as the same agent twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Agent, AgentConfig, InProcess, lock_work_dir, work_dir_identity};
use crate::api::Core;
use crate::error::{Error, Result};

/// How often a process that found the agent busy in another process checks
/// whether it is free.
const TAKE_OVER_EVERY: Duration = Duration::from_secs(1);

/// This machine's name (for the addresses of built-in agents).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The work dir of the in-process agent for files under `data_dir`.
pub fn in_process_work_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agents").join("in-process")
}

/// The in-process agent: claimed by this process when its work dir is free.
pub struct InProcessAgent {
    core: Arc<Core>,
    work_dir: PathBuf,
    label: String,
}

impl InProcessAgent {
    /// The agent of `core`'s database on this host.
    pub fn new(core: Arc<Core>) -> Self {
        let work_dir = in_process_work_dir(&core.config.data_dir);
        InProcessAgent {
            core,
            work_dir,
            label: format!("in-process@{}", hostname()),
        }
    }

    /// Claim the agent for this process: its lock (held while the file
    /// lives) and its id, registered and marked seen; `None` when another
    /// process runs it now.
    pub async fn claim(&self) -> Result<Option<(std::fs::File, i64)>> {
        let lock = match lock_work_dir(&self.work_dir) {
            Ok(lock) => lock,
            Err(Error::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let uid = work_dir_identity(&self.work_dir)?;
        let id = self.core.ensure_builtin_agent(&self.label, &uid).await?;
        Ok(Some((lock, id)))
    }

    /// Run the agent until `stop`: at once when `claimed` (see
    /// [`InProcessAgent::claim`]), else as soon as the process holding it
    /// lets it go.
    pub async fn run(
        self,
        mut claimed: Option<(std::fs::File, i64)>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (_lock, agent_id) = loop {
            if let Some(c) = claimed.take() {
                break c;
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(TAKE_OVER_EVERY) => {}
                _ = stop.changed() => return,
            }
            match self.claim().await {
                Ok(c) => claimed = c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the in-process agent");
                    return;
                }
            }
        };
        tracing::debug!(agent = %self.label, "in-process agent running");
        let cfg = AgentConfig::new(&self.label, &self.work_dir);
        let agent = Agent::new(Arc::new(InProcess::new(self.core, agent_id)), cfg);
        agent.run(stop).await;
    }
}
