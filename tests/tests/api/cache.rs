//! The `cache` tool end to end: a job saves files under a key, the same
//! job of the next flow restores them byte for byte, through a remote
//! agent's HTTP transport and the server's blob storage.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use kraken_tests::{Client, TestServer};

const WAIT: Duration = Duration::from_secs(90);

/// Start an agent speaking HTTP to `s` (as `kraken agent` does) and
/// authorize it; it runs until the returned sender says stop.
async fn http_agent(
    s: &TestServer,
    admin: &Client,
    work: &std::path::Path,
) -> tokio::sync::watch::Sender<bool> {
    let transport = kraken_core::agent::Http::for_agent(&s.url, work).unwrap();
    let agent = kraken_core::agent::Agent::new(
        Arc::new(transport),
        kraken_core::agent::AgentConfig {
            retry: Duration::from_millis(200),
            ..kraken_core::agent::AgentConfig::new("cache-agent", work)
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move { agent.run(stop_rx).await });
    let agents = admin
        .wait_for("/api/agents?unauthorized=true", WAIT, |b| b["total"] == 1)
        .await;
    let id = agents["items"][0]["id"].as_i64().unwrap();
    admin
        .patch("/api/agents", json!([{"id": id, "authorized": true}]))
        .await
        .expect(200);
    stop_tx
}

/// Entries (job ids) stored for `key` of the stage's job, in the data dir
/// (folders with files: a purge leaves empty folders behind on disk).
fn stored_entries(s: &TestServer, branch: i64, stage: i64, key: &str) -> Vec<i64> {
    let dir = s
        .data_dir
        .join(format!("cache/{branch:08}/{stage}-cache_job/{key}"));
    let mut ids: Vec<i64> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let files = std::fs::read_dir(e.path()).ok()?.count();
                (files > 0).then_some(())?;
                e.file_name().to_str()?.parse().ok()
            })
            .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_cache_saved_by_one_flow_is_restored_by_the_next() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let work = tempfile::tempdir().unwrap();
    let stop = http_agent(&s, &admin, work.path()).await;

    // An absolute path outside the job: random bytes and a nested file.
    let outside = tempfile::tempdir().unwrap();
    let abs = outside.path().join("deps");
    std::fs::create_dir_all(abs.join("sub")).unwrap();
    let blob: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(abs.join("data.bin"), &blob).unwrap();
    std::fs::write(abs.join("sub/x.txt"), "nested\n").unwrap();

    // Restore (nothing the first time; a key never saved restores nothing),
    // show what is there, make it, save it.
    let steps = json!([
        {"tool": "cache", "action": "restore", "keys": ["deps", "never-saved"]},
        {"tool": "shell", "cmd": "cat aaa/a.txt 2>/dev/null || echo no-aaa-yet; mkdir -p aaa; echo hello-cache > aaa/a.txt"},
        {"tool": "cache", "action": "save", "key": "deps", "paths": ["aaa", abs.to_str().unwrap()]},
    ]);
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"cache job\", \"steps\": {steps}, \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}}]}}]}}\n"
    );
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let stage = admin.stage(bid, "cached", &code).await;

    let run_job = |flow: serde_json::Value| {
        let admin = &admin;
        async move {
            let done = admin.wait_flow(flow["id"].as_i64().unwrap(), WAIT).await;
            let run = done["runs"][0]["id"].as_i64().unwrap();
            let job = admin.run_jobs(run).await.remove(0);
            assert_eq!(job["completion_status"], 0, "{job}");
            let log = admin.job_log(job["id"].as_i64().unwrap()).await.join("\n");
            (job["id"].as_i64().unwrap(), log)
        }
    };

    let (first, log) = run_job(admin.flow(bid).await).await;
    assert!(log.contains("no cache for key 'deps'"), "{log}");
    assert!(log.contains("no cache for key 'never-saved'"), "{log}");
    assert!(log.lines().any(|l| l == "no-aaa-yet"), "{log}");
    assert!(log.contains("cache key 'deps': saved 2 path(s)"), "{log}");
    assert_eq!(stored_entries(&s, bid, stage, "deps"), [first]);

    // Gone from the machine: only the cache has it now.
    std::fs::remove_dir_all(&abs).unwrap();

    let (second, log) = run_job(admin.flow(bid).await).await;
    assert!(
        log.contains(&format!(
            "cache key 'deps': restoring what job {first} saved"
        )),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l == "hello-cache"),
        "restored in the job dir: {log}"
    );
    assert!(!log.lines().any(|l| l == "no-aaa-yet"), "{log}");
    assert!(log.contains("no cache for key 'never-saved'"), "{log}");
    assert!(
        std::fs::read(abs.join("data.bin")).unwrap() == blob,
        "the absolute path came back byte for byte"
    );
    assert_eq!(
        std::fs::read_to_string(abs.join("sub/x.txt")).unwrap(),
        "nested\n"
    );
    // The second save supersedes the first: one entry per key is kept.
    assert_eq!(stored_entries(&s, bid, stage, "deps"), [second]);

    // An entry whose archives vanish between look-up and fetch (a newer
    // save purged it meanwhile) is skipped: the job goes on and passes.
    let entry = s
        .data_dir
        .join(format!("cache/{bid:08}/{stage}-cache_job/deps/{second}"));
    for f in std::fs::read_dir(&entry).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "gz") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let (_, log) = run_job(admin.flow(bid).await).await;
    assert!(
        log.contains("of cache key 'deps' (replaced meanwhile?)"),
        "{log}"
    );
    assert!(log.contains("skipped"), "{log}");
    let _ = stop.send(true);
}

/// Saving a path that does not exist fails the step, as in the original;
/// the cache endpoints answer only the agent running the job.
#[tokio::test]
async fn saving_a_missing_path_fails_and_strangers_are_refused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let steps = json!([
        {"tool": "cache", "action": "save", "key": "k", "paths": ["not-here"]},
    ]);
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"c\", \"steps\": {steps}, \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}}]}}]}}\n"
    );
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin.stage(bid, "c", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await
        .remove(0);
    assert_ne!(job["completion_status"], 0, "{job}");
    let jid = job["id"].as_i64().unwrap();
    let log = admin.job_log(jid).await.join("\n");
    assert!(log.contains("path 'not-here' does not exist"), "{log}");

    // Nobody but the job's agent reads or writes its cache.
    let r = reqwest::Client::new()
        .get(format!("{}/backend/cache/{jid}?key=k", s.url))
        .bearer_auth("not-an-agent-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "{:?}", r.text().await);
}

/// Pull requests (DEV flows) never write what CI flows restore: a DEV job
/// reads CI's entry when it has none of its own, and saves apart.
#[tokio::test]
async fn dev_flows_read_ci_caches_but_never_write_them() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let work = tempfile::tempdir().unwrap();
    let stop = http_agent(&s, &admin, work.path()).await;
    let steps = json!([
        {"tool": "cache", "action": "restore", "key": "deps"},
        {"tool": "shell", "cmd": "echo \"found=$(cat aaa/a.txt 2>/dev/null || echo none)\"; mkdir -p aaa; echo #{KK_FLOW_TYPE} > aaa/a.txt"},
        {"tool": "cache", "action": "save", "key": "deps", "paths": ["aaa"]},
    ]);
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"cache job\", \"steps\": {steps}, \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}}]}}]}}\n"
    );
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin.stage(bid, "cached", &code).await;
    let found = |kind: &'static str| {
        let admin = &admin;
        async move {
            let f = admin
                .post(&format!("/api/branches/{bid}/flows/{kind}"), json!({}))
                .await;
            let done = admin
                .wait_flow(f.expect(201)["id"].as_i64().unwrap(), WAIT)
                .await;
            let job = admin
                .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
                .await
                .remove(0);
            assert_eq!(job["completion_status"], 0, "{job}");
            let log = admin.job_log(job["id"].as_i64().unwrap()).await;
            log.iter()
                .find_map(|l| l.trim_end().strip_prefix("found=").map(str::to_string))
                .unwrap_or_default()
        }
    };
    assert_eq!(found("ci").await, "none");
    assert_eq!(found("dev").await, "CI", "a DEV job reads CI's entry");
    assert_eq!(found("ci").await, "CI", "a CI job never reads a DEV entry");
    assert_eq!(found("dev").await, "DEV", "a DEV job prefers its own");
    let _ = stop.send(true);
}
