//! The engine on its own: planning, scheduling, completion, the task worker
//! and the watchdog over a real store, with no API service and no HTTP
//! server. SQLite by default; PostgreSQL when `KRAKEN_TEST_DB_URL` names one.
#![cfg(feature = "local")]

use std::sync::Arc;

use kraken_core::api::{Config, Core};
use kraken_core::engine::Engine;
use kraken_core::model::{Outcome, completion, flow_kind, job_state, step_status};
use kraken_core::store::Store;
use kraken_core::store::branches::{BranchInit, BranchRow};
use kraken_core::store::stages::StageFields;
use serde_json::json;

struct Fixture {
    core: Arc<Core>,
    branch: BranchRow,
    /// The PostgreSQL database's URL; `None`: `kraken.db` in `_dir`.
    db_url: Option<String>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn engine(&self) -> &Arc<Engine> {
        self.core.engine()
    }
    fn store(&self) -> &Store {
        self.core.engine().store()
    }
    /// Run `sql` on the database directly, as another program (an import,
    /// a person) would.
    async fn raw_exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.db_url {
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            None => {
                let path = self._dir.path().join("kraken.db");
                let url = format!("sqlite://{}", path.display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }
    /// Start a CI flow on the branch, as a timer or the API would.
    async fn start_ci(&self) -> kraken_core::store::flows::FlowRow {
        self.engine()
            .start_flow(
                &self.branch,
                flow_kind::CI,
                &Default::default(),
                "test",
                None,
                None,
            )
            .await
            .unwrap()
    }
}

/// A fresh database (a file, or a new PostgreSQL database), seeded, with one
/// project, one branch and a stage per `(name, code)`.
async fn fixture(stages: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("KRAKEN_TEST_DB_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let name = format!("kraken_engine_{:016x}", rand_u64());
            let pool = sqlx::PgPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let (head, _) = base.rsplit_once('/').unwrap();
            Some(format!("{head}/{name}"))
        }
        _ => None,
    };
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let core = Core::open_database(url.as_deref(), config).await.unwrap();
    let store = core.engine().store();
    let project = store.create_project("demo", None).await.unwrap();
    let branch = store
        .create_branch(
            project.id,
            "main",
            "main",
            BranchInit {
                sequences: [0, 0, 0],
                retention_policy: None,
                user_data: [json!({}), json!({}), json!({})],
                env_vars: json!({}),
            },
        )
        .await
        .unwrap();
    for (name, code) in stages {
        store
            .create_stage(
                branch.id,
                &StageFields {
                    name: (*name).to_string(),
                    description: None,
                    enabled: true,
                    schema: json!({"parent": "root", "triggers": {"parent": true}}),
                    schema_code: Some((*code).to_string()),
                    schema_from_repo_enabled: false,
                    repo_url: None,
                    repo_branch: None,
                    repo_access_token: None,
                    repo_refresh_interval: None,
                    schema_file: None,
                    git_clone_params: None,
                },
                [0, 0, 0],
            )
            .await
            .unwrap();
    }
    Fixture {
        core,
        branch,
        db_url: url,
        _dir: dir,
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .elapsed()
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A root stage with `jobs` shell jobs on group `all`.
fn stage_code(jobs: usize) -> String {
    let jobs: Vec<String> = (0..jobs)
        .map(|i| {
            format!(
                r#"{{"name": "job{i}", "steps": [{{"tool": "shell", "cmd": "true"}}],
                     "environments": [{{"system": "any", "agents_group": "all", "config": "c"}}]}}"#
            )
        })
        .collect();
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \
         \"parameters\": [], \"configs\": [], \"jobs\": [{}]}}",
        jobs.join(", ")
    )
}

/// An authorized agent in group `all`.
async fn agent(f: &Fixture, address: &str) -> i64 {
    f.core.ensure_builtin_agent(address, address).await.unwrap()
}

/// Mark every step of a job with `status`, as an agent reports them, and
/// tell the engine the job is done.
async fn finish_job(f: &Fixture, job_id: i64, status: i64) {
    for s in f.store().steps_of(&[job_id]).await.unwrap() {
        f.store()
            .set_step_result(s.id, Some(status), Some(&json!({"status": "done"})))
            .await
            .unwrap();
    }
    f.engine().job_completed(job_id).await.unwrap();
}

async fn flow_json(f: &Fixture, flow_id: i64) -> kraken_core::model::Flow {
    let row = f.store().require_flow(flow_id).await.unwrap();
    kraken_core::view::flows_json(f.store(), std::slice::from_ref(&row), true)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_flow_is_planned_scheduled_completed_and_analysed() {
    let f = fixture(&[("build", &stage_code(2))]).await;
    // Jobs of a group without agents fail at once ("no agents"): one first.
    let a = agent(&f, "engine-test-1").await;
    let flow = f.start_ci().await;

    // Planning: one run of the root stage, its two jobs waiting with their steps.
    let runs = f.store().flow_runs(flow.id).await.unwrap();
    assert_eq!(runs.len(), 1);
    let jobs = f.store().run_jobs(runs[0].id, false).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.agent_used_id.is_none()));
    let steps = f.store().steps_of(&[jobs[0].id]).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].tool_name, "shell");
    assert_eq!(flow_json(&f, flow.id).await.outcome(), Outcome::Running);

    // Scheduling: one agent takes one job; the other waits.
    assert_eq!(f.engine().assign_jobs().await.unwrap(), 1);
    assert_eq!(
        f.engine().assign_jobs().await.unwrap(),
        0,
        "the agent is busy"
    );
    let held: Vec<_> = f.store().run_jobs(runs[0].id, false).await.unwrap();
    let first = held.iter().find(|j| j.agent_used_id == Some(a)).unwrap().id;

    // Completion: the run stays in progress until both jobs are done.
    finish_job(&f, first, step_status::DONE).await;
    assert_eq!(f.store().require_run(runs[0].id).await.unwrap().state, 1);
    assert_eq!(
        f.engine().assign_jobs().await.unwrap(),
        1,
        "the freed agent takes the next"
    );
    let second = held.iter().find(|j| j.id != first).unwrap().id;
    finish_job(&f, second, step_status::DONE).await;
    let flow_now = flow_json(&f, flow.id).await;
    assert_eq!(flow_now.state, "completed");
    assert_eq!(flow_now.runs[0].state, "completed");
    assert_eq!(flow_now.outcome(), Outcome::Running, "not analysed yet");

    // The task worker analyses the run: processed, and the flow passed.
    f.engine().run_queued_tasks().await.unwrap();
    let done = flow_json(&f, flow.id).await;
    assert_eq!(done.runs[0].state, "processed");
    assert_eq!(done.outcome(), Outcome::Passed);
    assert_eq!(done.summary.as_ref().unwrap()["errors"], json!(false));
}

#[tokio::test]
async fn a_failed_step_fails_the_run_and_the_flow_summary() {
    let f = fixture(&[("build", &stage_code(1))]).await;
    agent(&f, "engine-test-2").await;
    let flow = f.start_ci().await;
    assert_eq!(f.engine().assign_jobs().await.unwrap(), 1);
    let run = f.store().flow_runs(flow.id).await.unwrap().remove(0);
    let job = f.store().run_jobs(run.id, false).await.unwrap().remove(0);
    finish_job(&f, job.id, step_status::ERROR).await;
    let job = f.store().require_job(job.id).await.unwrap();
    assert_eq!(job.state, job_state::COMPLETED);
    assert_eq!(
        job.completion_status,
        Some(completion::AGENT_ERROR_RETURNED)
    );
    f.engine().run_queued_tasks().await.unwrap();
    let done = flow_json(&f, flow.id).await;
    match done.outcome() {
        Outcome::Failed(why) => assert!(why.contains("1 failed job"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(done.summary.as_ref().unwrap()["errors"], json!(true));
}

#[tokio::test]
async fn a_stage_whose_code_fails_ends_its_run_with_a_note() {
    let f = fixture(&[(
        "broken",
        "def stage(ctx):\n    return {\"jobs\": 1 + \"x\"}",
    )])
    .await;
    let flow = f.start_ci().await;
    f.engine().run_queued_tasks().await.unwrap();
    let done = flow_json(&f, flow.id).await;
    assert_eq!(done.state, "completed");
    let note = done.runs[0].note.clone().unwrap_or_default();
    assert!(note.starts_with("Triggering run's jobs failed"), "{note}");
    assert!(done.outcome().is_failure(), "{:?}", done.outcome());
}

#[tokio::test]
async fn the_watchdog_ends_a_job_held_past_its_timeout() {
    let f = fixture(&[("build", &stage_code(1))]).await;
    let a = agent(&f, "engine-test-3").await;
    let flow = f.start_ci().await;
    assert_eq!(f.engine().assign_jobs().await.unwrap(), 1);
    let run = f.store().flow_runs(flow.id).await.unwrap().remove(0);
    let job = f.store().run_jobs(run.id, false).await.unwrap().remove(0);
    f.store().set_job_timeout(job.id, 0).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    f.engine().check_job_timeouts().await.unwrap();
    let job = f.store().require_job(job.id).await.unwrap();
    assert_eq!(job.completion_status, Some(completion::SERVER_TIMEOUT));
    assert!(job.notes.unwrap_or_default().contains("expired"));
    // The agent learns it at its next call (it still holds the job until
    // then); the run is over.
    let agent_row = f.store().agent(a).await.unwrap().unwrap();
    assert_eq!(agent_row.job_id, Some(job.id));
    f.engine().run_queued_tasks().await.unwrap();
    let done = flow_json(&f, flow.id).await;
    assert_eq!(done.state, "completed");
    assert!(done.outcome().is_failure());
}

#[tokio::test]
async fn the_stage_pipeline_validates_at_run_time() {
    // Valid Starlark, but not a valid workflow: a step of an unknown tool.
    let code = stage_code(1).replace("\"shell\"", "\"no-such-tool\"");
    let f = fixture(&[("invalid", &code)]).await;
    agent(&f, "engine-test-4").await;
    let flow = f.start_ci().await;
    let run = f.store().flow_runs(flow.id).await.unwrap().remove(0);
    assert!(f.store().run_jobs(run.id, false).await.unwrap().is_empty());
    let note = f
        .store()
        .require_run(run.id)
        .await
        .unwrap()
        .note
        .unwrap_or_default();
    assert!(
        note.starts_with("Triggering run's jobs failed") && note.contains("no-such-tool"),
        "{note}"
    );
}

/// Log lines are stored in order, each with its own place, both a batch
/// that shares one place (bound once a statement) and a batch of several
/// places (every column bound).
#[tokio::test]
async fn a_batch_of_log_lines_keeps_its_order_and_each_line_its_place() {
    use kraken_core::model::LogFilter;
    use kraken_core::store::logs::NewLog;
    let f = fixture(&[]).await;
    let line = |i: usize, service: &str, job_id: i64, step: i64, level: &str| NewLog {
        time: 1_000 + i as i64,
        seq: i as i64,
        message: format!("line {i}"),
        service: service.into(),
        host: format!("host-{}", i % 2),
        level: level.into(),
        job_id,
        step,
        tool: if job_id == 0 {
            String::new()
        } else {
            "shell".into()
        },
        ..NewLog::default()
    };
    // 1,500 lines of one place (more than one statement), then places that
    // change at every line, then a run of another place.
    let mut lines: Vec<NewLog> = (0..1500)
        .map(|i| NewLog {
            host: "h".into(),
            ..line(i, "server", 0, -1, "INFO")
        })
        .collect();
    for i in 1500..1510 {
        lines.push(line(
            i,
            if i % 2 == 0 { "planner" } else { "rq" },
            0,
            -1,
            "INFO",
        ));
    }
    for i in 1510..1530 {
        lines.push(NewLog {
            host: "h".into(),
            ..line(i, "watchdog", 0, -1, "ERROR")
        });
    }
    // One place, then several.
    f.store().append_logs(&lines[..1500]).await.unwrap();
    f.store().append_logs(&lines[1500..]).await.unwrap();
    let (rows, total) = f
        .store()
        .query_logs(&LogFilter::default(), 0, 10_000, false)
        .await
        .unwrap();
    let ours: Vec<_> = rows
        .iter()
        .filter(|r| r.message.starts_with("line "))
        .collect();
    assert_eq!(ours.len(), lines.len(), "total {total}");
    for (r, l) in ours.iter().zip(&lines) {
        assert_eq!(
            (&r.message, &r.service, &r.host, &r.level, r.time, r.seq),
            (&l.message, &l.service, &l.host, &l.level, l.time, l.seq)
        );
    }
    assert!(ours.windows(2).all(|w| w[0].id < w[1].id));
}

/// A branch whose sequence rows are missing (a database imported from
/// elsewhere) gets them back, counting from 1.
#[tokio::test]
async fn missing_sequences_start_again_at_one() {
    let f = fixture(&[("build", &stage_code(1))]).await;
    let seqs = |flow: &kraken_core::store::flows::FlowRow| {
        (
            flow.args.0["KK_FLOW_SEQ"].clone(),
            flow.args.0["KK_CI_DEV_FLOW_SEQ"].clone(),
        )
    };
    let f = &f;
    let run_seq = |flow_id: i64| async move {
        let runs = f.store().flow_runs(flow_id).await.unwrap();
        runs[0].args.0["KK_RUN_SEQ"].clone()
    };
    let first = f.start_ci().await;
    let second = f.start_ci().await;
    assert_eq!(seqs(&first), (json!("1"), json!("1")));
    assert_eq!(seqs(&second), (json!("2"), json!("2")));
    assert_eq!(run_seq(second.id).await, json!("2"));
    f.raw_exec(&format!(
        "DELETE FROM branch_sequences WHERE branch_id = {}",
        f.branch.id
    ))
    .await;
    let third = f.start_ci().await;
    assert_eq!(seqs(&third), (json!("1"), json!("1")));
    assert_eq!(run_seq(third.id).await, json!("1"));
    let fourth = f.start_ci().await;
    assert_eq!(seqs(&fourth), (json!("2"), json!("2")));
    assert_eq!(run_seq(fourth.id).await, json!("2"));
}

/// The task queue: a task is queued once while it waits, taken by one
/// worker, oldest first, each queue its own; a task whose worker's lease
/// ran out is taken again, one put back for later is not, and the
/// finished tasks of the past are not in the way.
#[tokio::test]
async fn tasks_are_queued_once_and_taken_once_oldest_first() {
    use kraken_core::store::tasks::TaskQueue;
    let f = fixture(&[]).await;
    let s = f.store();
    // History: finished tasks with the same arguments as the new ones.
    for _ in 0..20 {
        assert!(s.enqueue_task("analyze_run", &json!([1])).await.unwrap());
        let t = s
            .claim_task("past", 60_000, TaskQueue::Main)
            .await
            .unwrap()
            .unwrap();
        s.finish_task(t.id, None).await.unwrap();
    }
    let claim = |owner: &'static str, lease: i64, queue: TaskQueue| async move {
        s.claim_task(owner, lease, queue).await.unwrap()
    };

    assert!(s.enqueue_task("analyze_run", &json!([1])).await.unwrap());
    assert!(
        !s.enqueue_task("analyze_run", &json!([1])).await.unwrap(),
        "the same task is already queued"
    );
    assert!(s.enqueue_task("analyze_run", &json!([2])).await.unwrap());
    assert!(s.enqueue_task("notify", &json!([9])).await.unwrap());

    let a = claim("w1", 60_000, TaskQueue::Main).await.unwrap();
    assert_eq!(
        (a.args.0.clone(), a.state.as_str()),
        (json!([1]), "started")
    );
    assert!(
        s.enqueue_task("analyze_run", &json!([1])).await.unwrap(),
        "a started task does not stop the same one from being queued again"
    );
    let b = claim("w1", 60_000, TaskQueue::Main).await.unwrap();
    assert_eq!(b.args.0, json!([2]));
    let c = claim("w1", 60_000, TaskQueue::Main).await.unwrap();
    assert_eq!(c.args.0, json!([1]));
    assert!(c.id > a.id);
    assert!(
        claim("w1", 60_000, TaskQueue::Main).await.is_none(),
        "notifications are not the main queue's"
    );
    let n = claim("w2", 60_000, TaskQueue::Notify).await.unwrap();
    assert_eq!(n.args.0, json!([9]));

    // Put back for later: not taken before its time.
    assert!(
        s.retry_task(n.id, "w2", i64::MAX / 2, "endpoint down")
            .await
            .unwrap()
    );
    assert!(claim("w2", 60_000, TaskQueue::Notify).await.is_none());

    // A worker that stopped: its lease runs out and another takes the task.
    assert!(s.enqueue_task("analyze_run", &json!([3])).await.unwrap());
    let d = claim("gone", -1_000, TaskQueue::Main).await.unwrap();
    let e = claim("alive", 60_000, TaskQueue::Main).await.unwrap();
    assert_eq!((e.id, e.attempts), (d.id, 0));
    assert!(
        !s.renew_task_lease(d.id, "gone", 60_000).await.unwrap(),
        "the stopped worker lost it"
    );
    assert!(claim("alive", 60_000, TaskQueue::Main).await.is_none());
    for t in [a, b, c, e] {
        s.finish_task(t.id, None).await.unwrap();
    }
    assert!(claim("alive", 60_000, TaskQueue::Main).await.is_none());
    assert!(s.pending_task_args("analyze_run").await.unwrap().is_empty());
}

/// The run of a stage before and after another follows the order its CI
/// flows were created in, flows created in the same millisecond by id, and
/// skips DEV flows.
#[tokio::test]
async fn the_previous_and_next_run_of_a_stage_follow_creation_order() {
    let f = fixture(&[("build", &stage_code(1))]).await;
    let first = f.start_ci().await;
    let dev = f
        .engine()
        .start_flow(
            &f.branch,
            flow_kind::DEV,
            &Default::default(),
            "test",
            None,
            None,
        )
        .await
        .unwrap();
    let second = f.start_ci().await;
    let third = f.start_ci().await;
    let fourth = f.start_ci().await;
    // The second and the third were created in the same millisecond.
    f.raw_exec(&format!(
        "UPDATE flows SET created = {} WHERE id IN ({}, {})",
        second.created, second.id, third.id
    ))
    .await;
    let s = f.store();
    let run_of = |id: i64| async move {
        let flow = s.require_flow(id).await.unwrap();
        let run = s.flow_runs(id).await.unwrap().remove(0);
        (flow, run)
    };
    let id_of = |r: Option<kraken_core::store::flows::RunRow>| r.map(|r| r.flow_id);
    let (f1, r1) = run_of(first.id).await;
    let (f2, r2) = run_of(second.id).await;
    let (f3, r3) = run_of(third.id).await;
    let (f4, r4) = run_of(fourth.id).await;
    assert_eq!(f2.created, f3.created);
    assert_eq!(id_of(s.previous_ci_run(&r1, &f1).await.unwrap()), None);
    assert_eq!(
        id_of(s.previous_ci_run(&r2, &f2).await.unwrap()),
        Some(first.id),
        "the DEV flow between them is not a CI one"
    );
    assert_eq!(
        id_of(s.previous_ci_run(&r3, &f3).await.unwrap()),
        Some(second.id)
    );
    assert_eq!(
        id_of(s.previous_ci_run(&r4, &f4).await.unwrap()),
        Some(third.id)
    );
    assert_eq!(
        id_of(s.next_run_of_stage(&r1, &f1).await.unwrap()),
        Some(second.id)
    );
    assert_eq!(
        id_of(s.next_run_of_stage(&r2, &f2).await.unwrap()),
        Some(third.id)
    );
    assert_eq!(
        id_of(s.next_run_of_stage(&r3, &f3).await.unwrap()),
        Some(fourth.id)
    );
    assert_eq!(id_of(s.next_run_of_stage(&r4, &f4).await.unwrap()), None);
    let (fd, rd) = run_of(dev.id).await;
    assert_eq!(
        id_of(s.next_run_of_stage(&rd, &fd).await.unwrap()),
        None,
        "the next DEV flow: there is none"
    );
    // A flow without a run of the stage (here deleted) is passed over.
    f.raw_exec(&format!(
        "UPDATE runs SET deleted = 1 WHERE flow_id = {}",
        third.id
    ))
    .await;
    assert_eq!(
        id_of(s.previous_ci_run(&r4, &f4).await.unwrap()),
        Some(second.id)
    );
    assert_eq!(
        id_of(s.next_run_of_stage(&r2, &f2).await.unwrap()),
        Some(fourth.id)
    );
}

/// PostgreSQL: a table that has grown past its statistics is analysed by
/// the server within seconds, without autovacuum (here turned off for the
/// table, as it may not come by for a minute). SQLite gathers none.
#[tokio::test]
async fn growing_tables_get_statistics_from_the_server() {
    let f = fixture(&[("build", &stage_code(1))]).await;
    let Some(url) = f.db_url.clone() else {
        assert!(f.store().refresh_statistics().await.unwrap().is_empty());
        return;
    };
    f.raw_exec("ALTER TABLE flows SET (autovacuum_enabled = false)")
        .await;
    // Another program's table in the same schema, grown the same way: not
    // the server's to analyse.
    f.raw_exec("CREATE TABLE other_app (x INTEGER) WITH (autovacuum_enabled = false)")
        .await;
    f.raw_exec("INSERT INTO other_app SELECT generate_series(1, 1000)")
        .await;
    let _loops = f.core.start_engine();
    for _ in 0..60 {
        f.start_ci().await;
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rows = loop {
        // (`last_analyze`: a manual ANALYZE, not autovacuum's.)
        let rows: Option<f32> = sqlx::query_scalar(
            "SELECT c.reltuples FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.relname = 'flows' AND s.last_analyze IS NOT NULL",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(rows) = rows {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flows table was not analysed within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(rows >= 50.0, "the statistics count {rows} flows");
    // Its changes were counted before the flows were created, so the round
    // that analysed the flows would have analysed it too.
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'other_app'",
    )
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert_eq!(other, Some(0), "another program's table was analysed");
    pool.close().await;
}

/// Sequences taken by many creations at once, CI and DEV mixed (they share
/// the flow's and each stage's general counters): every one succeeds (on
/// PostgreSQL the rows are locked in one order, so no two creations can
/// deadlock) and every number is given once.
#[tokio::test]
async fn sequences_taken_at_once_never_deadlock_and_never_repeat() {
    use kraken_core::model::seq_kind;
    let f = fixture(&[
        ("one", &stage_code(1)),
        ("two", &stage_code(1)),
        ("three", &stage_code(1)),
    ])
    .await;
    let s = f.store();
    let stages: Vec<i64> = s
        .branch_stages(f.branch.id)
        .await
        .unwrap()
        .iter()
        .map(|st| st.id)
        .collect();
    assert_eq!(stages.len(), 3);
    let slots = |ci: bool, reverse: bool| {
        let (flow, run) = if ci {
            (seq_kind::CI_FLOW, seq_kind::CI_RUN)
        } else {
            (seq_kind::DEV_FLOW, seq_kind::DEV_RUN)
        };
        let mut slots = vec![(None, seq_kind::FLOW), (None, flow)];
        let mut ids = stages.clone();
        if reverse {
            ids.reverse();
        }
        for id in ids {
            slots.push((Some(id), seq_kind::RUN));
            slots.push((Some(id), run));
        }
        slots
    };
    let (workers, rounds) = (8, 25);
    let results = futures_util::future::join_all((0..workers).map(|w| {
        let slots = slots(w % 2 == 0, w % 4 < 2);
        async move {
            let mut got = Vec::new();
            for _ in 0..rounds {
                let values = s.next_sequence_slots(f.branch.id, &slots).await;
                got.push((slots.clone(), values.map_err(|e| e.to_string())));
            }
            got
        }
    }))
    .await;
    let mut seen: std::collections::HashMap<(Option<i64>, i64), Vec<i64>> = Default::default();
    for (slots, values) in results.into_iter().flatten() {
        let values = values.unwrap();
        for (slot, v) in slots.into_iter().zip(values) {
            seen.entry(slot).or_default().push(v);
        }
    }
    let total = (workers * rounds) as i64;
    let mut general = seen.remove(&(None, seq_kind::FLOW)).unwrap();
    general.sort();
    assert_eq!(general, (1..=total).collect::<Vec<_>>());
    for (slot, mut values) in seen {
        values.sort();
        let n = values.len() as i64;
        assert_eq!(values, (1..=n).collect::<Vec<_>>(), "{slot:?}");
    }
}

/// Flows created at once on one branch, CI and DEV, draw their numbers in
/// their own transactions: none fails (no deadlock between them on
/// PostgreSQL), and each kind's flows and runs are numbered 1..n.
#[tokio::test]
async fn flows_created_at_once_are_numbered_without_gaps() {
    let f = fixture(&[("one", &stage_code(1)), ("two", &stage_code(1))]).await;
    let (workers, rounds) = (6, 5);
    let made = futures_util::future::join_all((0..workers).map(|w| {
        let f = &f;
        async move {
            let kind = if w % 2 == 0 {
                flow_kind::CI
            } else {
                flow_kind::DEV
            };
            let mut flows = Vec::new();
            for _ in 0..rounds {
                let flow = f
                    .engine()
                    .start_flow(&f.branch, kind, &Default::default(), "test", None, None)
                    .await
                    .map_err(|e| e.to_string());
                flows.push((kind, flow));
            }
            flows
        }
    }))
    .await;
    let seq = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap().parse::<i64>().unwrap();
    let (mut shared, mut own) = (
        Vec::new(),
        std::collections::HashMap::<i64, Vec<i64>>::new(),
    );
    let mut runs_own = std::collections::HashMap::<(i64, i64), Vec<i64>>::new();
    for (kind, flow) in made.into_iter().flatten() {
        let flow = flow.unwrap();
        shared.push(seq(&flow.args.0, "KK_FLOW_SEQ"));
        own.entry(kind)
            .or_default()
            .push(seq(&flow.args.0, "KK_CI_DEV_FLOW_SEQ"));
        for run in f.store().runs_of_flows(&[flow.id]).await.unwrap() {
            runs_own
                .entry((kind, run.stage_id))
                .or_default()
                .push(seq(&run.args.0, "KK_CI_DEV_RUN_SEQ"));
        }
    }
    let total = (workers * rounds) as i64;
    shared.sort();
    assert_eq!(shared, (1..=total).collect::<Vec<_>>());
    for values in own.values_mut().chain(runs_own.values_mut()) {
        values.sort();
        assert_eq!(*values, (1..=total / 2).collect::<Vec<_>>());
    }
    assert_eq!(runs_own.len(), 4, "two stages, two kinds: {runs_own:?}");
}
