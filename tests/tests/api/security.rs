//! Sessions and input (issue 18): disabled users, login throttling, the
//! session cookie and cross-site writes, text limits, invalid bodies.

use std::net::IpAddr;

use kraken_tests::{Client, TestServer, shell_stage};
use reqwest::header;
use serde_json::{Value, json};

/// A raw login: status, `Retry-After`, `Set-Cookie` and body.
async fn login_raw(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> (u16, Option<String>, Option<String>, Value) {
    let r = http
        .post(format!("{base}/api/sessions"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .expect("login request");
    let status = r.status().as_u16();
    let h = |name: header::HeaderName| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (retry, cookie) = (h(header::RETRY_AFTER), h(header::SET_COOKIE));
    let body = r.json().await.unwrap_or(Value::Null);
    (status, retry, cookie, body)
}

#[tokio::test]
async fn a_disabled_users_token_is_refused_everywhere_at_once() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let (alice_id, alice) = s.user("alice").await;
    admin
        .patch(
            &format!("/api/users/{alice_id}"),
            json!({"projects": {pid.to_string(): "admin"}}),
        )
        .await
        .expect(201);
    alice.get("/api/version").await.expect(200);
    let token = alice.token.clone().unwrap();

    admin
        .patch(&format!("/api/users/{alice_id}"), json!({"enabled": false}))
        .await
        .expect(201);
    // Right after disabling, the token is dead: reads, project calls, its
    // own session and password.
    alice.get("/api/version").await.expect(401);
    alice
        .get(&format!("/api/users/{alice_id}"))
        .await
        .expect(401);
    alice
        .get(&format!("/api/sessions/{token}"))
        .await
        .expect(401);
    alice.get(&format!("/api/projects/{pid}")).await.expect(401);
    alice
        .put(&format!("/api/projects/{pid}"), json!({"description": "x"}))
        .await
        .expect(401);
    alice
        .put(
            &format!("/api/users/{alice_id}/password"),
            json!({"password_old": "pw", "password_new": "mine"}),
        )
        .await
        .expect(401);
    // The password did not change.
    let (status, ..) = login_raw(&reqwest::Client::new(), &s.url, "alice", "mine").await;
    assert_eq!(status, 401);

    // Enabling again does not bring the old session back.
    admin
        .patch(&format!("/api/users/{alice_id}"), json!({"enabled": true}))
        .await
        .expect(201);
    alice.get("/api/version").await.expect(401);
    let again = Client::login(&s.url, "alice", "pw").await;
    again.get("/api/version").await.expect(200);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_look_the_same() {
    // Both go through one password verification (an unknown user against a
    // dummy hash, see kraken_core::auth::DUMMY_HASH): same answer, and the
    // same throttling, so neither the body, the status nor the 429 tells
    // whether a user exists.
    let s = TestServer::start().await;
    s.user("alice").await;
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for user in ["alice", "nobody"] {
        let mut statuses = Vec::new();
        let mut first = None;
        for _ in 0..6 {
            let (status, _, cookie, body) = login_raw(&http, &s.url, user, "wrong").await;
            assert!(cookie.is_none(), "no cookie for a failed login");
            statuses.push(status);
            first.get_or_insert(body);
        }
        answers.push((statuses, first.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, vec![401, 401, 401, 401, 401, 429]);
    assert_eq!(
        answers[0].1["message"],
        "missing user or incorrect password"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user_then_reset_by_a_success() {
    let s = TestServer::start().await;
    s.user("alice").await;
    s.user("bob").await;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let (status, retry, ..) = login_raw(&http, &s.url, "alice", "wrong").await;
        assert_eq!(status, 401);
        assert!(retry.is_none());
    }
    // Even the right password waits now.
    let (status, retry, _, body) = login_raw(&http, &s.url, "alice", "pw").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], 429);
    assert!(body["message"].as_str().unwrap().contains("try again"));
    let wait: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    // Another user from the same address is not affected.
    let (status, ..) = login_raw(&http, &s.url, "bob", "pw").await;
    assert_eq!(status, 201);

    // After the wait, the right password works and the count starts again.
    tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 200)).await;
    let (status, ..) = login_raw(&http, &s.url, "alice", "pw").await;
    assert_eq!(status, 201);
    let (status, ..) = login_raw(&http, &s.url, "alice", "wrong").await;
    assert_eq!(status, 401);
    let (status, ..) = login_raw(&http, &s.url, "alice", "pw").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_source_address() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    // Twenty failures for different names from one address...
    for i in 0..20 {
        let (status, ..) = login_raw(&http, &s.url, &format!("guess{i}"), "x").await;
        assert_eq!(status, 401);
    }
    // ...throttle that address for every user...
    let (status, retry, ..) = login_raw(&http, &s.url, "admin", "admin").await;
    assert_eq!(status, 429);
    assert!(retry.is_some());
    // ...but not another address.
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let http2 = reqwest::Client::builder()
        .local_address(other)
        .build()
        .unwrap();
    let (status, ..) = login_raw(&http2, &s.url, "admin", "admin").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn the_session_cookie_is_strict_and_cookie_writes_need_json() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let (status, _, cookie, body) = login_raw(&http, &s.url, "admin", "admin").await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap().to_string();
    let cookie = cookie.expect("Set-Cookie at login");
    assert!(cookie.starts_with(&format!("kk_session_token={token};")));
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attrs.contains(&"HttpOnly"), "{cookie}");
    assert!(attrs.contains(&"SameSite=Strict"), "{cookie}");
    assert!(attrs.contains(&"Path=/"), "{cookie}");

    let jar = format!("kk_session_token={token}");
    let post = |ct: &'static str, name: &'static str| {
        http.post(format!("{}/api/projects", s.url))
            .header(header::COOKIE, jar.clone())
            .header(header::CONTENT_TYPE, ct)
            .body(json!({"name": name}).to_string())
            .send()
    };
    // A form or text/plain body (what another site can send) is refused...
    for (ct, name) in [
        ("text/plain", "csrf1"),
        ("application/x-www-form-urlencoded", "csrf2"),
        ("multipart/form-data; boundary=x", "csrf3"),
    ] {
        let r = post(ct, name).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{ct}");
        let b: Value = r.json().await.unwrap();
        assert!(
            b["message"].as_str().unwrap().contains("application/json"),
            "{b}"
        );
    }
    // ...and nothing was created.
    let admin = s.admin().await;
    let projects = admin.get("/api/projects").await;
    let names: Vec<&str> = projects.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("csrf")), "{names:?}");
    // With JSON the cookie works, as does a bearer token; reads by cookie work.
    let r = post("application/json", "by-cookie").await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    admin
        .post("/api/projects", json!({"name": "by-bearer"}))
        .await
        .expect(201);
    let r = http
        .get(format!("{}/api/projects", s.url))
        .header(header::COOKIE, jar.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A cookie-only DELETE without JSON is refused too.
    let r = http
        .delete(format!("{}/api/sessions/{token}", s.url))
        .header(header::COOKIE, jar.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Logout clears the cookie.
    let r = http
        .delete(format!("{}/api/sessions/{token}", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let cleared = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn over_long_text_fields_are_refused_naming_field_and_limit() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let long = |n: usize| "x".repeat(n);
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "main").await;
    let sid = admin
        .stage(bid, "build", &shell_stage("root", "j", &["true"]))
        .await;

    // At the limit is fine.
    admin
        .post("/api/projects", json!({"name": long(255)}))
        .await
        .expect(201);
    let cases: Vec<(&str, String, Value, &str, &str)> = vec![
        (
            "POST",
            "/api/projects".into(),
            json!({"name": long(256)}),
            "name",
            "255",
        ),
        (
            "POST",
            "/api/projects".into(),
            json!({"name": "d", "description": long(4097)}),
            "description",
            "4096",
        ),
        (
            "PUT",
            format!("/api/projects/{pid}"),
            json!({"description": long(5000)}),
            "description",
            "4096",
        ),
        (
            "POST",
            "/api/users".into(),
            json!({"name": long(300), "password": "x"}),
            "name",
            "255",
        ),
        (
            "POST",
            "/api/users".into(),
            json!({"name": "u", "password": long(2000)}),
            "password",
            "1024",
        ),
        (
            "POST",
            format!("/api/projects/{pid}/branches"),
            json!({"name": long(256)}),
            "name",
            "255",
        ),
        (
            "PUT",
            format!("/api/branches/{bid}"),
            json!({"branch_name": long(256)}),
            "branch_name",
            "255",
        ),
        (
            "POST",
            format!("/api/branches/{bid}/stages"),
            json!({"name": long(256), "schema_code": "x"}),
            "name",
            "255",
        ),
        (
            "PUT",
            format!("/api/stages/{sid}"),
            json!({"schema_code": long(256 * 1024 + 1)}),
            "schema_code",
            "262144",
        ),
        (
            "PUT",
            format!("/api/stages/{sid}/schema"),
            json!({"schema_code": long(256 * 1024 + 1)}),
            "schema_code",
            "262144",
        ),
        (
            "POST",
            "/api/groups".into(),
            json!({"name": long(256)}),
            "name",
            "255",
        ),
        (
            "POST",
            format!("/api/branches/{bid}/flows/ci"),
            json!({"args": {"Common": {"X": long(64 * 1024 + 1)}}}),
            "args.Common.X",
            "65536",
        ),
        (
            "POST",
            "/api/sessions".into(),
            json!({"user": long(256), "password": "x"}),
            "user",
            "255",
        ),
    ];
    for (method, path, body, field, limit) in cases {
        let a = admin.send(method.parse().unwrap(), &path, Some(body)).await;
        let m = a.expect(400)["message"].as_str().unwrap().to_string();
        assert!(
            m.starts_with(&format!("{field} is too long")) && m.contains(limit),
            "{method} {path}: {m}"
        );
    }

    // An agent address.
    let a = s
        .anonymous()
        .post("/backend", json!({"msg": "get-job", "address": long(256)}))
        .await;
    let m = a.expect(400)["message"].as_str().unwrap().to_string();
    assert!(
        m.starts_with("address is too long") && m.contains("255"),
        "{m}"
    );

    // A 10 MB name is stopped by the body limit (1 MiB), also a 400.
    let a = admin
        .post("/api/projects", json!({"name": long(10 * 1024 * 1024)}))
        .await;
    let m = a.expect(400)["message"].as_str().unwrap().to_string();
    assert!(m.contains("too large") && m.contains("1024 KiB"), "{m}");
}

#[tokio::test]
async fn invalid_bodies_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "main").await;
    admin
        .stage(bid, "build", &shell_stage("root", "j", &["true"]))
        .await;
    let (uid, _) = s.user("alice").await;
    let flow = admin.flow(bid).await;
    let fid = flow["id"].as_i64().unwrap();
    let g = admin.post("/api/groups", json!({"name": "g"})).await;
    let gid = g.expect(201)["id"].as_i64().unwrap();
    let seqs = admin.get(&format!("/api/branches/{bid}/sequences")).await;
    let seq = seqs.expect(200)["items"][0]["id"].as_i64().unwrap();
    let agents = admin.get("/api/agents").await;
    let agent = agents.expect(200)["items"][0]["id"].as_i64().unwrap();

    let flows = format!("/api/branches/{bid}/flows/ci");
    let user = format!("/api/users/{uid}");
    // (method, path, body, words the message must contain)
    let cases: Vec<(&str, String, Value, &str)> = vec![
        ("POST", flows.clone(), json!({"args": "x"}), "'args'"),
        (
            "POST",
            flows.clone(),
            json!({"args": {"Common": 5}}),
            "'args.Common'",
        ),
        ("POST", flows.clone(), json!({"args": [1]}), "'args'"),
        (
            "POST",
            flows.clone(),
            json!({"arg": {}}),
            "unknown field `arg`",
        ),
        (
            "POST",
            flows.clone(),
            json!([{"Common": {}}]),
            "JSON object",
        ),
        (
            "PATCH",
            user.clone(),
            json!({"enabled": "yes"}),
            "'enabled'",
        ),
        ("PATCH", user.clone(), json!({"enabled": null}), "'enabled'"),
        (
            "PATCH",
            user.clone(),
            json!({"superadmin": 1}),
            "'superadmin'",
        ),
        (
            "PATCH",
            user.clone(),
            json!({"password": 5}),
            "unknown field `password`",
        ),
        (
            "PATCH",
            user.clone(),
            json!({"projects": [1]}),
            "'projects'",
        ),
        ("PATCH", user.clone(), json!([true]), "JSON object"),
        (
            "PUT",
            format!("/api/projects/{pid}"),
            json!({"webhooks": {"a": 1}}),
            "unknown field `a`",
        ),
        (
            "PUT",
            format!("/api/projects/{pid}"),
            json!({"webhooks": {"github_enabled": "x"}}),
            "'webhooks.github_enabled'",
        ),
        (
            "POST",
            "/api/groups".into(),
            json!({"name": "g2", "deployment": {"method": "x"}}),
            "'deployment.method'",
        ),
        (
            "POST",
            "/api/groups".into(),
            json!({"name": "g3", "deployment": {"aws": "x"}}),
            "'deployment.aws'",
        ),
        (
            "PUT",
            format!("/api/groups/{gid}"),
            json!({"deployment": {"a": 1}}),
            "unknown field `a`",
        ),
        (
            "PUT",
            format!("/api/sequences/{seq}"),
            json!([1]),
            "JSON object",
        ),
        (
            "PUT",
            format!("/api/branches/{bid}/project_id"),
            json!([pid]),
            "JSON object",
        ),
        (
            "PUT",
            format!("/api/branches/{bid}/retention_policy"),
            json!([1, 1, 1, 1]),
            "JSON object",
        ),
        ("POST", "/api/jobs".into(), json!([1]), "JSON object"),
        (
            "POST",
            format!("/api/flows/{fid}/runs"),
            json!([1]),
            "JSON object",
        ),
        (
            "PATCH",
            "/api/agents".into(),
            json!([[agent, true]]),
            "'[0]'",
        ),
        (
            "PATCH",
            "/api/agents".into(),
            json!({"id": agent}),
            "JSON array",
        ),
        (
            "PUT",
            format!("/api/agents/{agent}"),
            json!({"groups": [[gid]]}),
            "'groups[0]'",
        ),
        (
            "PUT",
            format!("/api/agents/{agent}"),
            json!({"groups": [{"id": "x"}]}),
            "'groups[0]'",
        ),
    ];
    for (method, path, body, words) in cases {
        let a = admin
            .send(method.parse().unwrap(), &path, Some(body.clone()))
            .await;
        let m = a.expect(400)["message"].as_str().unwrap().to_string();
        assert!(m.contains(words), "{method} {path} {body}: {m}");
    }
    // Nothing above changed the user or started a flow.
    let u = admin.get(&user).await;
    assert_eq!(u.expect(200)["enabled"], true);
    assert_eq!(u.body["superadmin"], false);
    let flows_now = admin.get(&flows).await;
    assert_eq!(flows_now.expect(200)["total"], 1);
}
