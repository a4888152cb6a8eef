//! Durability: real `kraken-server` processes killed at exact points (fault
//! injection, `KRAKEN_FAULT`) or with SIGKILL, then started again on the same
//! database. Whatever was going on must end within 30 s of the restart:
//! flows completed, every completed run analysed. SQLite by default,
//! PostgreSQL when `KRAKEN_TEST_DB_URL` names one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kraken_tests::{Client, TestDb, shell_stage};
use serde_json::{Value, json};

/// Every flow must reach a final state this long after a restart.
const AFTER_RESTART: Duration = Duration::from_secs(30);

/// A `kraken-server` process.
struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the server binary on `127.0.0.1:0`; `fault` arms a fault point.
fn spawn(data: &Path, db: &TestDb, fault: Option<&str>, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kraken-server"));
    cmd.env("KRAKEN_BIND", "127.0.0.1:0")
        .env("KRAKEN_DATA_DIR", data)
        .env("KRAKEN_LOG", "info")
        .env_remove("KRAKEN_FAULT")
        .env_remove("KRAKEN_DB_URL")
        .env_remove("KRAKEN_AGENTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.with_extension("log"))
                .expect("server log file"),
        ));
    if let Some(url) = &db.url {
        cmd.env("KRAKEN_DB_URL", url);
    }
    if let Some(f) = fault {
        cmd.env("KRAKEN_FAULT", f);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn kraken-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.strip_prefix("Kraken server listening on ") {
                    break rest.split_whitespace().next().unwrap_or("").to_string();
                }
            }
            _ => panic!(
                "kraken-server did not start: {}",
                std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
            ),
        }
    };
    // Keep reading stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Proc { child, url }
}

/// Wait (bounded) until the process ends, as a fault point ends it.
async fn wait_exit(p: &mut Proc, point: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = p.child.try_wait().expect("wait") {
            assert!(!status.success(), "the server should die at {point}");
            return;
        }
        assert!(
            Instant::now() < end,
            "the server did not reach fault point {point}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A project, a branch and its stages; returns the branch id.
async fn setup(admin: &Client, stages: &[(&str, String)]) -> i64 {
    let p = admin.project("durable").await;
    let b = admin.branch(p, "main").await;
    for (name, code) in stages {
        admin.stage(b, name, code).await;
    }
    b
}

/// Every CI flow of the branch completes, every run is processed; returns the flows.
async fn all_flows_finish(admin: &Client, branch: i64) -> Vec<Value> {
    let list = admin
        .get(&format!("/api/branches/{branch}/flows/ci?limit=100"))
        .await;
    let flows = list.body["items"].as_array().cloned().unwrap_or_default();
    assert!(!flows.is_empty(), "no flow: {}", list.body);
    let mut out = Vec::new();
    for f in flows {
        let id = f["id"].as_i64().expect("flow id");
        out.push(admin.wait_flow(id, AFTER_RESTART).await);
    }
    out
}

/// Kill the server at `point` during a flow, restart it, and check that the
/// flow ends (its runs processed, their jobs passed) within 30 s.
async fn kill_at(point: &str) {
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut p = spawn(&data, &db, Some(point), &[]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    let b = setup(
        &admin,
        &[
            ("build", shell_stage("root", "compile", &["echo built"])),
            ("test", shell_stage("build", "check", &["echo tested"])),
        ],
    )
    .await;
    // The request itself may die with the server.
    let _ = admin
        .http
        .post(format!("{}/api/branches/{b}/flows/ci", p.url))
        .bearer_auth(admin.token.clone().unwrap_or_default())
        .json(&json!({}))
        .send()
        .await;
    wait_exit(&mut p, point).await;
    drop(p);

    let p = spawn(&data, &db, None, &[]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    for flow in all_flows_finish(&admin, b).await {
        let runs = flow["runs"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 2, "both stages ran after {point}: {flow}");
        for r in &runs {
            assert_eq!(r["state"], "processed", "after {point}: {r}");
            assert_eq!(r["jobs_total"], 1, "after {point}: {r}");
            assert_eq!(r["jobs_error"], 0, "after {point}: {r}");
        }
    }
}

#[tokio::test]
async fn killed_after_the_flow_insert() {
    kill_at("after-flow-insert").await;
}

#[tokio::test]
async fn killed_while_planning_a_run() {
    kill_at("before-jobs-insert").await;
}

#[tokio::test]
async fn killed_after_a_job_completed() {
    kill_at("after-job-complete").await;
}

#[tokio::test]
async fn killed_after_a_run_completed() {
    kill_at("after-run-complete").await;
}

#[tokio::test]
async fn killed_during_the_results_analysis() {
    kill_at("in-history-analysis").await;
}

#[tokio::test]
async fn killed_after_a_run_was_analysed() {
    kill_at("after-run-processed").await;
}

/// A step interrupted by a SIGKILL of its server runs again when the
/// server (and its built-in agent) comes back; the log keeps the first
/// lines, marks the restart, and the step counts two attempts.
#[tokio::test]
async fn an_interrupted_step_restarts_with_a_marker() {
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let flag = tmp.path().join("second-time");
    let cmd = format!(
        "echo first line; if [ -f {f} ]; then echo second run; else touch {f}; sleep 120; fi",
        f = flag.display()
    );
    let mut p = spawn(&data, &db, None, &[]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    let b = setup(&admin, &[("build", shell_stage("root", "long", &[&cmd]))]).await;
    let flow = admin.flow(b).await;
    let run = flow["runs"][0]["id"].as_i64().expect("run id");
    // Wait until the step runs and its first line is stored.
    let job = loop {
        let jobs = admin.run_jobs(run).await;
        if let Some(j) = jobs.first()
            && j["steps"][0]["status"] == 1
        {
            let id = j["id"].as_i64().expect("job id");
            if admin.job_log(id).await.iter().any(|l| l == "first line") {
                break id;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    p.child.kill().expect("SIGKILL");
    let _ = p.child.wait();
    drop(p);

    let p = spawn(&data, &db, None, &[]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    let flows = all_flows_finish(&admin, b).await;
    assert_eq!(flows[0]["runs"][0]["jobs_error"], 0, "{}", flows[0]);
    let log = admin.job_log(job).await;
    let marker = "--- step restarted after the agent came back ---";
    let at = log
        .iter()
        .position(|l| l == marker)
        .unwrap_or_else(|| panic!("no restart marker in {log:?}"));
    assert!(log[..at].iter().any(|l| l == "first line"), "{log:?}");
    assert!(log[at..].iter().any(|l| l == "first line"), "{log:?}");
    assert!(log[at..].iter().any(|l| l == "second run"), "{log:?}");
    let j = admin.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(j.body["steps"][0]["attempts"], 2, "{}", j.body);
}

/// An agent that stops answering is marked gone after the agent timeout
/// (shortened here with `KRAKEN_AGENT_TIMEOUT`); its job is retried once on
/// another agent of the group, and both jobs say why.
#[tokio::test]
async fn a_dead_agents_job_is_retried_on_another_agent() {
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let p = spawn(
        &data,
        &db,
        None,
        &[("KRAKEN_AGENTS", "0"), ("KRAKEN_AGENT_TIMEOUT", "8")],
    );
    let admin = Client::login(&p.url, "admin", "admin").await;
    let doomed = keyed_agent(&admin, "doomed").await;
    let b = setup(
        &admin,
        &[("build", shell_stage("root", "work", &["echo hi"]))],
    )
    .await;
    admin.flow(b).await;
    let call = |agent: &Client, msg: Value| {
        let agent = agent.clone();
        async move { agent.post("/backend", msg).await.body }
    };
    // The doomed agent takes the job, starts its step, and goes silent.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let r = call(
            &doomed,
            json!({"address": "doomed", "msg": "get-job", "wait": 1}),
        )
        .await;
        if let Some(id) = r["job"]["id"].as_i64() {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the doomed agent got no job: {r}"
        );
    };
    call(&doomed, json!({"address": "doomed", "msg": "get-job-step"})).await;
    call(
        &doomed,
        json!({"address": "doomed", "msg": "step-result2", "job_id": first, "step_idx": 0,
                "result": {"status": "in-progress"}}),
    )
    .await;
    // Another agent of the group gets the retry and runs it.
    let survivor = keyed_agent(&admin, "survivor").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let second = loop {
        let r = call(
            &survivor,
            json!({"address": "survivor", "msg": "get-job", "wait": 2}),
        )
        .await;
        if let Some(id) = r["job"]["id"].as_i64() {
            break id;
        }
        assert!(Instant::now() < deadline, "the survivor got no retry: {r}");
    };
    assert_ne!(second, first);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = call(
            &survivor,
            json!({"address": "survivor", "msg": "get-job-step"}),
        )
        .await;
        if s["job_step"]["finish"] != false {
            break;
        }
        assert!(Instant::now() < deadline, "the retry never finished: {s}");
        let idx = s["job_step"]["index"].as_i64().expect("step index");
        call(
            &survivor,
            json!({"address": "survivor", "msg": "step-result2", "job_id": second,
                    "step_idx": idx, "result": {"status": "done", "duration": 0}}),
        )
        .await;
    }
    let flows = all_flows_finish(&admin, b).await;
    assert_eq!(flows[0]["runs"][0]["jobs_error"], 0, "{}", flows[0]);
    let old = admin.get(&format!("/api/jobs/{first}")).await.body;
    assert_eq!(old["covered"], true, "{old}");
    let note = old["notes"].as_str().unwrap_or("");
    assert!(
        note.contains("was not seen for 8 s") && note.contains("retried"),
        "{old}"
    );
    let new = admin.get(&format!("/api/jobs/{second}")).await.body;
    assert!(
        new["notes"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("retry of job {first}")),
        "{new}"
    );
    let agents = admin.get("/api/agents").await.body;
    let doomed = agents["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["address"] == "doomed"))
        .cloned()
        .unwrap_or_default();
    assert_ne!(doomed["active"], true, "{doomed}");
}

/// An agent that drives the protocol by hand as this project's agent does:
/// registers with a key of its own, is authorized (in group `all`) and
/// picks up the key the server issues then.
async fn keyed_agent(admin: &Client, address: &str) -> Client {
    let mut agent = Client {
        base: admin.base.clone(),
        token: Some(format!("{:064x}", rand::random::<u128>())),
        http: reqwest::Client::new(),
    };
    let hello = json!({"address": address, "msg": "host-info", "info": {"system": "any"}});
    agent.post("/backend", hello.clone()).await;
    let list = admin.get("/api/agents?unauthorized=true").await;
    let id = list.body["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["address"] == address))
        .and_then(|x| x["id"].as_i64())
        .unwrap_or_else(|| panic!("agent {address} not registered: {}", list.body));
    let all = admin.get("/api/groups").await.body["items"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == "all"))
        .and_then(|g| g["id"].as_i64())
        .expect("group all");
    admin
        .put(
            &format!("/api/agents/{id}"),
            json!({"authorized": true, "groups": [{"id": all}]}),
        )
        .await
        .expect(200);
    let hi = agent.post("/backend", hello).await;
    agent.token = Some(
        hi.body["agent_key"]
            .as_str()
            .unwrap_or_else(|| panic!("no key issued to {address}: {}", hi.body))
            .to_string(),
    );
    agent
}
