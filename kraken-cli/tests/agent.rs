//! The `kraken agent` binary against a real server.

use std::time::Duration;

use serde_json::json;

use kraken_tests::{TestServer, shell_stage};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_remote_kraken_agent_process_runs_a_job() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let work = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kraken"))
        .args([
            "agent",
            "--server",
            &s.url,
            "--address",
            "remote-1",
            "--one-job",
        ])
        .arg("--work-dir")
        .arg(work.path())
        .env("KRAKEN_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start kraken agent");
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
    admin
        .stage(
            bid,
            "build",
            &shell_stage("root", "remote", &["echo on-the-remote-agent; pwd"]),
        )
        .await;
    let fid = admin.flow(bid).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await
        .remove(0);
    assert_eq!(job["agent_name"], "remote-1");
    assert_eq!(job["completion_status"], 0, "{job}");
    let log = admin.job_log(job["id"].as_i64().unwrap()).await;
    assert!(log.contains(&"on-the-remote-agent".to_string()), "{log:?}");
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
}
