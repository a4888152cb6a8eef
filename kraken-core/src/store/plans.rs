//! The statements a server runs for every flow whose work must not grow
//! with the history the database holds (finished tasks, earlier flows and
//! runs), and the plans both databases choose for them over a seeded
//! history. SQLite always; PostgreSQL when `KRAKEN_TEST_DB_URL` names one.

use sqlx::{AssertSqlSafe, Connection, Row};

use super::flows::{
    branch_flows_page_sql, lapsed_completion_sql, lapsed_planning_sql, next_run_of_stage_sql,
    previous_ci_run_sql, runs_creating_unplanned_sql, runs_done_but_open_sql, stalled_flows_sql,
    unfinished_runs_sql, unprocessed_runs_sql,
};
use super::results::{UPDATE_ANALYSIS_PG, recent_ci_history_sql, recent_latest_ci_results_sql};
use super::tasks::{TaskQueue, claim_sql, enqueue_sql};

/// Flows, runs and finished tasks of the seeded history.
const HISTORY: i64 = 20_000;

/// Branches the flows are spread over (a stage each).
const BRANCHES: i64 = 10;

/// Test cases with a result in each job of the first branch.
const TESTS: i64 = 200;

/// A statement, the parameters to explain it with (PostgreSQL needs them
/// typed by their context), the indexes its plan may use (one of them
/// must appear; none listed: any plan without a full scan), and a column
/// the index search must start from, if any (so that it begins at the
/// flow in question, not at the oldest or newest).
struct Case {
    name: &'static str,
    sql: String,
    args: &'static str,
    index: &'static [&'static str],
    from: Option<&'static str>,
    /// The rows come in the index's order: no sort, no window over them all.
    unsorted: bool,
    /// Run for every flow (not only by the recovery pass every few
    /// seconds): PostgreSQL's plan must hold without statistics too.
    per_flow: bool,
    /// Also on empty tables. A plan made then lasts until the first
    /// `ANALYZE` (see `Store::refresh_statistics`): those walking a
    /// branch's flows must not grow with them even so. Those over many
    /// results are checked from when the tables hold some.
    empty_too: bool,
    /// Indexes the plan must not use.
    never: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a page of a branch's flows with their number",
            sql: branch_flows_page_sql(),
            args: "(1, 0, 10, 100)",
            index: &["flows_branch_kind"],
            from: None,
            unsorted: true,
            per_flow: true,
            empty_too: true,
            never: &[],
        },
        Case {
            name: "claim a task",
            sql: claim_sql(TaskQueue::Main),
            args: "(1, 'me', 2)",
            index: &["bg_tasks_active", "bg_tasks_state"],
            from: None,
            unsorted: false,
            per_flow: true,
            empty_too: true,
            never: &[],
        },
        Case {
            name: "claim a notification",
            sql: claim_sql(TaskQueue::Notify),
            args: "(1, 'me', 2)",
            index: &["bg_tasks_active", "bg_tasks_state"],
            from: None,
            unsorted: false,
            per_flow: true,
            empty_too: true,
            never: &[],
        },
        Case {
            name: "queue a task",
            sql: enqueue_sql(),
            args: "('analyze_results_history', '[1]', 3)",
            index: &[],
            from: None,
            unsorted: false,
            per_flow: true,
            empty_too: true,
            never: &[],
        },
        Case {
            name: "previous CI run of a stage",
            sql: previous_ci_run_sql(),
            args: "(1, 10000, 10000, 1)",
            index: &["flows_branch_kind_created", "flows_created"],
            from: Some("created"),
            unsorted: true,
            per_flow: true,
            empty_too: true,
            never: &[],
        },
        Case {
            name: "next run of a stage",
            sql: next_run_of_stage_sql(),
            args: "(1, 10000, 10000, 1, 0)",
            index: &["flows_branch_kind_created", "flows_created"],
            from: Some("created"),
            unsorted: true,
            per_flow: true,
            empty_too: true,
            never: &[],
        },
        Case {
            // The newest flows' results by their jobs, never a test case's
            // results by `test_case_results_tc` (its whole history).
            name: "the results history of a run",
            sql: recent_ci_history_sql(20),
            args: "(1, 10000, 10000)",
            index: &["test_case_results_job"],
            from: None,
            unsorted: false,
            per_flow: true,
            empty_too: true,
            never: &["test_case_results_tc"],
        },
        Case {
            name: "the reference of a DEV run's results",
            sql: recent_latest_ci_results_sql(20),
            args: "(1)",
            index: &["test_case_results_job"],
            from: None,
            unsorted: false,
            per_flow: true,
            empty_too: true,
            never: &["test_case_results_tc"],
        },
        Case {
            name: "unprocessed runs",
            sql: unprocessed_runs_sql(),
            args: "(1, 2)",
            index: &["runs_unprocessed"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
        Case {
            name: "runs whose planning lease lapsed",
            sql: lapsed_planning_sql(),
            args: "(1)",
            index: &["runs_planning"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
        Case {
            name: "runs whose follow-up lease lapsed",
            sql: lapsed_completion_sql(),
            args: "(1)",
            index: &["runs_completing"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
        Case {
            name: "runs done but open",
            sql: runs_done_but_open_sql(),
            args: "",
            index: &["runs_open"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
        Case {
            name: "runs being created without a lease",
            sql: runs_creating_unplanned_sql(),
            args: "",
            index: &["runs_creating"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
        Case {
            name: "stalled flows",
            sql: stalled_flows_sql(),
            args: "(1)",
            index: &["flows_in_progress"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
        Case {
            name: "unfinished runs (watchdog)",
            sql: unfinished_runs_sql(),
            args: "",
            index: &["runs_unfinished", "runs_open"],
            from: None,
            unsorted: false,
            per_flow: false,
            empty_too: false,
            never: &[],
        },
    ]
}

/// One project with `BRANCHES` branches of a stage each; `HISTORY`
/// processed CI flows spread over them with a run each; `HISTORY` finished
/// tasks. Valid on both databases.
fn seed() -> Vec<String> {
    let rows = format!(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {HISTORY})"
    );
    let mut out: Vec<String> = vec![
        "INSERT INTO projects (name, user_data, created, updated) VALUES ('p', '{}', 1, 1)".into(),
    ];
    for b in 1..=BRANCHES {
        out.push(format!(
            "INSERT INTO branches (name, project_id, user_data, user_data_ci, user_data_dev, env_vars, \
             created, updated) VALUES ('b{b}', 1, '{{}}', '{{}}', '{{}}', '{{}}', 1, 1)"
        ));
        out.push(format!(
            "INSERT INTO stages (name, branch_id, schema, created, updated) VALUES ('build', {b}, '{{}}', 1, 1)"
        ));
    }
    out.push(format!(
        "{rows} INSERT INTO flows (state, kind, branch_name, branch_id, args, artifacts, user_data, \
         seq, created, updated) SELECT 2, 0, 'main', 1 + x % {BRANCHES}, '{{}}', '{{}}', '{{}}', '{{}}', x, x FROM g"
    ));
    out.push(format!(
        "{rows} INSERT INTO runs (state, stage_id, flow_id, args, artifacts, reason, seq, created, \
         updated, finished) SELECT 3, 1 + x % {BRANCHES}, x, '{{}}', '{{}}', '{{}}', '{{}}', x, x, x FROM g"
    ));
    out.push(format!(
        "{rows} INSERT INTO bg_tasks (func, args, state, created) \
         SELECT 'analyze_results_history', '[1]', 'finished', x FROM g"
    ));
    // A job per run; on the first branch each of the 50 jobs before the
    // middle has a result of each of TESTS test cases.
    out.push("INSERT INTO systems (name, executor) VALUES ('any', 'local')".into());
    out.push("INSERT INTO agents_groups (name, created, updated) VALUES ('all', 1, 1)".into());
    out.push(
        "INSERT INTO tools (name, fields, created, updated) VALUES ('pytest', '{}', 1, 1)".into(),
    );
    out.push(format!(
        "{rows} INSERT INTO jobs (name, run_id, state, agents_group_id, timeout, system_id, \
         created, updated) SELECT 'j', x, 5, 1, 60, 1, x, x FROM g"
    ));
    out.push(format!(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {TESTS}) \
         INSERT INTO test_cases (name, tool_id, created, updated) SELECT 't' || x, 1, 1, 1 FROM g"
    ));
    out.push(format!(
        "INSERT INTO test_case_results (test_case_id, job_id, result) \
         SELECT c.id, j.id, 1 FROM jobs j, test_cases c WHERE j.id % {BRANCHES} = 0 AND j.id > {} - 500",
        HISTORY / 2
    ));
    out
}

#[tokio::test]
async fn sqlite_plans_of_per_flow_statements_use_the_history_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("plans.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut conn)
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_store_tables(&tables);
    for s in seed() {
        sqlx::query(AssertSqlSafe(s))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for case in cases() {
        let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", case.sql)))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
        let text = plan.join("\n");
        // A scan is a full one unless it walks one of the (partial) indexes
        // that hold only the rows in question, or the rows a subquery of the
        // statement produced (a co-routine).
        let full_scan = plan.iter().find(|l| {
            [
                "bg_tasks",
                "flows",
                "runs",
                "jobs",
                "test_case_results",
                "f",
                "r",
                "j",
                "t",
            ]
            .iter()
            .any(|t| {
                (*l == &format!("SCAN {t}") || l.starts_with(&format!("SCAN {t} ")))
                    && !case.index.iter().any(|i| l.contains(i))
                    && !plan.contains(&format!("CO-ROUTINE {t}"))
            })
        });
        assert!(full_scan.is_none(), "{}: a full scan:\n{text}", case.name);
        check_plan(&case, &text, "SEARCH");
    }
}

/// One of the case's indexes is used, and searched from its column.
fn check_plan(case: &Case, text: &str, search: &str) {
    assert!(
        case.index.is_empty() || case.index.iter().any(|i| text.contains(i)),
        "{}: the plan uses none of {:?}:\n{text}",
        case.name,
        case.index
    );
    for index in case.never {
        assert!(
            !text.contains(index),
            "{}: the plan uses {index}:\n{text}",
            case.name
        );
    }
    if case.unsorted {
        let sorts = ["TEMP B-TREE", "CO-ROUTINE", "Sort", "WindowAgg"];
        assert!(
            !sorts.iter().any(|w| text.contains(w)),
            "{}: the rows are sorted or windowed:\n{text}",
            case.name
        );
    }
    if let Some(column) = case.from {
        assert!(
            text.lines()
                .any(|l| l.contains(search) && l.contains(column)),
            "{}: the index search does not start from {column}:\n{text}",
            case.name
        );
    }
}

#[tokio::test]
async fn postgres_generic_plans_of_per_flow_statements_use_the_history_indexes() {
    let Ok(base) = std::env::var("KRAKEN_TEST_DB_URL") else {
        return;
    };
    if !base.starts_with("postgres") {
        return;
    }
    let name = format!("kraken_plans_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    let mut conn = sqlx::PgConnection::connect(&format!("{head}/{name}"))
        .await
        .unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run(&mut conn)
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename <> '_sqlx_migrations' ORDER BY tablename",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_store_tables(&tables);
    // What a server's prepared statements get after a few executions: a
    // plan made without the parameters' values.
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    // A new database: the tables were never analysed, so the planner knows
    // nothing of how the rows spread (autovacuum's first `ANALYZE` comes a
    // minute or more later, while a busy server plans thousands of flows).
    // Empty, then with the history but still without statistics
    // (autovacuum kept off these tables so that it cannot analyse them in
    // between), then analysed.
    pg_check_plans(&mut conn, "empty").await;
    sqlx::raw_sql(
        "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables \
         WHERE schemaname = 'public' LOOP \
         EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = false)', t); END LOOP; END $$",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for s in seed() {
        sqlx::query(AssertSqlSafe(s))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    results_stay_on_their_pages(&mut conn).await;
    pg_check_plans(&mut conn, "unanalysed").await;
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    pg_check_plans(&mut conn, "analysed").await;
    drop(conn);
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// The tables the migrations created are those of `store::TABLES` (which
/// the server analyses on PostgreSQL).
fn assert_store_tables(tables: &[String]) {
    assert_eq!(
        tables,
        super::TABLES,
        "store::TABLES is not the migrations' tables"
    );
}

/// The analysis' update of a job's results (the server's statement) keeps
/// them on their pages: a HOT update, without new index entries, which
/// needs the room `test_case_results` keeps on each page (migration 0013).
/// With full pages nearly every new version goes to another page.
async fn results_stay_on_their_pages(conn: &mut sqlx::PgConnection) {
    let read = "SELECT id, ctid::text FROM test_case_results \
                WHERE job_id = (SELECT MIN(job_id) FROM test_case_results) ORDER BY id";
    let page = |ctid: &str| -> String {
        let inner = ctid.trim_start_matches('(');
        inner.split(',').next().unwrap_or(inner).to_string()
    };
    let before: Vec<(i64, String)> = sqlx::query_as(read).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(before.len(), TESTS as usize);
    let ids: Vec<i64> = before.iter().map(|(id, _)| *id).collect();
    let ones = vec![1i64; ids.len()];
    sqlx::query(UPDATE_ANALYSIS_PG)
        .bind(&ids)
        .bind(&ones)
        .bind(&ones)
        .bind(&ones)
        .bind(&ones)
        .bind(vec![None::<i64>; ids.len()])
        .execute(&mut *conn)
        .await
        .unwrap();
    let after: Vec<(i64, String)> = sqlx::query_as(read).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(after.len(), before.len());
    let stayed = before
        .iter()
        .zip(&after)
        .filter(|((i, b), (j, a))| i == j && page(b) == page(a))
        .count();
    assert!(
        stayed * 10 >= before.len() * 9,
        "only {stayed} of {} results stayed on their page after the analysis' update: \
         test_case_results needs room on its pages (fillfactor)",
        before.len()
    );
}

/// Explain the cases' generic plans and check them; `when` names the
/// database's state (`empty`, `unanalysed`, `analysed`: which cases are
/// checked) in the statements' names and in a failure.
async fn pg_check_plans(conn: &mut sqlx::PgConnection, when: &str) {
    for (i, case) in cases().iter().enumerate() {
        let skip = match when {
            "empty" => !case.empty_too,
            "unanalysed" => !case.per_flow,
            _ => false,
        };
        if skip {
            continue;
        }
        let prepare = format!("PREPARE {when}{i} AS {}", case.sql);
        sqlx::raw_sql(AssertSqlSafe(prepare))
            .execute(&mut *conn)
            .await
            .unwrap();
        let explain = format!("EXPLAIN EXECUTE {when}{i}{}", case.args);
        let rows = sqlx::raw_sql(AssertSqlSafe(explain))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let text: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        let text = format!("({when} database)\n{}", text.join("\n"));
        for table in ["bg_tasks", "flows", "runs"] {
            assert!(
                !text.contains(&format!("Seq Scan on {table}")),
                "{}: a full scan of {table}:\n{text}",
                case.name
            );
        }
        check_plan(case, &text, "Index Cond");
    }
}
