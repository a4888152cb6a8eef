//! Stages, their sequences and their timed triggers.

use serde_json::{Value, json};
use sqlx::types::Json;

use super::users::{ots, ts};
use super::{Store, in_tx, now_ms, on_read, on_write};
use crate::error::{Error, Result};
use crate::model::{Stage, seq_kind};

/// A `stages` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Branch.
    pub branch_id: i64,
    /// Enabled.
    pub enabled: bool,
    /// Evaluated schema.
    pub schema: Json<Value>,
    /// Schema code.
    pub schema_code: Option<String>,
    /// Estimated job timeouts.
    pub timeouts: Option<Json<Value>>,
    /// Repository token secret name.
    pub repo_access_token: Option<String>,
    /// Repository branch.
    pub repo_branch: Option<String>,
    /// Repository error.
    pub repo_error: Option<String>,
    /// Repository refresh interval.
    pub repo_refresh_interval: Option<String>,
    /// Repository state.
    pub repo_state: i64,
    /// Repository URL.
    pub repo_url: Option<String>,
    /// Repository version.
    pub repo_version: Option<String>,
    /// Schema file.
    pub schema_file: Option<String>,
    /// Schema from repository.
    pub schema_from_repo_enabled: bool,
    /// Git clone parameters.
    pub git_clone_params: Option<String>,
    /// When the schema was last read from the repository (ms).
    pub last_repo_refresh: Option<i64>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

impl StageRow {
    /// The API form, with or without the schema.
    pub fn to_model(&self, with_schema: bool) -> Stage {
        Stage {
            id: self.id,
            created: ts(self.created),
            deleted: ots(self.deleted),
            name: self.name.clone(),
            description: self.description.clone(),
            enabled: self.enabled,
            schema_from_repo_enabled: self.schema_from_repo_enabled,
            repo_url: self.repo_url.clone(),
            repo_branch: self.repo_branch.clone(),
            repo_access_token: self.repo_access_token.clone(),
            repo_state: self.repo_state,
            repo_error: self.repo_error.clone(),
            repo_refresh_interval: self.repo_refresh_interval.clone(),
            git_clone_params: self.git_clone_params.clone(),
            repo_version: self.repo_version.clone(),
            schema_file: self.schema_file.clone(),
            last_repo_refresh: ots(self.last_repo_refresh),
            schema: with_schema.then(|| self.schema.0.clone()),
            schema_code: if with_schema {
                self.schema_code.clone()
            } else {
                None
            },
        }
    }

    /// The schema's `parent` (`root` when missing).
    pub fn parent(&self) -> &str {
        self.schema
            .0
            .get("parent")
            .and_then(Value::as_str)
            .unwrap_or("root")
    }

    /// The schema's `triggers` object.
    pub fn triggers(&self) -> Option<&serde_json::Map<String, Value>> {
        self.schema.0.get("triggers").and_then(Value::as_object)
    }
}

const STAGE_COLS: &str = "id, name, description, branch_id, enabled, schema, schema_code, timeouts, \
    repo_access_token, repo_branch, repo_error, repo_refresh_interval, repo_state, repo_url, \
    repo_version, schema_file, schema_from_repo_enabled, git_clone_params, last_repo_refresh, created, deleted";

/// The editable columns of a stage.
#[derive(Debug, Clone, Default)]
pub struct StageFields {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// Evaluated schema.
    pub schema: Value,
    /// Schema code.
    pub schema_code: Option<String>,
    /// Schema from repository.
    pub schema_from_repo_enabled: bool,
    /// Repository URL.
    pub repo_url: Option<String>,
    /// Repository branch.
    pub repo_branch: Option<String>,
    /// Repository token secret name.
    pub repo_access_token: Option<String>,
    /// Refresh interval.
    pub repo_refresh_interval: Option<String>,
    /// Schema file.
    pub schema_file: Option<String>,
    /// Git clone parameters.
    pub git_clone_params: Option<String>,
}

impl StageFields {
    /// The editable fields of an existing stage.
    pub fn of(row: &StageRow) -> StageFields {
        StageFields {
            name: row.name.clone(),
            description: row.description.clone(),
            enabled: row.enabled,
            schema: row.schema.0.clone(),
            schema_code: row.schema_code.clone(),
            schema_from_repo_enabled: row.schema_from_repo_enabled,
            repo_url: row.repo_url.clone(),
            repo_branch: row.repo_branch.clone(),
            repo_access_token: row.repo_access_token.clone(),
            repo_refresh_interval: row.repo_refresh_interval.clone(),
            schema_file: row.schema_file.clone(),
            git_clone_params: row.git_clone_params.clone(),
        }
    }
}

/// A `stage_timers` row: one timed trigger.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimerRow {
    /// Id.
    pub id: i64,
    /// Stage.
    pub stage_id: i64,
    /// `interval`, `date`, `cron` or `repo` (repository polling).
    pub kind: String,
    /// The trigger's value from the schema.
    pub spec: String,
    /// Next firing (ms), none when it will not fire again.
    pub next_run_time: Option<i64>,
    /// What the trigger remembers between firings (JSON; for `repo`, the
    /// last commit seen per repository URL).
    pub state: Option<String>,
}

impl Store {
    /// Create a stage and its three run sequences (starting at `seqs`).
    pub async fn create_stage(
        &self,
        branch_id: i64,
        f: &StageFields,
        seqs: [i64; 3],
    ) -> Result<StageRow> {
        if self.stage_by_name(branch_id, &f.name).await?.is_some() {
            return Err(Error::bad_request(format!(
                "Stage with name {} already exists in this branch",
                f.name
            )));
        }
        let now = now_ms();
        let id: i64 = in_tx!(&self.db, tx => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO stages (name, description, branch_id, enabled, schema, schema_code, triggers, \
                 timeouts, repo_access_token, repo_branch, repo_refresh_interval, repo_url, schema_file, \
                 schema_from_repo_enabled, git_clone_params, repo_state, created, updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $17, $16, $16) RETURNING id")
                .bind(&f.name).bind(&f.description).bind(branch_id).bind(f.enabled)
                .bind(Json(&f.schema)).bind(&f.schema_code).bind(Json(json!({"parent": true})))
                .bind(Json(json!({}))).bind(&f.repo_access_token).bind(&f.repo_branch)
                .bind(&f.repo_refresh_interval).bind(&f.repo_url).bind(&f.schema_file)
                .bind(f.schema_from_repo_enabled).bind(&f.git_clone_params).bind(now)
                .bind(if f.schema_from_repo_enabled { 1_i64 } else { 0 })
                .fetch_one(&mut *tx).await?;
            for (kind, value) in [seq_kind::RUN, seq_kind::CI_RUN, seq_kind::DEV_RUN].into_iter().zip(seqs) {
                sqlx::query("INSERT INTO branch_sequences (kind, branch_id, stage_id, value) VALUES ($1, $2, $3, $4)")
                    .bind(kind).bind(branch_id).bind(id).bind(value).execute(&mut *tx).await?;
            }
            id
        });
        self.stage(id)
            .await?
            .ok_or_else(|| Error::internal("stage vanished after insert"))
    }

    /// A non-deleted stage.
    pub async fn stage(&self, id: i64) -> Result<Option<StageRow>> {
        let q = format!("SELECT {STAGE_COLS} FROM stages WHERE id = $1 AND deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, StageRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// A stage, deleted or not.
    pub async fn stage_any(&self, id: i64) -> Result<Option<StageRow>> {
        let q = format!("SELECT {STAGE_COLS} FROM stages WHERE id = $1");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, StageRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// A non-deleted stage of a branch by name.
    pub async fn stage_by_name(&self, branch_id: i64, name: &str) -> Result<Option<StageRow>> {
        let q = format!(
            "SELECT {STAGE_COLS} FROM stages WHERE branch_id = $1 AND name = $2 AND deleted IS NULL"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, StageRow>(sqlx::AssertSqlSafe(q))
            .bind(branch_id).bind(name).fetch_optional(p).await?),
        )
    }

    /// Non-deleted stages of a branch by name.
    pub async fn branch_stages(&self, branch_id: i64) -> Result<Vec<StageRow>> {
        let q = format!(
            "SELECT {STAGE_COLS} FROM stages WHERE branch_id = $1 AND deleted IS NULL ORDER BY name, id"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, StageRow>(sqlx::AssertSqlSafe(q))
            .bind(branch_id).fetch_all(p).await?),
        )
    }

    /// Store a stage's editable fields.
    pub async fn update_stage(&self, id: i64, f: &StageFields) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE stages SET name = $1, description = $2, enabled = $3, schema = $4, schema_code = $5, \
             schema_from_repo_enabled = $6, repo_url = $7, repo_branch = $8, repo_access_token = $9, \
             repo_refresh_interval = $10, schema_file = $11, git_clone_params = $12, updated = $13 \
             WHERE id = $14")
            .bind(&f.name).bind(&f.description).bind(f.enabled).bind(Json(&f.schema))
            .bind(&f.schema_code).bind(f.schema_from_repo_enabled).bind(&f.repo_url)
            .bind(&f.repo_branch).bind(&f.repo_access_token).bind(&f.repo_refresh_interval)
            .bind(&f.schema_file).bind(&f.git_clone_params).bind(now_ms()).bind(id)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a schema read from the stage's repository at `version`.
    pub async fn set_stage_repo_schema(
        &self,
        id: i64,
        schema: &Value,
        code: &str,
        version: &str,
        at: i64,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE stages SET schema = $1, schema_code = $2, repo_version = $3, repo_state = 0, \
             repo_error = NULL, last_repo_refresh = $4, updated = $4 WHERE id = $5")
            .bind(Json(schema)).bind(code).bind(version).bind(at).bind(id)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Record a read of the stage's repository that did not change its schema.
    pub async fn set_stage_repo_state(
        &self,
        id: i64,
        state: i64,
        error: Option<&str>,
        at: i64,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE stages SET repo_state = $1, repo_error = $2, last_repo_refresh = $3 WHERE id = $4")
            .bind(state).bind(error).bind(at).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a re-evaluated schema.
    pub async fn set_stage_schema(&self, id: i64, schema: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE stages SET schema = $1 WHERE id = $2")
            .bind(Json(schema)).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store estimated job timeouts.
    pub async fn set_stage_timeouts(&self, id: i64, timeouts: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE stages SET timeouts = $1 WHERE id = $2")
            .bind(Json(timeouts)).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Soft-delete a stage and drop its timers.
    pub async fn delete_stage(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query("UPDATE stages SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        on_write!(&self.db, p => sqlx::query("DELETE FROM stage_timers WHERE stage_id = $1")
            .bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Timers of a stage.
    pub async fn stage_timers(&self, stage_id: i64) -> Result<Vec<TimerRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, TimerRow>(
            "SELECT id, stage_id, kind, spec, next_run_time, state FROM stage_timers WHERE stage_id = $1 ORDER BY kind")
            .bind(stage_id).fetch_all(p).await?))
    }

    /// Replace a stage's timers with `timers` (kind, spec, next run); unchanged
    /// (kind, spec) pairs keep their schedule.
    pub async fn set_stage_timers(
        &self,
        stage_id: i64,
        timers: &[(String, String, Option<i64>)],
    ) -> Result<()> {
        let existing = self.stage_timers(stage_id).await?;
        for t in &existing {
            if !timers.iter().any(|(k, s, _)| *k == t.kind && *s == t.spec) {
                on_write!(&self.db, p => sqlx::query("DELETE FROM stage_timers WHERE id = $1")
                    .bind(t.id).execute(p).await?.rows_affected());
            }
        }
        for (kind, spec, next) in timers {
            if existing.iter().any(|t| t.kind == *kind && t.spec == *spec) {
                continue;
            }
            on_write!(&self.db, p => sqlx::query(
                "INSERT INTO stage_timers (stage_id, kind, spec, next_run_time, created) VALUES ($1, $2, $3, $4, $5)")
                .bind(stage_id).bind(kind).bind(spec).bind(next).bind(now_ms()).execute(p).await?.rows_affected());
        }
        Ok(())
    }

    /// Timers due at `now` (ms).
    pub async fn due_timers(&self, now: i64) -> Result<Vec<TimerRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, TimerRow>(
            "SELECT id, stage_id, kind, spec, next_run_time, state FROM stage_timers \
             WHERE next_run_time IS NOT NULL AND next_run_time <= $1 ORDER BY next_run_time")
            .bind(now).fetch_all(p).await?))
    }

    /// Move a timer to its next firing; returns false when another server
    /// already did (so only one server fires it).
    pub async fn advance_timer(&self, id: i64, expected: i64, next: Option<i64>) -> Result<bool> {
        let r = on_write!(&self.db, p => sqlx::query(
            "UPDATE stage_timers SET next_run_time = $1 WHERE id = $2 AND next_run_time = $3")
            .bind(next).bind(id).bind(expected).execute(p).await?.rows_affected());
        Ok(r == 1)
    }
}

impl Store {
    /// Keep what a trigger remembers between firings, unless it changed
    /// since it was `old` (another server's firing); returns whether it did.
    pub async fn swap_timer_state(&self, id: i64, old: Option<&str>, state: &str) -> Result<bool> {
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE stage_timers SET state = $1 WHERE id = $2 AND COALESCE(state, '') = $3")
            .bind(state).bind(id).bind(old.unwrap_or("")).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Set (or clear) the repository error shown on a stage.
    pub async fn set_stage_repo_error(&self, stage_id: i64, error: Option<&str>) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE stages SET repo_error = $1 WHERE id = $2")
            .bind(error).bind(stage_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// A stage (not deleted), or "Stage not found".
    pub async fn require_stage(&self, id: i64) -> Result<StageRow> {
        self.stage(id)
            .await?
            .ok_or_else(|| crate::error::Error::not_found("Stage not found"))
    }
}
