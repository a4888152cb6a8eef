//! `GET /diagnostics` and `GET /settings/{resource}/working-state`, for the
//! original web UI's Diagnostics page and its *Test access* buttons.
//!
//! Diagnostics keeps the original's shape — one entry per part of the
//! installation, `{name, address, open}` — for this server's parts: its
//! database, its storage (artifacts and tool packages), the UDP log receiver, the agents and the
//! background tasks (the original's `rq` entry, with its job lists), and
//! the errors logged in the last hour.

use std::time::Duration;

use serde_json::{Value, json};

use super::Local;
use crate::error::{Error, Result};

/// How long a reachability check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a TCP connection to `addr` (`host:port`) opens in time; why not.
async fn reachable(addr: &str) -> std::result::Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to {addr}: no answer in {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

impl Local {
    async fn setting_text(&self, group: &str, name: &str) -> Result<String> {
        Ok(self
            .store()
            .setting(group, name)
            .await?
            .unwrap_or_default()
            .trim()
            .to_string())
    }

    /// `GET /diagnostics` (superadmins).
    pub async fn get_diagnostics(&self) -> Result<Value> {
        self.who
            .require_superadmin("only superadmin can read diagnostics")?;
        let store = self.store();
        let agents = store.count_agents().await;
        let db_open = agents.is_ok();
        let db_name = if store.backend() == "postgres" {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        // A blob written and removed: the store (a directory or S3) works.
        let storage = self.core().storage();
        let probe = ".diagnostics/probe";
        let storage_open = storage
            .put_bytes(probe, bytes::Bytes::from_static(b"ok"))
            .await
            .is_ok();
        let _ = storage.delete(probe).await;
        let udp = self.core().udp_log_addr();
        let (authorized, unauthorized) = agents?;
        let errors = store
            .count_error_logs(crate::store::now_ms() - 3_600_000)
            .await?;
        let tasks = self.get_last_rq_jobs().await?;
        let by_state = |states: &[&str]| -> Vec<Value> {
            tasks["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["status"].as_str().is_some_and(|s| states.contains(&s)))
                .cloned()
                .collect()
        };
        Ok(json!({
            "database": {"name": db_name, "address": self.core().database_url(), "open": db_open},
            "storage": {"name": "Storage", "address": storage.to_string(), "open": storage_open},
            "udp_logs": {"name": "Agent log receiver (UDP)", "address": udp, "open": !udp.is_empty()},
            "agents": {"name": "Agents", "address": "", "open": authorized > 0,
                        "authorized": authorized, "unauthorized": unauthorized},
            "errors": {"name": "Errors logged in the last hour", "address": "", "open": errors == 0,
                        "count": errors},
            "rq": {"name": "Background tasks", "address": "", "open": db_open,
                   "current_jobs": by_state(&["started"]),
                   "scheduled_jobs": by_state(&["queued"]),
                   "deferred_jobs": [],
                   "failed_jobs": by_state(&["failed"]),
                   "finished_jobs": by_state(&["finished", "done"])},
        }))
    }

    /// `GET /settings/{resource}/working-state` (superadmins): whether the
    /// settings of `resource` work — `{"state": "ok"}` or what is wrong.
    pub async fn get_settings_working_state(&self, resource: &str) -> Result<Value> {
        self.who
            .require_superadmin("only superadmin can check settings")?;
        let state = match resource {
            "email" => {
                let server = self.setting_text("notification", "smtp_server").await?;
                if server.is_empty() {
                    // The original's words, typo included.
                    "STMP server address is empty".to_string()
                } else {
                    let addr = if server.contains(':') {
                        server.clone()
                    } else {
                        format!("{server}:25")
                    };
                    match reachable(&addr).await {
                        Ok(()) => "ok".to_string(),
                        Err(e) => e,
                    }
                }
            }
            "slack" => {
                if self
                    .setting_text("notification", "slack_token")
                    .await?
                    .is_empty()
                {
                    "Slack token is empty".to_string()
                } else {
                    match reachable("slack.com:443").await {
                        Ok(()) => "ok".to_string(),
                        Err(e) => format!("the token is set but Slack cannot be reached: {e}"),
                    }
                }
            }
            "aws" | "azure" | "kubernetes" => format!(
                "{resource} is not supported by this server: it does not deploy agents in clouds"
            ),
            "ldap" => "LDAP logins are not supported by this server".to_string(),
            other => {
                return Err(Error::bad_request(format!(
                    "unknown resource '{other}': use email, slack, aws, azure, kubernetes or ldap"
                )));
            }
        };
        Ok(json!({"state": state}))
    }
}
