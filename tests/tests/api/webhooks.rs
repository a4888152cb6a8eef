//! Webhooks end to end: a signed GitHub-style delivery about a real local
//! git repository starts a flow whose `git` step checks out the pushed
//! commit; deliveries are authenticated, idempotent and bounded.

use std::time::Duration;

use serde_json::{Value, json};

use kraken_core::webhooks::{sign_sha1, sign_sha256};
use kraken_tests::{Client, TestServer, repo_with_two_commits};

const WAIT: Duration = Duration::from_secs(60);

/// A stage cloning `url` and printing the commit it got and the trigger
/// the schema saw in `ctx.flow.trigger`.
fn git_stage(url: &str, parent_trigger: bool) -> String {
    let triggers = if parent_trigger {
        "{\"parent\": True}"
    } else {
        "{\"parent\": False}"
    };
    format!(
        r#"def stage(ctx):
    trig = "none"
    if ctx.flow and ctx.flow.trigger:
        trig = ctx.flow.trigger.after
    return {{"parent": "root", "triggers": {triggers}, "jobs": [{{"name": "build",
        "steps": [{{"tool": "git", "checkout": "{url}", "destination": "src"}},
                  {{"tool": "shell", "cmd": "echo commit=$(git -C src rev-parse HEAD) schema-saw=" + trig}}],
        "environments": [{{"system": "any", "agents_group": "all", "config": "default"}}]}}]}}
"#
    )
}

fn push_payload(url: &str, before: &str, after: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"clone_url": url, "full_name": "o/r"},
        "pusher": {"name": "dev", "email": "dev@example.com"},
        "commits": [{"id": after, "message": "first", "author": {"name": "Dev", "email": "dev@example.com"},
                     "added": [], "modified": ["f.txt"], "removed": []}]
    }))
    .unwrap()
}

async fn deliver(
    s: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", s.url))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("webhook delivery")
}

async fn ci_flows(admin: &Client, bid: i64) -> Vec<Value> {
    admin
        .get(&format!("/api/branches/{bid}/flows/ci"))
        .await
        .body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn github_push_builds_the_pushed_commit_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, first, second) = repo_with_two_commits(tmp.path(), "app");
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("hooked").await;
    let bid = admin.branch(pid, "main").await;
    admin.stage(bid, "build", &git_stage(&url, true)).await;
    admin
        .webhooks(
            pid,
            json!({"github_enabled": true, "github_secret": "s3cr3t"}),
        )
        .await;

    // The push names the first commit (not the head): that is what builds.
    let body = push_payload(&url, "0000000000000000000000000000000000000000", &first);
    let headers = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", "delivery-1".to_string()),
        ("X-Hub-Signature-256", sign_sha256("s3cr3t", &body)),
        ("Content-Type", "application/json".to_string()),
    ];
    let r = deliver(
        &s,
        &format!("/webhooks/{pid}/github"),
        &headers,
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 204);

    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 1
        })
        .await;
    let fid = flows["items"][0]["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    assert_eq!(done["trigger"]["trigger"], "github-push");
    assert_eq!(done["trigger"]["after"], first.as_str());
    let run = &done["runs"][0];
    assert_eq!(run["reason"], "github push");
    assert_eq!(run["repo_data"][0]["after"], first.as_str());
    assert_eq!(run["jobs_error"], 0, "{run}");
    let job = admin.run_jobs(run["id"].as_i64().unwrap()).await[0].clone();
    let log = admin.job_log(job["id"].as_i64().unwrap()).await.join("\n");
    assert!(
        log.contains(&format!("commit={first} schema-saw={first}")),
        "the pushed commit is built and the schema saw it: {log}"
    );
    assert!(!log.contains(&format!("commit={second}")), "{log}");

    // The same delivery again (a redelivery): taken once.
    let r = deliver(
        &s,
        &format!("/webhooks/{pid}/github"),
        &headers,
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["x-kraken-webhook"],
        "duplicate delivery, ignored"
    );
    // Without a delivery id, the same payload within a minute is the same
    // delivery too (SHA-1 signature, under /bk).
    let unnamed = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-Hub-Signature", sign_sha1("s3cr3t", &body)),
    ];
    let r = deliver(
        &s,
        &format!("/bk/webhooks/{pid}/github"),
        &unnamed,
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("x-kraken-webhook").is_none());
    let r = deliver(
        &s,
        &format!("/bk/webhooks/{pid}/github"),
        &unnamed,
        body.clone(),
    )
    .await;
    assert_eq!(
        r.headers()["x-kraken-webhook"],
        "duplicate delivery, ignored"
    );
    admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ci_flows(&admin, bid).await.len(), 2, "no third flow");
}

#[tokio::test]
async fn refused_deliveries_start_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("guarded").await;
    let bid = admin.branch(pid, "main").await;
    admin
        .stage(
            bid,
            "build",
            &kraken_tests::shell_stage("root", "j", &["true"]),
        )
        .await;
    let body = push_payload("https://example.invalid/o/r.git", "a", "b");
    let path = format!("/webhooks/{pid}/github");
    let event = ("X-GitHub-Event", "push".to_string());

    // Disabled.
    let r = deliver(&s, &path, std::slice::from_ref(&event), body.clone()).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["message"], "webhooks from github disabled");

    admin
        .webhooks(
            pid,
            json!({"github_enabled": true, "github_secret": "right"}),
        )
        .await;
    for (headers, want) in [
        (vec![event.clone()], "missing signature in request header"),
        (
            vec![
                event.clone(),
                ("X-Hub-Signature-256", sign_sha256("wrong", &body)),
            ],
            "Invalid signature",
        ),
        (
            vec![
                event.clone(),
                ("X-Hub-Signature", sign_sha1("wrong", &body)),
            ],
            "Invalid signature",
        ),
        (vec![], "missing github event type in request header"),
    ] {
        let r = deliver(&s, &path, &headers, body.clone()).await;
        assert_eq!(r.status(), 400, "{want}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["message"], want);
        assert_eq!(e["code"], 400);
    }
    // Unknown project, unknown provider, oversized payload.
    let signed = vec![
        event.clone(),
        ("X-Hub-Signature-256", sign_sha256("right", &body)),
    ];
    let r = deliver(&s, "/webhooks/99999/github", &signed, body.clone()).await;
    assert_eq!(r.status(), 400);
    let r = deliver(
        &s,
        &format!("/webhooks/{pid}/bitbucket"),
        &signed,
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 404);
    let big = vec![b' '; kraken_core::webhooks::MAX_PAYLOAD + 1];
    let r = deliver(&s, &path, &signed, big).await;
    assert_eq!(r.status(), 413);
    // An unsupported event is answered 204 with the reason, and starts nothing.
    let r = deliver(
        &s,
        &path,
        &[("X-GitHub-Event", "issues".to_string())],
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["x-kraken-webhook"], "unsupported event issues");
    // Malformed JSON with a valid signature.
    let junk = b"{not json".to_vec();
    let r = deliver(
        &s,
        &path,
        &[
            event.clone(),
            ("X-Hub-Signature-256", sign_sha256("right", &junk)),
        ],
        junk,
    )
    .await;
    assert_eq!(r.status(), 400);

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ci_flows(&admin, bid).await.is_empty());
}

#[tokio::test]
async fn pull_requests_start_dev_flows_and_pushes_of_another_repo_join() {
    let tmp = tempfile::tempdir().unwrap();
    let (app_url, app_first, _) = repo_with_two_commits(tmp.path(), "app");
    let (lib_url, lib_first, _) = repo_with_two_commits(tmp.path(), "lib");
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("multi").await;
    let bid = admin.branch(pid, "main").await;
    admin.stage(bid, "app", &git_stage(&app_url, true)).await;
    // `lib` does not start with a flow: only a push to its repository runs it.
    admin.stage(bid, "lib", &git_stage(&lib_url, false)).await;
    admin
        .webhooks(pid, json!({"gitlab_enabled": true, "gitlab_secret": "tok"}))
        .await;
    let gitlab_push = |url: &str, after: &str| {
        serde_json::to_vec(&json!({
            "object_kind": "push", "ref": "refs/heads/main", "before": "0", "after": after,
            "user_name": "Dev", "user_username": "dev", "user_email": "dev@example.com",
            "repository": {"git_http_url": url}, "commits": []
        }))
        .unwrap()
    };
    let headers = vec![
        ("X-Gitlab-Event", "Push Hook".to_string()),
        ("X-Gitlab-Token", "tok".to_string()),
    ];
    let path = format!("/webhooks/{pid}/gitlab");
    let r = deliver(&s, &path, &headers, gitlab_push(&app_url, &app_first)).await;
    assert_eq!(r.status(), 204);
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 1
        })
        .await;
    let fid = flows["items"][0]["id"].as_i64().unwrap();
    assert_eq!(flows["items"][0]["runs"].as_array().unwrap().len(), 1);
    // A push to the other repository: its stage joins the latest flow.
    let r = deliver(&s, &path, &headers, gitlab_push(&lib_url, &lib_first)).await;
    assert_eq!(r.status(), 204);
    let flow = admin
        .wait_for(&format!("/api/flows/{fid}"), WAIT, |f| {
            f["runs"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await;
    let lib_run = flow["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage_name"] == "lib")
        .unwrap()
        .clone();
    assert_eq!(lib_run["reason"], "gitlab Push");
    assert_eq!(lib_run["repo_data"][0]["after"], lib_first.as_str());
    let done = admin.wait_flow(fid, WAIT).await;
    assert_eq!(ci_flows(&admin, bid).await.len(), 1);
    let lib_run = done["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage_name"] == "lib")
        .unwrap()
        .clone();
    let job = admin.run_jobs(lib_run["id"].as_i64().unwrap()).await[0].clone();
    let log = admin.job_log(job["id"].as_i64().unwrap()).await.join("\n");
    assert!(log.contains(&format!("commit={lib_first}")), "{log}");

    // A merge request into main: a DEV flow on the branch of its base.
    let mr = serde_json::to_vec(&json!({
        "object_kind": "merge_request",
        "user": {"username": "dev", "name": "Dev"},
        "project": {"web_url": "http://gl.example/dev/app", "git_http_url": app_url},
        "object_attributes": {"action": "open", "oldrev": "", "last_commit": {"id": app_first},
            "source_branch": "feature", "target_branch": "main", "url": "http://gl.example/dev/app/-/merge_requests/1",
            "id": 1, "title": "Feature", "updated_at": "2021-11-01 06:15:26 UTC"}
    }))
    .unwrap();
    let r = deliver(
        &s,
        &path,
        &[
            ("X-Gitlab-Event", "Merge Request Hook".to_string()),
            ("X-Gitlab-Token", "tok".to_string()),
            ("X-Gitlab-Event-UUID", "mr-1".to_string()),
        ],
        mr,
    )
    .await;
    assert_eq!(r.status(), 204);
    let dev = admin
        .wait_for(&format!("/api/branches/{bid}/flows/dev"), WAIT, |b| {
            b["total"] == 1
        })
        .await;
    assert_eq!(
        dev["items"][0]["trigger"]["trigger"],
        "gitlab-Merge Request Hook"
    );
    assert_eq!(
        dev["items"][0]["trigger"]["pull_request"]["head"]["ref"],
        "feature"
    );
    // A wrong token starts nothing.
    let r = deliver(
        &s,
        &path,
        &[
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Token", "nope".to_string()),
        ],
        gitlab_push(&app_url, &app_first),
    )
    .await;
    assert_eq!(r.status(), 400);
}

/// A delivery whose flow could not be started is forgotten, so the code
/// host's redelivery is taken; a taken one is not taken twice.
#[tokio::test]
async fn a_forgotten_delivery_is_taken_again() {
    let s = TestServer::start().await;
    let core = s.core();
    let store = core.engine().store();
    let args = json!([1, {"trigger": "github-push"}, "id:github:d9"]);
    let take = || store.take_webhook_delivery(1, "id:github:d9", i64::MIN, "noop_test", &args);
    assert!(take().await.unwrap());
    assert!(!take().await.unwrap());
    store
        .forget_webhook_delivery(1, "id:github:d9")
        .await
        .unwrap();
    assert!(take().await.unwrap());
}
