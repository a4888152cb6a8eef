//! Execution end to end: flows run on agents, logs are kept and followed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use kraken_tests::{TestServer, read_sse, required, shell_stage};

const WAIT: Duration = Duration::from_secs(60);

/// The run of stage `name` in a flow's JSON.
fn run_of(flow: &Value, name: &str) -> Value {
    flow["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["stage_name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no run of {name} in {flow}"))
}

#[tokio::test]
async fn one_job_flow_completes_with_its_log() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(
            bid,
            "build",
            &shell_stage(
                "root",
                "hello",
                &[
                    "echo hello-from-kraken",
                    "echo second line; echo to stderr >&2",
                ],
            ),
        )
        .await;
    let flow = admin.flow(bid).await;
    assert_eq!(flow["kind"], "ci");
    assert_eq!(flow["label"], "1.");
    assert_eq!(flow["args"]["KK_FLOW_SEQ"], "1");
    assert_eq!(flow["args"]["KK_FLOW_TYPE"], "CI");
    assert_eq!(flow["runs"].as_array().unwrap().len(), 1);
    assert_eq!(flow["runs"][0]["args"]["KK_RUN_SEQ"], "1");
    let fid = flow["id"].as_i64().unwrap();

    let done = admin.wait_flow(fid, WAIT).await;
    let run = &done["runs"][0];
    assert_eq!(run["jobs_total"], 1);
    assert_eq!(run["jobs_error"], 0);
    assert_eq!(run["state"], "processed");
    let rid = run["id"].as_i64().unwrap();
    let jobs = admin.run_jobs(rid).await;
    let job = &jobs[0];
    assert_eq!(job["completion_status"], 0, "{job}");
    assert_eq!(job["state"], 5);
    assert!(
        job["agent_name"]
            .as_str()
            .unwrap()
            .starts_with("builtin-1@")
    );
    assert!(
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|st| st["status"] == 2),
        "{job}"
    );
    let jid = job["id"].as_i64().unwrap();
    let log = admin.job_log(jid).await;
    assert!(log.contains(&"hello-from-kraken".to_string()), "{log:?}");
    assert!(
        log.contains(&"second line".to_string()) && log.contains(&"to stderr".to_string()),
        "{log:?}"
    );
    let step1 = admin.get(&format!("/api/jobs/{jid}/1/logs")).await;
    assert!(
        step1.expect(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["step"] == 1)
    );
    // Plain-text download.
    let text = admin
        .http
        .get(format!("{}/job_log/{jid}", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 200);
    let text = text.text().await.unwrap();
    assert!(
        text.starts_with("message\n") && text.contains("hello-from-kraken\n"),
        "{text}"
    );
    admin.get("/api/jobs/99999/logs").await.expect(404);
    admin
        .get(&format!("/api/jobs/{jid}/logs?order=sideways"))
        .await
        .expect(400);

    // The flow lists and the branch's sequences moved on.
    let flows = admin.get(&format!("/api/branches/{bid}/flows/ci")).await;
    assert_eq!(flows.expect(200)["total"], 1);
    let second = admin.flow(bid).await;
    assert_eq!(second["args"]["KK_FLOW_SEQ"], "2");
    assert_eq!(second["label"], "2.");
    admin.wait_flow(second["id"].as_i64().unwrap(), WAIT).await;
    let dev = admin
        .post(&format!("/api/branches/{bid}/flows/dev"), json!({}))
        .await;
    assert_eq!(dev.expect(201)["args"]["KK_CI_DEV_FLOW_SEQ"], "1");
    assert_eq!(dev.body["args"]["KK_FLOW_SEQ"], "3");
    admin
        .wait_flow(dev.body["id"].as_i64().unwrap(), WAIT)
        .await;
    let around = admin
        .get(&format!(
            "/api/branches/{bid}/flows/ci?middle={}&limit=1",
            second["id"]
        ))
        .await;
    assert_eq!(around.expect(200)["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn failing_steps_skip_the_rest_but_always_runs() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"j\", \"steps\": [\
        {\"tool\": \"shell\", \"cmd\": \"echo before; exit 3\"},\
        {\"tool\": \"shell\", \"cmd\": \"echo skipped\"},\
        {\"tool\": \"shell\", \"cmd\": \"echo cleanup\", \"when\": \"always\"},\
        {\"tool\": \"shell\", \"cmd\": \"echo any-error\", \"when\": \"was_any_error\"}],\
        \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "build", code).await;
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    assert_eq!(done["runs"][0]["jobs_error"], 1);
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await
        .remove(0);
    assert_eq!(job["completion_status"], 2, "{job}");
    let statuses: Vec<i64> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [3, 4, 2, 2]);
    assert_eq!(job["steps"][0]["result"]["retcode"], 3);
    let log = admin.job_log(job["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&"cleanup".to_string()) && log.contains(&"any-error".to_string()),
        "{log:?}"
    );
    assert!(!log.contains(&"skipped".to_string()));
}

#[tokio::test]
async fn child_stages_follow_passing_parents_only() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(bid, "build", &shell_stage("root", "b", &["echo built"]))
        .await;
    admin
        .stage(bid, "test", &shell_stage("build", "t", &["echo tested"]))
        .await;
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{done}");
    assert_eq!(runs[1]["stage_name"], "test");
    assert_eq!(runs[1]["reason"], "parent");

    // A failing parent starts no child.
    let b2 = admin.branch(pid, "Broken").await;
    admin
        .stage(b2, "build", &shell_stage("root", "b", &["false"]))
        .await;
    admin
        .stage(b2, "test", &shell_stage("build", "t", &["echo tested"]))
        .await;
    let fid = admin.flow(b2).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(done["runs"][0]["jobs_error"], 1);

    // A manual child waits for a person; PUT /runs/{id} starts it.
    let b3 = admin.branch(pid, "Manual").await;
    admin
        .stage(b3, "build", &shell_stage("root", "b", &["true"]))
        .await;
    let manual = shell_stage("build", "deploy", &["echo deployed"])
        .replace("\"parent\": True", "\"manual\": True");
    admin.stage(b3, "deploy", &manual).await;
    let fid = admin.flow(b3).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let deploy = run_of(&done, "deploy");
    assert_eq!(deploy["state"], "manual");
    assert_eq!(deploy["jobs_total"], 0);
    let rid = deploy["id"].as_i64().unwrap();
    admin
        .put(&format!("/api/runs/{rid}"), json!({}))
        .await
        .expect(200);
    let done = admin.wait_flow(fid, WAIT).await;
    let deploy = run_of(&done, "deploy");
    assert_eq!(deploy["state"], "processed");
    assert_eq!(deploy["jobs_total"], 1);
}

/// A flow starts each root stage with its own sequences, arguments and
/// state (a manual one waits), its started runs have their jobs when the
/// creation answers, and only a CI flow with a started run becomes its
/// branch's newest incomplete flow.
#[tokio::test]
async fn a_flow_starts_each_root_stage_with_its_own_sequences() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(bid, "auto", &shell_stage("root", "a", &["sleep 30"]))
        .await;
    let manual =
        shell_stage("root", "m", &["echo by hand"]).replace("\"parent\": True", "\"manual\": True");
    admin.stage(bid, "hand", &manual).await;
    // A child stage does not start with the flow.
    admin
        .stage(bid, "child", &shell_stage("auto", "c", &["true"]))
        .await;
    let create = |kind: &'static str, args: Value| {
        let admin = &admin;
        async move {
            admin
                .post(&format!("/api/branches/{bid}/flows/{kind}"), args)
                .await
                .expect(201)
                .clone()
        }
    };
    let dev = create("dev", json!({})).await;
    assert_eq!(dev["args"]["KK_FLOW_SEQ"], "1");
    assert_eq!(dev["args"]["KK_CI_DEV_FLOW_SEQ"], "1");
    let ci = create(
        "ci",
        json!({"args": {"Common": {"WHO": "all"}, "hand": {"WHO": "hand only"}}}),
    )
    .await;
    assert_eq!(ci["args"]["KK_FLOW_SEQ"], "2");
    assert_eq!(ci["args"]["KK_CI_DEV_FLOW_SEQ"], "1");
    // The answer is the flow's full form: every stage of the branch (the
    // child too) and its place, as `GET /flows/{id}` gives them.
    let got = admin.get(&format!("/api/flows/{}", ci["id"])).await;
    let got = got.expect(200);
    for k in [
        "stages",
        "project_id",
        "project_name",
        "branch_id",
        "base_branch_name",
    ] {
        assert_eq!(ci[k], got[k], "{k}: {ci}");
    }
    assert_eq!(ci["stages"].as_array().unwrap().len(), 3, "{ci}");
    assert_eq!(ci["project_name"], "p");
    assert_eq!(ci["base_branch_name"], "Main");
    let runs = ci["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{ci}");
    let (auto, hand) = (run_of(&ci, "auto"), run_of(&ci, "hand"));
    // Each stage counts its own runs: the DEV flow's runs were the first.
    for r in [&auto, &hand] {
        assert_eq!(r["args"]["KK_RUN_SEQ"], "2", "{r}");
        assert_eq!(r["args"]["KK_CI_DEV_RUN_SEQ"], "1", "{r}");
        assert_eq!(r["args"]["KK_FLOW_SEQ"], "2", "{r}");
    }
    assert_eq!(auto["args"]["WHO"], "all");
    assert_eq!(hand["args"]["WHO"], "hand only");
    assert_eq!(auto["state"], "in-progress", "{auto}");
    assert_eq!(hand["state"], "manual", "{hand}");
    // The answer counts the started run's planned job (queued, or taken by
    // the agent already) and none of the manual one.
    assert_eq!(auto["jobs_total"], 1, "{auto}");
    assert_eq!(
        auto["jobs_waiting"].as_i64().unwrap() + auto["jobs_executing"].as_i64().unwrap(),
        1,
        "{auto}"
    );
    assert_eq!(auto["jobs_error"], 0, "{auto}");
    assert_eq!(hand["jobs_total"], 0, "{hand}");
    // The started run was planned before the answer; the manual one waits.
    let auto_id = auto["id"].as_i64().unwrap();
    let hand_id = hand["id"].as_i64().unwrap();
    assert_eq!(admin.run_jobs(auto_id).await.len(), 1);
    assert!(admin.run_jobs(hand_id).await.is_empty());
    // The CI flow is its branch's newest incomplete one.
    let projects = admin.get("/api/projects").await.expect(200).clone();
    let branch = projects["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["branches"].as_array().cloned().unwrap_or_default())
        .find(|b| b["id"] == bid)
        .unwrap();
    assert_eq!(branch["last_incomplete_flow"]["id"], ci["id"], "{branch}");
    // A second CI flow counts on.
    let ci2 = create("ci", json!({})).await;
    assert_eq!(ci2["args"]["KK_FLOW_SEQ"], "3");
    assert_eq!(ci2["args"]["KK_CI_DEV_FLOW_SEQ"], "2");
    assert!(
        ci2["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["args"]["KK_RUN_SEQ"] == "3" && r["args"]["KK_CI_DEV_RUN_SEQ"] == "2"),
        "{ci2}"
    );
    // Starting the manual run plans it.
    admin
        .put(&format!("/api/runs/{hand_id}"), json!({}))
        .await
        .expect(200);
    assert_eq!(admin.run_jobs(hand_id).await.len(), 1);
}

/// The flow answers count each running run's jobs live: executing on the
/// one agent, waiting for it, and failed at once (a group without agents).
#[tokio::test]
async fn flows_count_the_jobs_of_their_running_runs() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .post("/api/groups", json!({"name": "nobody"}))
        .await
        .expect(201);
    let two = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \
        \"jobs\": [{\"name\": \"j%d\" % i, \"steps\": [{\"tool\": \"shell\", \"cmd\": \"sleep 30\"}], \
        \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]} \
        for i in range(2)]}\n";
    admin.stage(bid, "busy", two).await;
    let lost = shell_stage("root", "l", &["true"]).replace("\"all\"", "\"nobody\"");
    admin.stage(bid, "lost", &lost).await;
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let flow = loop {
        let f = admin
            .get(&format!("/api/flows/{fid}"))
            .await
            .expect(200)
            .clone();
        if run_of(&f, "busy")["jobs_executing"] == 1 {
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "no job started: {f}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let busy = run_of(&flow, "busy");
    assert_eq!(busy["jobs_total"], 2, "{busy}");
    assert_eq!(busy["jobs_waiting"], 1, "{busy}");
    assert_eq!(busy["jobs_error"], 0, "{busy}");
    let lost = run_of(&flow, "lost");
    assert_eq!(lost["jobs_total"], 1, "{lost}");
    assert_eq!(lost["jobs_error"], 1, "{lost}");
    assert_eq!(lost["jobs_waiting"], 0, "{lost}");
    // The branch's list of flows counts the same.
    let list = admin
        .get(&format!("/api/branches/{bid}/flows/ci"))
        .await
        .expect(200)
        .clone();
    let listed = run_of(&list["items"][0], "busy");
    assert_eq!(listed["jobs_executing"], 1, "{listed}");
    assert_eq!(listed["jobs_waiting"], 1, "{listed}");
    assert_eq!(listed["jobs_total"], 2, "{listed}");
}

#[tokio::test]
async fn cancel_a_run_and_rerun_a_job() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(
            bid,
            "slow",
            &shell_stage("root", "sleeper", &["echo started; sleep 60; echo never"]),
        )
        .await;
    let flow = admin.flow(bid).await;
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    // Wait until the step runs, then cancel the run.
    admin
        .wait_for(&format!("/api/jobs/{jid}"), WAIT, |j| {
            j["steps"][0]["status"] == 1
        })
        .await;
    let t0 = std::time::Instant::now();
    admin.delete(&format!("/api/runs/{rid}")).await.expect(200);
    let job = admin.get(&format!("/api/jobs/{jid}")).await.body;
    assert_eq!(job["completion_status"], 8);
    assert_eq!(job["notes"], "canceled by user");
    let run = admin.get(&format!("/api/runs/{rid}")).await.body;
    assert!(run["note"].as_str().unwrap().contains("canceled by user"));
    assert!(matches!(
        run["state"].as_str(),
        Some("completed" | "processed")
    ));
    // The agent learns it and kills the step: it takes the next job soon.
    admin
        .stage(bid, "quick", &shell_stage("root", "q", &["echo quick"]))
        .await;
    let f2 = admin.post(&format!("/api/flows/{}/runs", flow["id"]), json!({"stage_id": admin.get(&format!("/api/branches/{bid}/cfg")).await.body["stages"][0]["id"]})).await;
    let r2 = f2.expect(201)["id"].as_i64().unwrap();
    admin
        .wait_for(&format!("/api/runs/{r2}"), WAIT, |r| {
            r["state"] == "processed" || r["state"] == "completed"
        })
        .await;
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the canceled step was not killed in time"
    );
    assert!(!admin.job_log(jid).await.contains(&"never".to_string()));
    admin.delete(&format!("/api/runs/{rid}")).await.expect(200);
    admin.delete("/api/runs/99999").await.expect(404);

    // Rerun: a new job; the old one is covered.
    let done_run = admin.get(&format!("/api/runs/{r2}")).await.body;
    let old = admin.run_jobs(r2).await[0].clone();
    let old_id = old["id"].as_i64().unwrap();
    let new = admin.put(&format!("/api/jobs/{old_id}"), json!({})).await;
    let new_id = new.expect(200)["id"].as_i64().unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(new.body["state"], 2);
    admin
        .wait_for(&format!("/api/jobs/{new_id}"), WAIT, |j| j["state"] == 5)
        .await;
    let visible = admin.run_jobs(r2).await;
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0]["id"], new_id);
    let all = admin
        .get(&format!("/api/runs/{r2}/jobs?include_covered=true"))
        .await
        .body;
    assert_eq!(all["total"], 2);
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == old_id && j["covered"] == true)
    );
    admin
        .put(&format!("/api/jobs/{old_id}"), json!({}))
        .await
        .expect(400);
    admin.put("/api/jobs/99999", json!({})).await.expect(404);
    let _ = done_run;
}

#[tokio::test]
async fn a_job_over_its_timeout_is_killed_and_marked() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let core = s.core();
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(
            bid,
            "slow",
            &shell_stage("root", "sleeper", &["echo going; sleep 100; echo never"]),
        )
        .await;
    // An agent that can take the job.
    let address = "test-agent";
    let agent_id = core
        .ensure_builtin_agent(address, "test-agent-id")
        .await
        .unwrap();
    let flow = admin.flow(bid).await;
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    // Shorten the job's timeout (the schema allows 30 s at least) before the agent fetches it.
    core.engine().store().set_job_timeout(jid, 3).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let agent = kraken_core::agent::Agent::new(
        Arc::new(kraken_core::agent::InProcess::new(core.clone(), agent_id)),
        kraken_core::agent::AgentConfig {
            one_job: true,
            ..kraken_core::agent::AgentConfig::new(address, work.path())
        },
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let t0 = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(30), agent.run(stop))
        .await
        .expect("agent finished the job");
    assert!(t0.elapsed() < Duration::from_secs(20));
    let job = admin
        .wait_for(&format!("/api/jobs/{jid}"), WAIT, |j| j["state"] == 5)
        .await;
    assert_eq!(job["completion_status"], 1, "job timeout: {job}");
    assert_eq!(job["steps"][0]["result"]["reason"], "job-timeout");
    assert!(!admin.job_log(jid).await.contains(&"never".to_string()));

    // A job whose agent vanished is ended by the server's watchdog.
    let flow = admin.flow(bid).await;
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    core.engine().store().set_job_timeout(jid, 1).await.unwrap();
    let job = admin
        .wait_for(&format!("/api/jobs/{jid}"), WAIT, |j| j["state"] == 5)
        .await;
    assert_eq!(job["completion_status"], 7, "server timeout: {job}");
    assert_eq!(job["notes"], "job expired after 1s");
}

#[tokio::test]
async fn two_agents_share_the_work() {
    let s = TestServer::start_with_agents(2).await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [\
        {\"name\": \"a\", \"steps\": [{\"tool\": \"shell\", \"cmd\": \"sleep 2\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]},\
        {\"name\": \"b\", \"steps\": [{\"tool\": \"shell\", \"cmd\": \"sleep 2\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "par", code).await;
    let t0 = std::time::Instant::now();
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(jobs.len(), 2);
    assert_ne!(jobs[0]["agent_name"], jobs[1]["agent_name"], "{jobs:?}");
    assert!(jobs.iter().all(|j| j["completion_status"] == 0));
    assert!(
        t0.elapsed() < Duration::from_secs(4) + Duration::from_millis(3500),
        "the jobs ran one after the other"
    );
}

#[tokio::test]
async fn unauthorized_agents_get_no_job() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let anon = s.anonymous();
    // The original's agent sends only its address: refused until allowed.
    let refused = anon
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "host-info", "info": {"system": "debian-12"}}),
        )
        .await;
    refused.expect(401);
    assert!(refused.message().contains("allow_address_only_agents"));
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": true}}),
        )
        .await
        .expect(200);
    let hi = anon
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "host-info", "info": {"system": "debian-12"}}),
        )
        .await;
    assert_eq!(hi.expect(200), &json!({"unauthorized": true}));
    let gj = anon
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "get-job"}),
        )
        .await;
    assert_eq!(gj.expect(200), &json!({"unauthorized": true}));
    assert_eq!(
        admin.get("/api/agents?unauthorized=true").await.body["total"],
        1
    );
    anon.post("/backend", json!({"address": "127.0.0.1"}))
        .await
        .expect(400);

    // Its group has no usable agent: the job ends at once.
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(bid, "build", &shell_stage("root", "j", &["true"]))
        .await;
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await
        .remove(0);
    assert_eq!(job["completion_status"], 10);
    assert_eq!(
        job["notes"],
        "there are no agents in group 'all' - add some agents"
    );

    // Authorized, it gets jobs through the original protocol.
    let agent_id = admin.get("/api/agents?unauthorized=true").await.body["items"][0]["id"]
        .as_i64()
        .unwrap();
    admin
        .patch("/api/agents", json!([{"id": agent_id, "authorized": true}]))
        .await
        .expect(200);
    let hi = anon
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "host-info", "info": {"system": "debian-12"}}),
        )
        .await;
    assert_eq!(hi.expect(200)["agent_id"], agent_id);
    assert!(
        hi.body["cfg"]["clickhouse_addr"]
            .as_str()
            .unwrap()
            .contains(':')
    );
    // No `version` for the original's agent: it would update itself from
    // /install/agent whenever the server's version differs from its own.
    assert!(hi.body.get("version").is_none(), "{}", hi.body);
    // Its `get-job` (it never sends `wait`) is held open until a job is
    // there: a poll made before the flow exists returns the flow's job.
    let poll = {
        let anon = anon.clone();
        tokio::spawn(async move {
            anon.post(
                "/backend",
                json!({"address": "127.0.0.1", "msg": "get-job"}),
            )
            .await
            .body
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flow = admin.flow(bid).await;
    let fid = flow["id"].as_i64().unwrap();
    let gj = poll.await.unwrap();
    assert!(gj.get("version").is_none(), "{gj}");
    let job_id = gj["job"]["id"].as_i64().unwrap();
    assert_eq!(gj["job"]["executor"], "local");
    assert!(gj["job"]["timeout"].as_i64().unwrap() > 0);
    let step = anon
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "get-job-step"}),
        )
        .await
        .body;
    assert_eq!(step["job_step"]["finish"], false);
    assert_eq!(step["job_step"]["cmd"], "true");
    assert_eq!(step["job_step"]["when"], "True");
    assert_eq!(step["job_step"]["job_id"], job_id);
    let r = anon.post("/backend", json!({"address": "127.0.0.1", "msg": "step-result2", "job_id": job_id, "step_idx": 0, "result": {"status": "in-progress"}})).await;
    assert!(r.body["timeout"].as_i64().is_some());
    // Log records over UDP, as the original agent sends them.
    let udp = s.server.as_ref().unwrap().udp_addr;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rec = json!({"@timestamp": "2026-11-29T20:34:30.123456Z", "message": "udp line 1\nudp line 2", "service": "agent", "tool": "shell", "job": job_id, "step": 0, "level": "INFO"});
    sock.send_to(rec.to_string().as_bytes(), udp).unwrap();
    // The agent's tool processes log without a tool name, with the step
    // index: the line belongs to that step's tool, so the job log has it.
    let rec = json!({"@timestamp": "2026-11-29T20:34:30.200000Z", "message": "udp line 3", "service": "agent", "job": job_id, "step": "0", "level": "INFO"});
    sock.send_to(rec.to_string().as_bytes(), udp).unwrap();
    anon.post("/backend", json!({"address": "127.0.0.1", "msg": "step-result2", "job_id": job_id, "step_idx": 0, "result": {"status": "done", "duration": 1}})).await.expect(200);
    let fin = anon
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "get-job-step"}),
        )
        .await
        .body;
    assert_eq!(fin["job_step"]["finish"], true);
    let done = admin.wait_flow(fid, WAIT).await;
    assert_eq!(done["runs"][0]["jobs_error"], 0);
    let lines = admin
        .wait_for(
            &format!("/api/jobs/{job_id}/logs"),
            Duration::from_secs(10),
            |b| b["total"] == 4,
        )
        .await;
    // The agent's three lines, and the server's line on how the step ended
    // (datagrams may arrive after the result: no order between them).
    let messages: Vec<&str> = lines["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    for m in [
        "udp line 1",
        "udp line 2",
        "udp line 3",
        "--- step done after 1 s ---",
    ] {
        assert!(messages.contains(&m), "{messages:?}");
    }
}

#[tokio::test]
async fn sse_follows_a_running_job_to_the_end() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin.stage(bid, "chatty", &shell_stage("root", "c", &["for i in $(seq 1 300); do echo line-$i; if [ $((i % 50)) = 0 ]; then sleep 0.2; fi; done"])).await;
    let flow = admin.flow(bid).await;
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    let path = format!("/api/jobs/{jid}/logs/stream");
    // First connection: read 100 lines, then drop it.
    let first = read_sse(&admin, &path, None, |e| {
        e.event == "log" && e.data.contains("\"line-100\"")
    })
    .await;
    let last_id = first.iter().rev().find_map(|e| e.id.clone()).unwrap();
    // Reconnect from the last id: the rest, then end-of-stream.
    let rest = read_sse(&admin, &path, Some(&last_id), |e| e.event == "end").await;
    assert_eq!(rest.last().unwrap().event, "end");
    let messages: Vec<String> = first
        .iter()
        .chain(rest.iter())
        .filter(|e| e.event == "log")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|m| m.starts_with("line-"))
        .collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("line-{i}")).collect();
    assert_eq!(messages, expected, "every line once, in order");
    // A stream of a finished job ends at once; unknown jobs are 404.
    let again = read_sse(&admin, &path, None, |e| e.event == "end").await;
    assert!(again.iter().filter(|e| e.event == "log").count() >= 300);
    admin.get("/api/jobs/99999/logs/stream").await.expect(404);
    s.anonymous().get(&path).await.expect(401);
}

#[tokio::test]
async fn a_restart_during_a_job_leaves_nothing_stuck() {
    let mut s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(
            bid,
            "slow",
            &shell_stage("root", "s", &["sleep 2; echo finished"]),
        )
        .await;
    let flow = admin.flow(bid).await;
    let fid = flow["id"].as_i64().unwrap();
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    admin
        .wait_for(&format!("/api/jobs/{jid}"), WAIT, |j| {
            j["steps"][0]["status"] == 1
        })
        .await;
    s.restart().await;
    let admin = kraken_tests::Client {
        base: s.url.clone(),
        ..admin
    };
    let done = admin.wait_flow(fid, WAIT).await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await
        .remove(0);
    assert_eq!(job["state"], 5);
    assert_eq!(job["completion_status"], 0, "{job}");
    assert!(admin.job_log(jid).await.contains(&"finished".to_string()));
}

#[tokio::test]
async fn labels_sequences_and_parameters_reach_the_steps() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .post(
            &format!("/api/branches/{bid}/env_vars"),
            json!({"name": "MY_VAR", "value": "from-branch"}),
        )
        .await
        .expect(201);
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True},\
        \"parameters\": [{\"name\": \"COUNT\", \"type\": \"string\", \"default\": \"10\", \"description\": \"n\"}],\
        \"flow_label\": \"bld-#{flow.seq.own}\", \"run_label\": \"run.#{run.seq.own}\",\
        \"jobs\": [{\"name\": \"seqs\", \"steps\": [\
          {\"tool\": \"shell\", \"cmd\": \"echo 'count=#{COUNT} kind=#{flow.kind} seq=#{KK_FLOW_SEQ} env=#{env.MY_VAR}' sh=$MY_VAR ci=#{is_ci}\"}],\
        \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "labels", code).await;
    let f = admin
        .post(
            &format!("/api/branches/{bid}/flows/ci"),
            json!({"args": {"labels": {"COUNT": "3"}}}),
        )
        .await;
    let f = f.expect(201).clone();
    assert_eq!(f["label"], "bld-1");
    assert_eq!(f["runs"][0]["label"], "run.1");
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await
        .remove(0);
    let log = admin.job_log(job["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&"count=3 kind=ci seq=1 env=from-branch sh=from-branch ci=True".to_string()),
        "{log:?}"
    );
    // A bad argument type is refused.
    admin
        .post(
            &format!("/api/branches/{bid}/flows/ci"),
            json!({"args": {"Common": {"X": [1]}}}),
        )
        .await
        .expect(400);
    admin
        .post(
            &format!("/api/branches/{bid}/flows/ci"),
            json!({"args": "x"}),
        )
        .await
        .expect(400);
    admin
        .post("/api/branches/99999/flows/ci", json!({}))
        .await
        .expect(404);
    // A viewer may not start flows.
    let (uid, user) = s.user("vic").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "viewer"}}),
        )
        .await
        .expect(201);
    user.post(&format!("/api/branches/{bid}/flows/ci"), json!({}))
        .await
        .expect(403);
}

#[tokio::test]
async fn timed_triggers_start_flows_until_the_stage_is_disabled() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = shell_stage("root", "tick", &["echo tick"]).replace(
        "\"triggers\": {\"parent\": True}",
        "\"triggers\": {\"interval\": \"1s\"}",
    );
    let sid = admin.stage(bid, "timed", &code).await;
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"].as_i64().unwrap_or(0) >= 2
        })
        .await;
    assert_eq!(flows["items"][0]["runs"][0]["reason"], "interval");
    // Disabled: no more flows.
    admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "timed", "enabled": false}),
        )
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = admin
        .get(&format!("/api/branches/{bid}/flows/ci"))
        .await
        .body["total"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = admin
        .get(&format!("/api/branches/{bid}/flows/ci"))
        .await
        .body["total"]
        .as_i64()
        .unwrap();
    assert_eq!(before, after, "a disabled stage's timer does not fire");
    // Deleted: the schedule is gone.
    admin
        .delete(&format!("/api/stages/{sid}"))
        .await
        .expect(200);
    let core = s.core();
    assert!(
        core.engine()
            .store()
            .stage_timers(sid)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deleting_a_project_stops_its_work() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(bid, "slow", &shell_stage("root", "sleeper", &["sleep 60"]))
        .await;
    let flow = admin.flow(bid).await;
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    admin
        .wait_for(&format!("/api/jobs/{jid}"), WAIT, |j| {
            j["steps"][0]["status"] == 1
        })
        .await;
    admin
        .delete(&format!("/api/projects/{pid}"))
        .await
        .expect(200);
    let job = s.core().engine().store().job(jid).await.unwrap().unwrap();
    assert_eq!(job.completion_status, Some(8));
    assert_eq!(
        job.notes.as_deref(),
        Some("canceled: the project was deleted")
    );
    // The agent is free again for other work.
    let p2 = admin.project("q").await;
    let b2 = admin.branch(p2, "Main").await;
    admin
        .stage(b2, "quick", &shell_stage("root", "q", &["echo quick"]))
        .await;
    let f2 = admin.flow(b2).await;
    admin
        .wait_flow(f2["id"].as_i64().unwrap(), Duration::from_secs(30))
        .await;
}

/// The dynamic-schema example without its git checkout: a parent stage
/// stores flow data with the `data` tool at JSON pointers, the child stage's
/// code makes one job per listed suite from `ctx.flow.data`, and its steps
/// read `#{flow.data...}` when they run (§8.2 rows 18 and 41). The schema
/// sees exactly the ctx keys of the original and steps see the step-time
/// values (row 24).
#[tokio::test]
async fn flow_data_shapes_child_stages_and_steps_see_the_ctx() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let env = r#"{"system": "any", "agents_group": "all", "config": "default"}"#;
    let prepare = format!(
        r#"def stage(ctx):
    return {{"parent": "root", "triggers": {{"parent": True}}, "jobs": [{{"name": "prepare", "steps": [
        {{"tool": "shell", "cmd": "echo '[\"unit\", \"e2e\"]' > tests.json"}},
        {{"tool": "data", "file": "tests.json", "json_pointer": "/tests"}},
        {{"tool": "data", "value": "{{\"abc\": 123}}", "json_pointer": "/extra"}}],
        "environments": [{env}]}}]}}
"#
    );
    let tests = format!(
        r#"def stage(ctx):
    jobs = []
    for ts in (ctx.flow.data.tests or ["none"]):
        jobs.append({{"name": "tests %s" % ts, "steps": [
            {{"tool": "shell", "cmd": "echo 'suite %s abc=#{{flow.data.extra.abc}} keys=%s'" % (ts, " ".join(sorted(ctx.keys())))}},
            {{"tool": "shell", "cmd": "false"}},
            {{"tool": "shell", "when": "always", "cmd": "echo 'prev=#{{prev_ok}} anyerr=#{{was_any_error}} noerr=#{{was_no_error}} idx=#{{step.index}} job=#{{job.name}} stage=#{{stage.name}} dev=#{{is_dev}} branch=#{{branch_name}} project=#{{project.name}}'"}}],
            "environments": [{env}]}})
    return {{"parent": "prepare", "triggers": {{"parent": True}}, "jobs": jobs}}
"#
    );
    admin.stage(bid, "prepare", &prepare).await;
    admin.stage(bid, "tests", &tests).await;

    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let flow_data = admin
        .get(&format!(
            "/api/user_data?scope=flow&entity_id={}",
            done["id"]
        ))
        .await;
    let stored: Value = serde_json::from_str(flow_data.expect(200)["data"].as_str().unwrap())
        .expect("user data is a JSON text");
    assert_eq!(
        stored,
        json!({"tests": ["unit", "e2e"], "extra": {"abc": 123}})
    );

    let runs = done["runs"].as_array().unwrap();
    let tests_run = runs
        .iter()
        .find(|r| r["stage_name"] == "tests")
        .unwrap_or_else(|| panic!("a tests run: {done}"));
    let jobs = admin.run_jobs(tests_run["id"].as_i64().unwrap()).await;
    let mut names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["tests e2e", "tests unit"]);
    let unit = jobs.iter().find(|j| j["name"] == "tests unit").unwrap();
    let log = admin.job_log(unit["id"].as_i64().unwrap()).await;
    let keys = "always args branch branch_name env flow flow_label is_ci is_dev job never \
                prev_ok project run run_label secrets stage step was_any_error was_no_error";
    assert!(
        log.contains(&format!("suite unit abc=123 keys={keys}")),
        "{log:?}"
    );
    assert!(
        log.contains(
            &"prev=False anyerr=True noerr=False idx=2 job=tests unit stage=tests dev=False branch=Main project=p"
                .to_string()
        ),
        "{log:?}"
    );
}

/// The `data` tool's `jq` and `jsonpatch` operations change the stored flow
/// data on the server (at the step's `json_pointer`), and a bad patch fails
/// the step with a message saying why.
#[tokio::test]
async fn data_jq_and_jsonpatch_change_flow_data() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let env = r#"{"system": "any", "agents_group": "all", "config": "default"}"#;
    let code = format!(
        r#"def stage(ctx):
    return {{"parent": "root", "triggers": {{"parent": True}}, "jobs": [{{"name": "d", "steps": [
        {{"tool": "data", "value": "{{\"count\": 1, \"tags\": [\"a\"], \"nested\": {{\"n\": 5}}}}"}},
        {{"tool": "data", "operation": "jq", "value": ".count += 41 | .tags += [\"b\"]"}},
        {{"tool": "data", "operation": "jq", "value": ". * 2", "json_pointer": "/nested/n"}},
        {{"tool": "shell", "cmd": "echo '[{{\"op\": \"add\", \"path\": \"/patched\", \"value\": true}}, {{\"op\": \"remove\", \"path\": \"/tags/0\"}}]' > patch.json"}},
        {{"tool": "data", "operation": "jsonpatch", "file": "patch.json"}},
        {{"tool": "data", "operation": "jsonpatch", "value": "[{{\"op\": \"remove\", \"path\": \"/nope\"}}]"}}],
        "environments": [{env}]}}]}}
"#
    );
    admin.stage(bid, "d", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let ud = admin
        .get(&format!(
            "/api/user_data?scope=flow&entity_id={}",
            done["id"]
        ))
        .await;
    let stored: Value = serde_json::from_str(ud.expect(200)["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({"count": 42, "tags": ["b"], "nested": {"n": 10}, "patched": true})
    );
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    let steps = jobs[0]["steps"].as_array().unwrap();
    assert_eq!(steps[5]["status"], 3, "{:?}", steps[5]);
    assert!(
        steps[5]["result"]["msg"]
            .as_str()
            .unwrap()
            .contains("the JSON patch does not apply"),
        "{:?}",
        steps[5]
    );
}

/// The `data` tool's `get` (this server's): a step reads the value at its
/// pointer of its scope's data, writes it to its `file` and shows it in its
/// log; nothing is stored.
#[tokio::test]
async fn data_get_reads_stored_data_into_a_file() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let env = r#"{"system": "any", "agents_group": "all", "config": "default"}"#;
    let code = format!(
        r#"def stage(ctx):
    return {{"parent": "root", "triggers": {{"parent": True}}, "jobs": [{{"name": "d", "steps": [
        {{"tool": "data", "value": "{{\"count\": 1, \"nested\": {{\"n\": 5, \"tags\": [\"x\"]}}}}"}},
        {{"tool": "data", "value": "{{\"release\": \"1.2\"}}", "scope": "branch-ci"}},
        {{"tool": "data", "operation": "get", "json_pointer": "/nested", "file": "out/nested.json"}},
        {{"tool": "data", "operation": "get", "scope": "branch-ci", "json_pointer": "/release"}},
        {{"tool": "data", "operation": "get", "json_pointer": "/missing"}},
        {{"tool": "shell", "cmd": "cat out/nested.json"}}],
        "environments": [{env}]}}]}}
"#
    );
    admin.stage(bid, "d", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(jobs[0]["completion_status"], 0, "{}", jobs[0]);
    let log = admin.job_log(jobs[0]["id"].as_i64().unwrap()).await;
    let text = log.join("\n");
    assert!(
        text.contains("branch-ci data at /release: \"1.2\""),
        "{text}"
    );
    assert!(text.contains("flow data at /missing: null"), "{text}");
    assert!(text.contains("wrote it to out/nested.json"), "{text}");
    // The file the shell step printed is the stored value as JSON.
    let start = log
        .iter()
        .position(|l| l == "$ cat out/nested.json")
        .unwrap();
    let printed: Vec<&str> = log[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("---"))
        .map(String::as_str)
        .collect();
    let read: Value = serde_json::from_str(&printed.join("\n")).unwrap();
    assert_eq!(read, json!({"n": 5, "tags": ["x"]}));
    // Reading stored nothing.
    let ud = admin
        .get(&format!(
            "/api/user_data?scope=flow&entity_id={}",
            done["id"]
        ))
        .await;
    let stored: Value = serde_json::from_str(ud.expect(200)["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({"count": 1, "nested": {"n": 5, "tags": ["x"]}})
    );
}

/// `pylint` on this project's agent feeds the issues analysis: the run's
/// issues are listed, and an issue that appears in the next flow counts as
/// new.
#[tokio::test]
async fn pylint_issues_reach_the_run() {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("pylint").is_file()));
    if !required(found, "pylint", "pip install pylint") {
        return;
    }
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let env = r#"{"system": "any", "agents_group": "all", "config": "default"}"#;
    let code = format!(
        r#"def stage(ctx):
    return {{"parent": "root", "triggers": {{"parent": True}}, "jobs": [{{"name": "lint", "steps": [
        {{"tool": "shell", "cmd": "mkdir -p pkg && touch pkg/__init__.py && printf 'import os\\n' > pkg/m.py && if [ #{{KK_FLOW_SEQ}} -gt 1 ]; then printf 'y = undefined_name\\n' >> pkg/m.py; fi"}},
        {{"tool": "pylint", "modules_or_packages": "pkg"}}],
        "environments": [{env}]}}]}}
"#
    );
    admin.stage(bid, "lint", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let run = &done["runs"][0];
    assert_eq!(run["jobs_error"], 0, "{done}");
    let rid = run["id"].as_i64().unwrap();
    let issues = admin.get(&format!("/api/runs/{rid}/issues")).await;
    let body = issues.expect(200);
    let items = body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["symbol"] == "unused-import" && i["path"] == "pkg/m.py" && i["line"] == 1),
        "{body}"
    );
    // The next flow has an undefined name too: one new issue (the unused
    // import, unchanged, is not).
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let run = &done["runs"][0];
    assert_eq!(run["issues_new"], 1, "{done}");
    assert!(run["issues_total"].as_i64().unwrap() >= 2, "{done}");
}

/// Flows created at once on one branch all start, each with sequences of
/// its own: no creation fails on another's locks (on PostgreSQL, sequence
/// rows held for a whole transaction deadlocked), none shares a number.
#[tokio::test]
async fn flows_created_at_once_on_one_branch_get_distinct_sequences() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    for name in ["one", "two"] {
        admin
            .stage(bid, name, &shell_stage("root", "j", &["true"]))
            .await;
    }
    let n = 16;
    let answers = futures_util::future::join_all((0..n).map(|_| {
        let admin = &admin;
        async move {
            admin
                .post(&format!("/api/branches/{bid}/flows/ci"), json!({}))
                .await
        }
    }))
    .await;
    let mut flow_seqs = Vec::new();
    let mut run_seqs = Vec::new();
    for a in &answers {
        let flow = a.expect(201);
        flow_seqs.push(flow["args"]["KK_FLOW_SEQ"].as_str().unwrap().to_string());
        for stage in ["one", "two"] {
            let run = run_of(flow, stage);
            run_seqs.push(format!("{stage}-{}", run["args"]["KK_RUN_SEQ"]));
        }
    }
    flow_seqs.sort_by_key(|s| s.parse::<i64>().unwrap());
    let want: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    assert_eq!(flow_seqs, want);
    run_seqs.sort();
    run_seqs.dedup();
    assert_eq!(run_seqs.len(), 2 * n, "{run_seqs:?}");
}
