//! Branches, sequences, retention, environment variables, forks, stats.

use serde_json::json;

use kraken_tests::TestServer;

#[tokio::test]
async fn branch_lifecycle() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let path = format!("/api/projects/{pid}/branches");
    let b = admin
        .post(&path, json!({"name": "Main", "branch_name": "main"}))
        .await;
    let bid = b.expect(201)["id"].as_i64().unwrap();
    assert_eq!(b.body["branch_name"], "main");
    assert_eq!(b.body["project_name"], "p");
    assert_eq!(
        b.body["retention_policy"],
        json!({"ci_logs": 6, "dev_logs": 3, "ci_artifacts": 6, "dev_artifacts": 3})
    );
    assert_eq!(b.body["env_vars"], json!({}));

    // The original answered a duplicate name with a 500; we answer 400.
    admin.post(&path, json!({"name": "Main"})).await.expect(400);
    admin.post(&path, json!({})).await.expect(400);
    admin.post(&path, json!({"name": 3})).await.expect(400);
    admin
        .post("/api/projects/99999/branches", json!({"name": "x"}))
        .await
        .expect(404);
    // branch_name defaults to the name.
    let dev = admin.post(&path, json!({"name": "dev"})).await;
    assert_eq!(dev.expect(201)["branch_name"], "dev");

    let cfg = admin.get(&format!("/api/branches/{bid}/cfg")).await;
    assert_eq!(cfg.expect(200)["stages"], json!([]));
    admin.get("/api/branches/99999/cfg").await.expect(404);

    // Rename.
    let u = admin
        .put(&format!("/api/branches/{bid}"), json!({"name": "Main2"}))
        .await;
    assert_eq!(u.expect(200)["name"], "Main2");
    assert_eq!(u.body["branch_name"], "main");
    admin
        .put(&format!("/api/branches/{bid}"), json!({"name": "dev"}))
        .await
        .expect(400);
    admin
        .put(&format!("/api/branches/{bid}"), json!({"name": ""}))
        .await
        .expect(400);
    admin
        .put("/api/branches/99999", json!({"name": "x"}))
        .await
        .expect(404);

    // Sequences: three branch-level ones, settable to >= -1.
    let seqs = admin.get(&format!("/api/branches/{bid}/sequences")).await;
    let items = seqs.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(
        items
            .iter()
            .map(|i| i["kind"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(
        items
            .iter()
            .all(|i| i["value"] == 0 && i["stage_id"].is_null() && i["branch_name"] == "Main2")
    );
    let sid = items[1]["id"].as_i64().unwrap();
    let set = admin
        .put(&format!("/api/sequences/{sid}"), json!({"value": 20}))
        .await;
    assert_eq!(set.expect(200)["value"], 20);
    let seqs = admin.get(&format!("/api/branches/{bid}/sequences")).await;
    assert_eq!(seqs.body["items"][1]["value"], 20);
    admin
        .put(&format!("/api/sequences/{sid}"), json!({"value": -2}))
        .await
        .expect(400);
    admin
        .put(&format!("/api/sequences/{sid}"), json!({"value": "7"}))
        .await
        .expect(400);
    admin
        .put(&format!("/api/sequences/{sid}"), json!({}))
        .await
        .expect(400);
    admin
        .put("/api/sequences/99999", json!({"value": 1}))
        .await
        .expect(404);

    // Retention policy is stored and echoed.
    let rp = json!({"ci_logs": 90, "dev_logs": 7, "ci_artifacts": 60, "dev_artifacts": 7});
    let r = admin
        .put(&format!("/api/branches/{bid}/retention_policy"), rp.clone())
        .await;
    assert_eq!(r.expect(200), &rp);
    assert_eq!(
        admin.get(&format!("/api/branches/{bid}/cfg")).await.body["retention_policy"],
        rp
    );
    admin
        .put(
            &format!("/api/branches/{bid}/retention_policy"),
            json!({"ci_logs": "a lot"}),
        )
        .await
        .expect(400);
    admin
        .put(
            &format!("/api/branches/{bid}/retention_policy"),
            json!({"ci_logs": -1}),
        )
        .await
        .expect(400);

    // Environment variables.
    let ev = format!("/api/branches/{bid}/env_vars");
    assert_eq!(
        admin
            .post(&ev, json!({"name": "FOO", "value": "bar"}))
            .await
            .expect(201),
        &json!({})
    );
    admin
        .post(&ev, json!({"name": "!abc", "value": "x"}))
        .await
        .expect(400);
    admin.post(&ev, json!({"name": "X"})).await.expect(400);
    admin.post(&ev, json!({"value": "x"})).await.expect(400);
    assert_eq!(
        admin.get(&format!("/api/branches/{bid}/cfg")).await.body["env_vars"],
        json!({"FOO": "bar"})
    );
    admin.delete(&format!("{ev}/NOPE")).await.expect(404);
    admin.delete(&format!("{ev}/FOO")).await.expect(200);
    assert_eq!(
        admin.get(&format!("/api/branches/{bid}/cfg")).await.body["env_vars"],
        json!({})
    );

    // Stats of a branch without flows.
    let st = admin.get(&format!("/api/branches/{bid}/stats")).await;
    let st = st.expect(200);
    assert_eq!(st["id"], bid);
    for kind in ["ci", "dev"] {
        assert_eq!(st[kind]["flows_total"], 0);
        assert_eq!(st[kind]["avg_duration_last_week"], json!(null));
        assert_eq!(st[kind]["durations"], json!([]));
    }
    admin.get("/api/branches/99999/stats").await.expect(404);

    // Delete needs project admin.
    let (uid, user) = s.user("erin").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "pwrusr"}}),
        )
        .await
        .expect(201);
    user.put(&format!("/api/branches/{bid}"), json!({"name": "byuser"}))
        .await
        .expect(200);
    user.delete(&format!("/api/branches/{bid}"))
        .await
        .expect(403);
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {pid.to_string(): "viewer"}}),
        )
        .await
        .expect(201);
    user.put(&format!("/api/branches/{bid}"), json!({"name": "x"}))
        .await
        .expect(403);
    user.post(&ev, json!({"name": "A", "value": "b"}))
        .await
        .expect(403);
    user.get(&format!("/api/branches/{bid}/cfg"))
        .await
        .expect(200);
    admin
        .delete(&format!("/api/branches/{bid}"))
        .await
        .expect(200);
    admin
        .get(&format!("/api/branches/{bid}/cfg"))
        .await
        .expect(404);
    admin
        .delete(&format!("/api/branches/{bid}"))
        .await
        .expect(404);
    // Its name can be used again.
    admin
        .post(&path, json!({"name": "byuser"}))
        .await
        .expect(201);
}

#[tokio::test]
async fn fork_and_move() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let p1 = admin.project("one").await;
    let p2 = admin.project("two").await;
    let src = admin.branch(p1, "Main").await;
    admin
        .post(
            &format!("/api/branches/{src}/env_vars"),
            json!({"name": "K", "value": "v"}),
        )
        .await
        .expect(201);
    let seqs = admin
        .get(&format!("/api/branches/{src}/sequences"))
        .await
        .body["items"]
        .clone();
    let shared = seqs[0]["id"].as_i64().unwrap();
    admin
        .put(&format!("/api/sequences/{shared}"), json!({"value": 5}))
        .await
        .expect(200);

    // model-1: the fork continues the numbering, the source restarts.
    let f = admin
        .post(
            &format!("/api/projects/{p1}/branches"),
            json!({"name": "release", "id": src, "forking_model": "model-1"}),
        )
        .await;
    let fork = f.expect(201)["id"].as_i64().unwrap();
    assert_eq!(f.body["env_vars"], json!({"K": "v"}));
    let fs = admin.get(&format!("/api/branches/{fork}/sequences")).await;
    assert_eq!(fs.body["items"][0]["value"], 5);
    let ss = admin.get(&format!("/api/branches/{src}/sequences")).await;
    assert_eq!(ss.body["items"][0]["value"], 0);
    // Another model starts from zero.
    let f2 = admin
        .post(
            &format!("/api/projects/{p1}/branches"),
            json!({"name": "r2", "id": fork}),
        )
        .await;
    let fork2 = f2.expect(201)["id"].as_i64().unwrap();
    assert_eq!(
        admin
            .get(&format!("/api/branches/{fork2}/sequences"))
            .await
            .body["items"][0]["value"],
        0
    );
    admin
        .post(
            &format!("/api/projects/{p1}/branches"),
            json!({"name": "r3", "id": 99999}),
        )
        .await
        .expect(404);

    // Move to another project and back.
    let mv = admin
        .put(
            &format!("/api/branches/{fork}/project_id"),
            json!({"project_id": p2}),
        )
        .await;
    assert_eq!(mv.expect(200)["project_id"], p2);
    assert_eq!(mv.body["project_name"], "two");
    admin
        .put(&format!("/api/branches/{fork}/project_id"), json!({}))
        .await
        .expect(400);
    admin
        .put(
            &format!("/api/branches/{fork}/project_id"),
            json!({"project_id": 99999}),
        )
        .await
        .expect(404);
    admin
        .put("/api/branches/99999/project_id", json!({"project_id": p1}))
        .await
        .expect(404);
    admin
        .put(
            &format!("/api/branches/{fork}/project_id"),
            json!({"project_id": p1}),
        )
        .await
        .expect(200);
    // A name clash in the target project is refused.
    let clash = admin.branch(p2, "release").await;
    admin
        .put(
            &format!("/api/branches/{clash}/project_id"),
            json!({"project_id": p1}),
        )
        .await
        .expect(400);
    // Moving needs admin on both projects.
    let (uid, user) = s.user("frank").await;
    admin
        .patch(
            &format!("/api/users/{uid}"),
            json!({"projects": {p1.to_string(): "admin"}}),
        )
        .await
        .expect(201);
    user.put(
        &format!("/api/branches/{fork}/project_id"),
        json!({"project_id": p2}),
    )
    .await
    .expect(403);
}
