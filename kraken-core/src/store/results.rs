//! Artifacts, test cases and their results, issues, test case comments.

use crate::model::{IssueFilter, TcrFilter};
use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::types::Json;

use super::{Db, Store, in_tx, on_read, on_write};
use crate::error::Result;

/// An artifact with its path.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArtifactRow {
    /// Id.
    pub id: i64,
    /// Path within the run's storage.
    pub path: String,
    /// Flow.
    pub flow_id: i64,
    /// Run.
    pub run_id: i64,
    /// Size in bytes.
    pub size: i64,
    /// 0 private, 1 public.
    pub section: i64,
    /// Stage name of the run.
    pub stage: String,
}

const ARTIFACT_SELECT: &str = "SELECT a.id, f.path, a.flow_id, a.run_id, a.size, a.section, s.name AS stage \
    FROM artifacts a JOIN files f ON f.id = a.file_id JOIN runs r ON r.id = a.run_id JOIN stages s ON s.id = r.stage_id";

/// Where the job a request talks about lives.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct JobPlace {
    /// Job.
    pub job_id: i64,
    /// Run.
    pub run_id: i64,
    /// Flow.
    pub flow_id: i64,
    /// Flow kind.
    pub flow_kind: i64,
    /// Branch.
    pub branch_id: i64,
    /// Stage.
    pub stage_id: i64,
    /// Project.
    pub project_id: i64,
}

impl Store {
    /// Where a job lives (run, flow, branch, project).
    pub async fn job_place(&self, job_id: i64) -> Result<Option<JobPlace>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, JobPlace>(
            "SELECT j.id AS job_id, r.id AS run_id, f.id AS flow_id, f.kind AS flow_kind, f.branch_id, \
             r.stage_id, b.project_id FROM jobs j JOIN runs r ON r.id = j.run_id JOIN flows f ON f.id = r.flow_id \
             JOIN branches b ON b.id = f.branch_id WHERE j.id = $1")
            .bind(job_id).fetch_optional(p).await?))
    }

    /// Record an artifact of a run (a new version replaces the row of the same path).
    pub async fn insert_artifact(
        &self,
        place: &JobPlace,
        path: &str,
        size: i64,
        public: bool,
    ) -> Result<()> {
        // One transaction: a stored file replaces the run's earlier one at
        // that path, never leaving the run without it.
        in_tx!(&self.db, tx => {
            sqlx::query("INSERT INTO files (path) VALUES ($1) ON CONFLICT (path) DO NOTHING")
                .bind(path).execute(&mut *tx).await?;
            let file_id: i64 = sqlx::query_scalar("SELECT id FROM files WHERE path = $1")
                .bind(path).fetch_one(&mut *tx).await?;
            sqlx::query("DELETE FROM artifacts WHERE run_id = $1 AND file_id = $2")
                .bind(place.run_id).bind(file_id).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO artifacts (file_id, flow_id, run_id, size, section) VALUES ($1, $2, $3, $4, $5)")
                .bind(file_id).bind(place.flow_id).bind(place.run_id).bind(size).bind(i64::from(public))
                .execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Artifacts of a flow (all sections), newest run first.
    pub async fn flow_artifacts(&self, flow_id: i64) -> Result<Vec<ArtifactRow>> {
        let q = format!("{ARTIFACT_SELECT} WHERE a.flow_id = $1 ORDER BY a.run_id DESC, f.path");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, ArtifactRow>(sqlx::AssertSqlSafe(q))
            .bind(flow_id).fetch_all(p).await?),
        )
    }

    /// Artifacts of a run (all sections), by path.
    pub async fn run_artifacts(&self, run_id: i64) -> Result<Vec<ArtifactRow>> {
        let q = format!("{ARTIFACT_SELECT} WHERE a.run_id = $1 ORDER BY f.path");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, ArtifactRow>(sqlx::AssertSqlSafe(q))
            .bind(run_id).fetch_all(p).await?),
        )
    }

    /// Artifact counters of a run or flow: `{public: {size, count}, private: {size, count}}`.
    pub async fn artifact_counters(
        &self,
        flow_id: i64,
        run_id: Option<i64>,
    ) -> Result<(i64, i64, i64, i64)> {
        let rows: Vec<(i64, i64, i64)> = match run_id {
            Some(r) => on_read!(&self.db, p => sqlx::query_as(
                "SELECT section, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM artifacts WHERE run_id = $1 GROUP BY section")
                .bind(r).fetch_all(p).await?),
            None => on_read!(&self.db, p => sqlx::query_as(
                "SELECT section, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM artifacts WHERE flow_id = $1 GROUP BY section")
                .bind(flow_id).fetch_all(p).await?),
        };
        let get = |sec: i64| {
            rows.iter()
                .find(|r| r.0 == sec)
                .map_or((0, 0), |r| (r.1, r.2))
        };
        let (pc, ps) = get(1);
        let (vc, vs) = get(0);
        Ok((pc, ps, vc, vs))
    }

    /// Current flow/run artifacts JSON, for updating report entries.
    pub async fn flow_artifacts_json(&self, flow_id: i64) -> Result<Value> {
        let v: Json<Value> = on_read!(&self.db, p => sqlx::query_scalar("SELECT artifacts FROM flows WHERE id = $1")
            .bind(flow_id).fetch_one(p).await?);
        Ok(v.0)
    }
}

/// A test case result with what the analysis needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TcrRow {
    /// Id.
    pub id: i64,
    /// Test case.
    pub test_case_id: i64,
    /// Test case name.
    pub test_case_name: String,
    /// Job.
    pub job_id: i64,
    /// Result.
    pub result: i64,
    /// Values.
    pub vals: Option<Json<Value>>,
    /// Command line.
    pub cmd_line: Option<String>,
    /// Instability.
    pub instability: i64,
    /// Age.
    pub age: i64,
    /// Change.
    pub change: i64,
    /// Relevancy.
    pub relevancy: i64,
    /// Comment.
    pub comment_id: Option<i64>,
    /// Job's group.
    pub agents_group_id: i64,
    /// Job's system.
    pub system_id: i64,
}

const TCR_SELECT: &str = "SELECT t.id, t.test_case_id, c.name AS test_case_name, t.job_id, t.result, t.vals, \
    t.cmd_line, t.instability, t.age, t.change, t.relevancy, t.comment_id, j.agents_group_id, j.system_id \
    FROM test_case_results t JOIN test_cases c ON c.id = t.test_case_id JOIN jobs j ON j.id = t.job_id";

/// A test case result of a run, as the analysis reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunTcr {
    /// Id.
    pub id: i64,
    /// Test case.
    pub test_case_id: i64,
    /// Result.
    pub result: i64,
    /// Comment.
    pub comment_id: Option<i64>,
    /// Group of the job.
    pub agents_group_id: i64,
    /// System of the job.
    pub system_id: i64,
}

/// One earlier result of a test case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistPoint {
    /// Result.
    pub result: i64,
    /// Age.
    pub age: i64,
    /// Comment.
    pub comment_id: Option<i64>,
}

/// The results of non-covered jobs in CI flows (`f`, `r`, `j`, `t`).
const ALL_CI_RESULTS: &str = "FROM test_case_results t JOIN jobs j ON j.id = t.job_id \
     JOIN runs r ON r.id = j.run_id JOIN flows f ON f.id = r.flow_id";

/// The results of non-covered jobs in the newest `flows` CI flows of
/// branch `$1` that meet `cond` (on `fl`), as `f`, `r`, `j`, `t`.
///
/// The flows come first, from a subquery with its own `LIMIT` (a number in
/// the text, not a parameter), then their runs, jobs and results by index:
/// a bounded read whatever the planner knows. The results are not tested
/// against the run's test cases here (the caller drops the series it does
/// not need): with that test (`IN` the run's test cases) PostgreSQL
/// planning without statistics looked up each result's test case among
/// the run's through `test_case_results_tc`, a lookup that grows with the
/// history, instead of hashing them once (0.7 s instead of 0.15 s for
/// 10,000 tests), and SQLite started from the run's test cases and read
/// each one's whole history (BENCHMARKS.md, finding 37). What is read
/// beyond the run's series are the other stages' results in those flows.
fn recent_ci_results(flows: i64, cond: &str) -> String {
    format!(
        "FROM (SELECT fl.id, fl.created FROM flows fl WHERE fl.branch_id = $1 AND fl.kind = 0 AND {cond} \
         ORDER BY fl.created DESC, fl.id DESC LIMIT {flows}) f \
         JOIN runs r ON r.flow_id = f.id JOIN jobs j ON j.run_id = r.id AND j.covered = FALSE \
         JOIN test_case_results t ON t.job_id = j.id"
    )
}

/// The statement of [`Store::ci_history_of`]: `$1` branch, `$2` and `$3`
/// the flow's creation time and id, `$4` the test cases' ids
/// (`TestCases`).
fn ci_history_sql(db: &Db, scope: HistScope<'_>) -> String {
    match scope {
        HistScope::Recent(flows) => recent_ci_history_sql(flows),
        HistScope::TestCases(_) => ci_history_of_results(&format!(
            "{ALL_CI_RESULTS} WHERE f.branch_id = $1 AND f.kind = 0 AND f.deleted IS NULL \
             AND j.covered = FALSE AND (f.created, f.id) < ($2, $3) AND {}",
            super::in_ids(db, "t.test_case_id", 4)
        )),
    }
}

/// [`ci_history_sql`] over the newest `flows` CI flows before the flow.
pub(super) fn recent_ci_history_sql(flows: i64) -> String {
    ci_history_of_results(&recent_ci_results(
        flows,
        "fl.deleted IS NULL AND (fl.created, fl.id) < ($2, $3)",
    ))
}

/// Each series of the results `from` (`f`, `j`, `t`), newest first.
fn ci_history_of_results(from: &str) -> String {
    format!(
        "SELECT t.test_case_id, j.agents_group_id, j.system_id, \
           string_agg(CAST(t.result AS TEXT) || ':' || CAST(t.age AS TEXT) || ':' || \
                      COALESCE(CAST(t.comment_id AS TEXT), ''), ',' \
                      ORDER BY f.created DESC, f.id DESC, t.id DESC) \
         {from} GROUP BY t.test_case_id, j.agents_group_id, j.system_id"
    )
}

/// The statement of [`Store::latest_ci_results_of`]: `$1` branch, `$2`
/// the test cases' ids (`TestCases`).
fn latest_ci_results_sql(db: &Db, scope: HistScope<'_>) -> String {
    match scope {
        HistScope::Recent(flows) => recent_latest_ci_results_sql(flows),
        HistScope::TestCases(_) => latest_of_results(&format!(
            "{ALL_CI_RESULTS} WHERE f.branch_id = $1 AND f.kind = 0 AND f.deleted IS NULL \
             AND j.covered = FALSE AND j.state = 5 AND {}",
            super::in_ids(db, "t.test_case_id", 2)
        )),
    }
}

/// [`latest_ci_results_sql`] over the branch's newest `flows` CI flows.
pub(super) fn recent_latest_ci_results_sql(flows: i64) -> String {
    latest_of_results(&format!(
        "{} WHERE j.state = 5",
        recent_ci_results(flows, "fl.deleted IS NULL")
    ))
}

/// The newest of each series of the results `from` (`f`, `j`, `t`).
fn latest_of_results(from: &str) -> String {
    format!(
        "SELECT test_case_id, agents_group_id, system_id, result, age, instability, comment_id, rn FROM ( \
           SELECT t.test_case_id, j.agents_group_id, j.system_id, t.result, t.age, t.instability, t.comment_id, \
             ROW_NUMBER() OVER (PARTITION BY t.test_case_id, j.agents_group_id, j.system_id \
                                ORDER BY f.created DESC, f.id DESC, t.id DESC) AS rn \
           {from} \
         ) h WHERE rn = 1"
    )
}

/// The test cases (sorted, once each) of the `keys` (test case, group,
/// system) not in `found`: those to read again over the whole history.
fn test_cases_not_in(keys: &[(i64, i64, i64)], found: &HashSet<(i64, i64, i64)>) -> Vec<i64> {
    let mut ids: Vec<i64> = keys
        .iter()
        .filter(|k| !found.contains(k))
        .map(|k| k.0)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Where [`Store::ci_history`] looks from: the branch, the flow (its
/// creation time and id), and how many results a series keeps.
struct HistAt {
    branch_id: i64,
    flow_created: i64,
    flow_id: i64,
    n: usize,
}

/// Which earlier results [`Store::ci_history`] reads.
#[derive(Clone, Copy)]
enum HistScope<'a> {
    /// Those in the newest `.0` CI flows.
    Recent(i64),
    /// Every earlier one of these test cases.
    TestCases(&'a [i64]),
}

/// A series from its row: the newest `n` of its results (newest first in
/// the text), oldest first.
fn hist_series(row: (i64, i64, i64, String), n: usize) -> Result<HistSeries> {
    let (test_case_id, agents_group_id, system_id, series) = row;
    let mut results = series
        .split(',')
        .take(n)
        .map(|r| {
            let mut f = r.split(':');
            let mut int = || f.next().and_then(|v| v.parse::<i64>().ok());
            match (int(), int()) {
                (Some(result), Some(age)) => Ok(HistPoint {
                    result,
                    age,
                    comment_id: int(),
                }),
                _ => Err(crate::error::Error::Internal(format!(
                    "unreadable result history '{r}' of test case {test_case_id}"
                ))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    results.reverse();
    Ok(HistSeries {
        test_case_id,
        agents_group_id,
        system_id,
        results,
    })
}

/// The earlier results of a test case on one group and system, oldest first.
#[derive(Debug, Clone)]
pub struct HistSeries {
    /// Test case.
    pub test_case_id: i64,
    /// Group.
    pub agents_group_id: i64,
    /// System.
    pub system_id: i64,
    /// Results, oldest first.
    pub results: Vec<HistPoint>,
}

/// A historical result of a test case (for the analysis).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistRow {
    /// Test case.
    pub test_case_id: i64,
    /// Group.
    pub agents_group_id: i64,
    /// System.
    pub system_id: i64,
    /// Result.
    pub result: i64,
    /// Age.
    pub age: i64,
    /// Instability.
    pub instability: i64,
    /// Comment.
    pub comment_id: Option<i64>,
    /// Rank: 1 = newest.
    pub rn: i64,
}

/// A new test case result.
#[derive(Debug, Clone)]
pub struct NewTcr {
    /// Test case.
    pub test_case_id: i64,
    /// Result.
    pub result: i64,
    /// Command line.
    pub cmd_line: String,
    /// Values.
    pub vals: Option<Value>,
    /// What a failed test said, its output and duration.
    pub details: TestDetails,
}

/// What a test reported beyond its result: the failure's message and type,
/// its captured output, its duration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestDetails {
    /// The failure's or error's message.
    pub message: Option<String>,
    /// The failure's or error's type (an exception class).
    pub failure_type: Option<String>,
    /// The failure's text and the test's captured output.
    pub output: Option<String>,
    /// Duration (ms).
    pub duration_ms: Option<i64>,
}

/// Analysis outcome of one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcrAnalysis {
    /// Result id.
    pub id: i64,
    /// Instability.
    pub instability: i64,
    /// Age.
    pub age: i64,
    /// Change.
    pub change: i64,
    /// Relevancy.
    pub relevancy: i64,
    /// Comment.
    pub comment_id: Option<i64>,
}

/// An issue row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueRow {
    /// Id.
    pub id: i64,
    /// Type.
    pub issue_type: i64,
    /// Line.
    pub line: Option<i64>,
    /// Column.
    pub col: Option<i64>,
    /// Path.
    pub path: Option<String>,
    /// Symbol.
    pub symbol: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Job.
    pub job_id: i64,
    /// Extra fields.
    pub extra: Option<Json<Value>>,
    /// Age.
    pub age: i64,
}

/// An issue to store.
#[derive(Debug, Clone)]
pub struct NewIssue {
    /// Type (see [`crate::results::issue_type`]).
    pub issue_type: i64,
    /// Line.
    pub line: Option<i64>,
    /// Column.
    pub col: Option<i64>,
    /// Path.
    pub path: String,
    /// Symbol.
    pub symbol: String,
    /// Message (at most 511 characters).
    pub message: String,
    /// Other fields of the report.
    pub extra: Value,
}

/// A test case comment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommentRow {
    /// Id.
    pub id: i64,
    /// Test case.
    pub test_case_id: i64,
    /// Branch.
    pub branch_id: i64,
    /// Last flow it was carried to.
    pub last_flow_id: Option<i64>,
    /// State.
    pub state: i64,
    /// Entries, oldest first.
    pub data: Json<Value>,
}

/// The PostgreSQL update of analysis outcomes: each column an array. The
/// table keeps room on its pages for the new versions (migration 0013), so
/// this moves no row and adds no index entry.
pub(super) const UPDATE_ANALYSIS_PG: &str = "UPDATE test_case_results SET instability = v.instability, \
     age = v.age, change = v.change, relevancy = v.relevancy, comment_id = v.comment_id \
     FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
     AS v(id, instability, age, change, relevancy, comment_id) WHERE test_case_results.id = v.id";

/// The SQLite update of analysis outcomes: the rows of a chunk as one JSON
/// array of `[id, instability, age, change, relevancy]`. (A `VALUES` list of
/// bound parameters took 7 ms per 512 rows inside SQLite 3.51, this 3 µs a
/// row: BENCHMARKS.md, finding 39.)
const UPDATE_ANALYSIS_JSON: &str = "UPDATE test_case_results SET instability = v.value->>1, \
     age = v.value->>2, change = v.value->>3, relevancy = v.value->>4 \
     FROM json_each($1) AS v WHERE test_case_results.id = v.value->>0";

/// The SQLite update of the comments of analysed results, `[id, comment_id]`
/// each, writing only those that change: a comment is rarely carried, and
/// writing the column costs an update of its index for every row.
const UPDATE_COMMENTS_JSON: &str = "UPDATE test_case_results SET comment_id = v.value->>1 \
     FROM json_each($1) AS v WHERE test_case_results.id = v.value->>0 \
     AND test_case_results.comment_id IS NOT v.value->>1";

/// Rows of [`UPDATE_ANALYSIS_JSON`] a statement: each holds the writer for
/// about 15 ms, so other writes wait no longer than that.
const UPDATE_ANALYSIS_ROWS: usize = 4096;

impl Store {
    /// Ids of test cases by name for a tool, created when missing.
    ///
    /// The names are looked up first and only those not found are
    /// inserted, then read again (which also finds a name another server
    /// inserted meanwhile): a run's tests are nearly always known already,
    /// and an `INSERT … ON CONFLICT DO NOTHING` of every name cost a check of
    /// the unique index per name and, on SQLite, a write (BENCHMARKS.md,
    /// finding 42).
    pub async fn upsert_test_cases(
        &self,
        tool_id: i64,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, i64>> {
        let mut out = self.test_case_ids(tool_id, names).await?;
        let mut missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !out.contains_key(*n))
            .collect();
        if missing.is_empty() {
            return Ok(out);
        }
        missing.sort_unstable();
        missing.dedup();
        let now = super::now_ms();
        if let Db::Pg(p) = &self.db {
            // One statement whatever the number of names: the names as one array.
            sqlx::query(
                "INSERT INTO test_cases (name, tool_id, created, updated) \
                 SELECT n, $2, $3, $3 FROM UNNEST($1::text[]) AS u(n) \
                 ON CONFLICT (name, tool_id) DO NOTHING",
            )
            .bind(&missing)
            .bind(tool_id)
            .bind(now)
            .execute(p)
            .await?;
        } else {
            for chunk in missing.chunks(400) {
                on_write!(&self.db, p => {
                    let mut qb = sqlx::QueryBuilder::new("INSERT INTO test_cases (name, tool_id, created, updated) ");
                    qb.push_values(chunk, |mut b, n| {
                        b.push_bind(*n).push_bind(tool_id).push_bind(now).push_bind(now);
                    });
                    qb.push(" ON CONFLICT (name, tool_id) DO NOTHING");
                    qb.build().execute(p).await?.rows_affected()
                });
            }
        }
        let missing: Vec<String> = missing.into_iter().map(str::to_string).collect();
        out.extend(self.test_case_ids(tool_id, &missing).await?);
        Ok(out)
    }

    /// Ids of the test cases of a tool among `names` that exist, by name
    /// (one statement: the names as one array on PostgreSQL, one JSON
    /// array on SQLite).
    async fn test_case_ids(
        &self,
        tool_id: i64,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, i64>> {
        let rows: Vec<(i64, String)> = match &self.db {
            Db::Pg(p) => {
                sqlx::query_as(
                    "SELECT id, name FROM test_cases WHERE tool_id = $1 AND name = ANY($2)",
                )
                .bind(tool_id)
                .bind(names)
                .fetch_all(p)
                .await?
            }
            Db::Sqlite { read, .. } => {
                let mut conn = read.acquire().await?;
                sqlx::query_as(
                    "SELECT id, name FROM test_cases WHERE tool_id = $1 \
                     AND name IN (SELECT value FROM json_each($2))",
                )
                .bind(tool_id)
                .bind(Json(names))
                .fetch_all(&mut *conn)
                .await?
            }
        };
        Ok(rows.into_iter().map(|(id, n)| (n, id)).collect())
    }

    /// Test case results of a job.
    pub async fn job_tcrs(&self, job_id: i64) -> Result<Vec<TcrRow>> {
        let q = format!("{TCR_SELECT} WHERE t.job_id = $1 ORDER BY t.id");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, TcrRow>(sqlx::AssertSqlSafe(q)).bind(job_id).fetch_all(p).await?),
        )
    }

    /// Test case results of a run's non-covered jobs, with only what the
    /// analysis reads (no names, no values: every row costs).
    pub async fn run_tcrs(&self, run_id: i64) -> Result<Vec<RunTcr>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, RunTcr>(
            "SELECT t.id, t.test_case_id, t.result, t.comment_id, j.agents_group_id, j.system_id \
             FROM test_case_results t JOIN jobs j ON j.id = t.job_id \
             WHERE j.run_id = $1 AND j.covered = FALSE ORDER BY t.id")
            .bind(run_id).fetch_all(p).await?))
    }

    /// One test case result.
    pub async fn tcr(&self, id: i64) -> Result<Option<TcrRow>> {
        let q = format!("{TCR_SELECT} WHERE t.id = $1");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, TcrRow>(sqlx::AssertSqlSafe(q)).bind(id).fetch_optional(p).await?),
        )
    }

    /// Insert test case results of a job.
    pub async fn insert_tcrs(&self, job_id: i64, rows: &[NewTcr]) -> Result<()> {
        if let Db::Pg(p) = &self.db {
            // One statement: each column an array, inserted in the order
            // reported (ids follow it).
            let text = |f: fn(&NewTcr) -> Option<&str>| {
                rows.iter()
                    .map(|r| f(r).map(str::to_string))
                    .collect::<Vec<Option<String>>>()
            };
            sqlx::query(
                "INSERT INTO test_case_results (test_case_id, job_id, result, vals, cmd_line, instability, age, \
                 change, relevancy, message, failure_type, output, duration_ms) \
                 SELECT tc, $2, res, vals, cmd, 0, 0, 0, 0, msg, ft, out, dur \
                 FROM UNNEST($1::int8[], $3::int8[], $4::jsonb[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[]) \
                 WITH ORDINALITY AS u(tc, res, vals, cmd, msg, ft, out, dur, ord) ORDER BY ord",
            )
            .bind(rows.iter().map(|r| r.test_case_id).collect::<Vec<i64>>())
            .bind(job_id)
            .bind(rows.iter().map(|r| r.result).collect::<Vec<i64>>())
            .bind(rows.iter().map(|r| r.vals.as_ref().map(Json)).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.cmd_line.as_str()).collect::<Vec<&str>>())
            .bind(text(|r| r.details.message.as_deref()))
            .bind(text(|r| r.details.failure_type.as_deref()))
            .bind(text(|r| r.details.output.as_deref()))
            .bind(rows.iter().map(|r| r.details.duration_ms).collect::<Vec<Option<i64>>>())
            .execute(p)
            .await?;
            return Ok(());
        }
        for chunk in rows.chunks(400) {
            on_write!(&self.db, p => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO test_case_results (test_case_id, job_id, result, vals, cmd_line, instability, age, change, relevancy, \
                     message, failure_type, output, duration_ms) ");
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.test_case_id).push_bind(job_id).push_bind(r.result)
                        .push_bind(r.vals.as_ref().map(Json)).push_bind(r.cmd_line.as_str())
                        .push_bind(0i64).push_bind(0i64).push_bind(0i64).push_bind(0i64)
                        .push_bind(r.details.message.as_deref()).push_bind(r.details.failure_type.as_deref())
                        .push_bind(r.details.output.as_deref()).push_bind(r.details.duration_ms);
                });
                qb.build().execute(p).await?.rows_affected()
            });
        }
        Ok(())
    }

    /// Update a result reported for a pre-created test case result.
    pub async fn update_tcr_result(
        &self,
        id: i64,
        result: i64,
        cmd_line: &str,
        vals: Option<&Value>,
        details: &TestDetails,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE test_case_results SET result = $1, cmd_line = $2, vals = $3, message = $4, \
             failure_type = $5, output = $6, duration_ms = $7 WHERE id = $8")
            .bind(result).bind(cmd_line).bind(vals.map(Json))
            .bind(details.message.as_deref()).bind(details.failure_type.as_deref())
            .bind(details.output.as_deref()).bind(details.duration_ms)
            .bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// The newest `n` results per (test case, group, system) of the series
    /// `keys` (a run's) in the branch's CI flows created before `flow`,
    /// one row per series with its results oldest first: a row per result
    /// would be ten times the rows, and on SQLite each row is a hand-off
    /// between threads.
    ///
    /// The database groups each series' results newest first into one text
    /// and the newest `n` are kept as each row arrives: the query has no
    /// window function to number them, whose sort of every earlier result
    /// cost as much again as the grouping (BENCHMARKS.md, finding 22).
    ///
    /// Only the newest `2n` CI flows are read first, so the work does not
    /// grow with the branch's history; the test cases of the series that
    /// come back shorter than `n` (new tests, tests not run in every flow)
    /// are then read over the whole history (BENCHMARKS.md, finding 35).
    pub async fn ci_history(
        &self,
        branch_id: i64,
        flow: (i64, i64),
        n: i64,
        keys: &[(i64, i64, i64)],
    ) -> Result<Vec<HistSeries>> {
        let wanted: HashSet<(i64, i64, i64)> = keys.iter().copied().collect();
        let at = HistAt {
            branch_id,
            flow_created: flow.0,
            flow_id: flow.1,
            n: usize::try_from(n).unwrap_or(0),
        };
        let mut series = self
            .ci_history_of(&at, HistScope::Recent(n.saturating_mul(2)), &wanted)
            .await?;
        let complete: HashSet<(i64, i64, i64)> = series
            .iter()
            .filter(|s| s.results.len() >= at.n)
            .map(|s| (s.test_case_id, s.agents_group_id, s.system_id))
            .collect();
        let short = test_cases_not_in(keys, &complete);
        if !short.is_empty() {
            let older = self
                .ci_history_of(&at, HistScope::TestCases(&short), &wanted)
                .await?;
            series.retain(|s| short.binary_search(&s.test_case_id).is_err());
            series.extend(older);
        }
        Ok(series)
    }

    /// The series of [`Store::ci_history`] over `scope` that are `wanted`.
    async fn ci_history_of(
        &self,
        at: &HistAt,
        scope: HistScope<'_>,
        wanted: &HashSet<(i64, i64, i64)>,
    ) -> Result<Vec<HistSeries>> {
        use futures_util::TryStreamExt;
        let q = ci_history_sql(&self.db, scope);
        // The same statement on either database; only the id list of
        // `TestCases` is bound differently (see `in_ids`).
        macro_rules! series {
            ($exec:expr, $ids:expr) => {{
                let query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(q))
                    .bind(at.branch_id)
                    .bind(at.flow_created)
                    .bind(at.flow_id);
                let query = match scope {
                    HistScope::Recent(_) => query,
                    HistScope::TestCases(ids) => query.bind($ids(ids)?),
                };
                let mut rows = query.fetch($exec);
                let mut out = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    if wanted.contains(&(row.0, row.1, row.2)) {
                        out.push(hist_series(row, at.n)?);
                    }
                }
                out
            }};
        }
        let out = match &self.db {
            Db::Sqlite { read, .. } => {
                let mut conn = read.acquire().await?;
                series!(&mut *conn, |ids: &[i64]| serde_json::to_string(ids))
            }
            Db::Pg(p) => series!(p, |ids: &[i64]| Ok::<_, crate::error::Error>(ids.to_vec())),
        };
        Ok(out)
    }

    /// The latest result per (test case, group, system) in the branch's CI
    /// flows, from completed non-covered jobs, of each of `keys` (test case,
    /// group, system): the reference of a DEV run's results.
    ///
    /// As in [`Store::ci_history`], only the branch's newest 20 CI flows are
    /// read first (a result found there is the latest of all); the test
    /// cases of the keys not found there are then read over the whole
    /// history, so the work does not grow with the branch's age.
    pub async fn latest_ci_results(
        &self,
        branch_id: i64,
        keys: &[(i64, i64, i64)],
    ) -> Result<Vec<HistRow>> {
        let wanted: HashSet<(i64, i64, i64)> = keys.iter().copied().collect();
        let mut rows = self
            .latest_ci_results_of(branch_id, HistScope::Recent(20), &wanted)
            .await?;
        let found: HashSet<(i64, i64, i64)> = rows
            .iter()
            .map(|r| (r.test_case_id, r.agents_group_id, r.system_id))
            .collect();
        let missing = test_cases_not_in(keys, &found);
        if !missing.is_empty() {
            let older = self
                .latest_ci_results_of(branch_id, HistScope::TestCases(&missing), &wanted)
                .await?;
            rows.retain(|r| missing.binary_search(&r.test_case_id).is_err());
            rows.extend(older);
        }
        Ok(rows)
    }

    /// The rows of [`Store::latest_ci_results`] over `scope` that are
    /// `wanted`.
    async fn latest_ci_results_of(
        &self,
        branch_id: i64,
        scope: HistScope<'_>,
        wanted: &HashSet<(i64, i64, i64)>,
    ) -> Result<Vec<HistRow>> {
        let q = latest_ci_results_sql(&self.db, scope);
        // As in `ci_history_of`: only the id list is bound differently.
        macro_rules! latest {
            ($exec:expr, $ids:expr) => {{
                let query = sqlx::query_as::<_, HistRow>(sqlx::AssertSqlSafe(q)).bind(branch_id);
                let query = match scope {
                    HistScope::Recent(_) => query,
                    HistScope::TestCases(ids) => query.bind($ids(ids)?),
                };
                let mut rows = query.fetch_all($exec).await?;
                rows.retain(|r| wanted.contains(&(r.test_case_id, r.agents_group_id, r.system_id)));
                rows
            }};
        }
        Ok(match &self.db {
            Db::Sqlite { read, .. } => {
                let mut conn = read.acquire().await?;
                latest!(&mut *conn, |ids: &[i64]| serde_json::to_string(ids))
            }
            Db::Pg(p) => latest!(p, |ids: &[i64]| Ok::<_, crate::error::Error>(ids.to_vec())),
        })
    }

    /// Store analysis outcomes in batches.
    pub async fn update_tcr_analysis(&self, rows: &[TcrAnalysis]) -> Result<()> {
        let write = match &self.db {
            Db::Pg(p) => {
                // One statement for all of them: each column an array.
                let col = |f: fn(&TcrAnalysis) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
                sqlx::query(UPDATE_ANALYSIS_PG)
                    .bind(col(|r| r.id))
                    .bind(col(|r| r.instability))
                    .bind(col(|r| r.age))
                    .bind(col(|r| r.change))
                    .bind(col(|r| r.relevancy))
                    .bind(
                        rows.iter()
                            .map(|r| r.comment_id)
                            .collect::<Vec<Option<i64>>>(),
                    )
                    .execute(p)
                    .await?;
                return Ok(());
            }
            Db::Sqlite { write, .. } => write,
        };
        for chunk in rows.chunks(UPDATE_ANALYSIS_ROWS) {
            let outcomes: Vec<[i64; 5]> = chunk
                .iter()
                .map(|r| [r.id, r.instability, r.age, r.change, r.relevancy])
                .collect();
            let comments: Vec<(i64, Option<i64>)> =
                chunk.iter().map(|r| (r.id, r.comment_id)).collect();
            let mut conn = write.acquire().await?;
            sqlx::query(UPDATE_ANALYSIS_JSON)
                .bind(Json(outcomes))
                .execute(&mut *conn)
                .await?;
            sqlx::query(UPDATE_COMMENTS_JSON)
                .bind(Json(comments))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Insert issues of a job.
    pub async fn insert_issues(&self, job_id: i64, issues: &[NewIssue]) -> Result<()> {
        for chunk in issues.chunks(300) {
            on_write!(&self.db, p => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO issues (issue_type, line, col, path, symbol, message, job_id, extra, age) ");
                qb.push_values(chunk, |mut b, i| {
                    b.push_bind(i.issue_type).push_bind(i.line).push_bind(i.col).push_bind(i.path.as_str())
                        .push_bind(i.symbol.as_str()).push_bind(i.message.as_str()).push_bind(job_id)
                        .push_bind(Json(&i.extra)).push_bind(0i64);
                });
                qb.build().execute(p).await?.rows_affected()
            });
        }
        Ok(())
    }

    /// Issues of a job.
    pub async fn job_issues(&self, job_id: i64) -> Result<Vec<IssueRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, IssueRow>(
            "SELECT id, issue_type, line, col, path, symbol, message, job_id, extra, age FROM issues WHERE job_id = $1 ORDER BY id")
            .bind(job_id).fetch_all(p).await?))
    }

    /// Set an issue's age.
    pub async fn set_issue_age(&self, id: i64, age: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE issues SET age = $1 WHERE id = $2")
            .bind(age).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// The job a new job's issues are compared with: the latest successful job
    /// with the same name, system, group and stage in an earlier CI flow.
    pub async fn previous_ok_job(
        &self,
        job: &crate::store::jobs::JobRow,
        stage_id: i64,
        flow_created: i64,
        flow_id: i64,
    ) -> Result<Option<i64>> {
        Ok(on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT j.id FROM jobs j JOIN runs r ON r.id = j.run_id JOIN flows f ON f.id = r.flow_id \
             WHERE j.name = $1 AND j.system_id = $2 AND j.agents_group_id = $3 AND r.stage_id = $4 \
             AND j.completion_status = 0 AND j.covered = FALSE AND f.kind = 0 \
             AND (f.created < $5 OR (f.created = $5 AND f.id < $6)) ORDER BY f.created DESC, f.id DESC, j.id DESC LIMIT 1")
            .bind(&job.name).bind(job.system_id).bind(job.agents_group_id).bind(stage_id).bind(flow_created).bind(flow_id)
            .fetch_optional(p).await?))
    }

    /// A comment by id.
    pub async fn comment(&self, id: i64) -> Result<Option<CommentRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, CommentRow>(
            "SELECT id, test_case_id, branch_id, last_flow_id, state, data FROM test_case_comments WHERE id = $1")
            .bind(id).fetch_optional(p).await?))
    }

    /// Comments by id (one query).
    pub async fn comments_by_ids(&self, ids: &[i64]) -> Result<HashMap<i64, CommentRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let q = format!(
            "SELECT id, test_case_id, branch_id, last_flow_id, state, data FROM test_case_comments WHERE id IN ({list})"
        );
        let rows: Vec<CommentRow> = on_read!(&self.db, p => sqlx::query_as::<_, CommentRow>(sqlx::AssertSqlSafe(q))
            .fetch_all(p).await?);
        Ok(rows.into_iter().map(|c| (c.id, c)).collect())
    }

    /// Comments of a branch for some test cases.
    pub async fn branch_comments(&self, branch_id: i64) -> Result<Vec<CommentRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, CommentRow>(
            "SELECT id, test_case_id, branch_id, last_flow_id, state, data FROM test_case_comments WHERE branch_id = $1")
            .bind(branch_id).fetch_all(p).await?))
    }

    /// Create a comment.
    pub async fn insert_comment(
        &self,
        test_case_id: i64,
        branch_id: i64,
        flow_id: i64,
        state: i64,
        data: &Value,
    ) -> Result<i64> {
        Ok(on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO test_case_comments (test_case_id, branch_id, last_flow_id, state, data) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(test_case_id).bind(branch_id).bind(flow_id).bind(state).bind(Json(data)).fetch_one(p).await?))
    }

    /// Update a comment.
    pub async fn update_comment(
        &self,
        id: i64,
        flow_id: i64,
        state: i64,
        data: &Value,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE test_case_comments SET last_flow_id = $1, state = $2, data = $3 WHERE id = $4")
            .bind(flow_id).bind(state).bind(Json(data)).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Attach a comment to results.
    pub async fn set_tcrs_comment(&self, ids: &[i64], comment_id: i64) -> Result<()> {
        for chunk in ids.chunks(500) {
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            on_write!(&self.db, p => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE test_case_results SET comment_id = $1 WHERE id IN ({list})")))
                .bind(comment_id).execute(p).await?.rows_affected());
        }
        Ok(())
    }
}

/// A test case result with the names the API shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TcrFull {
    /// Id.
    pub id: i64,
    /// Test case.
    pub test_case_id: i64,
    /// Test case name.
    pub test_case_name: String,
    /// Result.
    pub result: i64,
    /// Values.
    pub vals: Option<Json<Value>>,
    /// Command line.
    pub cmd_line: Option<String>,
    /// Instability.
    pub instability: i64,
    /// Age.
    pub age: i64,
    /// Change.
    pub change: i64,
    /// Relevancy.
    pub relevancy: i64,
    /// Comment.
    pub comment_id: Option<i64>,
    /// Job.
    pub job_id: i64,
    /// Job name.
    pub job_name: String,
    /// Group.
    pub agents_group_id: i64,
    /// Group name.
    pub agents_group_name: String,
    /// System.
    pub system_id: i64,
    /// System name.
    pub system_name: String,
    /// Agent.
    pub agent_id: Option<i64>,
    /// Agent name.
    pub agent_name: Option<String>,
    /// Run.
    pub run_id: i64,
    /// Flow.
    pub flow_id: i64,
    /// Flow kind.
    pub flow_kind: i64,
    /// Flow label.
    pub flow_label: Option<String>,
    /// Flow creation (ms).
    pub flow_created: i64,
    /// Branch.
    pub branch_id: i64,
    /// Stage.
    pub stage_id: i64,
    /// Failure message.
    pub message: Option<String>,
    /// Failure type.
    pub failure_type: Option<String>,
    /// Output.
    pub output: Option<String>,
    /// Duration (ms).
    pub duration_ms: Option<i64>,
}

const TCR_FULL_SELECT: &str = "SELECT t.id, t.test_case_id, c.name AS test_case_name, t.result, t.vals, t.cmd_line, \
    t.message, t.failure_type, t.output, t.duration_ms, \
    t.instability, t.age, t.change, t.relevancy, t.comment_id, j.id AS job_id, j.name AS job_name, \
    j.agents_group_id, g.name AS agents_group_name, j.system_id, s.name AS system_name, j.agent_used_id AS agent_id, \
    a.name AS agent_name, r.id AS run_id, f.id AS flow_id, f.kind AS flow_kind, f.label AS flow_label, \
    f.created AS flow_created, f.branch_id, r.stage_id \
    FROM test_case_results t JOIN test_cases c ON c.id = t.test_case_id JOIN jobs j ON j.id = t.job_id \
    JOIN agents_groups g ON g.id = j.agents_group_id JOIN systems s ON s.id = j.system_id \
    LEFT JOIN agents a ON a.id = j.agent_used_id JOIN runs r ON r.id = j.run_id JOIN flows f ON f.id = r.flow_id";

/// An issue with its job's names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueFull {
    /// Id.
    pub id: i64,
    /// Type.
    pub issue_type: i64,
    /// Line.
    pub line: Option<i64>,
    /// Column.
    pub col: Option<i64>,
    /// Path.
    pub path: Option<String>,
    /// Symbol.
    pub symbol: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Extra fields.
    pub extra: Option<Json<Value>>,
    /// Age.
    pub age: i64,
    /// Job.
    pub job_id: i64,
    /// Job name.
    pub job_name: String,
    /// Group.
    pub agents_group_id: i64,
    /// Group name.
    pub agents_group_name: String,
    /// Agent.
    pub agent_id: Option<i64>,
    /// Agent name.
    pub agent_name: Option<String>,
}

enum P {
    I(i64),
    S(String),
}

struct Where {
    sql: String,
    params: Vec<P>,
}

impl Where {
    fn new(base: &str) -> Self {
        Where {
            sql: base.to_string(),
            params: Vec::new(),
        }
    }
    fn int(&mut self, col: &str, op: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.params.push(P::I(v));
            self.sql
                .push_str(&format!(" AND {col} {op} ${}", self.params.len()));
        }
    }
    fn any(&mut self, col: &str, vs: &[i64]) {
        if vs.is_empty() {
            return;
        }
        let mut ph = Vec::new();
        for v in vs {
            self.params.push(P::I(*v));
            ph.push(format!("${}", self.params.len()));
        }
        self.sql
            .push_str(&format!(" AND {col} IN ({})", ph.join(", ")));
    }
    fn like(&mut self, col: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.params.push(P::S(format!("%{}%", v.to_lowercase())));
            self.sql
                .push_str(&format!(" AND LOWER({col}) LIKE ${}", self.params.len()));
        }
    }
    fn job(&mut self, v: Option<&str>) {
        match v.filter(|v| !v.is_empty()) {
            Some(v) if v.chars().all(|c| c.is_ascii_digit()) => {
                self.int("j.id", "=", v.parse().ok());
            }
            other => self.like("j.name", other),
        }
    }
}

macro_rules! bind_params {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                P::I(i) => q.bind(*i),
                P::S(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

impl Store {
    /// A page of a run's test case results (non-covered jobs) and the total.
    pub async fn query_tcrs(
        &self,
        run_id: i64,
        f: &TcrFilter,
        order: &str,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<TcrFull>, i64)> {
        let mut w = Where::new(" WHERE j.covered = FALSE");
        w.int("j.run_id", "=", Some(run_id));
        w.any("t.result", &f.statuses);
        w.any("t.change", &f.changes);
        w.int("t.age", ">=", f.min_age);
        w.int("t.age", "<=", f.max_age);
        w.int("t.instability", ">=", f.min_instability);
        w.int("t.instability", "<=", f.max_instability);
        w.like("c.name", f.text.as_deref());
        w.job(f.job.as_deref());
        w.any("j.system_id", &f.systems);
        w.any("j.agents_group_id", &f.groups);
        let n = w.params.len();
        let q = format!(
            "{TCR_FULL_SELECT}{} ORDER BY {order} LIMIT ${} OFFSET ${}",
            w.sql,
            n + 1,
            n + 2
        );
        let rows: Vec<TcrFull> = on_read!(&self.db, p => {
            let q = bind_params!(sqlx::query_as::<_, TcrFull>(sqlx::AssertSqlSafe(q)), &w.params);
            q.bind(limit).bind(start).fetch_all(p).await?
        });
        let cq = format!(
            "SELECT COUNT(*) FROM test_case_results t JOIN test_cases c ON c.id = t.test_case_id JOIN jobs j ON j.id = t.job_id{}",
            w.sql
        );
        let total: i64 = on_read!(&self.db, p => {
            let q = bind_params!(sqlx::query_scalar(sqlx::AssertSqlSafe(cq)), &w.params);
            q.fetch_one(p).await?
        });
        Ok((rows, total))
    }

    /// One test case result with names.
    pub async fn tcr_full(&self, id: i64) -> Result<Option<TcrFull>> {
        let q = format!("{TCR_FULL_SELECT} WHERE t.id = $1");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, TcrFull>(sqlx::AssertSqlSafe(q)).bind(id).fetch_optional(p).await?),
        )
    }

    /// Results of the same test case, group and system on the branch in CI
    /// flows created up to `flow_created` (newest first), and the total.
    pub async fn tcr_history(
        &self,
        t: &TcrFull,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<TcrFull>, i64)> {
        let cond = " WHERE t.test_case_id = $1 AND j.agents_group_id = $2 AND j.system_id = $3 AND f.branch_id = $4 \
                    AND f.kind = 0 AND j.covered = FALSE AND (f.created < $5 OR (f.created = $5 AND f.id <= $6))";
        let q = format!(
            "{TCR_FULL_SELECT}{cond} ORDER BY f.created DESC, f.id DESC, t.id DESC LIMIT $7 OFFSET $8"
        );
        let rows = on_read!(&self.db, p => sqlx::query_as::<_, TcrFull>(sqlx::AssertSqlSafe(q))
            .bind(t.test_case_id).bind(t.agents_group_id).bind(t.system_id).bind(t.branch_id)
            .bind(t.flow_created).bind(t.flow_id).bind(limit).bind(start).fetch_all(p).await?);
        let cq = format!(
            "SELECT COUNT(*) FROM test_case_results t JOIN jobs j ON j.id = t.job_id JOIN runs r ON r.id = j.run_id \
             JOIN flows f ON f.id = r.flow_id{cond}"
        );
        let total: i64 = on_read!(&self.db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(cq))
            .bind(t.test_case_id).bind(t.agents_group_id).bind(t.system_id).bind(t.branch_id)
            .bind(t.flow_created).bind(t.flow_id).fetch_one(p).await?);
        Ok((rows, total))
    }

    /// Ids of the results of a test case in a flow.
    pub async fn flow_tcr_ids(&self, flow_id: i64, test_case_id: i64) -> Result<Vec<i64>> {
        Ok(on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT t.id FROM test_case_results t JOIN jobs j ON j.id = t.job_id JOIN runs r ON r.id = j.run_id \
             WHERE r.flow_id = $1 AND t.test_case_id = $2")
            .bind(flow_id).bind(test_case_id).fetch_all(p).await?))
    }

    /// Lower the relevancy of results by one (a comment root-caused them).
    pub async fn decrement_relevancy(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(500) {
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            on_write!(&self.db, p => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE test_case_results SET relevancy = relevancy - 1 WHERE relevancy > 0 AND id IN ({list})")))
                .execute(p).await?.rows_affected());
        }
        Ok(())
    }

    /// A page of a run's issues (non-covered jobs) and the total.
    pub async fn query_issues(
        &self,
        run_id: i64,
        f: &IssueFilter,
        start: i64,
        limit: i64,
    ) -> Result<(Vec<IssueFull>, i64)> {
        let mut w = Where::new(" WHERE j.covered = FALSE");
        w.int("j.run_id", "=", Some(run_id));
        w.any("i.issue_type", &f.types);
        w.like("i.path", f.location.as_deref());
        w.like("i.message", f.message.as_deref());
        w.like("i.symbol", f.symbol.as_deref());
        w.int("i.age", ">=", f.min_age);
        w.int("i.age", "<=", f.max_age);
        w.job(f.job.as_deref());
        let n = w.params.len();
        let from = " FROM issues i JOIN jobs j ON j.id = i.job_id JOIN agents_groups g ON g.id = j.agents_group_id \
                    LEFT JOIN agents a ON a.id = j.agent_used_id";
        let q = format!(
            "SELECT i.id, i.issue_type, i.line, i.col, i.path, i.symbol, i.message, i.extra, i.age, j.id AS job_id, \
             j.name AS job_name, j.agents_group_id, g.name AS agents_group_name, j.agent_used_id AS agent_id, \
             a.name AS agent_name{from}{} ORDER BY i.path, i.line, i.id LIMIT ${} OFFSET ${}",
            w.sql,
            n + 1,
            n + 2
        );
        let rows: Vec<IssueFull> = on_read!(&self.db, p => {
            let q = bind_params!(sqlx::query_as::<_, IssueFull>(sqlx::AssertSqlSafe(q)), &w.params);
            q.bind(limit).bind(start).fetch_all(p).await?
        });
        let cq = format!("SELECT COUNT(*){from}{}", w.sql);
        let total: i64 = on_read!(&self.db, p => {
            let q = bind_params!(sqlx::query_scalar(sqlx::AssertSqlSafe(cq)), &w.params);
            q.fetch_one(p).await?
        });
        Ok((rows, total))
    }

    /// Counts of results per (stage, group, system, result) of a flow's
    /// non-covered jobs, for the flow analysis.
    pub async fn flow_result_counts(
        &self,
        flow_id: i64,
    ) -> Result<Vec<(String, i64, i64, String, i64, String, i64, i64)>> {
        Ok(on_read!(&self.db, p => sqlx::query_as(
            "SELECT s.name, r.id, g.id, g.name, y.id, y.name, t.result, COUNT(*) FROM test_case_results t \
             JOIN jobs j ON j.id = t.job_id JOIN runs r ON r.id = j.run_id JOIN stages s ON s.id = r.stage_id \
             JOIN agents_groups g ON g.id = j.agents_group_id JOIN systems y ON y.id = j.system_id \
             WHERE r.flow_id = $1 AND j.covered = FALSE GROUP BY s.name, r.id, g.id, g.name, y.id, y.name, t.result")
            .bind(flow_id).fetch_all(p).await?))
    }
}
