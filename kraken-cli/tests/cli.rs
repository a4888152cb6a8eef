//! The `kraken` binary against a real server, and in process (`--db`):
//! ids on stdout, exit codes, JSON, following logs, closed pipes.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use kraken_tests::{TestServer, shell_stage};

struct Cli {
    env: Vec<(String, String)>,
    /// `--db` given to every command (in process), if any.
    db: Option<String>,
    _config: tempfile::TempDir,
}

impl Cli {
    fn new(server: Option<&str>, token: Option<&str>) -> Cli {
        let config = tempfile::tempdir().unwrap();
        let mut env = vec![
            (
                "KRAKEN_CONFIG_DIR".to_string(),
                config.path().display().to_string(),
            ),
            ("KRAKEN_LOG".to_string(), "error".to_string()),
        ];
        if let Some(s) = server {
            env.push(("KRAKEN_SERVER".into(), s.into()));
        }
        if let Some(t) = token {
            env.push(("KRAKEN_TOKEN".into(), t.into()));
        }
        Cli {
            env,
            db: None,
            _config: config,
        }
    }

    /// Every command in process on database `db` (`kraken --db DB ...`).
    fn in_process(db: &str) -> Cli {
        Cli {
            db: Some(db.to_string()),
            ..Cli::new(None, None)
        }
    }

    /// Runs the real `kraken` binary through `assert_cmd` (on a blocking
    /// thread, so the in-process test server keeps serving meanwhile).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("kraken");
        if let Some(db) = &self.db {
            cmd.arg("--db").arg(db);
        }
        cmd.args(args)
            .env_remove("KRAKEN_SERVER")
            .env_remove("KRAKEN_TOKEN")
            .env_remove("KRAKEN_DB")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .timeout(Duration::from_secs(120));
        tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join kraken runner")
            .expect("run kraken")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "kraken {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

/// The id of the first job of the first run of flow `fid`, through the CLI.
async fn first_job(cli: &Cli, fid: &str) -> String {
    let f: Value = serde_json::from_str(&cli.ok(&["--json", "flows", "show", fid]).await).unwrap();
    let jobs: Value = serde_json::from_str(
        &cli.ok(&["--json", "runs", "jobs", &f["runs"][0]["id"].to_string()])
            .await,
    )
    .unwrap();
    jobs["items"][0]["id"].to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

async fn write_stage(dir: &std::path::Path, name: &str, cmds: &[&str]) -> String {
    let p = dir.join(format!("{name}.py"));
    tokio::fs::write(&p, shell_stage("root", name, cmds))
        .await
        .unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_a_server_from_scripts() {
    let s = TestServer::start().await;
    let files = tempfile::tempdir().unwrap();
    // Not logged in: a clear message, exit 2.
    let anon = Cli::new(None, None);
    let o = anon.run(&["projects", "list"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("kraken login"), "{}", stderr(&o));

    // Log in (password from the environment, no terminal), stored with mode 600.
    let cli = Cli::new(Some(&s.url), None);
    let mut login = cli.env.clone();
    login.push(("KRAKEN_PASSWORD".into(), "admin".into()));
    let li = Cli {
        env: login,
        db: None,
        _config: tempfile::tempdir().unwrap(),
    };
    li.ok(&["login", "--user", "admin"]).await;
    let cred = std::path::Path::new(&cli.env[0].1).join("credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bad = li
        .run(&["login", "--user", "admin", "--password", "nope"])
        .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("incorrect password"),
        "{}",
        stderr(&bad)
    );

    // Create things by name; ids on stdout.
    assert_eq!(cli.ok(&["projects", "create", "demo"]).await, "1");
    assert_eq!(cli.ok(&["branches", "create", "demo", "main"]).await, "1");
    let good = write_stage(files.path(), "good", &["echo all good"]).await;
    assert_eq!(
        cli.ok(&["stages", "create", "demo/main", "good", "--file", &good])
            .await,
        "1"
    );
    let flow_id = cli.ok(&["flows", "create", "demo/main"]).await;
    assert_eq!(flow_id, "1", "the new flow's id alone");
    let waited = cli
        .run(&["flows", "wait", &flow_id, "--timeout", "60"])
        .await;
    assert_eq!(waited.status.code(), Some(0), "{}", stderr(&waited));

    // --wait exits 0 on success, 1 on failure; `flows wait` on a finished failed flow is 1 too.
    let o = cli
        .run(&["flows", "create", "demo/main", "--wait", "--timeout", "60"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2");
    assert_eq!(cli.ok(&["branches", "create", "demo", "broken"]).await, "2");
    let bad_stage = write_stage(files.path(), "bad", &["echo about to fail", "exit 7"]).await;
    cli.ok(&[
        "stages",
        "create",
        "demo/broken",
        "bad",
        "--file",
        &bad_stage,
    ])
    .await;
    let o = cli.run(&["flows", "create", "demo/broken", "--wait"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("failed job"), "{}", stderr(&o));
    let failed_id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = cli.run(&["flows", "wait", &failed_id]).await;
    assert_eq!(o.status.code(), Some(1));
    // Failed steps' logs of a flow.
    let flog = cli.ok(&["logs", "--flow", &failed_id, "--failed"]).await;
    assert!(
        flog.contains("exit 7") && flog.contains("step 1") && !flog.contains("about to fail"),
        "{flog}"
    );

    // --json parses; fields are the API's.
    let j: Value =
        serde_json::from_str(&cli.ok(&["--json", "flows", "show", &flow_id]).await).unwrap();
    assert_eq!(j["id"], 1);
    assert_eq!(j["runs"][0]["stage_name"], "good");
    let l: Value = serde_json::from_str(&cli.ok(&["--json", "projects", "list"]).await).unwrap();
    assert_eq!(l["total"], 1);
    let job_id = cli.ok(&["--json", "runs", "jobs", "1"]).await;
    let job_id = serde_json::from_str::<Value>(&job_id).unwrap()["items"][0]["id"].to_string();
    let log = cli.ok(&["logs", &job_id]).await;
    assert!(log.contains("all good"), "{log}");
    let lines = cli.ok(&["--json", "logs", &job_id]).await;
    assert!(
        lines
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "JSON Lines: {lines}"
    );

    // Unknown ids exit 3; bad arguments exit 2 with a message.
    assert_eq!(
        cli.run(&["flows", "show", "999"]).await.status.code(),
        Some(3)
    );
    assert_eq!(
        cli.run(&["branches", "show", "demo/nope"])
            .await
            .status
            .code(),
        Some(3)
    );
    let o = cli
        .run(&["flows", "create", "demo/main", "--arg", "novalue"])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("KEY=VALUE"));
    let o = cli.run(&["flows", "show", "notanumber"]).await;
    assert_eq!(o.status.code(), Some(2));
    let o = cli
        .run(&["flows", "create", "demo/main", "--kind", "nightly"])
        .await;
    assert_eq!(o.status.code(), Some(2));
    let o = cli
        .run(&[
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "projects",
            "list",
        ])
        .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot reach"), "{}", stderr(&o));

    // Follow a running job to its end.
    let chatty = write_stage(
        files.path(),
        "chatty",
        &["for i in 1 2 3 4 5; do echo tick-$i; sleep 0.2; done"],
    )
    .await;
    cli.ok(&["branches", "create", "demo", "chat"]).await;
    cli.ok(&["stages", "create", "demo/chat", "chatty", "--file", &chatty])
        .await;
    let fid = cli.ok(&["flows", "create", "demo/chat"]).await;
    let f: Value = serde_json::from_str(&cli.ok(&["--json", "flows", "show", &fid]).await).unwrap();
    let run = f["runs"][0]["id"].to_string();
    let jobs: Value =
        serde_json::from_str(&cli.ok(&["--json", "runs", "jobs", &run]).await).unwrap();
    let job = jobs["items"][0]["id"].to_string();
    let followed = cli.ok(&["logs", &job, "--follow"]).await;
    let ticks: Vec<&str> = followed
        .lines()
        .filter(|l| l.starts_with("tick-"))
        .collect();
    assert_eq!(ticks, ["tick-1", "tick-2", "tick-3", "tick-4", "tick-5"]);

    // A closed pipe exits 0.
    let many = write_stage(files.path(), "many", &["seq 1 50000"]).await;
    cli.ok(&["branches", "create", "demo", "many"]).await;
    cli.ok(&["stages", "create", "demo/many", "many", "--file", &many])
        .await;
    let fid = cli.ok(&["flows", "create", "demo/many", "--wait"]).await;
    let job = first_job(&cli, fid.lines().next().unwrap()).await;
    let mut sh = tokio::process::Command::new("bash");
    sh.arg("-c").arg(format!(
        "'{}' logs {job} | head -n 2; echo \"status=${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_kraken")
    ));
    for (k, v) in &cli.env {
        sh.env(k, v);
    }
    let o = sh.output().await.unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("status=0"),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));

    // Logout forgets the session.
    cli.ok(&["logout"]).await;
    assert_eq!(cli.run(&["projects", "list"]).await.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_flows_need_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ci.db").display());
    let cli = Cli::new(None, None);
    let k = |extra: &[&str]| {
        let mut a = vec!["--db", db.as_str()];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let cli = &cli;
        async move {
            cli.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
                .await
        }
    };
    assert_eq!(
        run(k(&["projects", "create", "local"])).await.status.code(),
        Some(0)
    );
    assert_eq!(
        run(k(&["branches", "create", "local", "main"]))
            .await
            .status
            .code(),
        Some(0)
    );
    let stage = write_stage(dir.path(), "s", &["echo in-process"]).await;
    assert_eq!(
        run(k(&[
            "stages",
            "create",
            "local/main",
            "s",
            "--file",
            &stage
        ]))
        .await
        .status
        .code(),
        Some(0)
    );
    let o = run(k(&[
        "flows",
        "create",
        "local/main",
        "--wait",
        "--timeout",
        "60",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(k(&["logs", "1"])).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-process"));
    let failing = write_stage(dir.path(), "f", &["false"]).await;
    run(k(&["branches", "create", "local", "red"])).await;
    run(k(&[
        "stages",
        "create",
        "local/red",
        "f",
        "--file",
        &failing,
    ]))
    .await;
    let o = run(k(&["flows", "create", "local/red", "--wait"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// A flow created in process by a command that exits at once is finished
/// by whichever `kraken --db` command runs next: every command is the same
/// agent (one per database and host), not a new one per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_flows_outlive_the_command_that_created_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ci.db").display());
    let cli = Cli::in_process(&db);
    cli.ok(&["projects", "create", "demo"]).await;
    cli.ok(&["branches", "create", "demo", "main"]).await;
    let stage = write_stage(dir.path(), "s", &["sleep 1", "echo outlived"]).await;
    cli.ok(&["stages", "create", "demo/main", "s", "--file", &stage])
        .await;
    // Created, not waited for: this process exits while the job is queued
    // or running.
    let fid = cli.ok(&["flows", "create", "demo/main"]).await;
    // A few unrelated commands in between, each its own process.
    for _ in 0..3 {
        cli.ok(&["projects", "list"]).await;
    }
    // The next command that waits finishes it.
    cli.ok(&["flows", "wait", &fid, "--timeout", "60"]).await;
    let f: Value = serde_json::from_str(&cli.ok(&["--json", "flows", "show", &fid]).await).unwrap();
    let run = f["runs"][0]["id"].to_string();
    let jobs: Value =
        serde_json::from_str(&cli.ok(&["--json", "runs", "jobs", &run]).await).unwrap();
    let log = cli.ok(&["logs", &jobs["items"][0]["id"].to_string()]).await;
    assert!(log.contains("outlived"), "{log}");
    // One in-process agent, however many processes ran.
    let agents: Value = serde_json::from_str(&cli.ok(&["--json", "agents", "list"]).await).unwrap();
    let names: Vec<&str> = agents["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["address"].as_str())
        .filter(|a| a.starts_with("in-process@"))
        .collect();
    assert_eq!(names.len(), 1, "{agents}");
}

/// Words beside the original's numbers in JSON, a step's exit code in its
/// log and in job tables, and a terminal's colours and relative times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_has_words_and_tables_show_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ci.db").display());
    let cli = Cli::in_process(&db);
    cli.ok(&["projects", "create", "demo"]).await;
    cli.ok(&["branches", "create", "demo", "main"]).await;
    let stage = write_stage(dir.path(), "s", &["echo 'before #{BUILD_TYPE}'", "exit 3"]).await;
    let o = cli
        .run(&["stages", "create", "demo/main", "s", "--file", &stage])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = cli
        .run(&["flows", "create", "demo/main", "--wait", "--timeout", "60"])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // Words next to numbers, and one verdict word on flow, run and job.
    let f: Value = serde_json::from_str(&cli.ok(&["--json", "flows", "show", "1"]).await).unwrap();
    assert_eq!(f["conclusion"], "failed", "{f}");
    assert_eq!(f["runs"][0]["conclusion"], "failed");
    let run_id = f["runs"][0]["id"].to_string();
    let o = cli.run(&["--json", "runs", "jobs", &run_id]).await;
    let jobs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let job = &jobs["items"][0];
    assert_eq!(job["state"], 5);
    assert_eq!(job["state_name"], "completed");
    assert_eq!(job["completion_status_name"], "step failed");
    assert_eq!(job["conclusion"], "failed");
    assert_eq!(job["steps"][0]["status_name"], "done");
    assert_eq!(job["steps"][1]["status_name"], "error");
    // --jq sees the words too.
    let o = cli
        .run(&[
            "--jq",
            ".items[0].steps[1].result.retcode",
            "runs",
            "jobs",
            &run_id,
        ])
        .await;
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3");

    // The exit code in the job table, and each step's in the job's.
    let o = cli.run(&["runs", "jobs", &run_id]).await;
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(table.lines().next().unwrap().contains("EXIT"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .any(|w| w == "3"),
        "{table}"
    );
    let job_id = job["id"].to_string();
    let o = cli.run(&["jobs", "show", &job_id]).await;
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with('1') && l.contains("error") && l.ends_with('3')),
        "{shown}"
    );
    // ... and in the step's log, after its output.
    let o = cli.run(&["logs", &job_id]).await;
    let log = String::from_utf8_lossy(&o.stdout).to_string();
    // Which `#{...}` became <ERROR>, before the step's output.
    let why = log
        .find("--- #{BUILD_TYPE} rendered <ERROR>: 'BUILD_TYPE' is neither a run argument nor a context value ---")
        .expect(&log);
    let before = log.find("before <ERROR>").expect(&log);
    assert!(why < before, "{log}");
    let done = log.find("--- step done: exit code 0").expect(&log);
    let failed = log.find("--- step failed: exit code 3").expect(&log);
    assert!(before < done && done < failed, "{log}");

    // A terminal gets colours and relative times; NO_COLOR takes the
    // colours away; a pipe gets absolute times.
    let mut forced = Cli::in_process(&db);
    forced.env.push(("CLICOLOR_FORCE".into(), "1".into()));
    let o = forced.run(&["flows", "list", "demo/main"]).await;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("\u{1b}["), "{text}");
    assert!(text.contains("s ago") || text.contains("m ago"), "{text}");
    forced.env.push(("NO_COLOR".into(), "1".into()));
    let o = forced.run(&["flows", "list", "demo/main"]).await;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!text.contains("\u{1b}["), "{text}");
    assert!(text.contains("ago"), "{text}");
    let plain = cli.ok(&["flows", "list", "demo/main"]).await;
    assert!(!plain.contains("ago") && plain.contains("Z"), "{plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_columns_in_pipes_and_the_api_json_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ci.db").display());
    let cli = Cli::in_process(&db);
    // Created things: the id alone, or the whole object with --json.
    assert_eq!(
        cli.ok(&["projects", "create", "p", "--description", "d"])
            .await,
        "1"
    );
    let q: Value =
        serde_json::from_str(&cli.ok(&["--json", "projects", "create", "q"]).await).unwrap();
    assert_eq!((q["id"].as_i64(), q["name"].as_str()), (Some(2), Some("q")));
    assert_eq!(cli.ok(&["branches", "create", "p", "main"]).await, "1");
    // A list in a pipe: plain columns, a header and a line per item.
    assert_eq!(
        cli.ok(&["projects", "list"]).await,
        "ID  NAME  BRANCHES  DESCRIPTION\n1   p     main      d\n2   q"
    );
    // With --json: the list as the API answers it, also for lists the CLI
    // takes out of another object (a project's branches).
    let l: Value =
        serde_json::from_str(&cli.ok(&["--json", "branches", "list", "p"]).await).unwrap();
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["name"], "main");
    // A record: aligned fields, or its JSON.
    let show = cli.ok(&["projects", "show", "p"]).await;
    assert!(show.contains("description  d\nc"), "{show}");
    let p: Value =
        serde_json::from_str(&cli.ok(&["--json", "projects", "show", "p"]).await).unwrap();
    assert_eq!(p["branches"][0]["name"], "main");
    // A table made of one object's fields: with --json the object.
    assert_eq!(
        cli.ok(&["branches", "stats", "p/main"]).await,
        "KIND  FLOWS  LAST MONTH  LAST WEEK  AVG MONTH  AVG WEEK\nci    0      0           0\ndev   0      0           0"
    );
    let st: Value =
        serde_json::from_str(&cli.ok(&["--json", "branches", "stats", "p/main"]).await).unwrap();
    assert!(st["ci"].is_object(), "{st}");
    // Quiet changes print nothing, with --json their answer.
    assert_eq!(
        cli.ok(&["branches", "set-env", "p/main", "A", "1"]).await,
        ""
    );
    assert_eq!(
        cli.ok(&["groups", "update", "all", "--name", "all"]).await,
        ""
    );
    let g: Value = serde_json::from_str(
        &cli.ok(&["--json", "groups", "update", "all", "--name", "all"])
            .await,
    )
    .unwrap();
    assert_eq!(g["name"], "all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_check_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(None, None);
    let good = write_stage(dir.path(), "good", &["make", "make test"]).await;
    let o = cli.run(&["schema", "check", &good]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("shell: make test"), "{text}");
    let o = cli.run(&["--json", "schema", "check", &good]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"][0]["name"], "good");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    // A `#{NAME}` that no run would have: a warning, and still exit 0.
    let missing = write_stage(
        dir.path(),
        "missing",
        &["make #{BUILD_TYPE} #{KK_FLOW_SEQ} #{branch_name}"],
    )
    .await;
    let o = cli.run(&["schema", "check", &missing]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: job 'missing' step 0: #{BUILD_TYPE} rendered <ERROR>: 'BUILD_TYPE' is neither a run argument nor a context value"),
        "{err}"
    );
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    // Given as an argument (through the ctx), it is known.
    let o = cli
        .run(&[
            "schema",
            "check",
            &missing,
            "--ctx",
            r#"{"args": {"BUILD_TYPE": "release"}}"#,
        ])
        .await;
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let dynamic = dir.path().join("dyn.py");
    tokio::fs::write(
        &dynamic,
        "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {}, \"jobs\": [{\"name\": \"t-\" + t, \"steps\": [{\"tool\": \"shell\", \"cmd\": \"run \" + t}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}]} for t in (ctx.flow.data.tests or [\"all\"])]}\n",
    )
    .await
    .unwrap();
    let o = cli
        .run(&[
            "--json",
            "schema",
            "check",
            dynamic.to_str().unwrap(),
            "--ctx",
            r#"{"flow": {"data": {"tests": ["a", "b"]}}}"#,
        ])
        .await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    let bad = dir.path().join("bad.py");
    tokio::fs::write(&bad, "def stage(ctx):\n    return {\n")
        .await
        .unwrap();
    let o = cli.run(&["schema", "check", bad.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line"), "{}", stderr(&o));
    let o = cli.run(&["schema", "dump"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["title"], "Schema of Kraken Workflow Schema");
    let o = cli.run(&["completions", "bash"]).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("kraken"));
    let o = cli.run(&["no-such-command"]).await;
    assert_eq!(o.status.code(), Some(2));
}

/// Issue 16's small bugs: a server without a scheme, a bad token's message,
/// a step that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friendly_server_urls_tokens_and_missing_steps() {
    let s = TestServer::start_with_agents(1).await;
    let files = tempfile::tempdir().unwrap();
    let cli = Cli::new(None, None);
    // `kraken login --server 127.0.0.1:PORT`: http:// is assumed.
    let bare = s.url.trim_start_matches("http://").to_string();
    let o = cli
        .run(&[
            "--server",
            &bare,
            "login",
            "--user",
            "admin",
            "--password",
            "admin",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    cli.ok(&["projects", "create", "demo"]).await;

    // A bad token says what to do, in one line.
    let bad = Cli::new(Some(&s.url), Some("not-a-token"));
    let o = bad.run(&["projects", "list"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the session is invalid or expired: run `kraken login`"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("browser"), "{}", stderr(&o));

    // A step that does not exist is "not found" (exit 3), not an empty log.
    let one = write_stage(files.path(), "one", &["echo only-step"]).await;
    cli.ok(&["branches", "create", "demo", "main"]).await;
    cli.ok(&["stages", "create", "demo/main", "one", "--file", &one])
        .await;
    let fid = cli.ok(&["flows", "create", "demo/main", "--wait"]).await;
    let job = first_job(&cli, fid.lines().next().unwrap()).await;
    assert!(
        cli.ok(&["logs", &job, "--step", "0"])
            .await
            .contains("only-step")
    );
    let o = cli.run(&["logs", &job, "--step", "7"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no step 7"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

/// `kraken flows watch`, `flows cancel` and `flows rerun --failed`, with a
/// branch name standing for its latest flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cancel_and_rerun_whole_flows() {
    let s = TestServer::start_with_agents(1).await;
    let files = tempfile::tempdir().unwrap();
    let cli = Cli::new(Some(&s.url), None);
    let mut env = cli.env.clone();
    env.push(("KRAKEN_PASSWORD".into(), "admin".into()));
    let li = Cli {
        env,
        db: None,
        _config: tempfile::tempdir().unwrap(),
    };
    li.ok(&["login", "--user", "admin"]).await;
    let cli = Cli {
        env: li.env.clone(),
        db: None,
        _config: li._config,
    };
    cli.ok(&["projects", "create", "demo"]).await;
    cli.ok(&["branches", "create", "demo", "main"]).await;
    let marker = files.path().join("failed-once");
    let fail_once = format!(
        "test -e '{m}' || {{ touch '{m}'; exit 3; }}",
        m = marker.display()
    );
    let stage = write_stage(files.path(), "build", &["echo compiling-now", &fail_once]).await;
    cli.ok(&["stages", "create", "demo/main", "build", "--file", &stage])
        .await;
    let fid = cli.ok(&["flows", "create", "demo/main"]).await;

    // Watching in a pipe: one line per change, the job's log, verdict 1.
    let o = cli.run(&["flows", "watch", "demo/main", "--log"]).await;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{text}{}", stderr(&o));
    assert!(text.contains(&format!("flow {fid} (")), "{text}");
    assert!(text.contains("| compiling-now"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("job ") && l.contains("failed")),
        "{text}"
    );
    assert!(stderr(&o).contains("failed job"), "{}", stderr(&o));

    // Rerun only the failed job: the flow passes now.
    let o = cli
        .run(&["--json", "flows", "rerun", &fid, "--failed"])
        .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rerun_jobs"].as_array().map(Vec::len), Some(1), "{v}");
    let o = cli.run(&["--json", "flows", "watch", &fid]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|v| v["what"] == format!("flow {fid}"))
        .unwrap();
    assert_eq!(last["state"], "passed");
    let o = cli.run(&["flows", "rerun", &fid, "--failed"]).await;
    assert_eq!(o.status.code(), Some(2), "nothing failed: {}", stderr(&o));
    // --jq filters any JSON answer; strings print raw.
    let state = cli
        .ok(&["flows", "show", "demo/main", "--jq", ".runs[0].stage_name"])
        .await;
    assert_eq!(state, "build");
    let o = cli.run(&["flows", "show", &fid, "--jq", ".runs["]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not parse"), "{}", stderr(&o));

    // Cancel a running flow: it reads "cancelled" and waiting on it fails.
    let slow = write_stage(files.path(), "slow", &["sleep 30"]).await;
    cli.ok(&["branches", "create", "demo", "slow"]).await;
    cli.ok(&["stages", "create", "demo/slow", "slow", "--file", &slow])
        .await;
    let sid = cli.ok(&["flows", "create", "demo/slow"]).await;
    cli.ok(&["flows", "cancel", "demo/slow"]).await;
    let o = cli.run(&["flows", "wait", &sid, "--timeout", "60"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cancel"), "{}", stderr(&o));
    let list = cli.ok(&["flows", "list", "demo/slow"]).await;
    assert!(list.contains("cancelled"), "{list}");
}

/// A `docker` job that no agent of its group can run waits, and the job
/// table says why where the agent would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_an_executor_says_why() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let _bare = kraken_tests::manual_agent(
        &s,
        &admin,
        "bare-1",
        serde_json::json!({"system": "debian-12"}),
    )
    .await;
    let token = admin.token.clone().unwrap();
    let cli = Cli::new(Some(&s.url), Some(&token));
    let files = tempfile::tempdir().unwrap();
    let stage = files.path().join("d.py");
    tokio::fs::write(
        &stage,
        "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"d\", \"steps\": [{\"tool\": \"shell\", \"cmd\": \"true\"}], \"environments\": [{\"system\": \"alpine:3\", \"executor\": \"docker\", \"agents_group\": \"all\", \"config\": \"c\"}]}]}\n",
    )
    .await
    .unwrap();
    cli.ok(&["projects", "create", "demo"]).await;
    cli.ok(&["branches", "create", "demo", "main"]).await;
    cli.ok(&[
        "stages",
        "create",
        "demo/main",
        "d",
        "--file",
        &stage.display().to_string(),
    ])
    .await;
    let fid = cli.ok(&["flows", "create", "demo/main"]).await;
    let f: Value = serde_json::from_str(&cli.ok(&["--json", "flows", "show", &fid]).await).unwrap();
    let run = f["runs"][0]["id"].to_string();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let table = cli.ok(&["runs", "jobs", &run]).await;
        if table.contains("(no agent of group 'all' can run executor 'docker')") {
            assert!(table.contains("queued"), "{table}");
            break;
        }
        assert!(std::time::Instant::now() < end, "{table}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_schemas_from_a_repository_from_the_command_line() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let token = admin.token.clone().unwrap();
    let cli = Cli::new(Some(&s.url), Some(&token));
    let tmp = tempfile::tempdir().unwrap();
    let (url, _, _) = kraken_tests::repo_with_two_commits(tmp.path(), "schemas");
    let repo = tmp.path().join("schemas");
    std::fs::write(
        repo.join("ci.star"),
        shell_stage("root", "from-repo", &["true"]),
    )
    .unwrap();
    kraken_tests::git(&repo, &["add", "ci.star"]);
    kraken_tests::git(&repo, &["commit", "-q", "-m", "ci"]);
    let head = kraken_tests::git(&repo, &["rev-parse", "HEAD"]);

    cli.ok(&["projects", "create", "demo"]).await;
    cli.ok(&["branches", "create", "demo", "main"]).await;
    let out = cli
        .ok(&["projects", "webhook", "demo", "github", "--secret", "s3"])
        .await;
    assert_eq!(
        out,
        format!(
            "github webhooks of project demo are on: deliver them (JSON) to {}/webhooks/1/github",
            s.url
        )
    );
    let p = admin.get("/api/projects/1").await;
    assert_eq!(p.body["webhooks"]["github_enabled"], true);
    assert_eq!(p.body["webhooks"]["github_secret"], "s3");
    // Gitea needs a secret; unknown providers are refused.
    let o = cli.run(&["projects", "webhook", "demo", "gitea"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("need a shared secret"),
        "{}",
        stderr(&o)
    );
    let o = cli.run(&["projects", "webhook", "demo", "bitbucket"]).await;
    assert_eq!(o.status.code(), Some(2));
    cli.ok(&["projects", "webhook", "demo", "github", "--disable"])
        .await;
    let p = admin.get("/api/projects/1").await;
    assert_eq!(p.body["webhooks"]["github_enabled"], false);

    let id = cli
        .ok(&[
            "stages",
            "create",
            "demo/main",
            "build",
            "--from-repo",
            &url,
            "--repo-branch",
            "main",
            "--schema-file",
            "ci.star",
        ])
        .await;
    let shown = cli.ok(&["stages", "show", &id]).await;
    assert!(shown.contains(&head), "{shown}");
    assert!(shown.contains("ci.star"), "{shown}");
    assert!(
        shown.contains("from-repo"),
        "the repository's schema: {shown}"
    );
    // A missing file: the stage keeps its schema and the CLI says why.
    let o = cli
        .run(&[
            "stages",
            "update",
            &id,
            "--from-repo",
            &url,
            "--repo-branch",
            "main",
            "--schema-file",
            "nope.star",
        ])
        .await;
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("no file 'nope.star'"), "{}", stderr(&o));
    let shown = cli.ok(&["stages", "show", &id]).await;
    assert!(shown.contains("error"), "{shown}");

    // A push delivered to the project: `flows show` says what started the flow.
    // The secret set before stays (and the CLI says so).
    let on = cli.ok(&["projects", "webhook", "demo", "github"]).await;
    assert!(on.ends_with("(signed with the secret set before)"), "{on}");
    let body = serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main", "before": "0", "after": head,
        "repository": {"clone_url": url}, "pusher": {"name": "dev"},
        "commits": [{"id": head}]
    }))
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/1/github", s.url))
        .header("X-GitHub-Event", "push")
        .header(
            "X-Hub-Signature-256",
            kraken_core::webhooks::sign_sha256("s3", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let fid = admin
        .wait_for("/api/branches/1/flows/ci", Duration::from_secs(30), |b| {
            b["total"] == 1
        })
        .await["items"][0]["id"]
        .to_string();
    let shown = cli.ok(&["flows", "show", &fid]).await;
    let short: String = head.chars().take(12).collect();
    assert!(
        shown.contains(&format!(
            "github-push of {short} (refs/heads/main) to {url} by dev, 1 commit"
        )),
        "{shown}"
    );
}

/// `kraken tools load URL --tag T --tool-file F` loads a remote tool: the
/// server clones the repository and registers its tool.json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_load_registers_a_tool_from_a_git_repository() {
    let s = TestServer::start().await;
    let token = s.admin().await.token.unwrap();
    let cli = Cli::new(Some(&s.url), Some(&token));
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("t")).unwrap();
    std::fs::write(
        repo.path().join("t/tool.json"),
        r#"{"name": "from-git", "description": "d", "location": ".", "entry": "m", "parameters": {"properties": {}}}"#,
    )
    .unwrap();
    std::fs::write(
        repo.path().join("t/m.py"),
        "def run(step):\n    return 0, ''\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "tool"]);
    git(&["tag", "v1"]);
    let sha = git(&["rev-parse", "--short", "HEAD"]);
    let url = format!("file://{}", repo.path().display());
    let out = cli
        .ok(&[
            "tools",
            "load",
            &url,
            "--tag",
            "v1",
            "--tool-file",
            "t/tool.json",
        ])
        .await;
    assert!(out.ends_with(&format!("from-git {sha}")), "{out}");
    let o = cli.run(&["tools", "load", &url, "--tag", "nope"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot fetch remote tool"),
        "{}",
        stderr(&o)
    );
}
