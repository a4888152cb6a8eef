//! Projects and secrets.

use serde_json::json;

use kraken_tests::TestServer;

#[tokio::test]
async fn project_lifecycle() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let p = admin
        .post(
            "/api/projects",
            json!({"name": "anchor", "description": "Anchor test project"}),
        )
        .await;
    let body = p.expect(201).clone();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["branches"], json!([]));
    assert_eq!(body["secrets"], json!([]));
    assert_eq!(body["webhooks"], json!({}));
    assert_eq!(body["deleted"], json!(null));
    let created = body["created"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "timestamp format: {created}"
    );

    let dup = admin.post("/api/projects", json!({"name": "anchor"})).await;
    assert_eq!(
        dup.expect(400)["message"],
        "Project with name anchor already exists"
    );
    let missing = admin
        .post("/api/projects", json!({"description": "x"}))
        .await;
    assert_eq!(missing.expect(400)["message"], "Missing name in project");
    admin
        .post("/api/projects", json!({"name": 1}))
        .await
        .expect(400);
    admin
        .send_raw(reqwest::Method::POST, "/api/projects", "{not json")
        .await
        .expect(400);
    admin
        .send_raw(reqwest::Method::POST, "/api/projects", "[1,2]")
        .await
        .expect(400);

    for q in [
        "",
        "?with_results=true",
        "?with_results=false",
        "?with_results=1",
    ] {
        let g = admin.get(&format!("/api/projects/{id}{q}")).await;
        assert_eq!(g.expect(200)["name"], "anchor", "{q}");
    }
    admin
        .get(&format!("/api/projects/{id}?with_results=maybe"))
        .await
        .expect(400);
    admin.get("/api/projects/99999").await.expect(404);
    admin.get("/bk/api/projects/99999").await.expect(404);

    // with_results lists each branch's latest flows.
    admin.branch(id, "Main").await;
    let g = admin
        .get(&format!("/api/projects/{id}?with_results=true"))
        .await;
    assert_eq!(g.expect(200)["branches"][0]["ci_flows"], json!([]));
    let l = admin.get("/api/projects").await;
    let item = &l.expect(200)["items"][0];
    assert_eq!(item["branches"][0]["last_completed_flow"], json!(null));
    assert!(
        item["branches"][0]
            .as_object()
            .unwrap()
            .contains_key("last_incomplete_flow")
    );

    // Update.
    let u = admin
        .put(
            &format!("/api/projects/{id}"),
            json!({"description": "new", "webhooks": {"github_enabled": true}}),
        )
        .await;
    assert_eq!(u.expect(200)["description"], "new");
    assert_eq!(u.body["webhooks"]["github_enabled"], true);
    admin
        .post("/api/projects", json!({"name": "other"}))
        .await
        .expect(201);
    admin
        .put(&format!("/api/projects/{id}"), json!({"name": "other"}))
        .await
        .expect(400);
    admin
        .put(&format!("/api/projects/{id}"), json!({"webhooks": "x"}))
        .await
        .expect(400);
    admin
        .put("/api/projects/99999", json!({"description": "x"}))
        .await
        .expect(404);

    // Roles: a viewer reads, a pwrusr updates, only an admin deletes.
    let (uid, user) = s.user("carol").await;
    user.get(&format!("/api/projects/{id}")).await.expect(403);
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {id.to_string(): "viewer"}}),
        )
        .await
        .expect(201);
    user.get(&format!("/api/projects/{id}")).await.expect(200);
    user.put(&format!("/api/projects/{id}"), json!({"description": "v"}))
        .await
        .expect(403);
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {id.to_string(): "pwrusr"}}),
        )
        .await
        .expect(201);
    user.put(&format!("/api/projects/{id}"), json!({"description": "p"}))
        .await
        .expect(200);
    user.delete(&format!("/api/projects/{id}"))
        .await
        .expect(403);
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {id.to_string(): "admin"}}),
        )
        .await
        .expect(201);
    user.delete(&format!("/api/projects/{id}"))
        .await
        .expect(200);

    // Deleted projects are gone from lists and reads; the name is free again.
    admin.get(&format!("/api/projects/{id}")).await.expect(404);
    let names: Vec<String> = admin.get("/api/projects").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["other"]);
    admin
        .delete(&format!("/api/projects/{id}"))
        .await
        .expect(404);
    admin
        .post("/api/projects", json!({"name": "anchor"}))
        .await
        .expect(201);
}

#[tokio::test]
async fn secrets_are_masked_and_checked() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("sec").await;
    let path = format!("/api/projects/{pid}/secrets");
    let simple = admin
        .post(
            &path,
            json!({"name": "MY_SECRET", "kind": "simple", "secret": "s3cr3t"}),
        )
        .await;
    let simple_id = simple.expect(201)["id"].as_i64().unwrap();
    assert_eq!(simple.body["secret"], "******");
    assert_eq!(simple.body["kind"], "simple");
    assert_eq!(simple.body["project_name"], "sec");
    let ssh = admin
        .post(&path, json!({"name": "deploy_key", "kind": "ssh-key", "username": "git", "key": "-----BEGIN KEY-----"}))
        .await;
    assert_eq!(ssh.expect(201)["key"], "******");
    assert_eq!(ssh.body["username"], "git");

    admin
        .post(
            &path,
            json!({"name": "X", "kind": "password", "secret": "a"}),
        )
        .await
        .expect(400);
    admin
        .post(
            &path,
            json!({"name": "bad name!", "kind": "simple", "secret": "a"}),
        )
        .await
        .expect(400);
    admin
        .post(&path, json!({"kind": "simple", "secret": "a"}))
        .await
        .expect(400);
    admin
        .post(&path, json!({"name": "K", "kind": "ssh-key"}))
        .await
        .expect(400);
    admin
        .post(
            &path,
            json!({"name": "MY_SECRET", "kind": "simple", "secret": "a"}),
        )
        .await
        .expect(400);
    admin
        .post(&path, json!({"name": "N", "kind": "simple", "secret": 5}))
        .await
        .expect(400);
    admin
        .post(
            "/api/projects/99999/secrets",
            json!({"name": "A", "kind": "simple", "secret": "a"}),
        )
        .await
        .expect(404);

    // The project lists its secrets, masked.
    let p = admin.get(&format!("/api/projects/{pid}")).await;
    let secrets = p.expect(200)["secrets"].as_array().unwrap().clone();
    assert_eq!(secrets.len(), 2);
    assert!(
        secrets
            .iter()
            .all(|s| !s.to_string().contains("s3cr3t") && !s.to_string().contains("BEGIN"))
    );

    // Update: rename; ****** keeps the value.
    let up = admin
        .put(
            &format!("/api/secrets/{simple_id}"),
            json!({"name": "MY_SECRET2", "secret": "******"}),
        )
        .await;
    assert_eq!(up.expect(200)["name"], "MY_SECRET2");
    admin
        .put(
            &format!("/api/secrets/{simple_id}"),
            json!({"name": "bad-name"}),
        )
        .await
        .expect(400);
    admin
        .put("/api/secrets/99999", json!({"name": "A"}))
        .await
        .expect(404);

    // Only project admins manage secrets.
    let (uid, user) = s.user("dave").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "pwrusr"}}),
        )
        .await
        .expect(201);
    user.post(&path, json!({"name": "Z", "kind": "simple", "secret": "z"}))
        .await
        .expect(403);
    user.put(&format!("/api/secrets/{simple_id}"), json!({"name": "Z"}))
        .await
        .expect(403);
    user.delete(&format!("/api/secrets/{simple_id}"))
        .await
        .expect(403);

    admin
        .delete(&format!("/api/secrets/{simple_id}"))
        .await
        .expect(200);
    admin
        .delete(&format!("/api/secrets/{simple_id}"))
        .await
        .expect(404);
    let p = admin.get(&format!("/api/projects/{pid}")).await;
    assert_eq!(p.expect(200)["secrets"].as_array().unwrap().len(), 1);
}

/// The project list reads secrets, branches and their latest flows for all
/// projects at once: each project gets its own, in the usual order.
#[tokio::test]
async fn the_project_list_gives_each_project_its_own_branches_secrets_and_flows() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let a = admin.project("alpha").await;
    let b = admin.project("beta").await;
    let a_main = admin.branch(a, "main").await;
    admin.branch(a, "dev").await;
    let b_main = admin.branch(b, "main").await;
    admin
        .post(
            &format!("/api/projects/{b}/secrets"),
            json!({"name": "tok", "kind": "simple", "secret": "x"}),
        )
        .await
        .expect(201);
    // A flow whose one job has no agent to run it ends at once.
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"j\", \"steps\": [{\"tool\": \"shell\", \"cmd\": \"true\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}\n";
    admin.stage(b_main, "build", code).await;
    let flow = admin.flow(b_main).await["id"].as_i64().unwrap();
    admin
        .wait_flow(flow, std::time::Duration::from_secs(30))
        .await;

    let list = admin.get("/api/projects").await;
    let items = list.expect(200)["items"].as_array().unwrap().clone();
    let by_name = |n: &str| items.iter().find(|p| p["name"] == n).unwrap().clone();
    let (alpha, beta) = (by_name("alpha"), by_name("beta"));
    let names = |p: &serde_json::Value| {
        p["branches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&alpha), ["dev", "main"]);
    assert_eq!(names(&beta), ["main"]);
    assert_eq!(alpha["secrets"], json!([]));
    assert_eq!(beta["secrets"][0]["name"], "tok");
    for br in alpha["branches"].as_array().unwrap() {
        assert_eq!(br["last_completed_flow"], json!(null), "{br}");
        assert_eq!(br["last_incomplete_flow"], json!(null), "{br}");
    }
    assert_eq!(beta["branches"][0]["last_completed_flow"]["id"], flow);
    assert_eq!(beta["branches"][0]["last_completed_flow"]["errors"], true);
    assert_eq!(beta["branches"][0]["last_incomplete_flow"], json!(null));
    assert_eq!(alpha["branches"][1]["id"], a_main);
}
