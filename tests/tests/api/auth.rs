//! Sessions, users, roles.

use kraken_tests::{Client, TestServer};
use serde_json::json;

#[tokio::test]
async fn login_get_session_and_logout() {
    let s = TestServer::start().await;
    let anon = s.anonymous();
    // Bad credentials.
    anon.post(
        "/api/sessions",
        json!({"user": "admin", "password": "wrong"}),
    )
    .await
    .expect(401);
    let a = anon.post("/api/sessions", json!({"user": "admin"})).await;
    assert_eq!(a.expect(400)["message"], "bad credentials");
    anon.post("/api/sessions", json!({"user": "nobody", "password": "x"}))
        .await
        .expect(401);
    anon.post("/api/sessions", json!({"user": 5, "password": "x"}))
        .await
        .expect(400);
    anon.post(
        "/api/sessions",
        json!({"user": "admin", "password": "admin", "method": "oidc"}),
    )
    .await
    .expect(400);

    let admin = s.admin().await;
    let token = admin.token.clone().unwrap();
    assert_eq!(token.len(), 32);
    let sess = admin.get(&format!("/api/sessions/{token}")).await;
    let body = sess.expect(200);
    assert_eq!(body["token"], json!(token));
    assert_eq!(body["user"]["name"], "admin");
    assert_eq!(body["roles"]["superadmin"], true);

    // Another user may not read or end the admin's session.
    let (_, bob) = s.user("bob").await;
    bob.get(&format!("/api/sessions/{token}")).await.expect(403);
    bob.delete(&format!("/api/sessions/{token}"))
        .await
        .expect(403);
    admin
        .get("/api/sessions/0123456789abcdef0123456789abcdef")
        .await
        .expect(404);

    // Logout: 204, then the token is dead.
    let out = admin.delete(&format!("/api/sessions/{token}")).await;
    assert_eq!(out.status, 204);
    admin.get("/api/version").await.expect(401);
    anon.get("/api/version").await.expect(401);
    let bogus = Client {
        token: Some("nope".into()),
        ..anon.clone()
    };
    bogus.get("/api/version").await.expect(401);
}

#[tokio::test]
async fn users_crud_roles_and_passwords() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let list = admin.get("/api/users").await;
    assert_eq!(list.expect(200)["total"], 1);
    admin.get("/api/users?sort_field=bogus").await.expect(400);
    admin.get("/api/users?start=x").await.expect(400);
    let by_name = admin
        .get("/api/users?sort_field=name&sort_dir=desc&limit=1")
        .await;
    assert_eq!(by_name.expect(200)["items"].as_array().unwrap().len(), 1);

    // Create: name and password are required; duplicates are refused.
    admin
        .post("/api/users", json!({"name": "alice"}))
        .await
        .expect(400);
    admin
        .post("/api/users", json!({"password": "x"}))
        .await
        .expect(400);
    admin
        .post("/api/users", json!({"name": "", "password": "x"}))
        .await
        .expect(400);
    admin
        .post("/api/users", json!({"name": ["alice"], "password": "x"}))
        .await
        .expect(400);
    let u = admin
        .post(
            "/api/users",
            json!({"name": "alice", "password": "alice123"}),
        )
        .await;
    let alice_id = u.expect(201)["id"].as_i64().unwrap();
    assert_eq!(u.body["superadmin"], false);
    assert_eq!(u.body["enabled"], true);
    let dup = admin
        .post("/api/users", json!({"name": "alice", "password": "x"}))
        .await;
    assert!(
        dup.expect(400)["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    let got = admin.get(&format!("/api/users/{alice_id}")).await;
    assert_eq!(got.expect(200)["projects"], json!({}));
    admin.get("/api/users/99999").await.expect(404);
    admin.get("/api/users/abc").await.expect(400);

    // Roles per project.
    let pid = admin.project("proj").await;
    let ch = admin
        .patch(
            &format!("/api/users/{alice_id}"),
            json!({"projects": {pid.to_string(): "viewer"}}),
        )
        .await;
    assert_eq!(ch.expect(201)["projects"][pid.to_string()], "viewer");
    admin
        .patch(
            &format!("/api/users/{alice_id}"),
            json!({"projects": {pid.to_string(): "king"}}),
        )
        .await
        .expect(400);
    admin
        .patch(
            &format!("/api/users/{alice_id}"),
            json!({"projects": {"99999": "viewer"}}),
        )
        .await
        .expect(400);
    admin
        .patch(&format!("/api/users/{alice_id}"), json!({"enabled": "yes"}))
        .await
        .expect(400);
    admin
        .patch("/api/users/99999", json!({"enabled": false}))
        .await
        .expect(404);

    let alice = Client::login(&s.url, "alice", "alice123").await;
    let projects = alice.get("/api/projects").await;
    assert_eq!(projects.expect(200)["total"], 1);
    // A viewer may not create projects or users, nor list users.
    alice
        .post("/api/projects", json!({"name": "x"}))
        .await
        .expect(403);
    alice
        .post("/api/users", json!({"name": "x", "password": "x"}))
        .await
        .expect(403);
    alice.get("/api/users").await.expect(403);
    alice
        .patch(
            &format!("/api/users/{alice_id}"),
            json!({"superadmin": true}),
        )
        .await
        .expect(403);
    // ...but may read herself.
    alice
        .get(&format!("/api/users/{alice_id}"))
        .await
        .expect(200);

    // Revoking the role hides the project.
    admin
        .patch(
            &format!("/api/users/{alice_id}"),
            json!({"projects": {pid.to_string(): null}}),
        )
        .await
        .expect(201);
    assert_eq!(alice.get("/api/projects").await.expect(200)["total"], 0);

    // Password change needs the old password, even for admins.
    let path = format!("/api/users/{alice_id}/password");
    alice
        .put(&path, json!({"password_old": "bad", "password_new": "n3w"}))
        .await
        .expect(400);
    alice
        .put(
            &path,
            json!({"password_old": "alice123", "password_new": ""}),
        )
        .await
        .expect(400);
    alice
        .put(
            &path,
            json!({"password_old": "alice123", "password_new": "n3w"}),
        )
        .await
        .expect(201);
    s.anonymous()
        .post(
            "/api/sessions",
            json!({"user": "alice", "password": "alice123"}),
        )
        .await
        .expect(401);
    Client::login(&s.url, "alice", "n3w").await;
    let (_, bob) = s.user("bob").await;
    bob.put(&path, json!({"password_old": "n3w", "password_new": "x"}))
        .await
        .expect(403);
    admin
        .put(
            "/api/users/99999/password",
            json!({"password_old": "a", "password_new": "b"}),
        )
        .await
        .expect(400);

    // Disabled users cannot log in; superadmin can be granted.
    admin
        .patch(&format!("/api/users/{alice_id}"), json!({"enabled": false}))
        .await
        .expect(201);
    let a = s
        .anonymous()
        .post("/api/sessions", json!({"user": "alice", "password": "n3w"}))
        .await;
    assert_eq!(a.expect(401)["message"], "user account is disabled");
    let (bob_id, bob) = s.user("bob2").await;
    admin
        .patch(&format!("/api/users/{bob_id}"), json!({"superadmin": true}))
        .await
        .expect(201);
    bob.post("/api/projects", json!({"name": "bobs"}))
        .await
        .expect(201);
    // admin cannot be demoted.
    admin
        .patch("/api/users/1", json!({"superadmin": false}))
        .await
        .expect(400);
}

#[tokio::test]
async fn every_endpoint_but_login_needs_a_token() {
    let s = TestServer::start().await;
    let anon = s.anonymous();
    for (method, path) in [
        ("GET", "/api/version"),
        ("GET", "/bk/api/version"),
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("GET", "/api/users/1"),
        ("PATCH", "/api/users/1"),
        ("PUT", "/api/users/1/password"),
        ("GET", "/api/projects"),
        ("POST", "/api/projects"),
        ("GET", "/api/projects/1"),
        ("PUT", "/api/projects/1"),
        ("DELETE", "/api/projects/1"),
        ("POST", "/api/projects/1/secrets"),
        ("PUT", "/api/secrets/1"),
        ("DELETE", "/api/secrets/1"),
        ("POST", "/api/projects/1/branches"),
        ("PUT", "/api/branches/1"),
        ("DELETE", "/api/branches/1"),
        ("GET", "/api/branches/1/cfg"),
        ("GET", "/api/branches/1/sequences"),
        ("PUT", "/api/sequences/1"),
        ("GET", "/api/branches/1/stats"),
        ("PUT", "/api/branches/1/project_id"),
        ("PUT", "/api/branches/1/retention_policy"),
        ("POST", "/api/branches/1/env_vars"),
        ("DELETE", "/api/branches/1/env_vars/X"),
        ("GET", "/api/groups"),
        ("POST", "/api/groups"),
        ("GET", "/api/groups/1"),
        ("PUT", "/api/groups/1"),
        ("DELETE", "/api/groups/1"),
        ("GET", "/api/agents"),
        ("PATCH", "/api/agents"),
        ("GET", "/api/agents/1"),
        ("PUT", "/api/agents/1"),
        ("DELETE", "/api/agents/1"),
        ("GET", "/api/systems"),
        ("GET", "/api/tools"),
        ("POST", "/api/tools"),
        ("GET", "/api/tools/shell"),
        ("DELETE", "/api/tools/1"),
        ("PUT", "/api/settings"),
        ("GET", "/api/user_data?scope=project&entity_id=1"),
        ("GET", "/api/workflow-schema"),
        ("GET", "/api/live-data"),
    ] {
        let a = anon
            .send(method.parse().unwrap(), path, Some(json!({})))
            .await;
        assert_eq!(a.status, 401, "{method} {path}: {}", a.body);
        assert_eq!(a.body["code"], 401, "{method} {path}");
    }
    // Login and the public settings need none.
    let pub_settings = anon.get("/api/settings").await;
    assert_eq!(pub_settings.expect(200)["idp"]["ldap_enabled"], false);
    assert!(pub_settings.body.get("general").is_none());
}

#[tokio::test]
async fn idle_sessions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let db = kraken_tests::TestDb::new().await;
    let server = kraken_server::start(kraken_server::ServerConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        db_url: db.url.clone(),
        session_idle_timeout: std::time::Duration::from_secs(1),
        admin_password: Some("s3cret".into()),
        agents: 0,
        udp_bind: None,
        s3_bind: None,
        storage: None,
    })
    .await
    .unwrap();
    // The admin password comes from the configuration.
    let anon = Client {
        base: server.url(),
        token: None,
        http: reqwest::Client::new(),
    };
    anon.post(
        "/api/sessions",
        json!({"user": "admin", "password": "admin"}),
    )
    .await
    .expect(401);
    let admin = Client::login(&server.url(), "admin", "s3cret").await;
    admin.get("/api/version").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let a = admin.get("/api/version").await;
    assert!(
        a.expect(401)["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        a.body
    );
    admin.get("/api/version").await.expect(401);
    server.shutdown().await.unwrap();
}

/// The same session (token) as `c`, through the server at `base`.
fn through(c: &Client, base: &str) -> Client {
    Client {
        base: base.to_string(),
        token: c.token.clone(),
        http: reqwest::Client::new(),
    }
}

/// How many projects `c` sees, or the HTTP status when it may not list them.
async fn projects_seen(c: &Client) -> Result<i64, u16> {
    let a = c.get("/api/projects").await;
    match a.status {
        200 => Ok(a.body["total"].as_i64().unwrap()),
        s => Err(s),
    }
}

/// Sessions are kept in memory (README "Sessions"): on the server that made
/// it, every change that ends a session or narrows its rights counts from the
/// very next request, although the session was just used (kept).
#[tokio::test]
async fn kept_sessions_end_at_once_on_logout_password_roles_and_disabling() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("kept").await;
    let (alice_id, alice) = s.user("alice").await;
    let alice2 = Client::login(&s.url, "alice", "pw").await;
    let user = format!("/api/users/{alice_id}");

    // Roles: granted, revoked, granted again; each seen on the next request.
    assert_eq!(projects_seen(&alice).await, Ok(0));
    admin
        .patch(&user, json!({"projects": {pid.to_string(): "viewer"}}))
        .await
        .expect(201);
    assert_eq!(projects_seen(&alice).await, Ok(1));
    assert_eq!(projects_seen(&alice2).await, Ok(1));
    admin
        .patch(&user, json!({"projects": {pid.to_string(): null}}))
        .await
        .expect(201);
    assert_eq!(projects_seen(&alice).await, Ok(0));
    assert_eq!(projects_seen(&alice2).await, Ok(0));
    admin
        .patch(&user, json!({"projects": {pid.to_string(): "admin"}}))
        .await
        .expect(201);
    assert_eq!(projects_seen(&alice).await, Ok(1));

    // Superadmin: granted and taken back.
    alice.get("/api/users").await.expect(403);
    admin
        .patch(&user, json!({"superadmin": true}))
        .await
        .expect(201);
    alice.get("/api/users").await.expect(200);
    admin
        .patch(&user, json!({"superadmin": false}))
        .await
        .expect(201);
    alice.get("/api/users").await.expect(403);

    // A deleted project takes its roles with it.
    admin.delete(&format!("/api/projects/{pid}")).await;
    assert_eq!(projects_seen(&alice).await, Ok(0));

    // Password change: the user's other sessions end, the one used stays.
    alice
        .put(
            &format!("{user}/password"),
            json!({"password_old": "pw", "password_new": "pw2"}),
        )
        .await
        .expect(201);
    alice2.get("/api/version").await.expect(401);
    alice.get("/api/version").await.expect(200);
    // Changed by a superadmin: all of them end.
    let alice3 = Client::login(&s.url, "alice", "pw2").await;
    alice3.get("/api/version").await.expect(200);
    admin
        .put(
            &format!("{user}/password"),
            json!({"password_old": "pw2", "password_new": "pw3"}),
        )
        .await
        .expect(201);
    alice.get("/api/version").await.expect(401);
    alice3.get("/api/version").await.expect(401);

    // Logout.
    let alice4 = Client::login(&s.url, "alice", "pw3").await;
    let alice5 = Client::login(&s.url, "alice", "pw3").await;
    alice4.get("/api/version").await.expect(200);
    alice5.get("/api/version").await.expect(200);
    let token = alice4.token.clone().unwrap();
    let out = alice4.delete(&format!("/api/sessions/{token}")).await;
    assert_eq!(out.status, 204);
    alice4.get("/api/version").await.expect(401);
    alice5.get("/api/version").await.expect(200);

    // Disabled.
    admin
        .patch(&user, json!({"enabled": false}))
        .await
        .expect(201);
    alice5.get("/api/version").await.expect(401);
}

/// Wait until `check` holds on the other server: it must within the bound
/// of kept sessions (`SESSION_CACHE_MAX_AGE`), plus a slack for a loaded
/// machine.
async fn seen_within_the_bound<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let bound = kraken_core::auth::cache::SESSION_CACHE_MAX_AGE;
    let deadline = std::time::Instant::now() + bound + std::time::Duration::from_secs(8);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the other server still used its kept session after {bound:?} (+8 s)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Two servers on one PostgreSQL: a logout, a password change, a role change
/// and a disabled user, made through one server, count there at once and on
/// the other (which had just used the session, so kept it) within the
/// documented bound.
#[tokio::test]
async fn kept_sessions_end_on_a_second_server_within_the_bound() {
    let s = TestServer::start_with_agents(0).await;
    if !s.db.is_postgres() {
        eprintln!(
            "skipped: two servers need a shared PostgreSQL; set KRAKEN_TEST_DB_URL=postgres://... to run it"
        );
        return;
    }
    let other = s.start_another(0).await;
    let b = other.url();
    let admin = s.admin().await;
    let pid = admin.project("shared").await;
    let (alice_id, alice) = s.user("alice").await;
    let user = format!("/api/users/{alice_id}");
    let alice_b = through(&alice, &b);

    // Role change.
    admin
        .patch(&user, json!({"projects": {pid.to_string(): "viewer"}}))
        .await
        .expect(201);
    seen_within_the_bound("role granted", || async {
        projects_seen(&alice_b).await == Ok(1)
    })
    .await;
    admin
        .patch(&user, json!({"projects": {pid.to_string(): null}}))
        .await
        .expect(201);
    assert_eq!(projects_seen(&alice).await, Ok(0));
    seen_within_the_bound("role revoked", || async {
        projects_seen(&alice_b).await == Ok(0)
    })
    .await;

    // Password change through server A ends the other session on B.
    let other_session = Client::login(&b, "alice", "pw").await;
    other_session.get("/api/version").await.expect(200);
    through(&other_session, &s.url)
        .get("/api/version")
        .await
        .expect(200);
    alice
        .put(
            &format!("{user}/password"),
            json!({"password_old": "pw", "password_new": "pw2"}),
        )
        .await
        .expect(201);
    through(&other_session, &s.url)
        .get("/api/version")
        .await
        .expect(401);
    seen_within_the_bound("password changed", || async {
        other_session.get("/api/version").await.status == 401
    })
    .await;
    alice_b.get("/api/version").await.expect(200);

    // Logout through A.
    let third = Client::login(&s.url, "alice", "pw2").await;
    let third_b = through(&third, &b);
    third_b.get("/api/version").await.expect(200);
    let token = third.token.clone().unwrap();
    assert_eq!(
        third.delete(&format!("/api/sessions/{token}")).await.status,
        204
    );
    third.get("/api/version").await.expect(401);
    seen_within_the_bound("logged out", || async {
        third_b.get("/api/version").await.status == 401
    })
    .await;

    // Disabled through A.
    alice_b.get("/api/version").await.expect(200);
    admin
        .patch(&user, json!({"enabled": false}))
        .await
        .expect(201);
    alice.get("/api/version").await.expect(401);
    seen_within_the_bound("disabled", || async {
        alice_b.get("/api/version").await.status == 401
    })
    .await;
    other.shutdown().await.unwrap();
}
