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
        .env_remove("KRAKEN_STORAGE")
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

/// Start a CI flow of `branch` on a server armed to die at `point`, and
/// wait until it has (the request itself may die with the server).
async fn start_flow_until_death(admin: &Client, p: &mut Proc, branch: i64, point: &str) {
    let _ = admin
        .http
        .post(format!("{}/api/branches/{branch}/flows/ci", p.url))
        .bearer_auth(admin.token.clone().unwrap_or_default())
        .json(&json!({}))
        .send()
        .await;
    wait_exit(p, point).await;
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
    start_flow_until_death(&admin, &mut p, b, point).await;
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

/// A flow's numbers are drawn in its own transaction: a server killed
/// after drawing them but before the flow was stored leaves no gap, and
/// the next flow of the branch (and its run) are number 1.
#[tokio::test]
async fn killed_before_the_flow_insert_uses_up_no_number() {
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let mut p = spawn(&data, &db, Some("before-flow-insert"), &[]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    let b = setup(
        &admin,
        &[("build", shell_stage("root", "compile", &["echo built"]))],
    )
    .await;
    start_flow_until_death(&admin, &mut p, b, "before-flow-insert").await;
    drop(p);

    let p = spawn(&data, &db, None, &[]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    let list = admin.get(&format!("/api/branches/{b}/flows/ci")).await;
    assert_eq!(list.body["total"], 0, "no flow was stored: {}", list.body);
    let flow = admin
        .post(&format!("/api/branches/{b}/flows/ci"), json!({}))
        .await;
    assert_eq!(flow.status, 201, "{}", flow.body);
    assert_eq!(flow.body["args"]["KK_FLOW_SEQ"], "1", "{}", flow.body);
    assert_eq!(
        flow.body["args"]["KK_CI_DEV_FLOW_SEQ"], "1",
        "{}",
        flow.body
    );
    let run = &flow.body["runs"][0];
    assert_eq!(run["args"]["KK_RUN_SEQ"], "1", "{run}");
    assert_eq!(run["args"]["KK_CI_DEV_RUN_SEQ"], "1", "{run}");
    let flow = admin
        .wait_flow(flow.body["id"].as_i64().expect("flow id"), AFTER_RESTART)
        .await;
    assert_eq!(flow["runs"][0]["jobs_error"], 0, "{flow}");
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

/// Where a job ran, from a line its step wrote: the server (data dir) and
/// the job id (the work dir is `<data>/agents/builtin-N/jobs/<job id>`).
fn job_of(dir: &str) -> i64 {
    dir.rsplit('/')
        .next()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| panic!("not a job work dir: {dir}"))
}

/// Download a flow's public artifact `out.txt` through the server at `base`.
async fn artifact_via(admin: &Client, base: &str, flow: i64) -> String {
    let list = admin.get(&format!("/api/flows/{flow}/artifacts")).await;
    let url = list.body["items"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["path"] == "out.txt"))
        .and_then(|x| x["url"].as_str())
        .unwrap_or_else(|| panic!("flow {flow} lists no out.txt: {}", list.body))
        .to_string();
    let got = admin
        .http
        .get(format!("{base}{url}"))
        .bearer_auth(admin.token.clone().unwrap_or_default())
        .send()
        .await
        .expect("download");
    let status = got.status().as_u16();
    let body = got.text().await.expect("artifact body");
    assert_eq!(status, 200, "flow {flow}'s artifact via {base}: {body}");
    body.trim().to_string()
}

/// Two servers on one host, one PostgreSQL database and one storage
/// directory, each with built-in agents of the default names: 20 flows
/// created through both all complete, no job runs twice (one work dir and
/// one `done` per job), artifacts uploaded through one server download
/// through the other, and when one server is killed (SIGKILL) the other
/// finishes the remaining work within the documented bounds (the agent
/// timeout, then leases of 10-15 s: 8 s + 2 s + 30 s here).
#[tokio::test]
async fn two_servers_share_one_database_and_storage() {
    let db = TestDb::new().await;
    if !db.is_postgres() {
        eprintln!(
            "skipped: two servers need a shared PostgreSQL (SQLite is one server per file); \
             set KRAKEN_TEST_DB_URL=postgres://... to run it"
        );
        return;
    }
    const FLOWS: usize = 20;
    const AGENT_TIMEOUT: u64 = 8;
    let tmp = tempfile::tempdir().expect("temp dir");
    let blobs = tmp.path().join("blobs");
    let storage = format!("file://{}", blobs.display());
    let ledger = tmp.path().join("ledger");
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let env = [
        ("KRAKEN_STORAGE", storage.as_str()),
        ("KRAKEN_AGENTS", "2"),
        ("KRAKEN_AGENT_TIMEOUT", "8"),
    ];
    let mut a = spawn(&data_a, &db, None, &env);
    let b = spawn(&data_b, &db, None, &env);
    let admin_a = Client::login(&a.url, "admin", "admin").await;
    let admin_b = Client::login(&b.url, "admin", "admin").await;

    let cmd = format!(
        "echo \"$(pwd) start\" >> {l}; sleep 1; pwd > out.txt; echo \"$(pwd) done\" >> {l}",
        l = ledger.display()
    );
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \
         \"jobs\": [{{\"name\": \"work\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": {cmd}}}, \
         {{\"tool\": \"artifacts\", \"source\": \"out.txt\", \"public\": True}}], \
         \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}\n",
        cmd = serde_json::to_string(&cmd).expect("json")
    );
    let branch = setup(&admin_a, &[("work", code)]).await;
    let mut flows = Vec::new();
    for i in 0..FLOWS {
        let via = if i % 2 == 0 { &admin_a } else { &admin_b };
        flows.push(via.flow(branch).await["id"].as_i64().expect("flow id"));
    }
    let read_ledger = || std::fs::read_to_string(&ledger).unwrap_or_default();
    let a_dir = data_a.display().to_string();

    let deadline = Instant::now() + Duration::from_secs(120);
    // Before the kill: an artifact uploaded through A (by one of its
    // agents) is listed and downloads through B, the same bytes as via A.
    let finished = loop {
        let mut found = None;
        for &f in &flows {
            if admin_b.get(&format!("/api/flows/{f}")).await.body["state"] == "completed"
                && artifact_via(&admin_b, &b.url, f).await.starts_with(&a_dir)
            {
                found = Some(f);
                break;
            }
        }
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no flow completed by server A's agents"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let via_a = artifact_via(&admin_a, &a.url, finished).await;
    let via_b = artifact_via(&admin_b, &b.url, finished).await;
    assert_eq!(
        via_a, via_b,
        "flow {finished}'s artifact differs between servers"
    );

    // Some work is done, and one of A's agents is in the middle of a job.
    let (done_before, a_busy) = loop {
        let text = read_ledger();
        let done: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_suffix(" done"))
            .collect();
        let busy = text
            .lines()
            .filter_map(|l| l.strip_suffix(" start"))
            .find(|d| d.starts_with(&a_dir) && !done.contains(d))
            .map(job_of);
        if done.len() >= 5
            && let Some(job) = busy
        {
            break (done.len(), job);
        }
        assert!(
            Instant::now() < deadline,
            "no job of server A running after 5 done: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    a.child.kill().expect("SIGKILL server A");
    let _ = a.child.wait();
    let killed = Instant::now();
    drop(a);
    eprintln!("killed server A with job {a_busy} running ({done_before} jobs done)");

    // B finishes everything: A's agents are gone after the agent timeout
    // (+2 s), their jobs are retried, A's leases lapse (10-15 s) and B
    // takes them over.
    let bound = Duration::from_secs(AGENT_TIMEOUT + 2 + 30);
    let mut through_a = 0;
    for &f in &flows {
        let left = bound.saturating_sub(killed.elapsed());
        let flow = admin_b.wait_flow(f, left).await;
        let run = &flow["runs"][0];
        assert_eq!(run["jobs_error"], 0, "flow {f}: {flow}");
        // Every artifact is listed and downloads through B, those uploaded
        // by A's agents (through A) included.
        let dir = artifact_via(&admin_b, &b.url, f).await;
        if dir.starts_with(&a_dir) {
            through_a += 1;
        }
    }
    eprintln!(
        "all {FLOWS} flows completed {:?} after the kill; {through_a} artifacts uploaded through A",
        killed.elapsed()
    );
    assert!(through_a > 0, "no artifact was uploaded through server A");
    // The job A's agent was running is retried on one of B's agents.
    let killed_job = admin_b.get(&format!("/api/jobs/{a_busy}")).await.body;
    assert_eq!(killed_job["covered"], true, "{killed_job}");
    assert!(
        killed_job["notes"]
            .as_str()
            .is_some_and(|n| n.contains("retried")),
        "{killed_job}"
    );

    // No job ran twice: one work dir and at most one `done` per job; every
    // job that passed said `done` exactly once.
    let text = read_ledger();
    let mut dirs: std::collections::HashMap<i64, std::collections::HashSet<&str>> =
        std::collections::HashMap::new();
    let mut dones: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    for l in text.lines() {
        let (dir, what) = l.rsplit_once(' ').expect("ledger line");
        let job = job_of(dir);
        dirs.entry(job).or_default().insert(dir);
        if what == "done" {
            *dones.entry(job).or_default() += 1;
        }
    }
    for (job, d) in &dirs {
        assert_eq!(d.len(), 1, "job {job} ran in several work dirs: {d:?}");
    }
    for (job, n) in &dones {
        assert_eq!(*n, 1, "job {job} ran {n} times:\n{text}");
    }
    for &f in &flows {
        let flow = admin_b.get(&format!("/api/flows/{f}")).await.body;
        let run = flow["runs"][0]["id"].as_i64().expect("run id");
        let jobs = admin_b.run_jobs(run).await;
        let passed: Vec<i64> = jobs
            .iter()
            .filter(|j| j["covered"] != true)
            .filter_map(|j| j["id"].as_i64())
            .collect();
        assert_eq!(passed.len(), 1, "flow {f} has one job in the end: {jobs:?}");
        assert_eq!(
            dones.get(&passed[0]),
            Some(&1),
            "job {} of flow {f} said done once:\n{text}",
            passed[0]
        );
    }
}

/// Peak resident memory of a process (Linux `VmHWM`), in bytes.
#[cfg(target_os = "linux")]
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// A 60 MiB artifact goes up to a real server and comes back down as a
/// stream: the server's peak memory grows by far less than the artifact
/// (parts of 5 MiB, at most about 15 MiB of one upload held at once).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_large_artifact_streams_through_the_server() {
    const SIZE: usize = 60 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let db = TestDb::new().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let p = spawn(&data, &db, None, &[("KRAKEN_AGENTS", "0")]);
    let admin = Client::login(&p.url, "admin", "admin").await;
    let agent = keyed_agent(&admin, "uploader").await;
    let b = setup(
        &admin,
        &[("build", shell_stage("root", "work", &["echo hi"]))],
    )
    .await;
    let flow = admin.flow(b).await["id"].as_i64().expect("flow id");
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let r = agent
            .post(
                "/backend",
                json!({"address": "uploader", "msg": "get-job", "wait": 1}),
            )
            .await
            .body;
        if let Some(id) = r["job"]["id"].as_i64() {
            break id;
        }
        assert!(Instant::now() < deadline, "no job for the agent: {r}");
    };
    let pid = p.child.id();
    let before = peak_rss(pid);
    let chunks = (0..SIZE / CHUNK).map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK]));
    let up = agent
        .http
        .put(format!("{}/backend/artifacts/{job}", p.url))
        .query(&[("path", "big.bin"), ("public", "true")])
        .bearer_auth(agent.token.clone().unwrap_or_default())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("upload");
    assert_eq!(up.status().as_u16(), 200);
    let answer: Value = up.json().await.expect("upload answer");
    assert_eq!(answer["size"], SIZE as u64, "{answer}");
    let after_upload = peak_rss(pid);

    let mut down = admin
        .http
        .get(format!("{}/artifacts/public/f/{flow}/big.bin", p.url))
        .bearer_auth(admin.token.clone().unwrap_or_default())
        .send()
        .await
        .expect("download");
    assert_eq!(down.status().as_u16(), 200);
    assert_eq!(down.headers()["content-length"], SIZE.to_string());
    let (mut got, mut at) = (0usize, 0usize);
    while let Some(chunk) = down.chunk().await.expect("download chunk") {
        for (k, byte) in chunk.iter().enumerate() {
            let want = (((at + k) / CHUNK) % 251) as u8;
            assert_eq!(*byte, want, "byte {} differs", at + k);
        }
        at += chunk.len();
        got += chunk.len();
    }
    assert_eq!(got, SIZE);
    let after_download = peak_rss(pid);
    let mib = |b: u64| b / (1024 * 1024);
    eprintln!(
        "peak RSS: {} MiB before, {} MiB after a 60 MiB upload, {} MiB after its download",
        mib(before),
        mib(after_upload),
        mib(after_download)
    );
    assert!(
        after_download - before < 30 * 1024 * 1024,
        "the server's peak memory grew by {} MiB for a 60 MiB artifact",
        mib(after_download - before)
    );
}

/// Two servers on one PostgreSQL: a webhook delivered to both (again and
/// again, at once) starts one flow, and a polled repository is polled once
/// per interval, not once per server: one flow per new commit.
#[tokio::test]
async fn two_servers_take_a_webhook_and_a_new_commit_once() {
    let db = TestDb::new().await;
    if !db.is_postgres() {
        eprintln!(
            "skipped: two servers need a shared PostgreSQL; set KRAKEN_TEST_DB_URL=postgres://... to run it"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let (url, _, _) = kraken_tests::repo_with_two_commits(tmp.path(), "app");
    let a = spawn(&tmp.path().join("a"), &db, None, &[]);
    let b = spawn(&tmp.path().join("b"), &db, None, &[]);
    let admin = Client::login(&a.url, "admin", "admin").await;
    let p = admin.project("hooks").await;
    let hooked = admin.branch(p, "main").await;
    admin
        .stage(hooked, "build", &shell_stage("root", "j", &["true"]))
        .await;
    admin.webhooks(p, json!({"github_enabled": true})).await;
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "before": "0", "after": "1111111111111111111111111111111111111111",
        "repository": {"clone_url": url}, "pusher": {"name": "dev"}, "commits": []
    }))
    .expect("json");
    let http = reqwest::Client::new();
    let mut sends = Vec::new();
    for i in 0..10 {
        let base = if i % 2 == 0 { &a.url } else { &b.url };
        sends.push(
            http.post(format!("{base}/webhooks/{p}/github"))
                .header("X-GitHub-Event", "push")
                .header("X-GitHub-Delivery", "the-one")
                .body(body.clone())
                .send(),
        );
    }
    for r in futures_util::future::join_all(sends).await {
        assert_eq!(r.expect("delivered").status(), 204);
    }
    admin
        .wait_for(
            &format!("/api/branches/{hooked}/flows/ci"),
            AFTER_RESTART,
            |b| b["total"] == 1,
        )
        .await;

    // A polled repository on another branch of the project.
    let polled = admin.branch(p, "polled").await;
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"repo\": {{\"url\": \"{url}\", \"branch\": \"main\", \"interval\": \"1s\"}}}}, \
         \"jobs\": [{{\"name\": \"j\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": \"true\"}}], \
         \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}\n"
    );
    admin.stage(polled, "poll", &code).await;
    admin
        .wait_for(
            &format!("/api/branches/{polled}/flows/ci"),
            AFTER_RESTART,
            |b| b["total"] == 1,
        )
        .await;
    let repo = tmp.path().join("app");
    std::fs::write(repo.join("new.txt"), "x").expect("write");
    kraken_tests::git(&repo, &["add", "new.txt"]);
    kraken_tests::git(&repo, &["commit", "-q", "-m", "third"]);
    admin
        .wait_for(
            &format!("/api/branches/{polled}/flows/ci"),
            AFTER_RESTART,
            |b| b["total"] == 2,
        )
        .await;
    // Several intervals later, still one flow per commit and one webhook flow.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let polled_flows = admin.get(&format!("/api/branches/{polled}/flows/ci")).await;
    assert_eq!(polled_flows.body["total"], 2, "{}", polled_flows.body);
    let hooked_flows = admin.get(&format!("/api/branches/{hooked}/flows/ci")).await;
    assert_eq!(hooked_flows.body["total"], 1, "{}", hooked_flows.body);
}
