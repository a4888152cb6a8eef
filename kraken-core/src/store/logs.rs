//! Log lines: step output of jobs and the server's own logs.

use super::{Store, in_tx, on_read};
use crate::error::Result;
use crate::model::LogFilter;

/// A `logs` row.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LogRow {
    /// Id: the cursor clients follow.
    pub id: i64,
    /// Time (ms).
    pub time: i64,
    /// Line index within the record it came from.
    pub seq: i64,
    /// The text.
    pub message: String,
    /// `agent`, `tool`, `server`, `engine`, ...
    pub service: String,
    /// Host.
    pub host: String,
    /// Source path.
    pub path: String,
    /// Source line.
    pub lineno: i64,
    /// `INFO`, `ERROR`, ...
    pub level: String,
    /// Branch.
    pub branch_id: i64,
    /// Flow kind.
    pub flow_kind: i64,
    /// Flow.
    pub flow_id: i64,
    /// Run.
    pub run_id: i64,
    /// Job.
    pub job_id: i64,
    /// Step index (-1 for none).
    pub step: i64,
    /// Tool.
    pub tool: String,
    /// Agent.
    pub agent_id: i64,
}

const LOG_COLS: &str = "id, time, seq, message, service, host, path, lineno, level, branch_id, flow_kind, \
    flow_id, run_id, job_id, step, tool, agent_id";

/// A log line to store.
#[derive(Debug, Clone, Default)]
pub struct NewLog {
    /// Time (ms).
    pub time: i64,
    /// Line index within its record.
    pub seq: i64,
    /// The text.
    pub message: String,
    /// Service.
    pub service: String,
    /// Host.
    pub host: String,
    /// Source path.
    pub path: String,
    /// Source line.
    pub lineno: i64,
    /// Level.
    pub level: String,
    /// Branch.
    pub branch_id: i64,
    /// Flow kind.
    pub flow_kind: i64,
    /// Flow.
    pub flow_id: i64,
    /// Run.
    pub run_id: i64,
    /// Job.
    pub job_id: i64,
    /// Step index.
    pub step: i64,
    /// Tool.
    pub tool: String,
    /// Agent.
    pub agent_id: i64,
}

enum Param {
    I(i64),
    S(String),
}

/// Levels from least to most severe.
const LEVELS: &[&str] = &["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

fn where_clause(f: &LogFilter) -> (String, Vec<Param>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut params = Vec::new();
    let mut int = |sql: &mut String, col: &str, v: Option<i64>| {
        if let Some(v) = v {
            params.push(Param::I(v));
            sql.push_str(&format!(" AND {col} = ${}", params.len()));
        }
    };
    int(&mut sql, "job_id", f.job_id);
    int(&mut sql, "run_id", f.run_id);
    int(&mut sql, "flow_id", f.flow_id);
    int(&mut sql, "branch_id", f.branch_id);
    int(&mut sql, "flow_kind", f.flow_kind);
    int(&mut sql, "step", f.step);
    int(&mut sql, "agent_id", f.agent_id);
    if let Some(after) = f.after {
        params.push(Param::I(after));
        sql.push_str(&format!(" AND id > ${}", params.len()));
    }
    if !f.services.is_empty() {
        let mut ph = Vec::new();
        for s in &f.services {
            params.push(Param::S(s.clone()));
            ph.push(format!("${}", params.len()));
        }
        sql.push_str(&format!(" AND service IN ({})", ph.join(", ")));
    }
    if let Some(level) = &f.level {
        let up = level.to_ascii_uppercase();
        let from = LEVELS.iter().position(|l| *l == up).unwrap_or(0);
        let mut ph = Vec::new();
        for l in &LEVELS[from..] {
            params.push(Param::S((*l).to_string()));
            ph.push(format!("${}", params.len()));
        }
        sql.push_str(&format!(" AND level IN ({})", ph.join(", ")));
    }
    if f.tool_output_only {
        sql.push_str(" AND tool <> '' AND service = 'agent'");
    }
    if let Some(t) = &f.text {
        params.push(Param::S(format!("%{}%", t.to_lowercase())));
        sql.push_str(&format!(" AND LOWER(message) LIKE ${}", params.len()));
    }
    (sql, params)
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::I(i) => q.bind(*i),
                Param::S(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

impl Store {
    /// Store log lines (in batches, in one transaction); returns the id of the last one.
    pub async fn insert_logs(&self, logs: &[NewLog]) -> Result<Option<i64>> {
        if logs.is_empty() {
            return Ok(None);
        }
        let last = in_tx!(&self.db, tx => {
            let mut last = None;
            for chunk in logs.chunks(400) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO logs (time, seq, message, service, host, path, lineno, level, branch_id, \
                     flow_kind, flow_id, run_id, job_id, step, tool, agent_id) ",
                );
                qb.push_values(chunk, |mut b, l| {
                    b.push_bind(l.time).push_bind(l.seq).push_bind(l.message.as_str()).push_bind(l.service.as_str())
                        .push_bind(l.host.as_str()).push_bind(l.path.as_str()).push_bind(l.lineno)
                        .push_bind(l.level.as_str()).push_bind(l.branch_id).push_bind(l.flow_kind)
                        .push_bind(l.flow_id).push_bind(l.run_id).push_bind(l.job_id).push_bind(l.step)
                        .push_bind(l.tool.as_str()).push_bind(l.agent_id);
                });
                qb.push(" RETURNING id");
                let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
                last = ids.into_iter().max().or(last);
            }
            last
        });
        Ok(last)
    }

    /// A page of log lines matching `f`, ordered by id, and the total count.
    pub async fn query_logs(
        &self,
        f: &LogFilter,
        start: i64,
        limit: i64,
        desc: bool,
    ) -> Result<(Vec<LogRow>, i64)> {
        let (cond, params) = where_clause(f);
        let dir = if desc { "DESC" } else { "ASC" };
        let n = params.len();
        let q = format!(
            "SELECT {LOG_COLS} FROM logs{cond} ORDER BY id {dir} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows: Vec<LogRow> = on_read!(&self.db, p => {
            let q = bind_all!(sqlx::query_as::<_, LogRow>(sqlx::AssertSqlSafe(q)), &params);
            q.bind(limit).bind(start).fetch_all(p).await?
        });
        let cq = format!("SELECT COUNT(*) FROM logs{cond}");
        let total: i64 = on_read!(&self.db, p => {
            let q = bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(cq)), &params);
            q.fetch_one(p).await?
        });
        Ok((rows, total))
    }

    /// Log lines after a cursor, oldest first (for following a log).
    pub async fn logs_after(&self, f: &LogFilter, limit: i64) -> Result<Vec<LogRow>> {
        let (cond, params) = where_clause(f);
        let n = params.len();
        let q = format!(
            "SELECT {LOG_COLS} FROM logs{cond} ORDER BY id ASC LIMIT ${}",
            n + 1
        );
        Ok(on_read!(&self.db, p => {
            let q = bind_all!(sqlx::query_as::<_, LogRow>(sqlx::AssertSqlSafe(q)), &params);
            q.bind(limit).fetch_all(p).await?
        }))
    }

    /// Number of ERROR (or worse) lines of the server since `since` (ms).
    pub async fn count_error_logs(&self, since: i64) -> Result<i64> {
        Ok(on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM logs WHERE time >= $1 AND level IN ('ERROR', 'CRITICAL') AND job_id = 0")
            .bind(since).fetch_one(p).await?))
    }

    /// Delete job logs of a branch and flow kind older than `before` (ms).
    pub async fn delete_old_logs(
        &self,
        branch_id: i64,
        flow_kind: i64,
        before: i64,
    ) -> Result<u64> {
        Ok(super::on_write!(&self.db, p => sqlx::query(
            "DELETE FROM logs WHERE branch_id = $1 AND flow_kind = $2 AND time < $3")
            .bind(branch_id).bind(flow_kind).bind(before).execute(p).await?.rows_affected()))
    }
}
