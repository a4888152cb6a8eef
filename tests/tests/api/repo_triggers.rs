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
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"repo\": {\"url\": \"x\", \"interval\": \"soon\"}}, \"jobs\": []}\n";
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
