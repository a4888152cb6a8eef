//! Background tasks of this server (what the original runs through RQ):
//! persisted, so a restart neither loses nor repeats them, and claimed
//! atomically, so several servers sharing one database run each task once.

use serde_json::Value;
use sqlx::types::Json;

use super::{Store, in_tx, now_ms, on_read, on_write};
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
    /// Not to be run before (ms); `None`: at once.
    pub run_after: Option<i64>,
    /// How many times it was tried and put back (see [`Store::retry_task`]).
    pub attempts: i64,
}

const TASK_COLS: &str =
    "id, func, args, state, error, created, started, ended, run_after, attempts";

/// The condition of the partial index `bg_tasks_active`, written as there
/// so that both databases use the index.
const ACTIVE: &str = "state IN ('queued', 'started')";

/// A task a worker may take at `$1` (ms): queued and due, or started by a
/// worker whose lease ran out.
const CLAIMABLE: &str = "((state = 'queued' AND (run_after IS NULL OR run_after <= $1)) \
     OR (state = 'started' AND (lease_until IS NULL OR lease_until < $1)))";

/// The function of notification tasks: they have their own worker (see
/// `engine/notify.rs`), so a slow endpoint never holds the analysis back.
pub const NOTIFY_FUNC: &str = "notify";

/// Which tasks a worker claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskQueue {
    /// Every task but notifications (results analysis, ...).
    Main,
    /// Notifications only.
    Notify,
}

impl TaskQueue {
    fn condition(self) -> &'static str {
        match self {
            TaskQueue::Main => "func <> 'notify'",
            TaskQueue::Notify => "func = 'notify'",
        }
    }
}

/// Queue `$1` with arguments `$2` at `$3` unless the same task is queued.
pub(super) fn enqueue_sql() -> String {
    format!(
        "INSERT INTO bg_tasks (func, args, state, created) SELECT $1, $2, 'queued', $3 \
         WHERE NOT EXISTS (SELECT 1 FROM bg_tasks WHERE {ACTIVE} AND state = 'queued' \
         AND func = $1 AND args = $2)"
    )
}

/// Claim at `$1` for owner `$2` until `$3` the oldest task of `queue` a
/// worker may take; the task's row, or none.
pub(super) fn claim_sql(queue: TaskQueue) -> String {
    let which = queue.condition();
    format!(
        "UPDATE bg_tasks SET state = 'started', started = $1, claimed_by = $2, lease_until = $3 \
         WHERE id = (SELECT id FROM bg_tasks WHERE {ACTIVE} AND {which} AND {CLAIMABLE} \
         ORDER BY id LIMIT 1) AND {CLAIMABLE} RETURNING {TASK_COLS}"
    )
}

impl Store {
    /// Queue a task unless the same one is already queued; returns whether it was added.
    pub async fn enqueue_task(&self, func: &str, args: &Value) -> Result<bool> {
        // One statement, looking only at the active tasks (`bg_tasks_active`):
        // the finished ones, one per analysed run, are never read.
        let n = on_write!(&self.db, p => sqlx::query(sqlx::AssertSqlSafe(enqueue_sql()))
            .bind(func).bind(Json(args)).bind(now_ms()).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Claim the oldest task of `queue` that is queued and due (its
    /// `run_after` passed), or started by a worker whose lease ran out (its
    /// server stopped): `owner` holds it for `lease_ms`.
    pub async fn claim_task(
        &self,
        owner: &str,
        lease_ms: i64,
        queue: TaskQueue,
    ) -> Result<Option<TaskRow>> {
        let now = now_ms();
        // One statement: the oldest claimable task among the active ones,
        // taken if it is still claimable when its row is written (another
        // worker that took it first leaves nothing to return here; that
        // worker goes on with the rest of the queue).
        Ok(
            on_write!(&self.db, p => sqlx::query_as::<_, TaskRow>(sqlx::AssertSqlSafe(claim_sql(queue)))
            .bind(now).bind(owner).bind(now + lease_ms).fetch_optional(p).await?),
        )
    }

    /// When the next queued task of `queue` that waits is due (ms), if any.
    pub async fn next_task_due(&self, queue: TaskQueue) -> Result<Option<i64>> {
        let which = queue.condition();
        Ok(
            on_read!(&self.db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(run_after) FROM bg_tasks WHERE {which} AND state = 'queued'")))
            .fetch_one(p).await?),
        )
    }

    /// Put a task `owner` holds back in the queue until `run_after` (ms),
    /// one attempt more, with why this one failed; false when it lost it.
    pub async fn retry_task(
        &self,
        id: i64,
        owner: &str,
        run_after: i64,
        error: &str,
    ) -> Result<bool> {
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE bg_tasks SET state = 'queued', run_after = $1, attempts = attempts + 1, error = $2, \
             claimed_by = NULL, lease_until = NULL WHERE id = $3 AND claimed_by = $4 AND state = 'started'")
            .bind(run_after).bind(error).bind(id).bind(owner).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Extend the lease of a task `owner` works on; false when it lost it.
    pub async fn renew_task_lease(&self, id: i64, owner: &str, lease_ms: i64) -> Result<bool> {
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE bg_tasks SET lease_until = $1 WHERE id = $2 AND claimed_by = $3 AND state = 'started'")
            .bind(now_ms() + lease_ms).bind(id).bind(owner).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Record how a task ended.
    pub async fn finish_task(&self, id: i64, error: Option<&str>) -> Result<()> {
        let state = if error.is_some() {
            "failed"
        } else {
            "finished"
        };
        on_write!(&self.db, p => sqlx::query(
            "UPDATE bg_tasks SET state = $1, error = $2, ended = $3, lease_until = NULL WHERE id = $4")
            .bind(state).bind(error).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Arguments of the tasks of `func` that are queued or started.
    pub async fn pending_task_args(&self, func: &str) -> Result<Vec<Value>> {
        let rows: Vec<Json<Value>> = on_read!(&self.db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT args FROM bg_tasks WHERE func = $1 AND {ACTIVE}")))
            .bind(func).fetch_all(p).await?);
        Ok(rows.into_iter().map(|j| j.0).collect())
    }

    /// The latest tasks, newest first.
    pub async fn recent_tasks(&self, limit: i64) -> Result<Vec<TaskRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, TaskRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLS} FROM bg_tasks ORDER BY id DESC LIMIT $1"))).bind(limit).fetch_all(p).await?),
        )
    }
}

impl Store {
    /// Forget a delivery taken before (its flow could not be started), so
    /// that the code host's redelivery is taken.
    pub async fn forget_webhook_delivery(&self, project_id: i64, delivery: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "DELETE FROM webhook_deliveries WHERE project_id = $1 AND delivery = $2")
            .bind(project_id).bind(delivery).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Take a webhook delivery once: record `delivery` for the project and
    /// queue the task `func(args)` in one transaction. Returns false (and
    /// queues nothing) when the same delivery was taken before, at or after
    /// `since` (ms; `i64::MIN` for "ever"), by this server or another.
    /// Records older than a week are forgotten.
    pub async fn take_webhook_delivery(
        &self,
        project_id: i64,
        delivery: &str,
        since: i64,
        func: &str,
        args: &Value,
    ) -> Result<bool> {
        let now = now_ms();
        let taken = in_tx!(&self.db, tx => {
            sqlx::query("DELETE FROM webhook_deliveries WHERE created < $1")
                .bind(now - 7 * 86_400_000).execute(&mut *tx).await?;
            let n = sqlx::query(
                "INSERT INTO webhook_deliveries (project_id, delivery, created) VALUES ($1, $2, $3) \
                 ON CONFLICT (project_id, delivery) DO UPDATE SET created = excluded.created \
                 WHERE webhook_deliveries.created < $4")
                .bind(project_id).bind(delivery).bind(now).bind(since)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query("INSERT INTO bg_tasks (func, args, state, created) VALUES ($1, $2, 'queued', $3)")
                    .bind(func).bind(Json(args)).bind(now).execute(&mut *tx).await?;
            }
            n == 1
        });
        Ok(taken)
    }
}
