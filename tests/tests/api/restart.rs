//! Data survives a restart of the server.

use serde_json::json;

use kraken_tests::{Client, TestServer};

#[tokio::test]
async fn data_survives_restart() {
    let mut s = TestServer::start().await;
    let backend = s.server.as_ref().unwrap().core.engine().store().backend();
    match std::env::var("KRAKEN_TEST_DB_URL") {
        Ok(url) if url.starts_with("postgres") => assert_eq!(backend, "postgres"),
        _ => assert_eq!(backend, "sqlite"),
    }
    let admin = s.admin().await;
    let pid = admin.project("durable").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .post(
            &format!("/api/branches/{bid}/env_vars"),
            json!({"name": "K", "value": "v"}),
        )
        .await
        .expect(201);
    admin
        .post(
            &format!("/api/projects/{pid}/secrets"),
            json!({"name": "S", "kind": "simple", "secret": "x"}),
        )
        .await
        .expect(201);
    admin
        .post("/api/users", json!({"name": "kim", "password": "pw"}))
        .await
        .expect(201);
    admin
        .post("/api/groups", json!({"name": "builders"}))
        .await
        .expect(201);
    let token = admin.token.clone();

    s.restart().await;

    // The old session still works; everything is there; seeding did not duplicate.
    let same = Client {
        base: s.url.clone(),
        ..admin.clone()
    };
    assert_eq!(same.token, token);
    let p = same.get(&format!("/api/projects/{pid}")).await;
    assert_eq!(p.expect(200)["name"], "durable");
    assert_eq!(p.body["branches"][0]["env_vars"], json!({"K": "v"}));
    assert_eq!(p.body["secrets"][0]["name"], "S");
    assert_eq!(same.get("/api/tools").await.body["total"], 14);
    assert_eq!(same.get("/api/groups").await.body["total"], 2);
    assert_eq!(same.get("/api/users").await.body["total"], 2);
    Client::login(&s.url, "kim", "pw").await;
}
