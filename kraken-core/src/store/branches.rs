//! Branches, their sequences and environment variables.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::types::Json;

use super::users::{ots, ts};
use super::{Store, in_tx, now_ms, on_read, on_write};
use crate::error::{Error, Result};
use crate::model::{Branch, BranchSequence, RetentionPolicy, seq_kind};

/// A `branches` row with its project's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BranchRow {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Project.
    pub project_id: i64,
    /// Project name.
    pub project_name: String,
    /// Git branch.
    pub branch_name: Option<String>,
    /// Latest completed CI flow.
    pub ci_last_completed_flow_id: Option<i64>,
    /// Latest incomplete CI flow.
    pub ci_last_incomplete_flow_id: Option<i64>,
    /// Retention policy.
    pub retention_policy: Option<Json<Value>>,
    /// Data (scope branch).
    pub user_data: Json<Value>,
    /// Data (scope branch-ci).
    pub user_data_ci: Json<Value>,
    /// Data (scope branch-dev).
    pub user_data_dev: Json<Value>,
    /// Environment variables.
    pub env_vars: Json<Value>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

impl BranchRow {
    /// Environment variables as a map.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.env_vars
            .0
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The retention policy with defaults.
    pub fn retention(&self) -> RetentionPolicy {
        self.retention_policy
            .as_ref()
            .and_then(|j| serde_json::from_value(j.0.clone()).ok())
            .unwrap_or_default()
    }

    /// The plain API form (no flows, no stages).
    pub fn to_model(&self) -> Branch {
        Branch {
            id: self.id,
            created: ts(self.created),
            deleted: ots(self.deleted),
            name: self.name.clone(),
            project_id: self.project_id,
            project_name: self.project_name.clone(),
            branch_name: self.branch_name.clone(),
            retention_policy: self.retention(),
            env_vars: self.env(),
            last_completed_flow: None,
            last_incomplete_flow: None,
            ci_flows: None,
            dev_flows: None,
            stages: None,
        }
    }
}

/// Make flow `$1` branch `$2`'s newest incomplete CI flow, unless a newer one is.
pub(super) const ADVANCE_CI_INCOMPLETE: &str = "UPDATE branches SET ci_last_incomplete_flow_id = $1 \
    WHERE id = $2 AND (ci_last_incomplete_flow_id IS NULL OR ci_last_incomplete_flow_id < $1)";

const BRANCH_SELECT: &str = "SELECT b.id, b.name, b.project_id, p.name AS project_name, \
    b.branch_name, b.ci_last_completed_flow_id, b.ci_last_incomplete_flow_id, b.retention_policy, \
    b.user_data, b.user_data_ci, b.user_data_dev, b.env_vars, b.created, b.deleted \
    FROM branches b JOIN projects p ON p.id = b.project_id";

/// A `branch_sequences` row with names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SequenceRow {
    /// Id.
    pub id: i64,
    /// Kind.
    pub kind: i64,
    /// Branch.
    pub branch_id: i64,
    /// Branch name.
    pub branch_name: String,
    /// Stage.
    pub stage_id: Option<i64>,
    /// Stage name.
    pub stage_name: Option<String>,
    /// Value.
    pub value: i64,
}

impl SequenceRow {
    /// The API form.
    pub fn to_model(&self) -> BranchSequence {
        BranchSequence {
            id: self.id,
            kind: self.kind,
            branch_id: self.branch_id,
            branch_name: self.branch_name.clone(),
            stage_id: self.stage_id,
            stage_name: self.stage_name.clone(),
            value: self.value,
        }
    }
}

/// What a new branch starts with.
#[derive(Debug, Default)]
pub struct BranchInit {
    /// Sequence values of kinds 0, 1, 2.
    pub sequences: [i64; 3],
    /// Retention policy.
    pub retention_policy: Option<Value>,
    /// Data (branch, branch-ci, branch-dev).
    pub user_data: [Value; 3],
    /// Environment variables.
    pub env_vars: Value,
}

impl Store {
    /// Create a branch with its three branch-level sequences.
    pub async fn create_branch(
        &self,
        project_id: i64,
        name: &str,
        branch_name: &str,
        init: BranchInit,
    ) -> Result<BranchRow> {
        if self.branch_by_name(project_id, name).await?.is_some() {
            return Err(Error::bad_request(format!(
                "Branch with name {name} already exists in this project"
            )));
        }
        let now = now_ms();
        let rp = init
            .retention_policy
            .unwrap_or_else(|| json!(RetentionPolicy::default()));
        let obj = |v: &Value| if v.is_object() { v.clone() } else { json!({}) };
        let id: i64 = in_tx!(&self.db, tx => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO branches (name, project_id, branch_name, retention_policy, user_data, \
                 user_data_ci, user_data_dev, env_vars, created, updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id")
                .bind(name).bind(project_id).bind(branch_name).bind(Json(&rp))
                .bind(Json(obj(&init.user_data[0]))).bind(Json(obj(&init.user_data[1])))
                .bind(Json(obj(&init.user_data[2]))).bind(Json(obj(&init.env_vars))).bind(now)
                .fetch_one(&mut *tx).await?;
            for (kind, value) in [seq_kind::FLOW, seq_kind::CI_FLOW, seq_kind::DEV_FLOW]
                .into_iter()
                .zip(init.sequences)
            {
                sqlx::query("INSERT INTO branch_sequences (kind, branch_id, value) VALUES ($1, $2, $3)")
                    .bind(kind).bind(id).bind(value).execute(&mut *tx).await?;
            }
            id
        });
        self.branch(id)
            .await?
            .ok_or_else(|| Error::internal("branch vanished after insert"))
    }

    /// A non-deleted branch of a non-deleted project.
    pub async fn branch(&self, id: i64) -> Result<Option<BranchRow>> {
        let q =
            format!("{BRANCH_SELECT} WHERE b.id = $1 AND b.deleted IS NULL AND p.deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, BranchRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// A branch, deleted or not (history of deleted branches stays readable).
    pub async fn branch_any(&self, id: i64) -> Result<Option<BranchRow>> {
        let q = format!("{BRANCH_SELECT} WHERE b.id = $1");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, BranchRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// A non-deleted branch by display name within a project.
    pub async fn branch_by_name(&self, project_id: i64, name: &str) -> Result<Option<BranchRow>> {
        let q = format!(
            "{BRANCH_SELECT} WHERE b.project_id = $1 AND b.name = $2 AND b.deleted IS NULL"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, BranchRow>(sqlx::AssertSqlSafe(q))
            .bind(project_id).bind(name).fetch_optional(p).await?),
        )
    }

    /// The branches of several projects (one query), ordered as [`Store::project_branches`].
    pub async fn branches_of_projects(&self, project_ids: &[i64]) -> Result<Vec<BranchRow>> {
        if project_ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "{BRANCH_SELECT} WHERE {} AND b.deleted IS NULL ORDER BY b.name, b.id",
            super::in_ids(&self.db, "b.project_id", 1)
        );
        super::fetch_all_by_ids(&self.db, q, project_ids).await
    }

    /// Non-deleted branches of a project, by name.
    pub async fn project_branches(&self, project_id: i64) -> Result<Vec<BranchRow>> {
        let q = format!(
            "{BRANCH_SELECT} WHERE b.project_id = $1 AND b.deleted IS NULL ORDER BY b.name, b.id"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, BranchRow>(sqlx::AssertSqlSafe(q))
            .bind(project_id).fetch_all(p).await?),
        )
    }

    /// Change display and git names.
    pub async fn update_branch(
        &self,
        id: i64,
        name: &str,
        branch_name: Option<&str>,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE branches SET name = $1, branch_name = $2, updated = $3 WHERE id = $4")
            .bind(name).bind(branch_name).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Move a branch to another project.
    pub async fn move_branch(&self, id: i64, project_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE branches SET project_id = $1, updated = $2 WHERE id = $3")
            .bind(project_id).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Soft-delete a branch.
    pub async fn delete_branch(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE branches SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a retention policy.
    pub async fn set_retention_policy(&self, id: i64, policy: &RetentionPolicy) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE branches SET retention_policy = $1, updated = $2 WHERE id = $3")
            .bind(Json(policy)).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store the environment variables.
    pub async fn set_env_vars(&self, id: i64, vars: &BTreeMap<String, String>) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE branches SET env_vars = $1, updated = $2 WHERE id = $3")
            .bind(Json(vars)).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Replace one of the branch's data documents (`user_data`, `user_data_ci`, `user_data_dev`).
    pub async fn set_branch_data(&self, id: i64, column: BranchData, data: &Value) -> Result<()> {
        let q = match column {
            BranchData::Any => "UPDATE branches SET user_data = $1 WHERE id = $2",
            BranchData::Ci => "UPDATE branches SET user_data_ci = $1 WHERE id = $2",
            BranchData::Dev => "UPDATE branches SET user_data_dev = $1 WHERE id = $2",
        };
        on_write!(&self.db, p => sqlx::query(q).bind(Json(data)).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// A CI flow completed: it becomes the branch's latest completed CI flow
    /// unless a newer one is, and stops being its latest incomplete one (one
    /// statement, so a concurrent creation or completion is never undone).
    pub async fn record_ci_flow_completed(&self, branch_id: i64, flow_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE branches SET \
             ci_last_completed_flow_id = CASE WHEN ci_last_completed_flow_id > $1 THEN ci_last_completed_flow_id ELSE $1 END, \
             ci_last_incomplete_flow_id = CASE WHEN ci_last_incomplete_flow_id = $1 THEN NULL ELSE ci_last_incomplete_flow_id END \
             WHERE id = $2")
            .bind(flow_id).bind(branch_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Make `flow_id` the branch's latest incomplete CI flow unless a newer
    /// one is (one statement, so concurrent creations and completions never
    /// move it back, and the completed one is left alone).
    pub async fn advance_branch_ci_incomplete(&self, id: i64, flow_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(ADVANCE_CI_INCOMPLETE)
            .bind(flow_id).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Sequences of a branch (branch-level and per non-deleted stage), by id.
    pub async fn branch_sequences(&self, branch_id: i64) -> Result<Vec<SequenceRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, SequenceRow>(
            "SELECT q.id, q.kind, q.branch_id, b.name AS branch_name, q.stage_id, s.name AS stage_name, q.value \
             FROM branch_sequences q JOIN branches b ON b.id = q.branch_id \
             LEFT JOIN stages s ON s.id = q.stage_id \
             WHERE q.branch_id = $1 AND (q.stage_id IS NULL OR s.deleted IS NULL) ORDER BY q.id")
            .bind(branch_id).fetch_all(p).await?))
    }

    /// One sequence.
    pub async fn sequence(&self, id: i64) -> Result<Option<SequenceRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, SequenceRow>(
            "SELECT q.id, q.kind, q.branch_id, b.name AS branch_name, q.stage_id, s.name AS stage_name, q.value \
             FROM branch_sequences q JOIN branches b ON b.id = q.branch_id \
             LEFT JOIN stages s ON s.id = q.stage_id WHERE q.id = $1 AND b.deleted IS NULL")
            .bind(id).fetch_optional(p).await?))
    }

    /// Set a sequence's value.
    pub async fn set_sequence(&self, id: i64, value: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE branch_sequences SET value = $1 WHERE id = $2")
            .bind(value).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Advance a branch's (or, with `stage_id`, a stage's) two sequences
    /// `kinds` (the shared one and the flow kind's own) by one, in one
    /// statement, and return their new values in the order of `kinds`.
    pub async fn next_sequences(
        &self,
        branch_id: i64,
        stage_id: Option<i64>,
        kinds: [i64; 2],
    ) -> Result<[i64; 2]> {
        let v = self
            .next_sequence_slots(branch_id, &[(stage_id, kinds[0]), (stage_id, kinds[1])])
            .await?;
        Ok([v[0], v[1]])
    }

    /// Increment several sequences of a branch in one statement, each slot a
    /// `(stage_id, kind)` (`stage_id` `None`: the branch's own), and return
    /// their new values in slot order. A missing sequence row (an imported
    /// database) is created at 1.
    pub async fn next_sequence_slots(
        &self,
        branch_id: i64,
        slots: &[(Option<i64>, i64)],
    ) -> Result<Vec<i64>> {
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let q = sequence_update_sql(&self.db, slots);
        let rows: Vec<(Option<i64>, i64, i64)> = on_write!(&self.db, p => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(q)).bind(branch_id);
            for (stage_id, kind) in slots {
                if let Some(sid) = stage_id {
                    query = query.bind(*sid);
                }
                query = query.bind(*kind);
            }
            query.fetch_all(p).await?
        });
        let (values, missing) = slot_values(&rows, slots);
        for (stage_id, kind) in missing {
            on_write!(&self.db, p => sqlx::query(INSERT_MISSING_SEQUENCE)
                .bind(kind).bind(branch_id).bind(stage_id).execute(p).await?.rows_affected());
        }
        Ok(values)
    }
}

/// Which data document of a branch.
#[derive(Debug, Clone, Copy)]
pub enum BranchData {
    /// `branch` scope.
    Any,
    /// `branch-ci` scope.
    Ci,
    /// `branch-dev` scope.
    Dev,
}

impl Store {
    /// A branch (not deleted), or "Branch not found".
    pub async fn require_branch(&self, id: i64) -> Result<BranchRow> {
        self.branch(id)
            .await?
            .ok_or_else(|| crate::error::Error::not_found("Branch not found"))
    }
}

/// A sequence row found missing by [`sequence_update_sql`] (an imported
/// database), created at 1.
pub(super) const INSERT_MISSING_SEQUENCE: &str =
    "INSERT INTO branch_sequences (kind, branch_id, stage_id, value) VALUES ($1, $2, $3, 1)";

/// The statement incrementing a branch's sequences `slots` (see
/// [`Store::next_sequence_slots`]): the branch is `$1`, then each slot's
/// stage (if any) and kind; it returns `(stage_id, kind, value)` rows.
pub(super) fn sequence_update_sql(db: &super::Db, slots: &[(Option<i64>, i64)]) -> String {
    let mut cond = Vec::with_capacity(slots.len());
    let mut n = 1;
    for (stage_id, _) in slots {
        cond.push(match stage_id {
            None => format!("(stage_id IS NULL AND kind = ${})", n + 1),
            Some(_) => format!("(stage_id = ${} AND kind = ${})", n + 1, n + 2),
        });
        n += if stage_id.is_some() { 2 } else { 1 };
    }
    // Several creations at once take the same rows: on PostgreSQL each
    // locks them in the order of their ids first, or two could each hold
    // a row the other waits for (a deadlock, one creation failing).
    // SQLite has one writer at a time.
    let lock = match db {
        super::Db::Pg(_) => " ORDER BY id FOR UPDATE",
        super::Db::Sqlite { .. } => "",
    };
    format!(
        "UPDATE branch_sequences SET value = value + 1 WHERE id IN \
         (SELECT id FROM branch_sequences WHERE branch_id = $1 AND ({}){lock}) \
         RETURNING stage_id, kind, value",
        cond.join(" OR ")
    )
}

/// The values of `slots` in their order from the rows of
/// [`sequence_update_sql`], and the slots whose row is missing (their
/// value 1, to be inserted with [`INSERT_MISSING_SEQUENCE`]).
pub(super) fn slot_values(
    rows: &[(Option<i64>, i64, i64)],
    slots: &[(Option<i64>, i64)],
) -> (Vec<i64>, Vec<(Option<i64>, i64)>) {
    let mut missing = Vec::new();
    let values = slots
        .iter()
        .map(|&(stage_id, kind)| {
            rows.iter()
                .find(|(s, k, _)| *s == stage_id && *k == kind)
                .map(|(_, _, v)| *v)
                .unwrap_or_else(|| {
                    missing.push((stage_id, kind));
                    1
                })
        })
        .collect();
    (values, missing)
}
