//! Log lines: step output of jobs and the server's own logs.

use std::collections::{BTreeMap, HashMap};

use super::rows_sql::RowsSql;
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

/// Inserting many log lines at once, as each database does it best; both
/// return the id of the last line (no `RETURNING id` for every row: on
/// SQLite each returned row is one hand-off from the connection's thread,
/// and a million-line log spent most of its time there).
trait BulkLogs {
    /// Insert `logs` at `positions`; the id of the last one when `want_last`.
    async fn insert(
        &mut self,
        logs: &[NewLog],
        positions: &[(Option<i64>, Option<i64>)],
        want_last: bool,
    ) -> Result<Option<i64>>;
}

/// The SQLite `INSERT` of log lines that share their place (service, host,
/// job, step, tool, ...), as the lines of one batch of a job do: each row
/// binds only what differs from line to line (time, sequence, message,
/// positions), up to 1,024 rows (5,120 parameters) a statement, and the 13
/// shared values come once, after the rows. (`CROSS JOIN` keeps the rows'
/// order: the `VALUES` are the outer loop, so ids follow the lines.)
static INSERT_SHARED: RowsSql = RowsSql::new(
    "INSERT INTO logs (time, seq, message, tool_pos, step_pos, service, host, path, lineno, level, \
     branch_id, flow_kind, flow_id, run_id, job_id, step, tool, agent_id) \
     SELECT v.column1, v.column2, v.column3, v.column4, v.column5, c.service, c.host, c.path, \
     c.lineno, c.level, c.branch_id, c.flow_kind, c.flow_id, c.run_id, c.job_id, c.step, c.tool, \
     c.agent_id FROM (VALUES ",
    "(?, ?, ?, ?, ?)",
    ") AS v CROSS JOIN (SELECT ? AS service, ? AS host, ? AS path, ? AS lineno, ? AS level, \
     ? AS branch_id, ? AS flow_kind, ? AS flow_id, ? AS run_id, ? AS job_id, ? AS step, ? AS tool, \
     ? AS agent_id) AS c",
    1024,
);

/// The SQLite `INSERT` of log lines from different places (the server's own
/// lines about several flows): up to 512 rows of 18 parameters (9,216 of
/// SQLite's 32,766) a statement.
static INSERT_ROWS: RowsSql = RowsSql::new(
    "INSERT INTO logs (time, seq, message, tool_pos, step_pos, service, host, path, lineno, level, \
     branch_id, flow_kind, flow_id, run_id, job_id, step, tool, agent_id) VALUES ",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "",
    512,
);

/// A statement inserting log lines being bound.
type LogsQuery<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>;

/// Bind the place of `l`: 13 parameters (the last 13 columns of SQLite's
/// [`INSERT_SHARED`] and [`INSERT_ROWS`], `$4`–`$16` of PostgreSQL's batch
/// of one job step).
fn bind_place<'q, DB>(q: LogsQuery<'q, DB>, l: &'q NewLog) -> LogsQuery<'q, DB>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(l.service.as_str())
        .bind(l.host.as_str())
        .bind(l.path.as_str())
        .bind(l.lineno)
        .bind(l.level.as_str())
        .bind(l.branch_id)
        .bind(l.flow_kind)
        .bind(l.flow_id)
        .bind(l.run_id)
        .bind(l.job_id)
        .bind(l.step)
        .bind(l.tool.as_str())
        .bind(l.agent_id)
}

/// Whether two lines have the same place (all but time, sequence and message).
fn same_place(a: &NewLog, b: &NewLog) -> bool {
    a.service == b.service
        && a.host == b.host
        && a.path == b.path
        && a.lineno == b.lineno
        && a.level == b.level
        && a.branch_id == b.branch_id
        && a.flow_kind == b.flow_kind
        && a.flow_id == b.flow_id
        && a.run_id == b.run_id
        && a.job_id == b.job_id
        && a.step == b.step
        && a.tool == b.tool
        && a.agent_id == b.agent_id
}

impl BulkLogs for sqlx::SqliteConnection {
    /// Multi-row statements of a few sizes ([`RowsSql`]): lines that all
    /// share their place (a batch of a job's output) bind it once a statement,
    /// others every column of every row; then `last_insert_rowid()` when it
    /// is wanted.
    async fn insert(
        &mut self,
        logs: &[NewLog],
        positions: &[(Option<i64>, Option<i64>)],
        want_last: bool,
    ) -> Result<Option<i64>> {
        let Some(first) = logs.first() else {
            return Ok(None);
        };
        let shared = logs.iter().all(|l| same_place(first, l));
        let sql = if shared { &INSERT_SHARED } else { &INSERT_ROWS };
        let mut done = 0;
        for size in sql.chunks(logs.len()) {
            let (chunk, pos) = (&logs[done..done + size], &positions[done..done + size]);
            done += size;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.text(size)));
            for (l, (tp, sp)) in chunk.iter().zip(pos) {
                q = q
                    .bind(l.time)
                    .bind(l.seq)
                    .bind(l.message.as_str())
                    .bind(*tp)
                    .bind(*sp);
                if !shared {
                    q = bind_place(q, l);
                }
            }
            if shared {
                q = bind_place(q, first);
            }
            q.execute(&mut *self).await?;
        }
        if !want_last {
            return Ok(None);
        }
        Ok(sqlx::query_scalar("SELECT last_insert_rowid()")
            .fetch_one(&mut *self)
            .await?)
    }
}

impl BulkLogs for sqlx::PgConnection {
    /// One statement whatever the number of lines: a column of each field
    /// bound as an array and `UNNEST`ed, prepared once per connection
    /// (multi-row `VALUES` is parsed and planned anew for every size).
    async fn insert(
        &mut self,
        logs: &[NewLog],
        positions: &[(Option<i64>, Option<i64>)],
        _want_last: bool,
    ) -> Result<Option<i64>> {
        let ints = |f: fn(&NewLog) -> i64| logs.iter().map(f).collect::<Vec<i64>>();
        let texts = |f: fn(&NewLog) -> &str| logs.iter().map(f).collect::<Vec<&str>>();
        Ok(sqlx::query_scalar(
            "WITH ins AS (INSERT INTO logs (time, seq, message, service, host, path, lineno, level, branch_id, \
             flow_kind, flow_id, run_id, job_id, step, tool, agent_id, tool_pos, step_pos) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::int8[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], \
             $15::text[], $16::int8[], $17::int8[], $18::int8[]) RETURNING id) SELECT MAX(id) FROM ins")
            .bind(ints(|l| l.time)).bind(ints(|l| l.seq)).bind(texts(|l| &l.message))
            .bind(texts(|l| &l.service)).bind(texts(|l| &l.host)).bind(texts(|l| &l.path))
            .bind(ints(|l| l.lineno)).bind(texts(|l| &l.level)).bind(ints(|l| l.branch_id))
            .bind(ints(|l| l.flow_kind)).bind(ints(|l| l.flow_id)).bind(ints(|l| l.run_id))
            .bind(ints(|l| l.job_id)).bind(ints(|l| l.step)).bind(texts(|l| &l.tool))
            .bind(ints(|l| l.agent_id))
            .bind(positions.iter().map(|p| p.0).collect::<Vec<Option<i64>>>())
            .bind(positions.iter().map(|p| p.1).collect::<Vec<Option<i64>>>())
            .fetch_one(&mut *self).await?)
    }
}

/// [`Store::insert_logs`] on PostgreSQL for a batch whose lines all share
/// their place (one job's step, as an agent sends them): the job's and the
/// step's kept counts grow and the lines go in at the positions that
/// follow, in one statement (one round trip and no transaction around it,
/// where the general way takes five). The step's count is written from the
/// job's (`FROM jc`), so the job's row is locked first, as in the general
/// way: two writers of one job never wait for each other in a circle.
/// Returns the id of the last line.
async fn insert_job_batch_pg(
    pool: &sqlx::PgPool,
    logs: &[NewLog],
    tool_output: bool,
) -> Result<Option<i64>> {
    let l = &logs[0];
    let n = logs.len() as i64;
    let tool_lines = if tool_output { n } else { 0 };
    let q = sqlx::query(
        "WITH jc AS (INSERT INTO job_log_counts (job_id, lines, tool_lines) VALUES ($13, $17, $18) \
         ON CONFLICT (job_id) DO UPDATE SET lines = job_log_counts.lines + excluded.lines, \
         tool_lines = job_log_counts.tool_lines + excluded.tool_lines RETURNING tool_lines - $18 AS tool0), \
         sc AS (INSERT INTO step_log_counts (job_id, step, lines) SELECT $13, $14, $17 FROM jc \
         ON CONFLICT (job_id, step) DO UPDATE SET lines = step_log_counts.lines + excluded.lines \
         RETURNING lines - $17 AS step0), \
         ins AS (INSERT INTO logs (time, seq, message, service, host, path, lineno, level, branch_id, \
         flow_kind, flow_id, run_id, job_id, step, tool, agent_id, tool_pos, step_pos) \
         SELECT u.time, u.seq, u.message, $4::text, $5::text, $6::text, $7::int8, $8::text, $9::int8, \
         $10::int8, $11::int8, $12::int8, $13::int8, $14::int8, $15::text, $16::int8, \
         CASE WHEN $18::int8 > 0 THEN jc.tool0 + u.n - 1 END, sc.step0 + u.n - 1 \
         FROM UNNEST($1::int8[], $2::int8[], $3::text[]) WITH ORDINALITY AS u(time, seq, message, n) \
         CROSS JOIN jc CROSS JOIN sc ORDER BY u.n RETURNING id) \
         SELECT MAX(id) FROM ins",
    )
    .bind(logs.iter().map(|l| l.time).collect::<Vec<i64>>())
    .bind(logs.iter().map(|l| l.seq).collect::<Vec<i64>>())
    .bind(logs.iter().map(|l| l.message.as_str()).collect::<Vec<&str>>());
    let row = bind_place(q, l)
        .bind(n)
        .bind(tool_lines)
        .fetch_one(pool)
        .await?;
    Ok(sqlx::Row::try_get(&row, 0)?)
}

impl Store {
    /// Store log lines (in batches, in one transaction); returns the id of
    /// the last one. A job's lines get their positions (among its tool
    /// output, and among its step's lines) and its kept counts grow, in the
    /// same transaction: pages of its log are then found by position.
    pub async fn insert_logs(&self, logs: &[NewLog]) -> Result<Option<i64>> {
        if logs.is_empty() {
            return Ok(None);
        }
        let is_tool = |l: &NewLog| l.job_id != 0 && !l.tool.is_empty() && l.service == "agent";
        if let super::Db::Pg(p) = &self.db {
            let first = &logs[0];
            if first.job_id != 0 && logs.iter().all(|l| same_place(first, l)) {
                return insert_job_batch_pg(p, logs, is_tool(first)).await;
            }
        }
        // Ordered maps: every transaction takes the count rows' locks in
        // the same order (no deadlock between servers).
        let mut jobs: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut steps: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for l in logs.iter().filter(|l| l.job_id != 0) {
            let j = jobs.entry(l.job_id).or_default();
            j.0 += 1;
            j.1 += i64::from(is_tool(l));
            *steps.entry((l.job_id, l.step)).or_default() += 1;
        }
        let last = in_tx!(&self.db, tx => {
            let mut next_tool: HashMap<i64, i64> = HashMap::new();
            for (job, (n, t)) in &jobs {
                let (_, tool_lines): (i64, i64) = sqlx::query_as(
                    "INSERT INTO job_log_counts (job_id, lines, tool_lines) VALUES ($1, $2, $3) \
                     ON CONFLICT (job_id) DO UPDATE SET lines = job_log_counts.lines + excluded.lines, \
                     tool_lines = job_log_counts.tool_lines + excluded.tool_lines RETURNING lines, tool_lines")
                    .bind(job).bind(n).bind(t).fetch_one(&mut *tx).await?;
                next_tool.insert(*job, tool_lines - t);
            }
            let mut next_step: HashMap<(i64, i64), i64> = HashMap::new();
            for ((job, step), n) in &steps {
                let lines: i64 = sqlx::query_scalar(
                    "INSERT INTO step_log_counts (job_id, step, lines) VALUES ($1, $2, $3) \
                     ON CONFLICT (job_id, step) DO UPDATE SET lines = step_log_counts.lines + excluded.lines \
                     RETURNING lines")
                    .bind(job).bind(step).bind(n).fetch_one(&mut *tx).await?;
                next_step.insert((*job, *step), lines - n);
            }
            let positions: Vec<(Option<i64>, Option<i64>)> = logs
                .iter()
                .map(|l| {
                    if l.job_id == 0 {
                        return (None, None);
                    }
                    let tool = is_tool(l).then(|| {
                        let p = next_tool.entry(l.job_id).or_default();
                        *p += 1;
                        *p - 1
                    });
                    let p = next_step.entry((l.job_id, l.step)).or_default();
                    *p += 1;
                    (tool, Some(*p - 1))
                })
                .collect();
            BulkLogs::insert(&mut *tx, logs, &positions, true).await?
        });
        Ok(last)
    }

    /// Store log lines whose id nobody waits for (the server's own service
    /// logs). Lines of no job have no kept counts to grow, so they go in
    /// without a transaction around them or the last id read back: one
    /// round trip instead of four on SQLite for the line or two the server
    /// logs at each step of a flow. (Service lines are not all-or-nothing:
    /// a batch of several statements that fails half-way keeps its first
    /// lines.) Lines naming a job go through [`Store::insert_logs`].
    pub async fn append_logs(&self, logs: &[NewLog]) -> Result<()> {
        if logs.is_empty() {
            return Ok(());
        }
        if logs.iter().any(|l| l.job_id != 0) {
            return self.insert_logs(logs).await.map(|_| ());
        }
        let positions = vec![(None, None); logs.len()];
        match &self.db {
            super::Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                BulkLogs::insert(&mut *conn, logs, &positions, false).await?;
            }
            super::Db::Pg(p) => {
                let mut conn = p.acquire().await?;
                BulkLogs::insert(&mut *conn, logs, &positions, false).await?;
            }
        }
        Ok(())
    }

    /// A page of a job's log found by position, when its filter is one
    /// whose count is kept (the job's tool output, or one step's lines)
    /// and the job has one; `None` otherwise.
    async fn page_by_position(
        &self,
        f: &LogFilter,
        start: i64,
        limit: i64,
        desc: bool,
    ) -> Result<Option<(Vec<LogRow>, i64)>> {
        let Some(job) = f.job_id else { return Ok(None) };
        let plain = f.run_id.is_none()
            && f.flow_id.is_none()
            && f.branch_id.is_none()
            && f.flow_kind.is_none()
            && f.agent_id.is_none()
            && f.after.is_none()
            && f.services.is_empty()
            && f.level.is_none()
            && f.text.is_none();
        if !plain {
            return Ok(None);
        }
        let (total, col, cond): (Option<i64>, &str, String) = match (f.tool_output_only, f.step) {
            (true, None) => (
                on_read!(&self.db, p => sqlx::query_scalar(
                    "SELECT tool_lines FROM job_log_counts WHERE job_id = $1")
                    .bind(job).fetch_optional(p).await?),
                "tool_pos",
                "job_id = $1".to_string(),
            ),
            (false, Some(step)) => (
                on_read!(&self.db, p => sqlx::query_scalar(
                    "SELECT lines FROM step_log_counts WHERE job_id = $1 AND step = $2")
                    .bind(job).bind(step).fetch_optional(p).await?),
                "step_pos",
                format!("job_id = $1 AND step = {step}"),
            ),
            _ => return Ok(None),
        };
        let Some(total) = total else { return Ok(None) };
        let (op, dir, from) = if desc {
            ("<=", "DESC", total - 1 - start)
        } else {
            (">=", "ASC", start)
        };
        let q = format!(
            "SELECT {LOG_COLS} FROM logs WHERE {cond} AND {col} IS NOT NULL AND {col} {op} $2 \
             ORDER BY {col} {dir} LIMIT $3"
        );
        let rows: Vec<LogRow> = on_read!(&self.db, p => sqlx::query_as::<_, LogRow>(sqlx::AssertSqlSafe(q))
            .bind(job).bind(from).bind(limit).fetch_all(p).await?);
        Ok(Some((rows, total)))
    }

    /// A page of log lines matching `f`, ordered by id, and the total count.
    pub async fn query_logs(
        &self,
        f: &LogFilter,
        start: i64,
        limit: i64,
        desc: bool,
    ) -> Result<(Vec<LogRow>, i64)> {
        if let Some(page) = self.page_by_position(f, start, limit, desc).await? {
            return Ok(page);
        }
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
        // Jobs losing lines lose their kept counts: their pages are then
        // found by counting and skipping, which stays right for what is left.
        for table in ["job_log_counts", "step_log_counts"] {
            let q = format!(
                "DELETE FROM {table} WHERE job_id IN (SELECT DISTINCT job_id FROM logs \
                 WHERE branch_id = $1 AND flow_kind = $2 AND time < $3 AND job_id <> 0)"
            );
            super::on_write!(&self.db, p => sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(branch_id).bind(flow_kind).bind(before).execute(p).await?.rows_affected());
        }
        Ok(super::on_write!(&self.db, p => sqlx::query(
            "DELETE FROM logs WHERE branch_id = $1 AND flow_kind = $2 AND time < $3")
            .bind(branch_id).bind(flow_kind).bind(before).execute(p).await?.rows_affected()))
    }
}
