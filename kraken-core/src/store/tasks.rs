//! Background tasks of this server (what the original runs through RQ):
//! persisted, so a restart neither loses nor repeats them, and claimed
//! atomically, so several servers sharing one database run each task once.

use serde_json::Value;
use sqlx::types::Json;

use super::{Store, now_ms, on_read, on_write};
use crate::error::Result;

/// A `bg_tasks` row.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TaskRow {
    /// Id.
    pub id: i64,
    /// Function name, e.g. `analyze_results_history`.
    pub func: String,
    /// Arguments.
    pub args: Json<Value>,
    /// `queued`, `started`, `finished` or `failed`.
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Enqueued (ms).
    pub created: i64,
    /// Started (ms).
    pub started: Option<i64>,
    /// Ended (ms).
    pub ended: Option<i64>,
}

const TASK_COLS: &str = "id, func, args, state, error, created, started, ended";

impl Store {
    /// Queue a task unless the same one is already queued; returns whether it was added.
    pub async fn enqueue_task(&self, func: &str, args: &Value) -> Result<bool> {
        let queued: Vec<TaskRow> = on_read!(&self.db, p => sqlx::query_as::<_, TaskRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLS} FROM bg_tasks WHERE func = $1 AND state = 'queued'")))
            .bind(func).fetch_all(p).await?);
        if queued.iter().any(|t| t.args.0 == *args) {
            return Ok(false);
        }
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO bg_tasks (func, args, state, created) VALUES ($1, $2, 'queued', $3)")
            .bind(func).bind(Json(args)).bind(now_ms()).execute(p).await?.rows_affected());
        Ok(true)
    }

    /// Claim the oldest queued task.
    pub async fn claim_task(&self) -> Result<Option<TaskRow>> {
        loop {
            let next: Option<i64> = on_read!(&self.db, p => sqlx::query_scalar(
                "SELECT id FROM bg_tasks WHERE state = 'queued' ORDER BY id LIMIT 1").fetch_optional(p).await?);
            let Some(id) = next else { return Ok(None) };
            let n = on_write!(&self.db, p => sqlx::query(
                "UPDATE bg_tasks SET state = 'started', started = $1 WHERE id = $2 AND state = 'queued'")
                .bind(now_ms()).bind(id).execute(p).await?.rows_affected());
            if n == 1 {
                return Ok(
                    on_read!(&self.db, p => sqlx::query_as::<_, TaskRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLS} FROM bg_tasks WHERE id = $1"))).bind(id).fetch_optional(p).await?),
                );
            }
        }
    }

    /// Record how a task ended.
    pub async fn finish_task(&self, id: i64, error: Option<&str>) -> Result<()> {
        let state = if error.is_some() {
            "failed"
        } else {
            "finished"
        };
        on_write!(&self.db, p => sqlx::query("UPDATE bg_tasks SET state = $1, error = $2, ended = $3 WHERE id = $4")
            .bind(state).bind(error).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Tasks left `started` for longer than `stale_ms` (their server stopped): queue them again.
    pub async fn requeue_stale_tasks(&self, stale_ms: i64) -> Result<u64> {
        Ok(on_write!(&self.db, p => sqlx::query(
            "UPDATE bg_tasks SET state = 'queued' WHERE state = 'started' AND started < $1")
            .bind(now_ms() - stale_ms).execute(p).await?.rows_affected()))
    }

    /// The latest tasks, newest first.
    pub async fn recent_tasks(&self, limit: i64) -> Result<Vec<TaskRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, TaskRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLS} FROM bg_tasks ORDER BY id DESC LIMIT $1"))).bind(limit).fetch_all(p).await?),
        )
    }
}
