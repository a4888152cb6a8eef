//! Flows, runs and repository changes.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::types::Json;

use super::{Paged, Store, in_tx, now_ms, on_read, on_write, page_and_total};
use crate::error::{Error, Result};
use crate::model::{flow_kind, flow_state, run_state};

/// A `flows` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowRow {
    /// Id.
    pub id: i64,
    /// Finished (ms).
    pub finished: Option<i64>,
    /// State.
    pub state: i64,
    /// Kind.
    pub kind: i64,
    /// Git branch.
    pub branch_name: Option<String>,
    /// Branch.
    pub branch_id: i64,
    /// Flow arguments.
    pub args: Json<Value>,
    /// Artifact counters.
    pub artifacts: Json<Value>,
    /// Label.
    pub label: Option<String>,
    /// Trigger data.
    pub trigger_data_id: Option<i64>,
    /// Summary.
    pub summary: Option<Json<Value>>,
    /// Data of the `data` tool (scope flow).
    pub user_data: Json<Value>,
    /// Sequences.
    pub seq: Json<Value>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

impl FlowRow {
    /// The label, or `"<id>."` when none was set.
    pub fn label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format!("{}.", self.id))
    }
}

const FLOW_COLS: &str = "id, finished, state, kind, branch_name, branch_id, args, artifacts, label, \
    trigger_data_id, summary, user_data, seq, created, deleted";

/// A `runs` row with its stage's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    /// Id.
    pub id: i64,
    /// First job started (ms).
    pub started: Option<i64>,
    /// All jobs finished (ms).
    pub finished: Option<i64>,
    /// State.
    pub state: i64,
    /// Note.
    pub note: Option<String>,
    /// Stage.
    pub stage_id: i64,
    /// Stage name.
    pub stage_name: String,
    /// Flow.
    pub flow_id: i64,
    /// Arguments.
    pub args: Json<Value>,
    /// Fixes.
    pub fix_cnt: i64,
    /// New tests.
    pub new_cnt: i64,
    /// Unchanged tests.
    pub no_change_cnt: i64,
    /// Regressions.
    pub regr_cnt: i64,
    /// New issues.
    pub issues_new: i64,
    /// Issues.
    pub issues_total: i64,
    /// Failed jobs.
    pub jobs_error: i64,
    /// Jobs.
    pub jobs_total: i64,
    /// Tests not run.
    pub tests_not_run: i64,
    /// Passed tests.
    pub tests_passed: i64,
    /// Tests.
    pub tests_total: i64,
    /// Artifact counters.
    pub artifacts: Json<Value>,
    /// Label.
    pub label: Option<String>,
    /// `{reason, run_id?}`.
    pub reason: Json<Value>,
    /// Repository changes.
    pub repo_data_id: Option<i64>,
    /// The repository changes' data (a list of trigger records), when any.
    pub repo_data: Option<Json<Value>>,
    /// Analysis done (ms).
    pub processed_at: Option<i64>,
    /// Sequences.
    pub seq: Json<Value>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
    /// Being planned (its jobs not created yet) by a server holding it until then (ms).
    pub planning_until: Option<i64>,
    /// Completed, its follow-up (counters, children, flow, analysis) held until then (ms).
    pub completing_until: Option<i64>,
}

/// The columns of a [`RunRow`] from `runs r JOIN stages s`.
macro_rules! run_cols {
    () => {
        "r.id, r.started, r.finished, r.state, r.note, r.stage_id, \
    s.name AS stage_name, r.flow_id, r.args, r.fix_cnt, r.new_cnt, r.no_change_cnt, r.regr_cnt, \
    r.issues_new, r.issues_total, r.jobs_error, r.jobs_total, r.tests_not_run, r.tests_passed, \
    r.tests_total, r.artifacts, r.label, r.reason, r.repo_data_id, \
    (SELECT rc.data FROM repo_changes rc WHERE rc.id = r.repo_data_id) AS repo_data, r.processed_at, r.seq, r.created, \
    r.deleted, r.planning_until, r.completing_until"
    };
}

const RUN_SELECT: &str = concat!(
    "SELECT ",
    run_cols!(),
    " FROM runs r JOIN stages s ON s.id = r.stage_id"
);

/// The newest (`DESC`) or oldest (`ASC`) run of stage `$1` in the flow
/// `f` of the enclosing query (`runs_flow_stage`).
fn run_of_stage_in_flow(dir: &str) -> String {
    format!(
        "(SELECT r2.id FROM runs r2 WHERE r2.flow_id = f.id AND r2.stage_id = $1 AND r2.deleted IS NULL \
         ORDER BY r2.id {dir} LIMIT 1)"
    )
}

/// The run of stage `$1` in the flow of branch `$4` and kind `kind` next
/// to the flow created at `$2` with id `$3`: before it (`before`,
/// the newest such) or after it (the oldest).
///
/// The branch's flows are walked from the flow in question in creation
/// order (`flows_branch_kind_created`), each one's run of the stage looked
/// up by the flow (`runs_flow_stage`), until the first flow that has one.
/// The lookup is a subquery in the flows' filter, which no database turns
/// into a join: as a join, PostgreSQL planning without statistics (a new
/// database before autovacuum's first `ANALYZE`, which the planner takes
/// for one row per stage) read every run of the stage for every earlier
/// flow and sorted them all: 50–120 ms per analysed run at 400 flows.
fn run_of_stage_next_to_sql(before: bool, kind: &str) -> String {
    let (cmp, dir) = if before { ("<", "DESC") } else { (">", "ASC") };
    let run = run_of_stage_in_flow(dir);
    format!(
        "{RUN_SELECT} WHERE r.id = (SELECT {run} FROM flows f WHERE f.branch_id = $4 \
         AND f.kind = {kind} AND f.deleted IS NULL AND (f.created, f.id) {cmp} ($2, $3) \
         AND {run} IS NOT NULL ORDER BY f.created {dir}, f.id {dir} LIMIT 1)"
    )
}

/// The run of stage `$1` in the CI flow of branch `$4` created last before
/// the flow created at `$2` with id `$3`. The work does not grow with the
/// branch's history.
pub(super) fn previous_ci_run_sql() -> String {
    run_of_stage_next_to_sql(true, &flow_kind::CI.to_string())
}

/// The run of stage `$1` in the flow of kind `$5` of branch `$4` created
/// first after the flow created at `$2` with id `$3`.
pub(super) fn next_run_of_stage_sql() -> String {
    run_of_stage_next_to_sql(false, "$5")
}

/// Completed runs not analysed yet that finished from `$1` to `$2` (ms),
/// oldest first (`runs_unprocessed`).
pub(super) fn unprocessed_runs_sql() -> String {
    format!(
        "{RUN_SELECT} WHERE r.state = {} AND r.finished >= $1 AND r.finished <= $2 AND r.deleted IS NULL \
         AND r.completing_until IS NULL ORDER BY r.finished",
        run_state::COMPLETED
    )
}

/// A page of the flows of branch `$1` and kind `$2`, newest first (`$3`
/// rows from `$4`), each with the number of all of them. The count is a
/// subquery of the same statement, so it agrees with the page; it reads
/// the index only, where a window over the rows would have read and sorted
/// every flow of the branch.
pub(super) fn branch_flows_page_sql() -> String {
    format!(
        "SELECT {FLOW_COLS}, (SELECT COUNT(*) FROM flows c WHERE c.branch_id = $1 AND c.kind = $2 \
         AND c.deleted IS NULL) AS total FROM flows WHERE branch_id = $1 AND kind = $2 AND deleted IS NULL \
         ORDER BY id DESC LIMIT $3 OFFSET $4"
    )
}

/// Runs whose planning lease ran out before `$1` (`runs_planning`).
pub(super) fn lapsed_planning_sql() -> String {
    format!(
        "{RUN_SELECT} WHERE r.planning_until IS NOT NULL AND r.planning_until < $1 AND r.deleted IS NULL ORDER BY r.id"
    )
}

/// Runs whose follow-up lease ran out before `$1` (`runs_completing`).
pub(super) fn lapsed_completion_sql() -> String {
    format!(
        "{RUN_SELECT} WHERE r.completing_until IS NOT NULL AND r.completing_until < $1 AND r.deleted IS NULL ORDER BY r.id"
    )
}

/// Runs in progress or replayed, planned, with every job completed (`runs_open`).
pub(super) fn runs_done_but_open_sql() -> String {
    format!(
        "{RUN_SELECT} WHERE r.state IN ({}, {}) AND r.planning_until IS NULL AND r.deleted IS NULL \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.state <> 5 AND j.deleted IS NULL) \
         ORDER BY r.id",
        run_state::IN_PROGRESS,
        run_state::REPLAY
    )
}

/// Runs being created with no planning lease (`runs_creating`).
pub(super) fn runs_creating_unplanned_sql() -> String {
    format!(
        "{RUN_SELECT} WHERE r.state = {} AND r.planning_until IS NULL AND r.deleted IS NULL ORDER BY r.id",
        run_state::CREATING
    )
}

/// Flows in progress created before `$1` with nothing left going (`flows_in_progress`).
pub(super) fn stalled_flows_sql() -> String {
    format!(
        "SELECT {FLOW_COLS} FROM flows f WHERE f.state = {} AND f.deleted IS NULL AND f.created < $1 \
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.flow_id = f.id AND r.deleted IS NULL \
           AND (r.state IN ({}, {}, {}) OR r.planning_until IS NOT NULL OR r.completing_until IS NOT NULL)) \
         AND (NOT EXISTS (SELECT 1 FROM runs r WHERE r.flow_id = f.id AND r.deleted IS NULL) \
           OR EXISTS (SELECT 1 FROM runs r WHERE r.flow_id = f.id AND r.deleted IS NULL AND r.state IN ({}, {}))) \
         ORDER BY f.id",
        flow_state::IN_PROGRESS,
        run_state::IN_PROGRESS,
        run_state::REPLAY,
        run_state::CREATING,
        run_state::COMPLETED,
        run_state::PROCESSED
    )
}

/// Runs in progress or replayed that have not finished (`runs_open`).
pub(super) fn unfinished_runs_sql() -> String {
    format!(
        "{RUN_SELECT} WHERE r.finished IS NULL AND r.deleted IS NULL AND r.state IN ({}, {})",
        run_state::IN_PROGRESS,
        run_state::REPLAY
    )
}

/// The live job counters of a run (over its non-covered jobs), as
/// [`Store::job_counts`] gives them; columns of `GROUP BY run_id` over `jobs`.
macro_rules! job_counter_cols {
    () => {
        "COUNT(*) AS total, \
         SUM(CASE WHEN state NOT IN (3, 4, 5) THEN 1 ELSE 0 END) AS waiting, \
         SUM(CASE WHEN state = 3 THEN 1 ELSE 0 END) AS executing, \
         SUM(CASE WHEN state = 4 THEN 1 ELSE 0 END) AS processing, \
         SUM(CASE WHEN completion_status IS NOT NULL AND completion_status <> 0 THEN 1 ELSE 0 END) AS error"
    };
}

/// A run and, unless it is processed, its live job counters (none when it
/// has no job yet).
#[derive(sqlx::FromRow)]
struct RunCounted {
    #[sqlx(flatten)]
    run: RunRow,
    c_total: Option<i64>,
    c_waiting: Option<i64>,
    c_executing: Option<i64>,
    c_processing: Option<i64>,
    c_error: Option<i64>,
}

/// [`RUN_SELECT`]'s columns as an `INSERT INTO runs` returns them.
const RUN_RETURNING: &str = "id, started, finished, state, note, stage_id, \
    (SELECT s.name FROM stages s WHERE s.id = runs.stage_id) AS stage_name, flow_id, args, fix_cnt, \
    new_cnt, no_change_cnt, regr_cnt, issues_new, issues_total, jobs_error, jobs_total, tests_not_run, \
    tests_passed, tests_total, artifacts, label, reason, repo_data_id, \
    (SELECT rc.data FROM repo_changes rc WHERE rc.id = runs.repo_data_id) AS repo_data, processed_at, \
    seq, created, deleted, planning_until, completing_until";

/// Live job counters of a run (over non-covered jobs).
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct JobCounts {
    /// Run.
    pub run_id: i64,
    /// Jobs.
    pub total: i64,
    /// Jobs not yet picked up.
    pub waiting: i64,
    /// Jobs executing on an agent.
    pub executing: i64,
    /// Jobs whose agent finished.
    pub processing: i64,
    /// Failed jobs.
    pub error: i64,
}

/// The columns of a new flow.
#[derive(Debug, Clone)]
pub struct NewFlowRow {
    /// Branch.
    pub branch_id: i64,
    /// Kind.
    pub kind: i64,
    /// Git branch.
    pub branch_name: Option<String>,
    /// Arguments.
    pub args: Value,
    /// Sequences.
    pub seq: Value,
    /// Trigger data.
    pub trigger_data_id: Option<i64>,
}

/// The columns of a new run.
#[derive(Debug, Clone)]
pub struct NewRunRow {
    /// Stage.
    pub stage_id: i64,
    /// Flow.
    pub flow_id: i64,
    /// Arguments.
    pub args: Value,
    /// Reason.
    pub reason: Value,
    /// Repository changes.
    pub repo_data_id: Option<i64>,
    /// State.
    pub state: i64,
    /// Planning lease (ms) of a run created to be planned.
    pub planning_until: Option<i64>,
    /// Sequences (`{}` for a run whose start gives them).
    pub seq: Value,
}

/// A new flow and its first runs, as [`Store::insert_flow_with_runs`] inserts them.
#[derive(Debug, Clone)]
pub struct NewFlowWithRuns {
    /// The flow (its `branch_id` the branch whose sequences were drawn).
    pub flow: NewFlowRow,
    /// Its runs (their `flow_id` is set by the insert).
    pub runs: Vec<NewRunRow>,
    /// The flow becomes its branch's newest incomplete CI flow (unless a
    /// newer one is), in the same transaction.
    pub ci_incomplete: bool,
}

impl Store {
    /// Insert a flow (in progress).
    pub async fn insert_flow(&self, f: &NewFlowRow) -> Result<FlowRow> {
        let now = now_ms();
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO flows (state, kind, branch_name, branch_id, args, artifacts, trigger_data_id, \
             user_data, seq, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id")
            .bind(flow_state::IN_PROGRESS).bind(f.kind).bind(&f.branch_name).bind(f.branch_id)
            .bind(Json(&f.args)).bind(Json(json!({}))).bind(f.trigger_data_id).bind(Json(json!({})))
            .bind(Json(&f.seq)).bind(now).fetch_one(p).await?);
        self.flow(id)
            .await?
            .ok_or_else(|| Error::internal("flow vanished after insert"))
    }

    /// Insert a flow and its first runs in one transaction (so a flow never
    /// exists without the runs it starts with), numbered from the branch's
    /// sequences drawn in the same transaction: `slots` are incremented as by
    /// [`Store::next_sequence_slots`] and `build` makes the rows from their
    /// values (in slot order). Returns the flow and its runs.
    pub async fn insert_flow_with_runs(
        &self,
        branch_id: i64,
        slots: &[(Option<i64>, i64)],
        build: impl FnOnce(&[i64]) -> Result<NewFlowWithRuns>,
    ) -> Result<(FlowRow, Vec<RunRow>)> {
        let now = now_ms();
        let seq_update = super::branches::sequence_update_sql(&self.db, slots);
        // The flow and its runs come back from their INSERTs: no read after them.
        let insert = format!(
            "INSERT INTO flows (state, kind, branch_name, branch_id, args, artifacts, trigger_data_id, \
             user_data, seq, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             RETURNING {FLOW_COLS}"
        );
        let insert_run = format!(
            "INSERT INTO runs (state, stage_id, flow_id, args, artifacts, reason, repo_data_id, seq, \
             created, updated, planning_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
             RETURNING {RUN_RETURNING}"
        );
        let (flow, run_rows) = in_tx!(&self.db, tx => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(seq_update)).bind(branch_id);
            for (stage_id, kind) in slots {
                if let Some(sid) = stage_id {
                    query = query.bind(*sid);
                }
                query = query.bind(*kind);
            }
            let rows: Vec<(Option<i64>, i64, i64)> = query.fetch_all(&mut *tx).await?;
            let (values, missing) = super::branches::slot_values(&rows, slots);
            for (stage_id, kind) in missing {
                sqlx::query(super::branches::INSERT_MISSING_SEQUENCE)
                    .bind(kind).bind(branch_id).bind(stage_id).execute(&mut *tx).await?;
            }
            let NewFlowWithRuns { flow: f, runs, ci_incomplete } = build(&values)?;
            let flow: FlowRow = sqlx::query_as(sqlx::AssertSqlSafe(insert))
                .bind(flow_state::IN_PROGRESS).bind(f.kind).bind(&f.branch_name).bind(f.branch_id)
                .bind(Json(&f.args)).bind(Json(json!({}))).bind(f.trigger_data_id).bind(Json(json!({})))
                .bind(Json(&f.seq)).bind(now).fetch_one(&mut *tx).await?;
            let id = flow.id;
            let mut run_rows = Vec::with_capacity(runs.len());
            for r in &runs {
                let run: RunRow = sqlx::query_as(sqlx::AssertSqlSafe(insert_run.as_str()))
                    .bind(r.state).bind(r.stage_id).bind(id).bind(Json(&r.args)).bind(Json(json!({})))
                    .bind(Json(&r.reason)).bind(r.repo_data_id).bind(Json(&r.seq)).bind(now).bind(r.planning_until)
                    .fetch_one(&mut *tx).await?;
                run_rows.push(run);
            }
            if ci_incomplete {
                sqlx::query(super::branches::ADVANCE_CI_INCOMPLETE)
                    .bind(id).bind(branch_id).execute(&mut *tx).await?;
            }
            (flow, run_rows)
        });
        Ok((flow, run_rows))
    }

    /// A non-deleted flow.
    pub async fn flow(&self, id: i64) -> Result<Option<FlowRow>> {
        let q = format!("SELECT {FLOW_COLS} FROM flows WHERE id = $1 AND deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, FlowRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// Non-deleted flows by id (one query), in no particular order.
    pub async fn flows_by_ids(&self, ids: &[i64]) -> Result<Vec<FlowRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "SELECT {FLOW_COLS} FROM flows WHERE {} AND deleted IS NULL",
            super::in_ids(&self.db, "id", 1)
        );
        super::fetch_all_by_ids(&self.db, q, ids).await
    }

    /// The data of several `repo_changes` records by id (one query).
    pub async fn repo_changes_of(&self, ids: &[i64]) -> Result<HashMap<i64, Value>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let q = format!(
            "SELECT id, data FROM repo_changes WHERE {}",
            super::in_ids(&self.db, "id", 1)
        );
        let rows: Vec<(i64, Json<Value>)> = super::fetch_all_by_ids(&self.db, q, ids).await?;
        Ok(rows.into_iter().map(|(id, d)| (id, d.0)).collect())
    }

    /// A page of a branch's flows of one kind, newest first, and their total.
    pub async fn branch_flows(
        &self,
        branch_id: i64,
        kind: i64,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<FlowRow>, i64)> {
        let rows = on_read!(&self.db, p => sqlx::query_as::<_, Paged<FlowRow>>(sqlx::AssertSqlSafe(branch_flows_page_sql()))
            .bind(branch_id).bind(kind).bind(limit).bind(start).fetch_all(p).await?);
        page_and_total(rows, start, async {
            Ok(on_read!(&self.db, p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM flows WHERE branch_id = $1 AND kind = $2 AND deleted IS NULL")
                .bind(branch_id).bind(kind).fetch_one(p).await?))
        })
        .await
    }

    /// Flows of a branch and kind around `middle`: up to `limit` with id ≥ middle
    /// (newest first) and up to `limit` older ones.
    pub async fn branch_flows_around(
        &self,
        branch_id: i64,
        kind: i64,
        middle: i64,
        limit: i64,
    ) -> Result<Vec<FlowRow>> {
        let q1 = format!(
            "SELECT {FLOW_COLS} FROM flows WHERE branch_id = $1 AND kind = $2 AND deleted IS NULL AND id >= $3 \
             ORDER BY id ASC LIMIT $4"
        );
        let mut newer = on_read!(&self.db, p => sqlx::query_as::<_, FlowRow>(sqlx::AssertSqlSafe(q1))
            .bind(branch_id).bind(kind).bind(middle).bind(limit).fetch_all(p).await?);
        newer.reverse();
        let q2 = format!(
            "SELECT {FLOW_COLS} FROM flows WHERE branch_id = $1 AND kind = $2 AND deleted IS NULL AND id < $3 \
             ORDER BY id DESC LIMIT $4"
        );
        let older = on_read!(&self.db, p => sqlx::query_as::<_, FlowRow>(sqlx::AssertSqlSafe(q2))
            .bind(branch_id).bind(kind).bind(middle).bind(limit).fetch_all(p).await?);
        newer.extend(older);
        Ok(newer)
    }

    /// Every non-deleted flow of a branch and kind, oldest first.
    pub async fn all_branch_flows(&self, branch_id: i64, kind: i64) -> Result<Vec<FlowRow>> {
        let q = format!(
            "SELECT {FLOW_COLS} FROM flows WHERE branch_id = $1 AND kind = $2 AND deleted IS NULL ORDER BY created, id"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, FlowRow>(sqlx::AssertSqlSafe(q))
            .bind(branch_id).bind(kind).fetch_all(p).await?),
        )
    }

    /// Set a flow's label if it has none yet.
    pub async fn set_flow_label_if_unset(&self, flow_id: i64, label: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE flows SET label = $1 WHERE id = $2 AND label IS NULL")
            .bind(label).bind(flow_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Mark a flow completed (once); returns whether this call completed it.
    pub async fn complete_flow(&self, flow_id: i64, summary: Option<&Value>) -> Result<bool> {
        let now = now_ms();
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE flows SET state = $1, finished = $2, summary = COALESCE($3, summary), updated = $2 \
             WHERE id = $4 AND state <> $1")
            .bind(flow_state::COMPLETED).bind(now).bind(summary.map(Json)).bind(flow_id)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Mark a flow in progress again (a run was restarted).
    pub async fn reopen_flow(&self, flow_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE flows SET state = $1, finished = NULL WHERE id = $2")
            .bind(flow_state::IN_PROGRESS).bind(flow_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Replace a flow's user data.
    pub async fn set_flow_data(&self, flow_id: i64, data: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE flows SET user_data = $1 WHERE id = $2")
            .bind(Json(data)).bind(flow_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Replace a flow's artifact counters.
    pub async fn set_flow_artifacts(&self, flow_id: i64, artifacts: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE flows SET artifacts = $1 WHERE id = $2")
            .bind(Json(artifacts)).bind(flow_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Record repository changes (a list of trigger records: a webhook's
    /// digest or a poll's commits); returns the record's id.
    pub async fn insert_repo_changes(&self, data: &Value) -> Result<i64> {
        let now = now_ms();
        Ok(on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO repo_changes (data, created, updated) VALUES ($1, $2, $2) RETURNING id")
            .bind(Json(data)).bind(now).fetch_one(p).await?))
    }

    /// Attach repository changes to a flow that has none yet.
    pub async fn set_flow_trigger_data(&self, flow_id: i64, repo_data_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE flows SET trigger_data_id = $1 WHERE id = $2 AND trigger_data_id IS NULL")
            .bind(repo_data_id).bind(flow_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// The repository changes behind a run: its own, else its flow's
    /// (one query; `None` when neither has any).
    pub async fn run_trigger_data(&self, run_id: i64) -> Result<Option<Value>> {
        let v: Option<Option<Json<Value>>> = on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT COALESCE(own.data, fl.data) FROM runs r JOIN flows f ON f.id = r.flow_id \
             LEFT JOIN repo_changes own ON own.id = r.repo_data_id \
             LEFT JOIN repo_changes fl ON fl.id = f.trigger_data_id WHERE r.id = $1")
            .bind(run_id).fetch_optional(p).await?);
        Ok(v.flatten().map(|j| j.0))
    }

    /// Data of a repository-changes record.
    pub async fn repo_changes(&self, id: i64) -> Result<Option<Value>> {
        let v: Option<Json<Value>> = on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT data FROM repo_changes WHERE id = $1").bind(id).fetch_optional(p).await?);
        Ok(v.map(|j| j.0))
    }

    // ------------------------------------------------------------ runs

    /// Insert a run.
    pub async fn insert_run(&self, r: &NewRunRow) -> Result<RunRow> {
        let now = now_ms();
        let q = format!(
            "INSERT INTO runs (state, stage_id, flow_id, args, artifacts, reason, repo_data_id, seq, \
             created, updated, planning_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
             RETURNING {RUN_RETURNING}"
        );
        Ok(
            on_write!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(q))
            .bind(r.state).bind(r.stage_id).bind(r.flow_id).bind(Json(&r.args)).bind(Json(json!({})))
            .bind(Json(&r.reason)).bind(r.repo_data_id).bind(Json(&r.seq)).bind(now).bind(r.planning_until)
            .fetch_one(p).await?),
        )
    }

    /// A non-deleted run.
    pub async fn run(&self, id: i64) -> Result<Option<RunRow>> {
        let q = format!("{RUN_SELECT} WHERE r.id = $1 AND r.deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// Runs of a flow, oldest first.
    pub async fn flow_runs(&self, flow_id: i64) -> Result<Vec<RunRow>> {
        let q = format!("{RUN_SELECT} WHERE r.flow_id = $1 AND r.deleted IS NULL ORDER BY r.id");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(q))
            .bind(flow_id).fetch_all(p).await?),
        )
    }

    /// Runs of several flows, oldest first.
    pub async fn runs_of_flows(&self, flow_ids: &[i64]) -> Result<Vec<RunRow>> {
        if flow_ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "{RUN_SELECT} WHERE {} AND r.deleted IS NULL ORDER BY r.id",
            super::in_ids(&self.db, "r.flow_id", 1)
        );
        super::fetch_all_by_ids(&self.db, q, flow_ids).await
    }

    /// [`Store::runs_of_flows`] and the live job counters of those not
    /// processed (as [`Store::job_counts`]), in one statement.
    pub async fn runs_of_flows_counted(
        &self,
        flow_ids: &[i64],
    ) -> Result<(Vec<RunRow>, HashMap<i64, JobCounts>)> {
        if flow_ids.is_empty() {
            return Ok((Vec::new(), HashMap::new()));
        }
        let q = format!(
            concat!(
                "SELECT ",
                run_cols!(),
                ", c.total AS c_total, c.waiting AS c_waiting, c.executing AS c_executing, \
                 c.processing AS c_processing, c.error AS c_error \
                 FROM runs r JOIN stages s ON s.id = r.stage_id LEFT JOIN (SELECT run_id, ",
                job_counter_cols!(),
                " FROM jobs WHERE run_id IN (SELECT id FROM runs WHERE {runs} AND state <> {processed} \
                 AND deleted IS NULL) AND covered = FALSE AND deleted IS NULL GROUP BY run_id) c \
                 ON c.run_id = r.id WHERE {flows} AND r.deleted IS NULL ORDER BY r.id"
            ),
            runs = super::in_ids(&self.db, "flow_id", 1),
            processed = run_state::PROCESSED,
            flows = super::in_ids(&self.db, "r.flow_id", 1),
        );
        let rows: Vec<RunCounted> = super::fetch_all_by_ids(&self.db, q, flow_ids).await?;
        let mut counts = HashMap::new();
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(total) = row.c_total {
                counts.insert(
                    row.run.id,
                    JobCounts {
                        run_id: row.run.id,
                        total,
                        waiting: row.c_waiting.unwrap_or(0),
                        executing: row.c_executing.unwrap_or(0),
                        processing: row.c_processing.unwrap_or(0),
                        error: row.c_error.unwrap_or(0),
                    },
                );
            }
            runs.push(row.run);
        }
        Ok((runs, counts))
    }

    /// Runs of a stage, newest first.
    pub async fn stage_runs(&self, stage_id: i64, limit: i64) -> Result<Vec<RunRow>> {
        let q = format!(
            "{RUN_SELECT} WHERE r.stage_id = $1 AND r.deleted IS NULL ORDER BY r.id DESC LIMIT $2"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(q))
            .bind(stage_id).bind(limit).fetch_all(p).await?),
        )
    }

    /// The run of a stage in a flow.
    pub async fn run_of_stage_in_flow(
        &self,
        flow_id: i64,
        stage_id: i64,
    ) -> Result<Option<RunRow>> {
        let q = format!(
            "{RUN_SELECT} WHERE r.flow_id = $1 AND r.stage_id = $2 AND r.deleted IS NULL ORDER BY r.id LIMIT 1"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(q))
            .bind(flow_id).bind(stage_id).fetch_optional(p).await?),
        )
    }

    /// Live job counters of runs.
    pub async fn job_counts(&self, run_ids: &[i64]) -> Result<Vec<JobCounts>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            concat!(
                "SELECT run_id, ",
                job_counter_cols!(),
                " FROM jobs WHERE {} AND covered = FALSE AND deleted IS NULL GROUP BY run_id"
            ),
            super::in_ids(&self.db, "run_id", 1)
        );
        super::fetch_all_by_ids(&self.db, q, run_ids).await
    }

    /// Set a run's state.
    pub async fn set_run_state(&self, run_id: i64, state: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE runs SET state = $1, updated = $2 WHERE id = $3")
            .bind(state).bind(now_ms()).bind(run_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Set args, sequences, label and state of a run being started.
    pub async fn start_run_row(
        &self,
        run_id: i64,
        args: &Value,
        seq: &Value,
        label: Option<&str>,
        state: i64,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET args = $1, seq = $2, label = $3, state = $4, updated = $5 WHERE id = $6")
            .bind(Json(args)).bind(Json(seq)).bind(label).bind(state).bind(now_ms()).bind(run_id)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Mark a run's jobs started now (state in progress).
    pub async fn mark_run_started(&self, run_id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET started = $1, state = $2, finished = NULL, updated = $1 WHERE id = $3")
            .bind(now).bind(run_state::IN_PROGRESS).bind(run_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// A run goes on (a job was rerun): in progress, not finished; start time kept.
    pub async fn resume_run(&self, run_id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET state = $1, finished = NULL, started = COALESCE(started, $2), updated = $2 WHERE id = $3")
            .bind(run_state::IN_PROGRESS).bind(now).bind(run_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Complete a run (once) and hold its follow-up work until `lease_until`
    /// (ms): returns whether this call completed it. The follow-up is
    /// recorded in the same statement, so a server stopping right after it
    /// leaves durable work behind, not a run nobody finishes.
    pub async fn complete_run_row(
        &self,
        run_id: i64,
        note: Option<&str>,
        lease_until: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET state = $1, finished = $2, started = COALESCE(started, $2), updated = $2, \
             note = CASE WHEN $3 IS NULL THEN note WHEN note IS NULL THEN $3 ELSE note || $6 || $3 END, \
             planning_until = NULL, completing_until = $7 \
             WHERE id = $4 AND state NOT IN ($1, $5)")
            .bind(run_state::COMPLETED).bind(now).bind(note).bind(run_id).bind(run_state::PROCESSED).bind("\n")
            .bind(lease_until)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Move the follow-up lease of a completed run from `old` to `new`
    /// (`None`: done); false when another server holds it now.
    pub async fn move_completing_lease(
        &self,
        run_id: i64,
        old: i64,
        new: Option<i64>,
    ) -> Result<bool> {
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET completing_until = $1 WHERE id = $2 AND completing_until = $3")
            .bind(new).bind(run_id).bind(old).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Take the planning lease of a run: from `old` (`None`: nobody holds it)
    /// to `new` (`None`: planning over); false when someone else holds it.
    pub async fn move_planning_lease(
        &self,
        run_id: i64,
        old: Option<i64>,
        new: Option<i64>,
    ) -> Result<bool> {
        let n = match old {
            Some(old) => on_write!(&self.db, p => sqlx::query(
                "UPDATE runs SET planning_until = $1 WHERE id = $2 AND planning_until = $3")
                .bind(new).bind(run_id).bind(old).execute(p).await?.rows_affected()),
            None => on_write!(&self.db, p => sqlx::query(
                "UPDATE runs SET planning_until = $1 WHERE id = $2 AND planning_until IS NULL")
                .bind(new).bind(run_id).execute(p).await?.rows_affected()),
        };
        Ok(n == 1)
    }

    /// Set a run's planning lease whoever held it (a person replays the run).
    pub async fn set_planning_lease(&self, run_id: i64, until: Option<i64>) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE runs SET planning_until = $1 WHERE id = $2")
            .bind(until).bind(run_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Runs whose planner stopped: a planning lease older than `now`.
    pub async fn runs_with_lapsed_planning(&self, now: i64) -> Result<Vec<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(lapsed_planning_sql()))
            .bind(now).fetch_all(p).await?),
        )
    }

    /// Completed runs whose follow-up was left undone: a lease older than `now`.
    pub async fn runs_with_lapsed_completion(&self, now: i64) -> Result<Vec<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(lapsed_completion_sql()))
            .bind(now).fetch_all(p).await?),
        )
    }

    /// Runs going on (created, in progress, replayed) that nobody plans and
    /// whose every job is completed (or that have none): a server stopped
    /// between a job's end and the run's.
    pub async fn runs_done_but_open(&self) -> Result<Vec<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(runs_done_but_open_sql())).fetch_all(p).await?),
        )
    }

    /// Runs left `creating` with no planning lease (stopped before leases existed).
    pub async fn runs_creating_unplanned(&self) -> Result<Vec<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(runs_creating_unplanned_sql())).fetch_all(p).await?),
        )
    }

    /// Flows in progress created before `before` with nothing left going:
    /// no run being created, planned, run or followed up, and either no run
    /// at all or at least one finished one (a flow waiting only on manual
    /// runs stays open, as in the original).
    pub async fn stalled_flows(&self, before: i64) -> Result<Vec<FlowRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, FlowRow>(sqlx::AssertSqlSafe(stalled_flows_sql()))
            .bind(before).fetch_all(p).await?),
        )
    }

    /// Whether a run of `stage_id` in the flow was started or changed at or after `since` (ms).
    pub async fn stage_run_touched_since(
        &self,
        flow_id: i64,
        stage_id: i64,
        since: i64,
    ) -> Result<bool> {
        let n: i64 = on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE flow_id = $1 AND stage_id = $2 AND deleted IS NULL AND updated >= $3")
            .bind(flow_id).bind(stage_id).bind(since).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// Append a line to a run's note.
    pub async fn append_run_note(&self, run_id: i64, note: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET note = CASE WHEN note IS NULL THEN $1 ELSE note || $3 || $1 END WHERE id = $2")
            .bind(note).bind(run_id).bind("\n").execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a run's counters after analysis.
    pub async fn set_run_counters(&self, run_id: i64, c: &RunCounters) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE runs SET tests_total = $1, tests_passed = $2, tests_not_run = $3, issues_total = $4, \
             jobs_total = $5, jobs_error = $6 WHERE id = $7")
            .bind(c.tests_total).bind(c.tests_passed).bind(c.tests_not_run).bind(c.issues_total)
            .bind(c.jobs_total).bind(c.jobs_error).bind(run_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store the results of the history analysis and mark the run processed.
    pub async fn set_run_processed(
        &self,
        run_id: i64,
        h: &HistoryCounters,
        flow_summary: Option<(i64, &Value)>,
    ) -> Result<()> {
        in_tx!(&self.db, tx => {
            sqlx::query(
                "UPDATE runs SET new_cnt = $1, no_change_cnt = $2, regr_cnt = $3, fix_cnt = $4, issues_new = $5, \
                 state = $6, processed_at = $7 WHERE id = $8")
                .bind(h.new_cnt).bind(h.no_change_cnt).bind(h.regr_cnt).bind(h.fix_cnt).bind(h.issues_new)
                .bind(run_state::PROCESSED).bind(now_ms()).bind(run_id).execute(&mut *tx).await?;
            if let Some((flow_id, summary)) = flow_summary {
                sqlx::query("UPDATE flows SET summary = $1 WHERE id = $2 AND finished IS NOT NULL")
                    .bind(Json(summary)).bind(flow_id).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// Replace a run's artifact counters.
    pub async fn set_run_artifacts(&self, run_id: i64, artifacts: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE runs SET artifacts = $1 WHERE id = $2")
            .bind(Json(artifacts)).bind(run_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Counters of a run over its non-covered jobs: jobs, failed jobs, tests, issues.
    pub async fn run_counters(&self, run_id: i64) -> Result<RunCounters> {
        // One statement (a round trip each on PostgreSQL, a hand-off on SQLite).
        let (jobs_total, jobs_error, tests_total, tests_passed, tests_not_run, issues_total): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = on_read!(&self.db, p => sqlx::query_as(
            "SELECT jc.total, jc.error, tc.total, tc.passed, tc.not_run, ic.total FROM \
             (SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN completion_status IS NOT NULL AND completion_status <> 0 \
               THEN 1 ELSE 0 END), 0) AS error FROM jobs WHERE run_id = $1 AND covered = FALSE AND deleted IS NULL) jc, \
             (SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN t.result = 1 THEN 1 ELSE 0 END), 0) AS passed, \
               COALESCE(SUM(CASE WHEN t.result = 0 THEN 1 ELSE 0 END), 0) AS not_run FROM test_case_results t \
               JOIN jobs j ON j.id = t.job_id WHERE j.run_id = $1 AND j.covered = FALSE) tc, \
             (SELECT COUNT(*) AS total FROM issues i JOIN jobs j ON j.id = i.job_id \
               WHERE j.run_id = $1 AND j.covered = FALSE) ic")
            .bind(run_id).fetch_one(p).await?);
        Ok(RunCounters {
            tests_total,
            tests_passed,
            tests_not_run,
            issues_total,
            jobs_total,
            jobs_error,
        })
    }

    /// The latest run of the same stage in an earlier-created CI flow.
    pub async fn previous_ci_run(&self, run: &RunRow, flow: &FlowRow) -> Result<Option<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(previous_ci_run_sql()))
            .bind(run.stage_id).bind(flow.created).bind(flow.id).bind(flow.branch_id).fetch_optional(p).await?),
        )
    }

    /// The run of the same stage in the next-created flow of the same kind.
    pub async fn next_run_of_stage(&self, run: &RunRow, flow: &FlowRow) -> Result<Option<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(next_run_of_stage_sql()))
            .bind(run.stage_id).bind(flow.created).bind(flow.id).bind(flow.branch_id).bind(flow.kind).fetch_optional(p).await?),
        )
    }

    /// Runs not finished (not manual), for the watchdog's run timeout.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(unfinished_runs_sql())).fetch_all(p).await?),
        )
    }

    /// Runs of a branch that have not finished (any state but completed or processed).
    pub async fn unfinished_runs_of_branch(&self, branch_id: i64) -> Result<Vec<RunRow>> {
        let q = format!(
            "{RUN_SELECT} JOIN flows f ON f.id = r.flow_id WHERE f.branch_id = $1 AND r.deleted IS NULL \
             AND r.state NOT IN ({}, {})",
            run_state::COMPLETED,
            run_state::PROCESSED
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(q))
            .bind(branch_id).fetch_all(p).await?),
        )
    }

    /// Completed runs not yet analysed that finished between `from` and `to` (ms), oldest first.
    pub async fn unprocessed_runs(&self, from: i64, to: i64) -> Result<Vec<RunRow>> {
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(unprocessed_runs_sql()))
            .bind(from).bind(to).fetch_all(p).await?),
        )
    }

    /// Whether any run of the flow is still in progress.
    pub async fn flow_has_running_runs(&self, flow_id: i64) -> Result<bool> {
        let n: i64 = on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE flow_id = $1 AND deleted IS NULL AND state = $2")
            .bind(flow_id).bind(run_state::IN_PROGRESS).fetch_one(p).await?);
        Ok(n > 0)
    }
}

/// Counters of a run computed when it completes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunCounters {
    /// Tests.
    pub tests_total: i64,
    /// Passed tests.
    pub tests_passed: i64,
    /// Tests not run.
    pub tests_not_run: i64,
    /// Issues.
    pub issues_total: i64,
    /// Jobs.
    pub jobs_total: i64,
    /// Failed jobs.
    pub jobs_error: i64,
}

/// Counters of a run's results-history analysis.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryCounters {
    /// New tests.
    pub new_cnt: i64,
    /// Unchanged tests.
    pub no_change_cnt: i64,
    /// Regressions.
    pub regr_cnt: i64,
    /// Fixes.
    pub fix_cnt: i64,
    /// New issues.
    pub issues_new: i64,
}

impl Store {
    /// A flow, or "Flow not found".
    pub async fn require_flow(&self, id: i64) -> Result<FlowRow> {
        self.flow(id)
            .await?
            .ok_or_else(|| crate::error::Error::not_found("Flow not found"))
    }

    /// A run, or "Run not found".
    pub async fn require_run(&self, id: i64) -> Result<RunRow> {
        self.run(id)
            .await?
            .ok_or_else(|| crate::error::Error::not_found("Run not found"))
    }
}
