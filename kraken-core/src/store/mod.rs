//! Storage: SQLite (the embedded default) and PostgreSQL (scale-out) behind
//! one [`Store`], with the same SQL text for both wherever possible.
//!
//! Queries are runtime queries (`sqlx::query_as(..).bind(..)`), so building
//! needs no database. Each backend has its own embedded migrations.
//!
//! SQLite gets two pools: one connection for writes and several for reads.
//! WAL mode lets readers run beside the writer, and a single writer means our
//! own transactions never fight over SQLite's lock (no `SQLITE_BUSY` between
//! them); other processes on the same file still wait through `busy_timeout`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use crate::error::{Error, Result};
use sqlite_conns::SqliteConns;

pub mod agents;
pub mod branches;
pub mod flows;
pub mod jobs;
pub mod logs;
pub mod notifications;
#[cfg(test)]
mod plans;
pub mod projects;
pub mod results;
mod rows_sql;
pub mod settings;
mod sqlite_conns;
pub mod stages;
pub mod tasks;
pub mod tools;
pub mod users;

/// The two supported databases. SQLite has one connection for writes and a
/// few for reads ([`sqlite_conns`]), PostgreSQL a pool.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite {
        write: Arc<SqliteConns>,
        read: Arc<SqliteConns>,
    },
    Pg(PgPool),
}

/// Run `$body` with `$p` bound to an executor that takes writes: the
/// SQLite writer connection, or the PostgreSQL pool.
macro_rules! on_write {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                let $p = &mut *conn;
                $body
            }
            $crate::store::Db::Pg($p) => $body,
        }
    };
}
/// Run `$body` with `$p` bound to an executor for reads.
macro_rules! on_read {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite { read, .. } => {
                let mut conn = read.acquire().await?;
                let $p = &mut *conn;
                $body
            }
            $crate::store::Db::Pg($p) => $body,
        }
    };
}
/// Run `$body` inside a transaction bound to `$tx`; commits when the body
/// finishes, rolls back when it returns early with `?`.
macro_rules! in_tx {
    ($db:expr, $tx:ident => $body:block) => {
        match $db {
            $crate::store::Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await?;
                let mut $tx = sqlx::Connection::begin(&mut *conn).await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Db::Pg(p) => {
                let mut $tx = p.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}
pub(crate) use {in_tx, on_read, on_write};

/// `col` is one of ids bound as the single parameter `$n`, so the query's
/// text, and with it the prepared statement each connection keeps, is the
/// same whatever the ids (an `IN (1,2,3)` list written into the text is
/// prepared anew for every new set of ids). Bind the ids with
/// [`fetch_all_by_ids`].
pub(crate) fn in_ids(db: &Db, col: &str, n: usize) -> String {
    match db {
        Db::Sqlite { .. } => format!("{col} IN (SELECT value FROM json_each(${n}))"),
        Db::Pg(_) => format!("{col} = ANY(${n})"),
    }
}

/// Rows of query `q` (read pool) whose only parameter is the id list of
/// [`in_ids`]: a JSON array on SQLite, an array on PostgreSQL.
pub(crate) async fn fetch_all_by_ids<T>(db: &Db, q: String, ids: &[i64]) -> Result<Vec<T>>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    Ok(match db {
        Db::Sqlite { read, .. } => {
            let list = serde_json::to_string(ids)?;
            let mut conn = read.acquire().await?;
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(q))
                .bind(list)
                .fetch_all(&mut *conn)
                .await?
        }
        Db::Pg(p) => {
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(q))
                .bind(ids.to_vec())
                .fetch_all(p)
                .await?
        }
    })
}

/// A row of a page read with the number of rows of all pages as `total`
/// (`COUNT(*) OVER ()`, or a subquery counting them where there can be
/// many): the page and its total come from one statement, so they agree
/// (two statements could see a row created between them: a total of 2 with
/// one item).
pub(crate) struct Paged<T> {
    pub row: T,
    pub total: i64,
}

impl<'r, R, T> sqlx::FromRow<'r, R> for Paged<T>
where
    R: sqlx::Row,
    T: sqlx::FromRow<'r, R>,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> std::result::Result<Self, sqlx::Error> {
        Ok(Paged {
            row: T::from_row(row)?,
            total: row.try_get("total")?,
        })
    }
}

/// The rows of a [`Paged`] read and their total. A page past the end has no
/// row to carry the total, so only then is it counted apart (`count`); an
/// empty first page means no row at all.
pub(crate) async fn page_and_total<T, F>(
    rows: Vec<Paged<T>>,
    start: i64,
    count: F,
) -> Result<(Vec<T>, i64)>
where
    F: std::future::Future<Output = Result<i64>>,
{
    let total = match rows.first() {
        Some(r) => r.total,
        None if start <= 0 => 0,
        None => count.await?,
    };
    Ok((rows.into_iter().map(|r| r.row).collect(), total))
}

/// The database a [`Store`] talks to.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    url: String,
    /// Systems by `(name, executor)`: rows are only ever inserted, never
    /// changed or deleted, so an id once read stays true (on every server).
    systems: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), i64>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

/// Hide the password of a database URL (for logs and `Debug`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:****{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Open (and migrate) the database at `url`: `sqlite://path/to/file.db`,
    /// `sqlite::memory:`, or `postgres://user:pass@host:port/db`.
    pub async fn open(url: &str) -> Result<Store> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| Error::bad_request(format!("invalid PostgreSQL URL: {e}")))?;
            // sqlx pings a connection before handing it out: a round trip
            // per statement. Only one idle for over a second is tested
            // (after a PostgreSQL restart), so a busy server pays nothing
            // and a broken connection is still replaced before it is used.
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > Duration::from_secs(1) {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(|e| {
                    Error::Transport(format!(
                        "cannot connect to PostgreSQL at {}: {e}",
                        redact_url(url)
                    ))
                })?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Db::Pg(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::bad_request(format!("invalid SQLite URL: {e}")))?
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                // Rows cross from the connection's thread through a bounded
                // channel; at sqlx's 50 the thread stops every 50 rows until
                // the reading task has caught up (results analysis: 885 →
                // 373 ms with 4,096).
                .row_buffer_size(4096);
            let open_err =
                |e: Error| Error::Transport(format!("cannot open SQLite database {url}: {e}"));
            let write = SqliteConns::open(opts.clone(), 1).await.map_err(open_err)?;
            {
                let mut conn = write.acquire().await?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(&mut *conn)
                    .await?;
            }
            let write = Arc::new(write);
            // An in-memory database exists once per connection set: share the writer.
            let read = if url.contains(":memory:") {
                write.clone()
            } else {
                Arc::new(SqliteConns::open(opts, 4).await.map_err(open_err)?)
            };
            Db::Sqlite { write, read }
        } else {
            return Err(Error::bad_request(format!(
                "unsupported database URL '{}': use sqlite://PATH or postgres://...",
                redact_url(url)
            )));
        };
        Ok(Store {
            db,
            url: url.to_string(),
            systems: Default::default(),
        })
    }

    /// Open the SQLite database `kraken.db` in a data directory, creating both.
    pub async fn open_data_dir(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::internal(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("kraken.db");
        Store::open(&format!("sqlite://{}", path.display())).await
    }

    /// The URL this store was opened with (password redacted).
    pub fn url(&self) -> String {
        redact_url(&self.url)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }

    /// Close every connection.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Pg(p) => p.close().await,
        }
    }
}

/// A table is analysed again once it has had more changes since its last
/// statistics than it had rows then (and at least this many).
const STATISTICS_MIN_CHANGES: i64 = 50;

/// The tables the migrations create (checked against both databases in
/// `store::plans`): only these are analysed, whatever else shares the
/// database's schema.
pub(crate) const TABLES: &[&str] = &[
    "agent_assignments",
    "agents",
    "agents_groups",
    "artifacts",
    "bg_tasks",
    "branch_sequences",
    "branches",
    "files",
    "flows",
    "issues",
    "job_log_counts",
    "job_s3_keys",
    "jobs",
    "logs",
    "notifications",
    "projects",
    "repo_changes",
    "runs",
    "secrets",
    "settings",
    "stage_timers",
    "stages",
    "step_log_counts",
    "steps",
    "systems",
    "test_case_comments",
    "test_case_results",
    "test_cases",
    "tools",
    "user_roles",
    "user_sessions",
    "users",
    "webhook_deliveries",
];

impl Store {
    /// Give PostgreSQL's planner statistics for the tables that have grown
    /// past them: every one of our [`TABLES`] with more changes since its last `ANALYZE`
    /// than it then had rows (at least [`STATISTICS_MIN_CHANGES`]), so a
    /// table is analysed as it doubles. Returns the tables analysed.
    ///
    /// Autovacuum analyses a table after 10 % of it changed, but looks at
    /// most once a minute: a new database is planned without statistics
    /// for its first minute, however much it holds by then. Without them
    /// the planner takes a branch's flows, a flow's jobs and a stage's runs
    /// for one row each and picks nested loops that read the results of
    /// 10,000 tests once per result (the results analysis on PostgreSQL
    /// was 0.6 to 2.5 s depending on whether autovacuum had come by;
    /// BENCHMARKS.md, finding 37). Doubling keeps the number of `ANALYZE`s
    /// logarithmic in a table's size; once autovacuum's 10 % is the smaller
    /// step it does the work. `SKIP_LOCKED`: a table being analysed by
    /// autovacuum or another server is left to it. A table the database
    /// user does not own is skipped by PostgreSQL with a warning.
    ///
    /// SQLite's planner works without statistics (none is ever gathered:
    /// no `ANALYZE` runs on it), so there is nothing to do there; its plans
    /// are checked in `store::plans`.
    pub async fn refresh_statistics(&self) -> Result<Vec<String>> {
        let Db::Pg(p) = &self.db else {
            return Ok(Vec::new());
        };
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname = current_schema() AND s.relname = ANY($2) \
               AND s.n_mod_since_analyze >= GREATEST($1, c.reltuples) ORDER BY s.relname",
        )
        .bind(STATISTICS_MIN_CHANGES)
        .bind(TABLES)
        .fetch_all(p)
        .await?;
        for t in &tables {
            let quoted = format!("\"{}\"", t.replace('"', "\"\""));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ANALYZE (SKIP_LOCKED) {quoted}"
            )))
            .execute(p)
            .await?;
        }
        Ok(tables)
    }
}

/// Current time in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Clamp paging parameters: `start ≥ 0`, `1 ≤ limit ≤ max`.
pub(crate) fn page(start: Option<i64>, limit: Option<i64>, default: i64, max: i64) -> (i64, i64) {
    let start = start.unwrap_or(0).max(0);
    let limit = limit.unwrap_or(default).clamp(1, max);
    (start, limit)
}

/// `ASC` or `DESC` from a user's `sort_dir`.
pub(crate) fn sort_dir(dir: Option<&str>) -> Result<&'static str> {
    match dir.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("asc") => Ok("ASC"),
        Some("desc") => Ok("DESC"),
        Some(other) => Err(Error::bad_request(format!(
            "incorrect sort_dir value '{other}': use asc or desc"
        ))),
    }
}
