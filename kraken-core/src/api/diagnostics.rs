//! `GET /diagnostics` and `GET /settings/{resource}/working-state`, for the
//! original web UI's Diagnostics page and its *Test access* buttons.
//!
//! Diagnostics keeps the original's shape — one entry per part of the
//! installation, `{name, address, open}` — for this server's parts: its
//! database, its storage (artifacts and tool packages), the UDP log receiver, the agents and the
//! background tasks (the original's `rq` entry, with its job lists), and
//! the errors logged in the last hour.

use serde_json::{Value, json};

use super::Local;
use crate::error::{Error, Result};

impl Local {
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
            // Connect (and log in) to the SMTP server; ask Slack's
            // `auth.test` whether it takes the token.
            "email" | "slack" => match self.engine().check_notification_settings(resource).await? {
                Ok(()) => "ok".to_string(),
                Err(why) => why,
            },
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
