//! Agents, groups and systems.

use serde_json::json;

use kraken_tests::TestServer;

#[tokio::test]
async fn groups_crud() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let l = admin.get("/api/groups").await;
    let items = l.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "all");
    assert_eq!(items[0]["deployment"]["method"], 0);
    assert_eq!(items[0]["deployment"]["aws"]["instances_limit"], 5);
    let all_id = items[0]["id"].as_i64().unwrap();

    let g = admin.post("/api/groups", json!({"name": "linux"})).await;
    let gid = g.expect(201)["id"].as_i64().unwrap();
    assert_eq!(g.body["project_id"], json!(null));
    assert_eq!(g.body["agents_count"], 0);
    admin
        .post("/api/groups", json!({"name": "linux"}))
        .await
        .expect(400);
    admin.post("/api/groups", json!({})).await.expect(400);
    admin
        .post("/api/groups", json!({"name": "x", "project_id": "one"}))
        .await
        .expect(400);
    admin
        .post("/api/groups", json!({"name": "x", "project_id": 99999}))
        .await
        .expect(400);
    let pid = admin.project("p").await;
    let pg = admin
        .post("/api/groups", json!({"name": "linux", "project_id": pid}))
        .await;
    assert_eq!(pg.expect(201)["project_name"], "p");

    admin.get(&format!("/api/groups/{gid}")).await.expect(200);
    admin.get("/api/groups/99999").await.expect(404);
    let u = admin
        .put(&format!("/api/groups/{gid}"), json!({"name": "linux-x64", "deployment": {"method": 0, "aws": {"region": "eu-west-1"}}}))
        .await;
    assert_eq!(u.expect(200)["name"], "linux-x64");
    assert_eq!(u.body["deployment"]["aws"]["region"], "eu-west-1");
    assert_eq!(u.body["deployment"]["aws"]["instances_limit"], 5);
    // The original crashed (500) on an unknown id here.
    admin
        .put("/api/groups/99999", json!({"name": "y"}))
        .await
        .expect(404);
    admin
        .put(&format!("/api/groups/{gid}"), json!({"deployment": "none"}))
        .await
        .expect(400);
    admin
        .delete(&format!("/api/groups/{all_id}"))
        .await
        .expect(400);
    admin
        .delete(&format!("/api/groups/{gid}"))
        .await
        .expect(200);
    admin.get(&format!("/api/groups/{gid}")).await.expect(404);
    admin
        .delete(&format!("/api/groups/{gid}"))
        .await
        .expect(404);

    let (_, user) = s.user("gina").await;
    user.get("/api/groups").await.expect(403);
    user.post("/api/groups", json!({"name": "z"}))
        .await
        .expect(403);

    let sys = admin.get("/api/systems").await;
    assert_eq!(
        sys.expect(200)["items"][0],
        json!({"id": 1, "name": "any", "executor": "local"})
    );
    user.get("/api/systems").await.expect(200);
}

#[tokio::test]
async fn agents_authorize_update_delete() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    assert_eq!(admin.get("/api/agents").await.expect(200)["total"], 0);
    // Agents register themselves through the agent backend; do it through the store here.
    let core = s.server.as_ref().unwrap().core.clone();
    let a1 = core
        .engine()
        .store()
        .register_agent("10.0.0.5", Some("10.0.0.5"))
        .await
        .unwrap();
    core.engine()
        .store()
        .register_agent("10.0.0.6", None)
        .await
        .unwrap();

    assert_eq!(admin.get("/api/agents").await.body["total"], 0);
    let un = admin.get("/api/agents?unauthorized=true").await;
    assert_eq!(un.expect(200)["total"], 2);
    assert_eq!(un.body["items"][0]["authorized"], false);
    let sorted = admin
        .get("/api/agents?unauthorized=true&sort_field=address&sort_dir=desc&limit=1")
        .await;
    assert_eq!(sorted.expect(200)["items"][0]["address"], "10.0.0.6");
    assert_eq!(sorted.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(sorted.body["total"], 2);
    admin.get("/api/agents?sort_field=secret").await.expect(400);
    admin.get("/api/agents?sort_dir=sideways").await.expect(400);
    admin
        .get("/api/agents?unauthorized=perhaps")
        .await
        .expect(400);
    admin.get("/api/agents?limit=-1").await.expect(400);

    // Authorize: joins group `all`.
    admin
        .patch("/api/agents", json!([{"id": a1.id, "authorized": true}]))
        .await
        .expect(200);
    let got = admin.get(&format!("/api/agents/{}", a1.id)).await;
    assert_eq!(got.expect(200)["authorized"], true);
    assert_eq!(got.body["groups"], json!([{"id": 1, "name": "all"}]));
    assert_eq!(got.body["job"], json!(null));
    assert_eq!(admin.get("/api/agents").await.body["total"], 1);
    assert_eq!(admin.get("/api/groups/1").await.body["agents_count"], 1);
    admin
        .patch("/api/agents", json!([{"id": 99999, "authorized": true}]))
        .await
        .expect(404);
    admin
        .patch("/api/agents", json!({"id": a1.id}))
        .await
        .expect(400);
    admin
        .patch("/api/agents", json!([{"authorized": true}]))
        .await
        .expect(400);

    // Update groups and disable.
    let g = admin.post("/api/groups", json!({"name": "gpu"})).await.body["id"]
        .as_i64()
        .unwrap();
    let u = admin
        .put(
            &format!("/api/agents/{}", a1.id),
            json!({"groups": [{"id": g}], "disabled": true}),
        )
        .await;
    assert_eq!(u.expect(200)["groups"], json!([{"id": g, "name": "gpu"}]));
    assert_eq!(u.body["disabled"], true);
    admin
        .put(
            &format!("/api/agents/{}", a1.id),
            json!({"groups": [{"id": 99999}]}),
        )
        .await
        .expect(400);
    admin
        .put(
            &format!("/api/agents/{}", a1.id),
            json!({"disabled": "yes"}),
        )
        .await
        .expect(400);
    admin
        .put("/api/agents/99999", json!({"disabled": true}))
        .await
        .expect(404);
    admin.get("/api/agents/99999").await.expect(404);
    let jobs = admin.get(&format!("/api/agents/{}/jobs", a1.id)).await;
    assert_eq!(jobs.expect(200)["total"], 0);

    let (_, user) = s.user("hank").await;
    user.get("/api/agents").await.expect(403);
    user.patch("/api/agents", json!([{"id": a1.id, "authorized": false}]))
        .await
        .expect(403);
    user.delete(&format!("/api/agents/{}", a1.id))
        .await
        .expect(403);

    admin
        .delete(&format!("/api/agents/{}", a1.id))
        .await
        .expect(200);
    admin
        .get(&format!("/api/agents/{}", a1.id))
        .await
        .expect(404);
    admin
        .delete(&format!("/api/agents/{}", a1.id))
        .await
        .expect(404);

    let live = admin.get("/api/live-data").await;
    assert_eq!(live.expect(200)["non_authorized_agents"], 1);
    assert_eq!(live.body["authorized_agents"], 0);
}
