//! The error contract: every failure is JSON with code and message.

use serde_json::json;

use kraken_tests::TestServer;

#[tokio::test]
async fn unknown_routes_methods_and_bad_bodies_are_json_errors() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let a = admin.get("/api/no/such/thing").await;
    assert!(
        a.expect(404)["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/thing")
    );
    admin.get("/nowhere").await.expect(404);
    admin.delete("/api/version").await.expect(405);
    admin
        .send_raw(reqwest::Method::POST, "/api/users", "{\"name\": ")
        .await
        .expect(400);
    admin
        .send_raw(reqwest::Method::POST, "/api/users", "null")
        .await
        .expect(400);
    let typed = admin
        .post("/api/users", json!({"name": "x", "password": ["p"]}))
        .await;
    assert!(
        typed.expect(400)["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "names the field: {}",
        typed.body
    );
    admin.get("/api/projects/1.5").await.expect(400);
    admin.get("/api/projects/-1").await.expect(404);
    admin
        .get("/api/projects/99999999999999999999")
        .await
        .expect(400);
}
