//! Jobs and steps.

use serde_json::Value;
use sqlx::types::Json;

use super::{Paged, Store, now_ms, on_read, on_write, page_and_total};
use crate::error::{Error, Result};
use crate::model::job_state;

/// A `jobs` row with the names of its system, group and agent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Assigned to an agent (ms).
    pub assigned: Option<i64>,
    /// Fetched by the agent (ms).
    pub started: Option<i64>,
    /// Agent finished (ms).
    pub finished: Option<i64>,
    /// Completed (ms).
    pub completed: Option<i64>,
    /// Run.
    pub run_id: i64,
    /// State.
    pub state: i64,
    /// Completion status.
    pub completion_status: Option<i64>,
    /// Superseded by a rerun.
    pub covered: bool,
    /// Notes.
    pub notes: Option<String>,
    /// Agent.
    pub agent_used_id: Option<i64>,
    /// Agent name.
    pub agent_name: Option<String>,
    /// Group.
    pub agents_group_id: i64,
    /// Group name.
    pub agents_group_name: String,
    /// Timeout (s).
    pub timeout: i64,
    /// System.
    pub system_id: i64,
    /// System name.
    pub system_name: String,
    /// Executor.
    pub executor: String,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
    /// The job this one retries (its agent went silent).
    pub retry_of: Option<i64>,
    /// The network of a docker job's container (`None`: Docker's default).
    pub network: Option<String>,
}

/// `SELECT` of [`JobRow`]s, with `$extra` columns after the row's.
macro_rules! job_select {
    ($($extra:literal)?) => {
        concat!(
            "SELECT j.id, j.name, j.assigned, j.started, j.finished, j.completed, j.run_id, \
            j.state, j.completion_status, j.covered, j.notes, j.agent_used_id, a.name AS agent_name, \
            j.agents_group_id, g.name AS agents_group_name, j.timeout, j.system_id, s.name AS system_name, \
            s.executor, j.created, j.deleted, j.retry_of, j.network",
            $($extra,)?
            " FROM jobs j JOIN agents_groups g ON g.id = j.agents_group_id \
            JOIN systems s ON s.id = j.system_id LEFT JOIN agents a ON a.id = j.agent_used_id"
        )
    };
}
const JOB_SELECT: &str = job_select!();
/// [`JOB_SELECT`] with the number of all the jobs of agent `$1`: a subquery
/// of the same statement, so it agrees with the page, reading an index only.
pub(super) const AGENT_JOBS_COUNTED: &str = job_select!(
    ", (SELECT COUNT(*) FROM jobs c WHERE c.agent_used_id = $1 AND c.deleted IS NULL) AS total"
);

/// A `steps` row with its tool.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    /// Id.
    pub id: i64,
    /// Index in the job.
    pub idx: i64,
    /// Job.
    pub job_id: i64,
    /// Tool.
    pub tool_id: i64,
    /// Tool name.
    pub tool_name: String,
    /// Tool location.
    pub tool_location: Option<String>,
    /// Tool entry.
    pub tool_entry: Option<String>,
    /// Tool version.
    pub tool_version: Option<String>,
    /// Evaluated fields.
    pub fields: Json<Value>,
    /// Result.
    pub result: Option<Json<Value>>,
    /// Status.
    pub status: Option<i64>,
    /// Fields with secrets masked.
    pub fields_masked: Option<Json<Value>>,
    /// Fields as in the schema.
    pub fields_raw: Json<Value>,
    /// Times the step was handed to an agent (more than 1: it was restarted).
    pub attempts: i64,
}

const STEP_SELECT: &str = "SELECT st.id, st.idx, st.job_id, st.tool_id, t.name AS tool_name, \
    t.location AS tool_location, t.entry AS tool_entry, t.version AS tool_version, st.fields, st.result, \
    st.status, st.fields_masked, st.fields_raw, st.attempts FROM steps st JOIN tools t ON t.id = st.tool_id";

/// The columns of a new job.
#[derive(Debug, Clone)]
pub struct NewJobRow {
    /// Run.
    pub run_id: i64,
    /// Name.
    pub name: String,
    /// Group.
    pub agents_group_id: i64,
    /// System.
    pub system_id: i64,
    /// Timeout (s).
    pub timeout: i64,
    /// Completed at once with this status and note (a job that cannot run).
    pub completed_with: Option<(i64, String)>,
    /// The network of a docker job's container (`None`: Docker's default).
    pub network: Option<String>,
}

/// A step of a planned job.
#[derive(Debug, Clone)]
pub struct NewStepRow {
    /// Index in the job.
    pub idx: i64,
    /// Tool.
    pub tool_id: i64,
    /// Evaluated fields.
    pub fields: Value,
    /// Fields with secrets masked.
    pub masked: Value,
    /// Fields as in the schema.
    pub raw: Value,
}

/// A job of a run being planned, with its steps and the jobs it covers.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    /// The job.
    pub job: NewJobRow,
    /// Its steps.
    pub steps: Vec<NewStepRow>,
    /// Jobs of an earlier pass of the run this one replaces.
    pub covers: Vec<i64>,
}

impl Store {
    /// Store the planned jobs of a run and mark it started, in one
    /// transaction and only while `lease` is still the run's planning lease
    /// (then cleared): a run has all its jobs or none, and two planners of
    /// one run never both create jobs. Returns the new job ids, or `None`
    /// when the lease was lost (another server planned the run).
    pub async fn insert_planned_jobs(
        &self,
        run_id: i64,
        flow_id: i64,
        lease: i64,
        jobs: &[PlannedJob],
    ) -> Result<Option<Vec<i64>>> {
        let now = now_ms();
        Ok(super::in_tx!(&self.db, tx => {
            let n = sqlx::query(
                "UPDATE runs SET started = $1, state = $2, finished = NULL, updated = $1, planning_until = NULL \
                 WHERE id = $3 AND planning_until = $4")
                .bind(now).bind(crate::model::run_state::IN_PROGRESS).bind(run_id).bind(lease)
                .execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Ok(None);
            }
            let mut ids = Vec::new();
            for pj in jobs {
                let j = &pj.job;
                let (state, status, notes, completed) = match &j.completed_with {
                    Some((status, note)) => (job_state::COMPLETED, Some(*status), Some(note.clone()), Some(now)),
                    None => (job_state::QUEUED, None, None, None),
                };
                let job_id: i64 = sqlx::query_scalar(
                    "INSERT INTO jobs (name, run_id, state, completion_status, covered, notes, agents_group_id, timeout, \
                     system_id, completed, created, updated, network) VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8, $9, $10, $10, $11) RETURNING id")
                    .bind(&j.name).bind(j.run_id).bind(state).bind(status).bind(notes).bind(j.agents_group_id)
                    .bind(j.timeout).bind(j.system_id).bind(completed).bind(now).bind(&j.network).fetch_one(&mut *tx).await?;
                for st in &pj.steps {
                    sqlx::query(
                        "INSERT INTO steps (idx, job_id, tool_id, fields, fields_masked, fields_raw, created, updated) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
                        .bind(st.idx).bind(job_id).bind(st.tool_id).bind(Json(&st.fields)).bind(Json(&st.masked))
                        .bind(Json(&st.raw)).bind(now).execute(&mut *tx).await?;
                }
                for old in &pj.covers {
                    sqlx::query("UPDATE jobs SET covered = TRUE WHERE id = $1")
                        .bind(old).execute(&mut *tx).await?;
                }
                ids.push(job_id);
            }
            sqlx::query("UPDATE flows SET state = $1, finished = NULL WHERE id = $2")
                .bind(crate::model::flow_state::IN_PROGRESS).bind(flow_id).execute(&mut *tx).await?;
            Some(ids)
        }))
    }

    /// Replace a job whose agent went silent by a fresh copy (queued, for
    /// another agent), in one transaction: the old one is completed with
    /// `status` and `old_note`, covered, its steps closed. Returns the new
    /// job's id, or `None` when the old job had completed meanwhile.
    pub async fn retry_job(
        &self,
        job: &JobRow,
        status: i64,
        old_note: &str,
        new_note: &str,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let steps = self.steps_of(&[job.id]).await?;
        Ok(super::in_tx!(&self.db, tx => {
            let n = sqlx::query(
                "UPDATE jobs SET state = $1, completion_status = $2, completed = $3, finished = COALESCE(finished, $3), \
                 notes = $4, covered = TRUE, updated = $3 WHERE id = $5 AND state <> $1")
                .bind(job_state::COMPLETED).bind(status).bind(now).bind(old_note).bind(job.id)
                .execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Ok(None);
            }
            sqlx::query("UPDATE steps SET status = 3 WHERE job_id = $1 AND status = 1")
                .bind(job.id).execute(&mut *tx).await?;
            sqlx::query("UPDATE steps SET status = 4 WHERE job_id = $1 AND (status IS NULL OR status = 0)")
                .bind(job.id).execute(&mut *tx).await?;
            let new_id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (name, run_id, state, covered, notes, agents_group_id, timeout, system_id, \
                 retry_of, created, updated, network) VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING id")
                .bind(&job.name).bind(job.run_id).bind(job_state::QUEUED).bind(new_note).bind(job.agents_group_id)
                .bind(job.timeout).bind(job.system_id).bind(job.id).bind(now).bind(&job.network).fetch_one(&mut *tx).await?;
            for s in &steps {
                let mut fields = s.fields_raw.0.clone();
                if let Some(o) = fields.as_object_mut() {
                    o.remove("tool");
                }
                sqlx::query(
                    "INSERT INTO steps (idx, job_id, tool_id, fields, fields_masked, fields_raw, created, updated) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
                    .bind(s.idx).bind(new_id).bind(s.tool_id).bind(Json(&fields)).bind(Json(&fields))
                    .bind(Json(&s.fields_raw.0)).bind(now).execute(&mut *tx).await?;
            }
            Some(new_id)
        }))
    }

    /// Count one more hand-out of a step to an agent; returns the count.
    pub async fn count_step_attempt(&self, step_id: i64) -> Result<i64> {
        Ok(on_write!(&self.db, p => sqlx::query_scalar(
            "UPDATE steps SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts")
            .bind(step_id).fetch_one(p).await?))
    }

    /// Insert a job (queued, or completed at once).
    pub async fn insert_job(&self, j: &NewJobRow) -> Result<i64> {
        let now = now_ms();
        let (state, status, notes, completed) = match &j.completed_with {
            Some((status, note)) => (
                job_state::COMPLETED,
                Some(*status),
                Some(note.clone()),
                Some(now),
            ),
            None => (job_state::QUEUED, None, None, None),
        };
        Ok(on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO jobs (name, run_id, state, completion_status, covered, notes, agents_group_id, timeout, \
             system_id, completed, created, updated, network) VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8, $9, $10, $10, $11) RETURNING id")
            .bind(&j.name).bind(j.run_id).bind(state).bind(status).bind(notes).bind(j.agents_group_id)
            .bind(j.timeout).bind(j.system_id).bind(completed).bind(now).bind(&j.network).fetch_one(p).await?))
    }

    /// Insert a step.
    pub async fn insert_step(
        &self,
        job_id: i64,
        idx: i64,
        tool_id: i64,
        fields: &Value,
        masked: &Value,
        raw: &Value,
    ) -> Result<i64> {
        let now = now_ms();
        Ok(on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO steps (idx, job_id, tool_id, fields, fields_masked, fields_raw, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id")
            .bind(idx).bind(job_id).bind(tool_id).bind(Json(fields)).bind(Json(masked)).bind(Json(raw)).bind(now)
            .fetch_one(p).await?))
    }

    /// A non-deleted job.
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let q = format!("{JOB_SELECT} WHERE j.id = $1 AND j.deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// Jobs of a run (optionally with covered ones), by id.
    pub async fn run_jobs(&self, run_id: i64, include_covered: bool) -> Result<Vec<JobRow>> {
        let q = if include_covered {
            format!("{JOB_SELECT} WHERE j.run_id = $1 AND j.deleted IS NULL ORDER BY j.id")
        } else {
            format!(
                "{JOB_SELECT} WHERE j.run_id = $1 AND j.deleted IS NULL AND j.covered = FALSE ORDER BY j.id"
            )
        };
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(q))
            .bind(run_id).fetch_all(p).await?),
        )
    }

    /// A page of the jobs an agent ran, newest first, and their total.
    pub async fn agent_jobs(
        &self,
        agent_id: i64,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<JobRow>, i64)> {
        let q = format!(
            "{AGENT_JOBS_COUNTED} WHERE j.agent_used_id = $1 AND j.deleted IS NULL \
             ORDER BY j.id DESC LIMIT $2 OFFSET $3"
        );
        let rows = on_read!(&self.db, p => sqlx::query_as::<_, Paged<JobRow>>(sqlx::AssertSqlSafe(q))
            .bind(agent_id).bind(limit).bind(start).fetch_all(p).await?);
        page_and_total(rows, start, async {
            Ok(on_read!(&self.db, p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE agent_used_id = $1 AND deleted IS NULL")
                .bind(agent_id).fetch_one(p).await?))
        })
        .await
    }

    /// Steps of jobs, by job and index.
    pub async fn steps_of(&self, job_ids: &[i64]) -> Result<Vec<StepRow>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "{STEP_SELECT} WHERE {} AND st.deleted IS NULL ORDER BY st.job_id, st.idx",
            super::in_ids(&self.db, "st.job_id", 1)
        );
        super::fetch_all_by_ids(&self.db, q, job_ids).await
    }

    /// One step of a job.
    pub async fn step(&self, job_id: i64, idx: i64) -> Result<Option<StepRow>> {
        let q =
            format!("{STEP_SELECT} WHERE st.job_id = $1 AND st.idx = $2 AND st.deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, StepRow>(sqlx::AssertSqlSafe(q))
            .bind(job_id).bind(idx).fetch_optional(p).await?),
        )
    }

    /// Store a step's status and result.
    pub async fn set_step_result(
        &self,
        step_id: i64,
        status: Option<i64>,
        result: Option<&Value>,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE steps SET status = $1, result = COALESCE($2, result), updated = $3 WHERE id = $4")
            .bind(status).bind(result.map(Json)).bind(now_ms()).bind(step_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a step's evaluated fields.
    pub async fn set_step_fields(
        &self,
        step_id: i64,
        fields: &Value,
        masked: &Value,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE steps SET fields = $1, fields_masked = $2 WHERE id = $3")
            .bind(Json(fields)).bind(Json(masked)).bind(step_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Find an error-free way to say "that job does not exist".
    pub async fn require_job(&self, id: i64) -> Result<JobRow> {
        self.job(id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))
    }
}

/// An idle agent that may take a job: authorized, active, enabled, no job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdleAgent {
    /// Agent.
    pub agent_id: i64,
    /// A group it is in.
    pub group_id: i64,
    /// `host_info`, for its system name.
    pub host_info: Option<Json<Value>>,
}

/// A job waiting for an agent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaitingJob {
    /// Job.
    pub id: i64,
    /// Group.
    pub agents_group_id: i64,
    /// System name.
    pub system_name: String,
    /// Executor.
    pub executor: String,
}

impl Store {
    /// Queued jobs without an agent, oldest run first (FIFO).
    pub async fn waiting_jobs(&self, limit: i64) -> Result<Vec<WaitingJob>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, WaitingJob>(
            "SELECT j.id, j.agents_group_id, s.name AS system_name, s.executor FROM jobs j \
             JOIN systems s ON s.id = j.system_id JOIN runs r ON r.id = j.run_id \
             WHERE j.state = 2 AND j.agent_used_id IS NULL AND j.covered = FALSE AND j.deleted IS NULL \
             ORDER BY r.created, r.id, j.created, j.id LIMIT $1")
            .bind(limit).fetch_all(p).await?))
    }

    /// Idle agents, once per group they are in.
    pub async fn idle_agents(&self) -> Result<Vec<IdleAgent>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, IdleAgent>(
            "SELECT a.id AS agent_id, aa.agents_group_id AS group_id, a.host_info FROM agents a \
             JOIN agent_assignments aa ON aa.agent_id = a.id \
             WHERE a.job_id IS NULL AND a.authorized = TRUE AND a.state = 0 AND a.disabled = FALSE \
             AND a.deleted IS NULL ORDER BY a.last_seen DESC, a.id")
            .fetch_all(p).await?))
    }

    /// The host info of every usable agent of a group (authorized, active,
    /// enabled), idle or not: what executors the group can run.
    pub async fn group_host_infos(&self, group_id: i64) -> Result<Vec<Option<Json<Value>>>> {
        Ok(on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT a.host_info FROM agents a JOIN agent_assignments aa ON aa.agent_id = a.id \
             WHERE aa.agents_group_id = $1 AND a.authorized = TRUE AND a.state = 0 AND a.disabled = FALSE \
             AND a.deleted IS NULL")
            .bind(group_id).fetch_all(p).await?))
    }

    /// Set (or clear) the note of a job still waiting for an agent; whether
    /// it changed.
    pub async fn set_waiting_job_note(&self, job_id: i64, note: Option<&str>) -> Result<bool> {
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE jobs SET notes = $1 WHERE id = $2 AND state = 2 \
             AND ((notes IS NULL AND $1 IS NOT NULL) OR (notes IS NOT NULL AND $1 IS NULL) OR notes <> $1)")
            .bind(note).bind(job_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Give `job` to `agent` if both are still free; false when someone was faster.
    /// Safe between servers sharing one PostgreSQL: each UPDATE only matches a
    /// free row, and a second claimer re-checks after the first commits.
    pub async fn claim_job(&self, job_id: i64, agent_id: i64) -> Result<bool> {
        let now = now_ms();
        Ok(super::in_tx!(&self.db, tx => {
            let a = sqlx::query(
                "UPDATE agents SET job_id = $1 WHERE id = $2 AND job_id IS NULL AND deleted IS NULL \
                 AND authorized = TRUE AND disabled = FALSE")
                .bind(job_id).bind(agent_id).execute(&mut *tx).await?.rows_affected();
            if a != 1 {
                return Ok(false);
            }
            let j = sqlx::query(
                "UPDATE jobs SET agent_used_id = $1, assigned = $2 WHERE id = $3 AND agent_used_id IS NULL \
                 AND state = 2 AND covered = FALSE")
                .bind(agent_id).bind(now).bind(job_id).execute(&mut *tx).await?.rows_affected();
            if j != 1 {
                return Ok(false);
            }
            true
        }))
    }

    /// The agent fetched its job: started now, state assigned.
    pub async fn mark_job_started(&self, job_id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE jobs SET started = COALESCE(started, $1), state = $2, updated = $1 WHERE id = $3 AND state = $4")
            .bind(now).bind(job_state::ASSIGNED).bind(job_id).bind(job_state::QUEUED)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// The agent ran out of steps: executing finished.
    pub async fn mark_job_finished(&self, job_id: i64) -> Result<bool> {
        let now = now_ms();
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE jobs SET finished = $1, state = $2, updated = $1 WHERE id = $3 AND state IN (2, 3)")
            .bind(now).bind(job_state::EXECUTING_FINISHED).bind(job_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Complete a job with a status (once); returns whether this call did it.
    pub async fn complete_job(&self, job_id: i64, status: i64, note: Option<&str>) -> Result<bool> {
        let now = now_ms();
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE jobs SET state = $1, completion_status = $2, completed = $3, finished = COALESCE(finished, $3), \
             notes = COALESCE($4, notes), updated = $3 WHERE id = $5 AND state <> $1")
            .bind(job_state::COMPLETED).bind(status).bind(now).bind(note).bind(job_id)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Free an agent from a job.
    pub async fn unassign_agent(&self, agent_id: i64, job_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE agents SET job_id = NULL WHERE id = $1 AND job_id = $2")
            .bind(agent_id).bind(job_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Change a job's timeout (seconds).
    pub async fn set_job_timeout(&self, job_id: i64, timeout: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE jobs SET timeout = $1 WHERE id = $2")
            .bind(timeout).bind(job_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Mark a job superseded by a rerun.
    pub async fn cover_job(&self, job_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE jobs SET covered = TRUE WHERE id = $1")
            .bind(job_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Steps of a job in progress become errors, untouched ones skipped (a cancel).
    pub async fn close_steps_of_canceled_job(&self, job_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE steps SET status = 3 WHERE job_id = $1 AND status = 1")
            .bind(job_id).execute(p).await?.rows_affected());
        on_write!(&self.db, p => sqlx::query(
            "UPDATE steps SET status = 4 WHERE job_id = $1 AND (status IS NULL OR status = 0)")
            .bind(job_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Jobs holding an agent for longer than their timeout (ms since assignment).
    pub async fn expired_jobs(&self, now: i64) -> Result<Vec<JobRow>> {
        let q = format!(
            "{JOB_SELECT} WHERE j.state IN (2, 3) AND j.assigned IS NOT NULL AND j.deleted IS NULL \
             AND j.assigned + j.timeout * 1000 < $1"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(q))
            .bind(now).fetch_all(p).await?),
        )
    }

    /// Not-completed jobs of a run.
    pub async fn open_jobs_of_run(&self, run_id: i64) -> Result<Vec<JobRow>> {
        let q = format!(
            "{JOB_SELECT} WHERE j.run_id = $1 AND j.state <> 5 AND j.deleted IS NULL ORDER BY j.id"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(q))
            .bind(run_id).fetch_all(p).await?),
        )
    }

    /// Whether every job of a run (covered ones included) is completed.
    pub async fn run_jobs_all_completed(&self, run_id: i64) -> Result<bool> {
        let n: i64 = on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE run_id = $1 AND state <> 5 AND deleted IS NULL")
            .bind(run_id).fetch_one(p).await?);
        Ok(n == 0)
    }

    /// Completed, non-covered jobs like this one (same name, group, system, stage), newest first.
    pub async fn similar_completed_jobs(
        &self,
        job: &JobRow,
        stage_id: i64,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let q = format!(
            "{JOB_SELECT} JOIN runs r ON r.id = j.run_id WHERE j.name = $1 AND j.agents_group_id = $2 \
             AND j.system_id = $3 AND r.stage_id = $4 AND j.state = 5 AND j.covered = FALSE AND j.id <> $5 \
             ORDER BY j.id DESC LIMIT $6"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(q))
            .bind(&job.name).bind(job.agents_group_id).bind(job.system_id).bind(stage_id).bind(job.id).bind(limit)
            .fetch_all(p).await?),
        )
    }
}

/// The per-job credentials of the S3 endpoint.
impl Store {
    /// The S3 secret of job `job_id`, made from `fresh` if it has none yet
    /// (a second server handing out a step of the same job gets the first
    /// one's secret).
    pub async fn job_s3_secret_or(&self, job_id: i64, fresh: &str) -> Result<String> {
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO job_s3_keys (job_id, secret, created) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id) DO NOTHING")
            .bind(job_id).bind(fresh).bind(now_ms()).execute(p).await.map(|_| ()))?;
        self.job_s3_secret(job_id)
            .await?
            .ok_or_else(|| Error::internal("the job's S3 secret vanished"))
    }

    /// The S3 secret of job `job_id`, if one was made.
    pub async fn job_s3_secret(&self, job_id: i64) -> Result<Option<String>> {
        Ok(on_read!(&self.db, p => sqlx::query_scalar::<_, String>(
            "SELECT secret FROM job_s3_keys WHERE job_id = $1")
            .bind(job_id).fetch_optional(p).await)?)
    }
}
