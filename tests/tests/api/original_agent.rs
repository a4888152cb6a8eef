//! The original Kraken CI agent (1.7.36, Python, unchanged, Apache-2.0:
//! `tests/fixtures/original-agent`) against this server, as an existing
//! installation would run it: installed in a virtualenv (`.ci/run` does it
//! and exports `KRAKEN_TEST_KKAGENT`), started without `--no-update`,
//! talking the original `/backend` protocol and sending its output as UDP
//! datagrams.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use kraken_tests::{Client, TestServer, required};

const WAIT: Duration = Duration::from_secs(120);

/// The `kkagent` to run: `KRAKEN_TEST_KKAGENT`, else the README's venv
/// (see [`required`]).
fn kkagent() -> Option<PathBuf> {
    let path = std::env::var_os("KRAKEN_TEST_KKAGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/kkagent-venv/bin/kkagent"));
    required(
        path.is_file(),
        &format!("the original agent at {}", path.display()),
        "see tests/fixtures/original-agent/README.md, or set KRAKEN_TEST_KKAGENT",
    )
    .then_some(path)
}

/// What the agent needs around it (its README): `kktool` under
/// `/opt/kraken`, a `sudo` that just runs its arguments, `pytest-3`.
fn surroundings(kkagent: &Path, shims: &Path) {
    let bin = kkagent.parent().unwrap();
    std::fs::create_dir_all("/opt/kraken")
        .expect("the original agent runs its tools from /opt/kraken (run the test as root)");
    // Tests run at once: each links a name of its own, renamed into place
    // (a rename replaces the link atomically).
    let tmp = Path::new("/opt/kraken").join(format!(".kktool-{}", rand::random::<u64>()));
    std::os::unix::fs::symlink(bin.join("kktool"), &tmp).unwrap();
    std::fs::rename(&tmp, "/opt/kraken/kktool").unwrap();
    std::fs::create_dir_all(shims).unwrap();
    std::fs::write(shims.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shims.join("sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_file(shims.join("pytest-3"));
    std::os::unix::fs::symlink(bin.join("pytest"), shims.join("pytest-3")).unwrap();
}

/// Wait until the agent registered; authorize it; its id.
async fn authorize(admin: &Client) -> i64 {
    let end = Instant::now() + WAIT;
    loop {
        let a = admin.get("/api/agents?unauthorized=true").await;
        if let Some(id) = a.body["items"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["address"] == "127.0.0.1"))
            .and_then(|x| x["id"].as_i64())
        {
            admin
                .patch("/api/agents", json!([{"id": id, "authorized": true}]))
                .await
                .expect(200);
            return id;
        }
        assert!(Instant::now() < end, "the original agent never registered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stage(steps: &[Value]) -> String {
    job_in("all", "orig", "root", steps)
}

#[tokio::test]
async fn the_original_agent_runs_shell_junit_pytest_and_honours_cancel() {
    let Some(kk) = kkagent() else { return };
    let work = tempfile::tempdir().unwrap();
    let shims = work.path().join("shims");
    surroundings(&kk, &shims);
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": true}}),
        )
        .await
        .expect(200);
    let mut agent = start_agent(&kk, &s, work.path(), &shims);
    authorize(&admin).await;

    let pid = admin.project("legacy").await;
    let bid = admin.branch(pid, "main").await;
    admin
        .post(
            &format!("/api/projects/{pid}/secrets"),
            json!({"name": "tok", "kind": "simple", "secret": "hush-4711"}),
        )
        .await
        .expect(201);
    let junit = r#"<testsuite><testcase classname="t" name="ok"/><testcase classname="t" name="bad"><failure message="no"/></testcase></testsuite>"#;
    let code = stage(&[
        json!({"tool": "shell", "cmd": format!("echo orig-out-1; echo 'secret=#{{KK_SECRET_SIMPLE_tok}}'; echo '{junit}' > r.xml; printf 'def test_a():\\n    pass\\n' > test_o.py")}),
        json!({"tool": "junit_collect", "file_glob": "r.xml"}),
        json!({"tool": "pytest", "params": "test_o.py"}),
        json!({"tool": "shell", "cmd": "false"}),
        json!({"tool": "shell", "cmd": "echo after-failure", "when": "always"}),
    ]);
    admin.stage(bid, "legacy", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let run = &done["runs"][0];
    let jobs = admin.run_jobs(run["id"].as_i64().unwrap()).await;
    let job = &jobs[0];
    let steps = job["steps"].as_array().unwrap();
    let statuses: Vec<i64> = steps
        .iter()
        .map(|s| s["status"].as_i64().unwrap_or(-1))
        .collect();
    let agent_log = || std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();
    assert_eq!(statuses, [2, 2, 2, 3, 2], "{job}\n{}", agent_log());
    // Tests from junit_collect and pytest.
    assert_eq!(run["tests_total"], 3, "{run}");
    assert_eq!(run["tests_passed"], 2, "{run}");
    // The job's log has the output (sent as UDP datagrams), secrets masked.
    let jid = job["id"].as_i64().unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = admin.job_log(jid).await.join("\n");
        if log.contains("after-failure") || Instant::now() > end {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(log.contains("orig-out-1"), "{log}");
    assert!(log.contains("after-failure"), "{log}");
    assert!(!log.contains("hush-4711"), "{log}");

    // Cancel of a running `sleep`: the job ends, cancelled, at once.
    admin
        .put(
            &format!("/api/stages/{}", done["stages"][0]["id"]),
            json!({"name": "legacy", "schema_code": stage(&[json!({"tool": "shell", "cmd": "sleep 300", "timeout": 600})])}),
        )
        .await
        .expect(200);
    let f = admin.flow(bid).await;
    let rid = f["runs"][0]["id"].as_i64().unwrap();
    admin
        .wait_for(&format!("/api/runs/{rid}/jobs"), WAIT, |b| {
            b["items"][0]["steps"][0]["status"] == 1
        })
        .await;
    let cancelled_at = Instant::now();
    admin.delete(&format!("/api/runs/{rid}")).await.expect(200);
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(60), "{done}");
    let jobs = admin.run_jobs(rid).await;
    assert_eq!(jobs[0]["completion_status"], 8, "{:?}", jobs[0]);
    // It never tried to update itself.
    assert!(!agent_log().contains("updating agent"), "{}", agent_log());
    let _ = agent.kill().await;
}

/// Start the original agent as installed (without `--no-update`); it logs
/// to `<work>/agent.log`.
fn start_agent(kk: &Path, s: &TestServer, work: &Path, shims: &Path) -> tokio::process::Child {
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    tokio::process::Command::new(kk)
        .args(["run", "-s", &format!("{}/", s.url), "-d"])
        .arg(work.join("data"))
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.join("agent.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn job_in(group: &str, name: &str, parent: &str, steps: &[Value]) -> String {
    let job = json!({"name": name, "steps": steps,
        "environments": [{"system": "any", "agents_group": group, "config": "c"}]})
    .to_string()
    .replace(":true", ":True");
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"{parent}\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{job}]}}\n"
    )
}

#[tokio::test]
async fn the_original_agents_git_artifacts_and_cache_tools_work_through_the_s3_endpoint() {
    let Some(kk) = kkagent() else { return };
    let work = tempfile::tempdir().unwrap();
    let shims = work.path().join("shims");
    surroundings(&kk, &shims);
    // One built-in agent (this project's, group `all`) beside the original.
    let s = TestServer::start_with_agents(1).await;
    let admin = s.admin().await;
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": true}}),
        )
        .await
        .expect(200);
    let mut agent = start_agent(&kk, &s, work.path(), &shims);
    let aid = authorize(&admin).await;
    let gid = admin
        .post("/api/groups", json!({"name": "orig"}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    admin
        .put(
            &format!("/api/agents/{aid}"),
            json!({"groups": [{"id": gid}]}),
        )
        .await
        .expect(200);
    let agent_log = || std::fs::read_to_string(work.path().join("agent.log")).unwrap_or_default();

    let (url, first, second) = kraken_tests::repo_with_two_commits(work.path(), "repo");
    let pid = admin.project("legacy-s3").await;
    let bid = admin.branch(pid, "main").await;
    // The original agent: clone, restore the cache, make a 7 MiB artifact
    // (sent in parts) and store it, save the cache.
    admin
        .stage(bid, "up", &job_in("orig", "up", "root", &[
            json!({"tool": "git", "checkout": url, "branch": "main", "destination": "repo"}),
            json!({"tool": "cache", "action": "restore", "keys": ["deps"]}),
            json!({"tool": "shell", "script": "set -e\necho \"restored=$(cat d/v.txt 2>/dev/null || echo none)\"\necho \"cloned=$(git -C repo rev-parse HEAD)\"\nmkdir -p d\necho cache-v1 > d/v.txt\nhead -c 7340032 /dev/urandom > big.bin\nsha256sum big.bin > big.sha\n"}),
            json!({"tool": "artifacts", "source": ["big.bin", "big.sha"], "public": true}),
            json!({"tool": "cache", "action": "save", "key": "deps", "paths": ["d"]}),
        ]))
        .await;
    // This project's agent: the original's artifacts, byte-identical; and
    // artifacts of its own for the next stage.
    admin
        .stage(bid, "mid", &job_in("all", "mid", "up", &[
            json!({"tool": "artifacts", "action": "download", "source": ["big.bin", "big.sha"]}),
            json!({"tool": "shell", "cmd": "sha256sum -c big.sha && head -c 3000000 /dev/urandom > ours.bin && sha256sum ours.bin > ours.sha"}),
            json!({"tool": "artifacts", "source": ["ours.bin", "ours.sha"]}),
        ]))
        .await;
    // The original agent again: this project's agent's artifacts.
    admin
        .stage(bid, "down", &job_in("orig", "down", "mid", &[
            json!({"tool": "artifacts", "action": "download", "source": ["ours.bin", "ours.sha"]}),
            json!({"tool": "shell", "cmd": "sha256sum -c ours.sha"}),
        ]))
        .await;

    let mut logs = Vec::new();
    for round in 0..2 {
        let f = admin.flow(bid).await;
        let fid = f["id"].as_i64().unwrap();
        let done = admin.wait_flow(fid, WAIT).await;
        let runs = done["runs"].as_array().unwrap().clone();
        for run in &runs {
            let jobs = admin.run_jobs(run["id"].as_i64().unwrap()).await;
            let statuses: Vec<i64> = jobs[0]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["status"].as_i64().unwrap_or(-1))
                .collect();
            assert!(
                statuses.iter().all(|s| *s == 2),
                "round {round}, stage {}: {statuses:?}\n{}\n{}",
                run["stage_name"],
                jobs[0],
                agent_log()
            );
        }
        assert_eq!(runs.len(), 3, "{done}");
        // Through /artifacts, the original agent's upload is the file it hashed.
        let get = |path: String| {
            let admin = &admin;
            let base = &s.url;
            async move {
                let r = admin
                    .http
                    .get(format!("{base}{path}"))
                    .bearer_auth(admin.token.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200, "{path}");
                r.bytes().await.unwrap().to_vec()
            }
        };
        let big = get(format!("/artifacts/public/f/{fid}/big.bin")).await;
        assert_eq!(big.len(), 7_340_032);
        let sha =
            String::from_utf8(get(format!("/artifacts/public/f/{fid}/big.sha")).await).unwrap();
        use sha2::Digest;
        assert_eq!(
            sha.split_whitespace().next().unwrap(),
            format!("{:x}", sha2::Sha256::digest(&big))
        );
        let up_job = admin
            .run_jobs(
                runs.iter().find(|r| r["stage_name"] == "up").unwrap()["id"]
                    .as_i64()
                    .unwrap(),
            )
            .await[0]["id"]
            .as_i64()
            .unwrap();
        logs.push(admin.job_log(up_job).await.join("\n"));
    }
    // The clone is of the repository's head; the cache saved by the first
    // flow is restored by the second.
    assert!(logs[0].contains(&format!("cloned={second}")), "{}", logs[0]);
    assert!(logs[0].contains("restored=none"), "{}", logs[0]);
    assert!(logs[1].contains("restored=cache-v1"), "{}", logs[1]);
    // The git tool keeps its bundle in the object storage.
    let bundles = s
        .core()
        .storage()
        .list(&format!("git/{bid:08}"))
        .await
        .unwrap();
    assert!(
        bundles.iter().any(|b| b.key.ends_with("/repo.bundle")),
        "{bundles:?}"
    );
    // A push naming the first commit: the original's git step checks out
    // the trigger's commit (it gets `trigger_data` and `http_url`).
    admin
        .webhooks(
            pid,
            json!({"github_enabled": true, "github_secret": "s3cr3t"}),
        )
        .await;
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000", "after": first,
        "repository": {"clone_url": url, "full_name": "o/r"},
        "pusher": {"name": "dev", "email": "dev@example.com"},
        "commits": [{"id": first, "message": "first", "author": {"name": "Dev", "email": "dev@example.com"},
                     "added": [], "modified": ["f.txt"], "removed": []}]
    }))
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/{pid}/github", s.url))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", "orig-push-1")
        .header(
            "X-Hub-Signature-256",
            kraken_core::webhooks::sign_sha256("s3cr3t", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 3
        })
        .await;
    let fid = flows["items"][0]["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let up = done["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage_name"] == "up")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let job = admin.run_jobs(up).await[0]["id"].as_i64().unwrap();
    let log = admin.job_log(job).await.join("\n");
    assert!(
        log.contains(&format!("cloned={first}")),
        "{log}\n{}",
        agent_log()
    );
    logs.push(log);
    // Per-job credentials are the agent's only: not in the job as the API
    // shows it, not in its log.
    let jobs = admin.get(&format!("/api/runs/{up}/jobs")).await;
    assert!(jobs.expect(200).to_string().contains("\"checkout\""));
    assert!(
        !jobs.body.to_string().contains("minio_secret_key"),
        "{}",
        jobs.body
    );
    assert!(
        !logs.iter().any(|l| l.contains("minio_secret_key")),
        "{logs:?}"
    );
    let _ = agent.kill().await;
}
