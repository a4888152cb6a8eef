//! Issue 18: schema code that overflowed the stack, allocated gigabytes or
//! computed for half a minute took the whole server down, through the
//! schema preview a mere viewer may call, and through a stored stage at
//! every flow (whose flow then stayed in progress forever). Schema code now
//! runs in worker processes (here `kraken-tests-schema-worker`): the server
//! answers with the error and carries on, and the flow ends.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use kraken_tests::{TestServer, schema_worker_program, shell_stage};

/// The attacks of the issue, as statements in `stage(ctx)` (indented 4),
/// and the message each must produce.
fn attacks() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "1,000 unary minus signs",
            format!("x = {{'a': {}1}}", "-".repeat(1000)),
            "the code nests too deeply",
        ),
        (
            "700 nested brackets",
            format!("x = {}1{}", "[".repeat(700), "]".repeat(700)),
            "the code nests too deeply",
        ),
        (
            "2,000 parentheses",
            format!("x = {}1{}", "(".repeat(1000), ")".repeat(1000)),
            "the code nests too deeply",
        ),
        (
            "str() of a list nested 100,000 deep",
            "l = []\n    for i in range(100000):\n        l = [l]\n    x = str(l)".to_string(),
            "nests too deeply to be printed",
        ),
        (
            "a value nested 1,000,000 deep quoted in an error",
            "l = []\n    for i in range(1000000):\n        l = [l]\n    d = {1: l}\n    d.pop(2)"
                .to_string(),
            "the schema code crashed the evaluator (stack overflow",
        ),
        (
            "a string of 900 MB in one step",
            "x = (\"x\" * 30000).replace(\"x\", \"x\" * 30000)".to_string(),
            "the schema code used more than the memory limit of 256 MiB",
        ),
        (
            "l.extend(l)",
            "l = [1] * 1000\n    for i in range(40):\n        l.extend(l)".to_string(),
            "the schema code used more than the memory limit of 256 MiB",
        ),
        (
            "l += l",
            "l = [1] * 1000\n    for i in range(40):\n        l += l".to_string(),
            "the schema code used more than the memory limit of 256 MiB",
        ),
        (
            "squaring a huge integer",
            "x = (1 << 100000) - 1\n    for i in range(14):\n        x = x * x".to_string(),
            "the schema code ran longer than the time limit of 2000 ms",
        ),
    ]
}

/// A valid stage whose `stage(ctx)` first runs `attack` when `guard` holds.
fn stage_code(guard: &str, attack: &str) -> String {
    format!(
        "def stage(ctx):\n    if {guard}:\n        {}\n    return {{\n        \"parent\": \"root\",\n        \"triggers\": {{\"parent\": True}},\n        \"jobs\": [{{\"name\": \"j\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": \"true\"}}],\n                  \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}}]}}],\n    }}\n",
        attack.replace("\n    ", "\n        ")
    )
}

#[test]
fn the_test_servers_use_the_worker_program_built_with_them() {
    assert_eq!(
        schema_worker_program(),
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_kraken-tests-schema-worker"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_previewing_attacks_gets_errors_and_the_server_stays_up() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let sid = admin
        .stage(bid, "build", &shell_stage("root", "hello", &["echo hello"]))
        .await;
    let (uid, viewer) = s.user("vic").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "viewer"}}),
        )
        .await
        .expect(201);
    let preview = format!("/api/stages/{sid}/schema");

    for (what, attack, message) in attacks() {
        let start = Instant::now();
        let code = format!("def stage(ctx):\n    {attack}\n    return {{}}\n");
        let a = viewer.put(&preview, json!({"schema_code": code})).await;
        let error = a.expect(200)["error"].as_str().unwrap_or("").to_string();
        assert!(
            error.starts_with("compilation error: ") && error.contains(message),
            "{what}: {}",
            a.body
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} took {:?}",
            start.elapsed()
        );
        // Still up, and still evaluating.
        let ok = viewer
            .put(
                &preview,
                json!({"schema_code": shell_stage("root", "j", &["true"])}),
            )
            .await;
        assert!(
            ok.expect(200)["schema"].is_string(),
            "after {what}: {}",
            ok.body
        );
    }
    admin.get("/api/version").await.expect(200);

    // Creating a stage with such code is a 400 with the message.
    for (what, attack, message) in attacks().into_iter().take(6) {
        let code = format!("def stage(ctx):\n    {attack}\n    return {{}}\n");
        let a = admin
            .post(
                &format!("/api/branches/{bid}/stages"),
                json!({"name": "evil", "schema_code": code}),
            )
            .await;
        assert!(
            a.expect(400)["message"]
                .as_str()
                .unwrap_or("")
                .contains(message),
            "{what}: {}",
            a.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_stage_attacking_at_flow_creation_fails_its_run_and_the_flow_ends() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    // The attacks that need a run to be reached: at stage creation (and in
    // the preview) ctx.flow is empty, so the stage is stored.
    let chosen = [
        "a value nested 1,000,000 deep quoted in an error",
        "a string of 900 MB in one step",
        "squaring a huge integer",
    ];
    let sid = admin.stage(bid, "evil", &stage_code("False", "pass")).await;
    for (what, attack, message) in attacks().into_iter().filter(|(w, _, _)| chosen.contains(w)) {
        admin
            .put(
                &format!("/api/stages/{sid}"),
                json!({"name": "evil", "schema_code": stage_code("ctx.flow", &attack)}),
            )
            .await
            .expect(200);
        let flow = admin.flow(bid).await;
        let fid = flow["id"].as_i64().expect("flow id");
        let done = admin.wait_flow(fid, Duration::from_secs(60)).await;
        let runs = done["runs"].as_array().cloned().unwrap_or_default();
        assert_eq!(runs.len(), 1, "{what}: {done}");
        let run = admin
            .get(&format!("/api/runs/{}", runs[0]["id"]))
            .await
            .expect(200)
            .clone();
        let note = run["note"].as_str().unwrap_or("");
        assert!(
            note.starts_with("Triggering run's jobs failed: compilation error: ")
                && note.contains(message),
            "{what}: {run}"
        );
        assert_eq!(
            admin.run_jobs(run["id"].as_i64().unwrap_or(0)).await,
            Vec::<Value>::new()
        );
    }

    // The server is up and runs an ordinary flow to the end.
    admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "evil", "schema_code": stage_code("False", "pass")}),
        )
        .await
        .expect(200);
    let flow = admin.flow(bid).await;
    let done = admin
        .wait_flow(
            flow["id"].as_i64().expect("flow id"),
            Duration::from_secs(60),
        )
        .await;
    let run_id = done["runs"][0]["id"].as_i64().expect("run id");
    let jobs = admin.run_jobs(run_id).await;
    assert_eq!(jobs.len(), 1, "{done}");
}
