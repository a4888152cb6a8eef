//! The `kraken agent` binary against a real server.

use std::time::Duration;

use serde_json::json;

use kraken_tests::{TestServer, shell_stage};

const WAIT: Duration = Duration::from_secs(60);

/// `kraken agent --one-job` at address `remote-1`, working in `work`.
fn spawn_agent(server: &str, work: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kraken"))
        .args([
            "agent",
            "--server",
            server,
            "--address",
            "remote-1",
            "--one-job",
        ])
        .arg("--work-dir")
        .arg(work)
        .env("KRAKEN_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start kraken agent")
}

/// Two `kraken agent --one-job` processes, one after the other, run a
/// parent stage that uploads an artifact and a child stage that downloads
/// it: the agent's whole HTTP transport (backend calls, logs, artifacts).
#[tokio::test]
async fn a_remote_kraken_agent_process_runs_a_job() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let work = tempfile::tempdir().unwrap();
    let mut child = spawn_agent(&s.url, work.path());
    // It registers; an admin authorizes it.
    let agents = admin
        .wait_for("/api/agents?unauthorized=true", WAIT, |b| b["total"] == 1)
        .await;
    assert_eq!(agents["items"][0]["address"], "remote-1");
    let id = agents["items"][0]["id"].as_i64().unwrap();
    admin
        .patch("/api/agents", json!([{"id": id, "authorized": true}]))
        .await
        .expect(200);
    admin
        .wait_for(&format!("/api/agents/{id}"), WAIT, |a| {
            a["host_info"]["system"].is_string()
        })
        .await;

    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = shell_stage(
        "root",
        "remote",
        &["echo on-the-remote-agent; pwd; mkdir -p out; echo artifact-body > out/a.txt"],
    )
    .replace(
        "}], \"environments\"",
        "}, {\"tool\": \"artifacts\", \"source\": \"out/a.txt\", \"public\": True}], \"environments\"",
    );
    admin.stage(bid, "build", &code).await;
    let download = shell_stage("build", "fetch", &["find back -type f -exec cat {} +"]).replace(
        "\"steps\": [",
        "\"steps\": [{\"tool\": \"artifacts\", \"action\": \"download\", \"source\": \"out/a.txt\", \"destination\": \"back\"}, ",
    );
    admin.stage(bid, "fetch", &download).await;
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    // The parent run completes; its child waits for an agent.
    let runs = admin
        .wait_for(&format!("/api/flows/{fid}"), WAIT, |f| {
            f["runs"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await["runs"]
        .clone();
    let run_of = |stage: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["stage_name"] == stage)
            .unwrap_or_else(|| panic!("a {stage} run: {runs}"))["id"]
            .as_i64()
            .unwrap()
    };
    let (build_run, fetch_run) = (run_of("build"), run_of("fetch"));
    let job = admin.run_jobs(build_run).await.remove(0);
    assert_eq!(job["agent_name"], "remote-1");
    assert_eq!(job["completion_status"], 0, "{job}");
    let log = admin.job_log(job["id"].as_i64().unwrap()).await;
    assert!(log.contains(&"on-the-remote-agent".to_string()), "{log:?}");
    let artifacts = admin.get(&format!("/api/flows/{fid}/artifacts")).await;
    assert_eq!(artifacts.expect(200)["total"], 1, "{}", artifacts.body);
    assert_eq!(artifacts.body["items"][0]["path"], "out/a.txt");
    assert!(
        log.iter()
            .any(|l| l.starts_with(work.path().to_str().unwrap())),
        "ran in its work dir: {log:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("agent exits after one job")
        .unwrap();
    assert!(status.success());

    // The next one-job agent runs the child stage.
    let mut second = spawn_agent(&s.url, work.path());
    let done = admin.wait_flow(fid, WAIT).await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 2);
    let fetch = admin.run_jobs(fetch_run).await.remove(0);
    assert_eq!(fetch["completion_status"], 0, "{fetch}");
    let log = admin.job_log(fetch["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&"artifact-body".to_string()),
        "the artifact came back: {log:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), second.wait())
        .await
        .expect("the second agent exits after its job")
        .unwrap();
    assert!(status.success());
}

/// `kraken agent --one-job` labelled `label`, working in `work`.
fn spawn_labelled(server: &str, label: &str, work: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kraken"))
        .args(["agent", "--server", server, "--address", label, "--one-job"])
        .arg("--work-dir")
        .arg(work)
        .env("KRAKEN_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start kraken agent")
}

/// Two agents with the same address are two agents (the address is a
/// label; each is known by the key in its work dir), and each job runs on
/// one of them, once. A work dir serves one agent at a time.
#[tokio::test]
async fn agents_with_the_same_address_are_distinct_and_run_a_job_once() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let (w1, w2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = spawn_labelled(&s.url, "twin", w1.path());
    let mut second = spawn_labelled(&s.url, "twin", w2.path());
    let waiting = admin
        .wait_for("/api/agents?unauthorized=true", WAIT, |b| b["total"] == 2)
        .await;
    let ids: Vec<i64> = waiting["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["address"], "twin");
            a["id"].as_i64().unwrap()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    // A third process on a work dir in use is refused.
    let third = spawn_labelled(&s.url, "twin", w1.path())
        .wait_with_output()
        .await
        .unwrap();
    assert!(!third.status.success());
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let body: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "authorized": true}))
        .collect();
    admin.patch("/api/agents", json!(body)).await.expect(200);
    for id in &ids {
        admin
            .wait_for(&format!("/api/agents/{id}"), WAIT, |a| {
                a["host_info"]["system"].is_string() && a["last_seen"].is_string()
            })
            .await;
    }

    let ran = tempfile::tempdir().unwrap();
    let file = ran.path().join("ran.txt");
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let cmd = format!("echo $$ >> {}", file.display());
    admin
        .stage(bid, "build", &shell_stage("root", "j", &[&cmd]))
        .await;
    // Two jobs at once: one for each (one-job) agent.
    let f1 = admin.flow(bid).await["id"].as_i64().unwrap();
    let f2 = admin.flow(bid).await["id"].as_i64().unwrap();
    admin.wait_flow(f1, WAIT).await;
    admin.wait_flow(f2, WAIT).await;
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(lines.lines().count(), 2, "each job ran once: {lines}");
    // One job each: both one-job agents exit.
    for child in [&mut first, &mut second] {
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("agent exits after one job")
            .unwrap();
        assert!(status.success());
    }
    let agents = admin.get("/api/agents").await;
    assert_eq!(agents.expect(200)["total"], 2);
}
