//! Repository polling (`triggers.repo`) end to end against real local git
//! repositories: new commits start a CI flow with the commits recorded,
//! no new commits start nothing, and an unreachable repository is an error
//! on its stage that stops no other trigger.

use std::time::Duration;

use serde_json::Value;

use kraken_tests::{TestServer, git, repo_with_two_commits};

const WAIT: Duration = Duration::from_secs(60);

fn polled_stage(url: &str) -> String {
    format!(
        r#"def stage(ctx):
    return {{"parent": "root", "triggers": {{"repo": {{"url": "{url}", "branch": "main", "interval": "1s"}}}},
        "jobs": [{{"name": "build", "steps": [{{"tool": "git", "checkout": "{url}", "destination": "src"}},
                  {{"tool": "shell", "cmd": "echo commit=$(git -C src rev-parse HEAD)"}}],
        "environments": [{{"system": "any", "agents_group": "all", "config": "default"}}]}}]}}
"#
    )
}

#[tokio::test]
async fn new_commits_start_flows_with_their_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _first, second) = repo_with_two_commits(tmp.path(), "app");
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("polled").await;
    let bid = admin.branch(pid, "main").await;
    admin.stage(bid, "build", &polled_stage(&url)).await;
    // A second stage whose repository does not exist.
    let broken = admin
        .stage(
            bid,
            "broken",
            &polled_stage(&format!("file://{}/missing", tmp.path().display())),
        )
        .await;

    // The first poll finds the repository's recent commits.
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 1
        })
        .await;
    let fid = flows["items"][0]["id"].as_i64().unwrap();
    let flow = admin.wait_flow(fid, WAIT).await;
    let trigger = &flow["trigger"];
    assert_eq!(trigger["trigger"], "git-push");
    assert_eq!(trigger["after"], second.as_str());
    let commits = trigger["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 2, "{trigger}");
    assert_eq!(commits[0]["id"], second.as_str());
    assert_eq!(commits[0]["message"], "second");
    assert_eq!(commits[0]["author"]["name"], "Dev");
    assert_eq!(commits[0]["author"]["email"], "dev@example.com");
    assert_eq!(commits[0]["modified"][0], "f.txt");
    assert_eq!(commits[1]["added"][0], "f.txt");
    let run = &flow["runs"][0];
    assert_eq!(run["stage_name"], "build", "only the polled stage runs");
    assert_eq!(flow["runs"].as_array().unwrap().len(), 1);
    assert_eq!(run["reason"], "commit to repo");
    assert_eq!(run["repo_data"][0]["after"], second.as_str());

    // The broken repository is an error on its stage.
    let st = admin
        .wait_for(&format!("/api/stages/{broken}"), WAIT, |st| {
            st["repo_error"].as_str().is_some()
        })
        .await;
    let err = st["repo_error"].as_str().unwrap();
    assert!(err.starts_with("repository trigger:"), "{err}");
    assert!(err.contains("missing"), "{err}");

    // Several polls later, nothing new: still one flow.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        admin
            .get(&format!("/api/branches/{bid}/flows/ci"))
            .await
            .body["total"],
        1
    );

    // A new commit: a second flow with only that commit, built at it.
    let repo = tmp.path().join("app");
    std::fs::write(repo.join("g.txt"), "new\n").unwrap();
    git(&repo, &["add", "g.txt"]);
    git(&repo, &["commit", "-q", "-m", "third"]);
    let third = git(&repo, &["rev-parse", "HEAD"]);
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 2
        })
        .await;
    let newest: &Value = &flows["items"][0];
    let t = &newest["trigger"];
    assert_eq!(t["before"], second.as_str());
    assert_eq!(t["after"], third.as_str());
    let commits = t["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{t}");
    assert_eq!(commits[0]["message"], "third");
    assert_eq!(commits[0]["added"][0], "g.txt");
    let done = admin.wait_flow(newest["id"].as_i64().unwrap(), WAIT).await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await[0]
        .clone();
    let log = admin.job_log(job["id"].as_i64().unwrap()).await.join("\n");
    assert!(log.contains(&format!("commit={third}")), "{log}");
}

#[tokio::test]
async fn a_bad_repo_trigger_is_refused_when_the_stage_is_saved() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"repo\": {\"url\": \"https://h/r.git\", \"interval\": \"soon\"}}, \"jobs\": []}\n";
    let a = admin
        .post(
            &format!("/api/branches/{bid}/stages"),
            serde_json::json!({"name": "s", "schema_code": code}),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.message().contains("triggers.repo.interval"),
        "{}",
        a.message()
    );
}

/// Stage code whose one job is named `job`.
fn named_job_code(job: &str) -> String {
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"{job}\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": \"echo {job}\"}}], \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}\n"
    )
}

fn commit_file(repo: &std::path::Path, name: &str, content: &str, msg: &str) -> String {
    std::fs::write(repo.join(name), content).unwrap();
    git(repo, &["add", name]);
    git(repo, &["commit", "-q", "-m", msg]);
    git(repo, &["rev-parse", "HEAD"])
}

fn job_name(stage: &Value) -> String {
    stage["schema"]["jobs"][0]["name"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn stage_schema_from_a_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _, _) = repo_with_two_commits(tmp.path(), "schemas");
    let repo = tmp.path().join("schemas");
    let v1 = commit_file(&repo, "kraken.star", &named_job_code("v1"), "v1");
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("repo-schemas").await;
    let bid = admin.branch(pid, "main").await;
    let fields = serde_json::json!({
        "name": "from-repo", "schema_from_repo_enabled": true, "repo_url": url,
        "repo_branch": "main", "schema_file": "kraken.star"
    });

    // Bad fields are refused and store nothing.
    for (change, want) in [
        (
            serde_json::json!({"schema_file": ""}),
            "schema_file is required",
        ),
        (
            serde_json::json!({"repo_url": null}),
            "repo_url is required",
        ),
        (
            serde_json::json!({"git_clone_params": "--upload-pack=touch"}),
            "not allowed",
        ),
        (
            serde_json::json!({"repo_refresh_interval": "often"}),
            "repo_refresh_interval",
        ),
    ] {
        let mut body = fields.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let a = admin
            .post(&format!("/api/branches/{bid}/stages"), body)
            .await;
        assert_eq!(a.status, 400, "{want}: {}", a.body);
        assert!(a.message().contains(want), "{}", a.message());
    }

    // Created: the schema is read from the repository at once.
    let a = admin
        .post(&format!("/api/branches/{bid}/stages"), fields.clone())
        .await;
    let st = a.expect(201).clone();
    let sid = st["id"].as_i64().unwrap();
    assert_eq!(st["repo_state"], 0, "{st}");
    assert_eq!(st["repo_version"], v1.as_str());
    assert!(st["repo_error"].is_null());
    assert!(st["last_repo_refresh"].is_string(), "{st}");
    assert_eq!(job_name(&st), "v1");

    // A schema that does not evaluate keeps the previous one and says why.
    commit_file(
        &repo,
        "kraken.star",
        "def stage(ctx):\n    return {{{\n",
        "broken",
    );
    let st = admin
        .put(&format!("/api/stages/{sid}"), fields.clone())
        .await;
    let st = st.expect(200);
    assert_eq!(st["repo_state"], 2, "{st}");
    assert!(
        st["repo_error"].as_str().unwrap().contains("kraken.star"),
        "{st}"
    );
    assert_eq!(job_name(st), "v1");

    // A push to the repository reads the schema again before the flow starts.
    let v2 = commit_file(&repo, "kraken.star", &named_job_code("v2"), "v2");
    admin
        .webhooks(pid, serde_json::json!({"github_enabled": true}))
        .await;
    let push = serde_json::json!({
        "ref": "refs/heads/main", "before": v1, "after": v2,
        "repository": {"clone_url": url}, "pusher": {"name": "dev"}, "commits": []
    });
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/{pid}/github", s.url))
        .header("X-GitHub-Event", "push")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 1
        })
        .await;
    let done = admin
        .wait_flow(flows["items"][0]["id"].as_i64().unwrap(), WAIT)
        .await;
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(jobs[0]["name"], "v2");
    let st = admin.get(&format!("/api/stages/{sid}")).await;
    assert_eq!(st.body["repo_state"], 0);
    assert_eq!(st.body["repo_version"], v2.as_str());

    // With a refresh interval, a new commit is picked up by itself.
    let mut every = fields.clone();
    every["repo_refresh_interval"] = "1s".into();
    admin
        .put(&format!("/api/stages/{sid}"), every)
        .await
        .expect(200);
    let v3 = commit_file(&repo, "kraken.star", &named_job_code("v3"), "v3");
    let st = admin
        .wait_for(&format!("/api/stages/{sid}"), WAIT, |st| {
            st["repo_version"] == v3.as_str()
        })
        .await;
    assert_eq!(job_name(&st), "v3");
}

/// A private HTTP repository: the access token from a project secret is
/// what git authenticates with, and it never shows in the stage's error.
#[tokio::test]
async fn a_private_repository_gets_the_access_token_and_errors_hide_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = req
                    .lines()
                    .find_map(|l| l.strip_prefix("Authorization: "))
                    .map(str::to_string);
                let answer = match auth {
                    None => {
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    }
                    Some(a) => {
                        let _ = tx.send(a);
                        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    }
                };
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("private").await;
    let bid = admin.branch(pid, "main").await;
    admin
        .post(
            &format!("/api/projects/{pid}/secrets"),
            serde_json::json!({"name": "gh_token", "kind": "simple", "secret": "tok-9876"}),
        )
        .await
        .expect(201);
    let url = format!("http://127.0.0.1:{port}/org/app.git");
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"repo\": {{\"url\": \"{url}\", \"branch\": \"main\", \"interval\": \"1s\", \"access-token\": \"gh_token\"}}}}, \"jobs\": []}}\n"
    );
    let sid = admin.stage(bid, "private", &code).await;
    let auth = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("git asked with credentials")
        .unwrap();
    // Basic base64("tok-9876:")
    assert_eq!(auth.trim(), "Basic dG9rLTk4NzY6");
    let st = admin
        .wait_for(&format!("/api/stages/{sid}"), WAIT, |st| {
            st["repo_error"].as_str().is_some()
        })
        .await;
    let err = st["repo_error"].as_str().unwrap();
    assert!(err.contains("cannot fetch branch 'main'"), "{err}");
    assert!(!err.contains("tok-9876"), "the token is hidden: {err}");
}
