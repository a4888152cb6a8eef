//! Raw secret values reach only the agent running the job: never a schema
//! preview, a stage, flow or job answer, a label or a log line.

use std::time::Duration;

use serde_json::json;

use kraken_tests::TestServer;

const WAIT: Duration = Duration::from_secs(60);

const TOKEN: &str = "PROD-TOKEN-4242";
const KEY: &str = "-----BEGIN KEY-----\nAAAASECRETLINE1\nBBBBSECRETLINE2\n-----END KEY-----";
const KEY_LINES: [&str; 2] = ["AAAASECRETLINE1", "BBBBSECRETLINE2"];

/// A stage that puts its secrets everywhere it can: the job name, the
/// flow label, a step that checks the real value reached the agent, and a
/// step that prints the multi-line key one line at a time.
const STAGE: &str = r#"def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "flow_label": "L-#{KK_SECRET_SIMPLE_tok}",
        "jobs": [{
            "name": "deploy " + str(ctx.secrets),
            "steps": [
                {"tool": "shell", "cmd": "test '" + ctx.secrets.tok + "' = PROD-TOKEN-$((4000 + 242)) && echo token-reached-the-agent"},
                {"tool": "shell", "cmd": "cat <<'EOF'\n" + ctx.secrets.deploy.key + "\nEOF"},
            ],
            "environments": [{"system": "any", "agents_group": "all", "config": "default"}],
        }],
    }
"#;

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "{what} shows the token: {text}");
    for l in KEY_LINES {
        assert!(!text.contains(l), "{what} shows a line of the key: {text}");
    }
}

#[tokio::test]
async fn secrets_stay_with_the_agent() {
    let s = TestServer::start_with_agents(1).await;
    let admin = s.admin().await;
    let pid = admin.project("vault").await;
    let b = admin.branch(pid, "main").await;
    let secrets = format!("/api/projects/{pid}/secrets");
    admin
        .post(
            &secrets,
            json!({"name": "tok", "kind": "simple", "secret": TOKEN}),
        )
        .await
        .expect(201);
    admin
        .post(
            &secrets,
            json!({"name": "deploy", "kind": "ssh-key", "username": "git", "key": KEY}),
        )
        .await
        .expect(201);
    let sid = admin.stage(b, "deploy", STAGE).await;

    // A viewer's preview shows placeholders, not values.
    let (uid, viewer) = s.user("vic").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "viewer"}}),
        )
        .await
        .expect(201);
    let pv = viewer
        .put(
            &format!("/api/stages/{sid}/schema"),
            json!({"schema_code": STAGE}),
        )
        .await;
    let text = pv.expect(200)["schema"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(text.contains("KK_SECRET_SIMPLE_tok"), "{text}");
    assert_clean("the schema preview", &text);

    // A flow runs with the real values on the agent.
    let flow = admin.flow(b).await;
    let fid = flow["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let run = done["runs"][0]["id"].as_i64().unwrap();
    let jobs = admin.run_jobs(run).await;
    let job = jobs[0]["id"].as_i64().unwrap();
    let log = admin.job_log(job).await.join("\n");
    assert!(log.contains("token-reached-the-agent"), "{log}");
    // The key's four lines, printed one by one, each masked.
    assert!(log.matches("******").count() >= 4, "{log}");
    assert_clean("the job log", &log);
    assert_eq!(jobs[0]["completion_status"], 0, "{}", jobs[0]);

    // No answer a viewer can read has them.
    for path in [
        format!("/api/stages/{sid}"),
        format!("/api/flows/{fid}"),
        format!("/api/runs/{run}"),
        format!("/api/jobs/{job}"),
        format!("/api/runs/{run}/jobs"),
        format!("/api/branches/{b}/flows/ci"),
        format!("/api/jobs/{job}/logs?limit=1000"),
        format!("/api/logs?job_id={job}&limit=1000"),
        format!("/api/projects/{pid}"),
    ] {
        let a = viewer.get(&path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_clean(&path, &a.body.to_string());
    }
    assert!(
        done["label"].as_str().unwrap_or_default().starts_with("L-"),
        "{done}"
    );
}
