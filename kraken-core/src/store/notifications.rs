//! Notifications of runs (`notifications`): one row per run, event and
//! channel, queued with its background task in one transaction.

use super::{Store, in_tx, now_ms, on_read, on_write};
use crate::error::Result;
use crate::store::tasks::NOTIFY_FUNC;

/// A `notifications` row.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct NotificationRow {
    /// Id.
    pub id: i64,
    /// Run.
    pub run_id: i64,
    /// `start` or `end`.
    pub event: String,
    /// `github`, `gitlab`, `gitea`, `slack`, `email`, `discord`, `radicle` or `webhook`.
    pub channel: String,
    /// Where it goes, secrets masked.
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Queued (ms).
    pub created: i64,
    /// Last change (ms).
    pub updated: i64,
    /// Delivered (ms).
    pub delivered: Option<i64>,
}

const COLS: &str =
    "id, run_id, event, channel, target, state, attempts, last_error, created, updated, delivered";

impl Store {
    /// Queue a notification and the task that sends it, unless one with
    /// `dedup_key` exists already (several servers, a recovery doing a step
    /// again): returns its id when it was queued now.
    pub async fn enqueue_notification(
        &self,
        run_id: i64,
        event: &str,
        channel: &str,
        target: &str,
        dedup_key: &str,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let id: Option<i64> = in_tx!(&self.db, tx => {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO notifications (run_id, event, channel, dedup_key, target, state, attempts, created, updated) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) ON CONFLICT (dedup_key) DO NOTHING RETURNING id")
                .bind(run_id).bind(event).bind(channel).bind(dedup_key).bind(target).bind(now)
                .fetch_optional(&mut *tx).await?;
            if let Some(id) = id {
                sqlx::query(
                    "INSERT INTO bg_tasks (func, args, state, created, dedup_key) VALUES ($1, $2, 'queued', $3, $4) \
                     ON CONFLICT (dedup_key) DO NOTHING")
                    .bind(NOTIFY_FUNC).bind(sqlx::types::Json(serde_json::json!([id]))).bind(now)
                    .bind(format!("notify:{dedup_key}"))
                    .execute(&mut *tx).await?;
            }
            id
        });
        Ok(id)
    }

    /// A notification.
    pub async fn notification(&self, id: i64) -> Result<Option<NotificationRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM notifications WHERE id = $1"))).bind(id).fetch_optional(p).await?),
        )
    }

    /// The notifications of a run, oldest first.
    pub async fn run_notifications(&self, run_id: i64) -> Result<Vec<NotificationRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, NotificationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM notifications WHERE run_id = $1 ORDER BY id"))).bind(run_id).fetch_all(p).await?),
        )
    }

    /// Record an attempt: the state it left the notification in (`pending`
    /// while it is retried), why it failed, and the target it went to.
    pub async fn record_notification_attempt(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        target: &str,
    ) -> Result<()> {
        let now = now_ms();
        let delivered = (state == "delivered").then_some(now);
        on_write!(&self.db, p => sqlx::query(
            "UPDATE notifications SET state = $1, last_error = $2, attempts = attempts + 1, updated = $3, \
             delivered = COALESCE(delivered, $4), target = CASE WHEN $5 = '' THEN target ELSE $5 END WHERE id = $6")
            .bind(state).bind(error).bind(now).bind(delivered).bind(target).bind(id)
            .execute(p).await?.rows_affected());
        Ok(())
    }
}
