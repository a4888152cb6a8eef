//! Tools, settings, workflow schema, user data, version.

use std::time::Duration;

use serde_json::{Value, json};

use kraken_tests::TestServer;

#[tokio::test]
async fn builtin_and_registered_tools() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let all = admin.get("/api/tools").await;
    assert_eq!(all.expect(200)["total"], 14);
    let page = admin.get("/api/tools?start=0&limit=3").await;
    let names: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["artifacts", "cache", "cloc"]);
    assert_eq!(page.body["total"], 14);
    admin.get("/api/tools?sort_field=colour").await.expect(400);

    let shell = admin.get("/api/tools/shell").await;
    let t = &shell.expect(200)["items"][0];
    assert_eq!(t["version"], "1");
    assert_eq!(
        t["fields"]["properties"]["timeout"],
        json!({"description": t["fields"]["properties"]["timeout"]["description"], "type": "integer", "minimum": 30, "default": 60})
    );
    admin.get("/api/tools/nonexistent").await.expect(404);

    // Registering: versions bump; a given version is overwritten.
    let tool = json!({"name": "anchor-tool", "description": "A test tool", "location": ".", "entry": "main",
                      "parameters": {"additionalProperties": false, "properties": {"greeting": {"type": "string", "default": "hello"}}, "required": []}});
    let v1 = admin.post("/api/tools", tool.clone()).await;
    assert_eq!(v1.expect(201)["version"], "1");
    let v2 = admin.post("/api/tools", tool.clone()).await;
    assert_eq!(v2.expect(201)["version"], "2");
    let mut over = tool.clone();
    over["version"] = json!("2");
    over["description"] = json!("changed");
    let v2b = admin.post("/api/tools", over).await;
    assert_eq!(v2b.expect(201)["id"], v2.body["id"]);
    assert_eq!(v2b.body["description"], "changed");
    let versions = admin.get("/api/tools/anchor-tool").await;
    assert_eq!(versions.expect(200)["total"], 2);
    assert_eq!(admin.get("/api/tools").await.body["total"], 15);

    admin
        .post("/api/tools", json!({"name": "x"}))
        .await
        .expect(400);
    admin
        .post("/api/tools", json!({"parameters": {}}))
        .await
        .expect(400);
    admin
        .post(
            "/api/tools",
            json!({"name": "x", "parameters": {"type": 12}}),
        )
        .await
        .expect(400);
    admin
        .post("/api/tools", json!({"name": "x", "parameters": "nope"}))
        .await
        .expect(400);
    admin
        .post("/api/tools", json!({"name": "shell", "parameters": {}}))
        .await
        .expect(400);
    admin
        .post(
            "/api/tools",
            json!({"url": "https://github.com/Kraken-CI/kraken-tool-example.git", "tag": "main"}),
        )
        .await
        .expect(400);

    // The workflow schema lists every tool version.
    let ws = admin.get("/api/workflow-schema").await;
    let one_of =
        ws.expect(200)["properties"]["jobs"]["items"]["properties"]["steps"]["items"]["oneOf"]
            .as_array()
            .unwrap()
            .clone();
    let consts: Vec<&str> = one_of
        .iter()
        .map(|e| e["if"]["properties"]["tool"]["const"].as_str().unwrap())
        .collect();
    assert!(consts.contains(&"shell") && consts.contains(&"shell@1"));
    assert!(
        consts.contains(&"anchor-tool")
            && consts.contains(&"anchor-tool@1")
            && consts.contains(&"anchor-tool@2")
    );
    assert_eq!(one_of.len(), 28 + 3);
    // Every tool has a description in `then.properties.tool`: the original
    // UI splits it at its first period to show the step dialog's help.
    for e in &one_of {
        let d = e["then"]["properties"]["tool"]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("no description: {e}"));
        assert!(!d.trim().is_empty(), "{e}");
    }
    let shell = one_of
        .iter()
        .find(|e| e["if"]["properties"]["tool"]["const"] == "shell")
        .unwrap();
    assert!(
        shell["then"]["properties"]["tool"]["description"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("shell"),
        "{shell}"
    );

    // Delete: not built-ins.
    let shell_id = t["id"].as_i64().unwrap();
    admin
        .delete(&format!("/api/tools/{shell_id}"))
        .await
        .expect(400);
    admin.delete("/api/tools/99999").await.expect(404);
    admin.delete("/api/tools/abc").await.expect(400);
    let v1_id = v1.body["id"].as_i64().unwrap();
    let (_, user) = s.user("ivy").await;
    user.delete(&format!("/api/tools/{v1_id}"))
        .await
        .expect(403);
    user.post("/api/tools", tool.clone()).await.expect(403);
    user.get("/api/tools").await.expect(200);
    admin
        .delete(&format!("/api/tools/{v1_id}"))
        .await
        .expect(200);
    assert_eq!(admin.get("/api/tools/anchor-tool").await.body["total"], 1);
}

#[tokio::test]
async fn tool_zip_upload() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let meta = json!({"name": "zipped", "location": ".", "entry": "main", "parameters": {"properties": {}}}).to_string();
    let zip: &[u8] = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let form = reqwest::multipart::Form::new()
        .text("meta", meta.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(zip.to_vec()).file_name("tool.zip"),
        );
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/tools/zipped/zip", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let location = body["location"].as_str().unwrap().to_string();
    assert!(location.starts_with("blob:tools/tool-"), "{location}");
    let stored = s.data_dir.join(location.trim_start_matches("blob:"));
    assert_eq!(std::fs::read(stored).unwrap(), zip);

    // Not a zip, or missing parts: 400.
    let form = reqwest::multipart::Form::new().text("meta", meta).part(
        "file",
        reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("tool.zip"),
    );
    let r = http
        .post(format!("{}/api/tools/zipped/zip", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let form = reqwest::multipart::Form::new().text("meta", "{}");
    let r = http
        .post(format!("{}/api/tools/zipped/zip", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn settings_version_user_data() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let v = admin.get("/api/version").await;
    assert_eq!(v.expect(200)["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        admin.get("/bk/api/version").await.expect(200),
        v.expect(200)
    );

    let st = admin.get("/api/settings").await;
    let st = st.expect(200).clone();
    assert_eq!(st["general"]["clickhouse_log_ttl"], 6);
    assert_eq!(st["cloud"]["k8s_namespace"], "kraken");
    assert_eq!(st["notification"]["smtp_tls"], false);

    let up = admin
        .put("/api/settings", json!({"notification": {"smtp_password": "hunter2", "smtp_server": "mail:25", "smtp_tls": true}}))
        .await;
    let up = up.expect(200);
    assert_eq!(up["notification"]["smtp_server"], "mail:25");
    assert_eq!(
        up["notification"]["smtp_password"], "",
        "password values are never shown"
    );
    assert_eq!(up["notification"]["smtp_tls"], true);
    // An empty password keeps the stored one.
    admin
        .put(
            "/api/settings",
            json!({"notification": {"smtp_password": ""}}),
        )
        .await
        .expect(200);
    let core = s.server.as_ref().unwrap().core.clone();
    assert_eq!(
        core.engine()
            .store()
            .setting("notification", "smtp_password")
            .await
            .unwrap()
            .as_deref(),
        Some("hunter2")
    );

    admin
        .put(
            "/api/settings",
            json!({"general": {"clickhouse_log_ttl": "many"}}),
        )
        .await
        .expect(400);
    admin
        .put("/api/settings", json!({"general": {"nope": "x"}}))
        .await
        .expect(400);
    admin
        .put("/api/settings", json!({"general": 5}))
        .await
        .expect(400);
    admin.put("/api/settings", json!([1])).await.expect(400);
    let (_, user) = s.user("jack").await;
    user.put("/api/settings", json!({"general": {"server_url": "x"}}))
        .await
        .expect(403);
    let pub_view = user.get("/api/settings").await;
    assert!(pub_view.expect(200).get("notification").is_none());
    assert_eq!(pub_view.body["idp"]["github_enabled"], false);

    // User data of a project (empty object, as a 4-space-indented JSON string).
    let pid = admin.project("ud").await;
    let ud = admin
        .get(&format!("/api/user_data?scope=project&entity_id={pid}"))
        .await;
    assert_eq!(ud.expect(200)["data"], "{}");
    admin
        .get(&format!("/api/user_data?scope=galaxy&entity_id={pid}"))
        .await
        .expect(400);
    admin.get("/api/user_data?scope=project").await.expect(400);
    admin
        .get("/api/user_data?scope=project&entity_id=x")
        .await
        .expect(400);
    admin
        .get("/api/user_data?scope=project&entity_id=99999")
        .await
        .expect(404);
    user.get(&format!("/api/user_data?scope=project&entity_id={pid}"))
        .await
        .expect(403);
    let b = admin.branch(pid, "b").await;
    for scope in ["branch", "branch-ci", "branch-dev"] {
        assert_eq!(
            admin
                .get(&format!("/api/user_data?scope={scope}&entity_id={b}"))
                .await
                .expect(200)["data"],
            "{}"
        );
    }
    admin
        .get("/api/user_data?scope=flow&entity_id=99999")
        .await
        .expect(404);
}

/// A tool uploaded with `POST /tools/{name}/zip` runs on the built-in agent
/// (which fetches its package) and reports test results like a built-in
/// one; its prints are in the job's log.
#[tokio::test]
async fn an_uploaded_tool_runs_and_reports_results() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("greeter.py"),
        "def run_tests(step, report_result=None):\n    print('greeting', step['who'])\n    report_result({'cmd': 'greet', 'test': 'greets', 'status': 1})\n    report_result({'cmd': 'greet', 'test': 'waves', 'status': 2})\n    return 0, ''\n",
    )
    .unwrap();
    let zip = src.path().join("tool.zip");
    let made = std::process::Command::new("python3")
        .current_dir(src.path())
        .args(["-m", "zipfile", "-c", "tool.zip", "greeter.py"])
        .status()
        .unwrap();
    assert!(made.success());
    let meta = json!({"name": "greeter", "description": "Greets.", "location": "", "entry": "greeter",
                      "parameters": {"properties": {"who": {"type": "string"}}, "required": ["who"]}})
    .to_string();
    let form = reqwest::multipart::Form::new().text("meta", meta).part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&zip).unwrap()).file_name("tool.zip"),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/api/tools/greeter/zip", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"g\", \"steps\": [{\"tool\": \"greeter\", \"who\": \"world\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}]}]}\n";
    admin.stage(bid, "g", code).await;
    let f = admin.flow(bid).await;
    let done = admin
        .wait_flow(
            f["id"].as_i64().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await;
    let run = &done["runs"][0];
    assert_eq!(run["jobs_error"], 0, "{done}");
    assert_eq!(run["tests_total"], 2, "{done}");
    assert_eq!(run["tests_passed"], 1, "{done}");
    let rid = run["id"].as_i64().unwrap();
    let jobs = admin.run_jobs(rid).await;
    let log = admin
        .job_log(jobs[0]["id"].as_i64().unwrap())
        .await
        .join("\n");
    assert!(log.contains("greeting world"), "{log}");
}

/// Run `git args` in `dir` (a test repository), asserting it worked.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A remote tool (`POST /tools {url, tag, tool_file}`): the server clones
/// the repository at the tag, registers its tool.json with the commit's
/// short SHA as version, packages the tool's directory, and a step using it
/// runs on the agent like an uploaded tool.
#[tokio::test]
async fn a_remote_tool_from_a_git_repository_runs() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("tools/greeter");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(repo.path().join("README"), "not part of the tool\n").unwrap();
    std::fs::write(
        dir.join("tool.json"),
        json!({"name": "remote-greeter", "description": "Greets from git.", "location": ".",
               "entry": "greeter", "parameters": {"properties": {"who": {"type": "string"}},
               "required": ["who"]}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("greeter.py"),
        "def run_tests(step, report_result=None):\n    print('hello from git,', step['who'])\n    report_result({'cmd': 'greet', 'test': 'greets', 'status': 1})\n    return 0, ''\n",
    )
    .unwrap();
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "greeter"]);
    git(repo.path(), &["tag", "v1"]);
    let sha = git(repo.path(), &["rev-parse", "--short", "HEAD"]);
    // Work after the tag is not what the tool is made of.
    std::fs::write(
        dir.join("greeter.py"),
        "raise SystemExit('not the tagged one')\n",
    )
    .unwrap();
    git(repo.path(), &["commit", "-q", "-am", "broken"]);
    let url = format!("file://{}", repo.path().display());

    let t = admin
        .post(
            "/api/tools",
            json!({"url": url, "tag": "v1", "tool_file": "tools/greeter/tool.json"}),
        )
        .await;
    let tool = t.expect(201);
    assert_eq!(tool["name"], "remote-greeter", "{tool}");
    assert_eq!(tool["version"], sha.as_str(), "{tool}");
    assert_eq!(tool["url"], url.as_str(), "{tool}");
    assert_eq!(tool["tag"], "v1", "{tool}");

    // A tag or tool file the repository does not have: a clear 400.
    let r = admin
        .post(
            "/api/tools",
            json!({"url": url, "tag": "v9", "tool_file": "tools/greeter/tool.json"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.message().contains("cannot fetch remote tool"),
        "{}",
        r.body
    );
    assert!(r.message().contains("v9"), "{}", r.body);
    let r = admin
        .post(
            "/api/tools",
            json!({"url": url, "tag": "v1", "tool_file": "nope/tool.json"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.message().contains("has no tool file nope/tool.json"),
        "{}",
        r.body
    );
    let r = admin
        .post(
            "/api/tools",
            json!({"url": url, "tool_file": "../x/tool.json"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = admin
        .post("/api/tools", json!({"url": "not a repository"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.message().contains("give a git repository URL"),
        "{}",
        r.body
    );

    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"g\", \"steps\": [{\"tool\": \"remote-greeter\", \"who\": \"world\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"c\"}]}]}\n";
    admin.stage(bid, "g", code).await;
    let f = admin.flow(bid).await;
    let done = admin
        .wait_flow(
            f["id"].as_i64().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await;
    let run = &done["runs"][0];
    assert_eq!(run["jobs_error"], 0, "{done}");
    assert_eq!(run["tests_passed"], 1, "{done}");
    let jobs = admin.run_jobs(run["id"].as_i64().unwrap()).await;
    let log = admin
        .job_log(jobs[0]["id"].as_i64().unwrap())
        .await
        .join("\n");
    assert!(log.contains("hello from git, world"), "{log}");
}

/// A tool version overwritten in place is what the next run's steps are
/// checked against: the planner's view of the tools follows the overwrite.
#[tokio::test]
async fn an_overwritten_tool_version_is_what_the_next_run_checks() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let tool = |required: Value| {
        json!({"name": "greeter", "version": "1", "description": "Greets.", "location": ".", "entry": "main",
               "parameters": {"additionalProperties": false,
                              "properties": {"greeting": {"type": "string"}}, "required": required}})
    };
    admin.post("/api/tools", tool(json!([]))).await.expect(201);
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \
        \"jobs\": [{\"name\": \"greet\", \"steps\": [{\"tool\": \"greeter@1\"}], \
        \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}\n";
    admin.stage(bid, "s", code).await;
    let first = admin.flow(bid).await;
    let run = first["runs"][0]["id"].as_i64().unwrap();
    assert_eq!(admin.run_jobs(run).await.len(), 1, "{first}");

    // The same version now requires a greeting the stage does not give.
    admin
        .post("/api/tools", tool(json!(["greeting"])))
        .await
        .expect(201);
    let second = admin.flow(bid).await;
    let done = admin
        .wait_flow(second["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    let run = &done["runs"][0];
    assert_eq!(run["jobs_total"], 0, "{done}");
    let note = run["note"].as_str().unwrap_or("");
    assert!(
        note.contains("Triggering run's jobs failed") && note.contains("greeting"),
        "{done}"
    );
}
