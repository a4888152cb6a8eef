//! Stages: Starlark schema code evaluated, validated and stored.

use serde_json::json;

use kraken_tests::{TestServer, shell_stage};

#[tokio::test]
async fn create_get_update_delete_stage() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let path = format!("/api/branches/{bid}/stages");

    let code = shell_stage("root", "hello", &["echo hello"]);
    let st = admin
        .post(&path, json!({"name": "build", "schema_code": code}))
        .await;
    let body = st.expect(201).clone();
    let sid = body["id"].as_i64().unwrap();
    assert_eq!(
        body["schema"]["jobs"][0]["steps"][0],
        json!({"tool": "shell", "cmd": "echo hello"})
    );
    assert_eq!(
        body["schema"]["configs"],
        json!([]),
        "defaults are filled in"
    );
    assert_eq!(body["schema"]["parameters"], json!([]));
    assert_eq!(body["schema_code"], json!(code));
    assert_eq!(body["enabled"], true);

    // No code: the default hello-world stage.
    let d = admin.post(&path, json!({"name": "tests"})).await;
    let d = d.expect(201).clone();
    assert_eq!(d["schema"]["jobs"][0]["name"], "hello world");
    assert!(
        d["schema_code"]
            .as_str()
            .unwrap()
            .starts_with("def stage(ctx):")
    );

    // Bad code: 400 with the message; nothing stored.
    let syntax = admin
        .post(
            &path,
            json!({"name": "bad", "schema_code": "def stage(ctx):\n    return {"}),
        )
        .await;
    let m = syntax.expect(400)["message"].as_str().unwrap().to_string();
    assert!(m.contains("compilation error") && m.contains("line"), "{m}");
    let invalid = admin
        .post(
            &path,
            json!({"name": "bad", "schema_code": "def stage(ctx):\n    return {\"jobs\": 1}"}),
        )
        .await;
    assert!(
        invalid.expect(400)["message"]
            .as_str()
            .unwrap()
            .contains("parent"),
        "{}",
        invalid.body
    );
    let unknown_tool = shell_stage("root", "j", &["x"]).replace("\"shell\"", "\"hammer\"");
    let ut = admin
        .post(&path, json!({"name": "bad", "schema_code": unknown_tool}))
        .await;
    assert_eq!(
        ut.expect(400)["message"],
        "Unknown tool 'hammer' in the 1st job j, in the 1st step"
    );
    let orphan = admin
        .post(
            &path,
            json!({"name": "bad", "schema_code": shell_stage("nowhere", "j", &["x"])}),
        )
        .await;
    assert_eq!(
        orphan.expect(400)["message"],
        "Cannot find parent stage nowhere"
    );
    let runaway = admin.post(&path, json!({"name": "bad", "schema_code": "def stage(ctx):\n    return [x for x in range(10**12)]"})).await;
    runaway.expect(400);
    let cfg = admin.get(&format!("/api/branches/{bid}/cfg")).await;
    assert_eq!(
        cfg.body["stages"].as_array().unwrap().len(),
        2,
        "bad stages were not stored"
    );
    admin
        .post(&path, json!({"name": "build"}))
        .await
        .expect(400);
    admin
        .post(&path, json!({"schema_code": code}))
        .await
        .expect(400);
    admin
        .post("/api/branches/99999/stages", json!({"name": "x"}))
        .await
        .expect(404);

    // Read, preview, schedule.
    assert_eq!(
        admin.get(&format!("/api/stages/{sid}")).await.expect(200)["name"],
        "build"
    );
    admin.get("/api/stages/99999").await.expect(404);
    let pv = admin
        .put(
            &format!("/api/stages/{sid}/schema"),
            json!({"schema_code": code}),
        )
        .await;
    let schema_text = pv.expect(200)["schema"].as_str().unwrap().to_string();
    assert!(
        schema_text.starts_with("{\n    \"parent\": \"root\""),
        "{schema_text}"
    );
    let bad_pv = admin
        .put(
            &format!("/api/stages/{sid}/schema"),
            json!({"schema_code": "oops("}),
        )
        .await;
    assert!(
        bad_pv.expect(200)["error"]
            .as_str()
            .unwrap()
            .contains("compilation error")
    );
    assert_eq!(
        admin
            .get(&format!("/api/stages/{sid}/schedule"))
            .await
            .expect(200)["schedules"],
        json!([])
    );

    // Update: name is required; code is re-evaluated; bad code leaves the stage as it was.
    admin
        .put(&format!("/api/stages/{sid}"), json!({"description": "x"}))
        .await
        .expect(400);
    let up = admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "build", "description": "build stage"}),
        )
        .await;
    assert_eq!(up.expect(200)["description"], "build stage");
    admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "build", "schema_code": "nope("}),
        )
        .await
        .expect(400);
    assert_eq!(
        admin.get(&format!("/api/stages/{sid}")).await.body["schema_code"],
        json!(code)
    );
    let cron = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"cron\": \"0 13 * * *\", \"interval\": \"10m\"}, \"jobs\": []}";
    admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "build", "schema_code": cron}),
        )
        .await
        .expect(200);
    let sch = admin.get(&format!("/api/stages/{sid}/schedule")).await;
    let names: Vec<&str> = sch.body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cron: 0 13 * * *", "interval: 10m"]);
    assert!(
        sch.body["schedules"][0]["next_run_time"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let bad_cron = cron.replace("0 13 * * *", "61 * * * *");
    admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "build", "schema_code": bad_cron}),
        )
        .await
        .expect(400);
    admin
        .put(
            &format!("/api/stages/{sid}"),
            json!({"name": "build", "enabled": "no"}),
        )
        .await
        .expect(400);
    admin
        .put(&format!("/api/stages/{sid}"), json!({"name": "tests"}))
        .await
        .expect(400);

    // A viewer may read but not change.
    let (uid, user) = s.user("sam").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "viewer"}}),
        )
        .await
        .expect(201);
    user.get(&format!("/api/stages/{sid}")).await.expect(200);
    user.put(&format!("/api/stages/{sid}"), json!({"name": "x"}))
        .await
        .expect(403);
    user.delete(&format!("/api/stages/{sid}")).await.expect(403);
    user.post(&path, json!({"name": "y"})).await.expect(403);

    admin
        .delete(&format!("/api/stages/{sid}"))
        .await
        .expect(200);
    admin.get(&format!("/api/stages/{sid}")).await.expect(404);
    assert_eq!(
        admin
            .get(&format!("/api/stages/{sid}/schedule"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn stage_checks_use_the_branch() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let path = format!("/api/branches/{bid}/stages");
    admin
        .stage(bid, "parent", &shell_stage("root", "a", &["true"]))
        .await;
    // A child naming an existing parent is fine.
    admin
        .stage(bid, "child", &shell_stage("parent", "b", &["true"]))
        .await;
    // Secrets named in steps must exist with the right kind.
    let git = |secret: &str| {
        format!(
            "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"g\", \"steps\": [{{\"tool\": \"git\", \"checkout\": \"https://example.com/r.git\", \"access-token\": \"{secret}\"}}], \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}"
        )
    };
    let a = admin
        .post(&path, json!({"name": "g1", "schema_code": git("tok")}))
        .await;
    assert_eq!(a.expect(400)["message"], "Secret 'tok' does not exist");
    admin
        .post(
            &format!("/api/projects/{pid}/secrets"),
            json!({"name": "key", "kind": "ssh-key", "username": "u", "key": "k"}),
        )
        .await
        .expect(201);
    let a = admin
        .post(&path, json!({"name": "g1", "schema_code": git("key")}))
        .await;
    assert_eq!(
        a.expect(400)["message"],
        "Type of 'key' secret should be Simple"
    );
    admin
        .post(
            &format!("/api/projects/{pid}/secrets"),
            json!({"name": "tok", "kind": "simple", "secret": "t"}),
        )
        .await
        .expect(201);
    admin
        .post(&path, json!({"name": "g1", "schema_code": git("tok")}))
        .await
        .expect(201);
    // Agents groups must exist.
    let grp = shell_stage("root", "x", &["true"]).replace("\"all\"", "\"gpu\"");
    let a = admin
        .post(&path, json!({"name": "g2", "schema_code": grp}))
        .await;
    assert_eq!(a.expect(400)["message"], "Cannot find gpu agents group");
    admin
        .post("/api/groups", json!({"name": "gpu"}))
        .await
        .expect(201);
    admin
        .post(&path, json!({"name": "g2", "schema_code": grp}))
        .await
        .expect(201);
    // ctx is the branch's: env vars are readable.
    admin
        .post(
            &format!("/api/branches/{bid}/env_vars"),
            json!({"name": "TARGET", "value": "arm64"}),
        )
        .await
        .expect(201);
    let uses_env = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"build-\" + ctx.env.TARGET, \"steps\": [{\"tool\": \"shell\", \"cmd\": \"true\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    let e = admin
        .post(&path, json!({"name": "env", "schema_code": uses_env}))
        .await;
    assert_eq!(e.expect(201)["schema"]["jobs"][0]["name"], "build-arm64");
    let missing = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {}, \"jobs\": [], \"x\": ctx.nothing}";
    let m = admin
        .post(&path, json!({"name": "m", "schema_code": missing}))
        .await;
    assert!(
        m.expect(400)["message"]
            .as_str()
            .unwrap()
            .contains("nothing"),
        "{}",
        m.body
    );
}
