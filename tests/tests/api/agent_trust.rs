//! Who may act as an agent: keys issued on authorization, the original's
//! agents only by source IP when allowed, artifacts and logs only from the
//! agent running the job, bounded registrations, unique identities.

use std::time::Duration;

use serde_json::{Value, json};

use kraken_tests::{Client, TestServer, shell_stage};

const WAIT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn random_key() -> String {
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

/// A client speaking the agent protocol with `key` as its bearer token.
fn keyed(s: &TestServer, key: &str) -> Client {
    let mut c = s.anonymous();
    c.token = Some(key.to_string());
    c
}

fn hello(label: &str) -> Value {
    json!({"address": label, "msg": "host-info", "info": {"system": "debian-12"}})
}

/// Register an agent with a key of its own, authorize it and take the key
/// the server issues: (agent id, client with the issued key).
async fn keyed_agent(s: &TestServer, admin: &Client, label: &str) -> (i64, Client) {
    let mut agent = keyed(s, &random_key());
    let reg = agent.post("/backend", hello(label)).await;
    assert_eq!(reg.expect(200)["unauthorized"], true);
    let id = reg.body["agent_id"].as_i64().expect("registration id");
    admin
        .patch("/api/agents", json!([{"id": id, "authorized": true}]))
        .await
        .expect(200);
    let hi = agent.post("/backend", hello(label)).await;
    assert_eq!(hi.expect(200)["agent_id"], id);
    agent.token = Some(hi.body["agent_key"].as_str().expect("issued key").into());
    (id, agent)
}

/// A project with a secret and a stage whose job runs `cmds`; returns
/// (branch id, flow id, job id) of a new flow.
async fn job_with_secret(admin: &Client, cmds: &[&str]) -> (i64, i64, i64) {
    let pid = admin.project("p").await;
    admin
        .post(
            &format!("/api/projects/{pid}/secrets"),
            json!({"name": "tok", "kind": "simple", "secret": "s3cr3t-value"}),
        )
        .await
        .expect(201);
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(bid, "build", &shell_stage("root", "j", cmds))
        .await;
    let flow = admin.flow(bid).await;
    let fid = flow["id"].as_i64().unwrap();
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let jid = admin.run_jobs(rid).await[0]["id"].as_i64().unwrap();
    (bid, fid, jid)
}

#[tokio::test]
async fn a_forged_get_job_by_address_gets_no_job_and_no_secrets() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (_, _, jid) = job_with_secret(&admin, &["sleep 20"]).await;
    let job = admin
        .wait_for(&format!("/api/jobs/{jid}"), WAIT, |j| j["state"] == 3)
        .await;
    // Viewers see the running agent's name: pose as it.
    let name = job["agent_name"].as_str().unwrap().to_string();
    let anon = s.anonymous();
    for msg in ["get-job", "get-job-step", "host-info"] {
        let a = anon
            .post("/backend", json!({"address": name, "msg": msg}))
            .await;
        a.expect(401);
        assert!(!a.body.to_string().contains("s3cr3t"), "{}", a.body);
    }
    // Allowing the original's agents does not help: the address is not the caller's IP.
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": true}}),
        )
        .await
        .expect(200);
    let a = anon
        .post("/backend", json!({"address": name, "msg": "get-job"}))
        .await;
    a.expect(403);
    assert!(a.message().contains("127.0.0.1"), "{}", a.body);
    // A made-up key is not the agent either.
    let forged = keyed(&s, &random_key());
    let a = forged
        .post("/backend", json!({"address": name, "msg": "get-job"}))
        .await;
    a.expect(401);
    assert!(a.body.get("job").is_none());
    // Nor are the built-in agent's uploads or log lines anyone else's to send.
    let up = forged
        .http
        .put(format!(
            "{}/backend/artifacts/{jid}?path=x.html&address={name}",
            s.url
        ))
        .bearer_auth(random_key())
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 401);
    let logs = anon
        .post(
            "/backend/logs",
            json!({"address": name, "job_id": jid, "step_idx": 0, "lines": [{"message": "forged"}]}),
        )
        .await;
    logs.expect(401);
    assert!(!admin.job_log(jid).await.contains(&"forged".to_string()));
    admin.delete(&format!("/api/jobs/{jid}")).await.expect(200);
}

#[tokio::test]
async fn agent_keys_are_issued_on_authorization_rotated_and_revoked() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let first = random_key();
    let agent = keyed(&s, &first);
    let reg = agent.post("/backend", hello("worker")).await;
    let id = reg.expect(200)["agent_id"].as_i64().unwrap();
    assert_eq!(reg.body["unauthorized"], true);
    // Waiting: no job, no key.
    let gj = agent
        .post("/backend", json!({"address": "worker", "msg": "get-job"}))
        .await;
    assert_eq!(gj.expect(200), &json!({"unauthorized": true}));
    // Keys are checked for their shape.
    keyed(&s, "short")
        .post("/backend", hello("x"))
        .await
        .expect(401);

    admin
        .patch("/api/agents", json!([{"id": id, "authorized": true}]))
        .await
        .expect(200);
    let hi = agent.post("/backend", hello("worker")).await;
    let issued = hi.expect(200)["agent_key"].as_str().unwrap().to_string();
    assert_ne!(issued, first);
    // Issued once: the registration key no longer works, the issued one does.
    agent
        .post("/backend", json!({"address": "worker", "msg": "get-job"}))
        .await
        .expect(401);
    let agent = keyed(&s, &issued);
    let again = agent.post("/backend", hello("worker")).await;
    assert_eq!(again.expect(200)["agent_id"], id);
    assert!(again.body.get("agent_key").is_none());
    // Only its hash is stored.
    let store = s.core().engine().store().clone();
    let row = store
        .agent_by_key_hash(&kraken_core::api::backend::agent_key_hash(&issued))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.id, id);
    assert!(store.agent_by_key_hash(&issued).await.unwrap().is_none());

    // Deauthorized: refused its work.
    admin
        .patch("/api/agents", json!([{"id": id, "authorized": false}]))
        .await
        .expect(200);
    let gj = agent
        .post("/backend", json!({"address": "worker", "msg": "get-job"}))
        .await;
    assert_eq!(gj.expect(200), &json!({"unauthorized": true}));
    agent
        .post(
            "/backend/logs",
            json!({"address": "worker", "job_id": 1, "step_idx": 0, "lines": []}),
        )
        .await
        .expect(403);
    // Re-authorized: a new key, the old one stops working.
    admin
        .patch("/api/agents", json!([{"id": id, "authorized": true}]))
        .await
        .expect(200);
    let hi = agent.post("/backend", hello("worker")).await;
    let rotated = hi.expect(200)["agent_key"].as_str().unwrap().to_string();
    assert_ne!(rotated, issued);
    agent
        .post("/backend", json!({"address": "worker", "msg": "get-job"}))
        .await
        .expect(401);
    let agent = keyed(&s, &rotated);
    agent
        .post("/backend", json!({"address": "worker", "msg": "get-job"}))
        .await
        .expect(200);
    // Deleted: its key is forgotten.
    admin.delete(&format!("/api/agents/{id}")).await.expect(200);
    agent
        .post("/backend", json!({"address": "worker", "msg": "get-job"}))
        .await
        .expect(401);
}

#[tokio::test]
async fn artifacts_and_logs_come_only_from_the_agent_running_the_job() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let (a_id, a) = keyed_agent(&s, &admin, "a").await;
    let (_, b) = keyed_agent(&s, &admin, "b").await;
    let (_, fid, jid) = job_with_secret(&admin, &["true"]).await;
    // One of them gets the job: call it the holder.
    let (holder, other) = {
        let ga = a
            .post(
                "/backend",
                json!({"address": "a", "msg": "get-job", "wait": 5}),
            )
            .await;
        if ga.expect(200)["job"]["id"] == jid {
            (a.clone(), b.clone())
        } else {
            let gb = b
                .post(
                    "/backend",
                    json!({"address": "b", "msg": "get-job", "wait": 5}),
                )
                .await;
            assert_eq!(gb.expect(200)["job"]["id"], jid, "{}", gb.body);
            (b.clone(), a.clone())
        }
    };
    let _ = a_id;
    let put = |c: &Client, path: &'static str, body: &'static str| {
        let req = c
            .http
            .put(format!(
                "{}/backend/artifacts/{jid}?path={path}&public=true",
                c.base
            ))
            .bearer_auth(c.token.clone().unwrap())
            .body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let logs = |n: &str| json!({"address": "x", "job_id": jid, "step_idx": 0, "lines": [{"message": n, "tool": "shell"}]});
    // The other agent: refused.
    assert_eq!(put(&other, "r.html", "<script>other</script>").await, 403);
    other
        .post("/backend/logs", logs("from-other"))
        .await
        .expect(403);
    // The holder, while the job runs: accepted.
    assert_eq!(
        put(&holder, "r.html", "<script>alert(document.cookie)</script>").await,
        200
    );
    holder
        .post("/backend/logs", logs("from-holder"))
        .await
        .expect(200);
    // The holder finishes the job.
    let st = holder
        .post("/backend", json!({"address": "x", "msg": "get-job-step"}))
        .await;
    assert_eq!(st.expect(200)["job_step"]["finish"], false);
    holder
        .post("/backend", json!({"address": "x", "msg": "step-result2", "job_id": jid, "step_idx": 0, "result": {"status": "done", "duration": 0}}))
        .await
        .expect(200);
    let fin = holder
        .post("/backend", json!({"address": "x", "msg": "get-job-step"}))
        .await;
    assert_eq!(fin.expect(200)["job_step"]["finish"], true);
    admin.wait_flow(fid, WAIT).await;
    // Finished: nobody changes its artifacts or log any more.
    assert_eq!(put(&holder, "r.html", "<script>late</script>").await, 409);
    holder.post("/backend/logs", logs("late")).await.expect(409);
    assert_eq!(put(&other, "r.html", "<script>other</script>").await, 403);
    let log = admin.job_log(jid).await;
    assert!(log.contains(&"from-holder".to_string()), "{log:?}");
    assert!(
        !log.iter().any(|l| l == "late" || l == "from-other"),
        "{log:?}"
    );

    // The HTML artifact is no active content of the server's origin.
    for store in ["public", "report"] {
        let got = admin
            .http
            .get(format!("{}/artifacts/{store}/f/{fid}/r.html", s.url))
            .bearer_auth(admin.token.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(got.status().as_u16(), 200);
        let h = got.headers().clone();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("sandbox"),
            "{h:?}"
        );
        if store == "public" {
            assert!(
                h["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment")
            );
        }
        assert_eq!(
            got.text().await.unwrap(),
            "<script>alert(document.cookie)</script>"
        );
    }
}

#[tokio::test]
async fn udp_log_lines_come_only_from_the_address_agent_running_the_job() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": true}}),
        )
        .await
        .expect(200);
    // The original's agent at 127.0.0.1 and a keyed agent.
    let anon = s.anonymous();
    anon.post("/backend", hello("127.0.0.1")).await.expect(200);
    let orig_id = admin.get("/api/agents?unauthorized=true").await.body["items"][0]["id"]
        .as_i64()
        .unwrap();
    admin
        .patch("/api/agents", json!([{"id": orig_id, "authorized": true}]))
        .await
        .expect(200);
    anon.post("/backend", hello("127.0.0.1")).await.expect(200);
    let (_, keyed_agent) = keyed_agent(&s, &admin, "k").await;
    let (bid, _, j1) = job_with_secret(&admin, &["true"]).await;
    let flow = admin.flow(bid).await;
    let j2 = admin
        .run_jobs(flow["runs"][0]["id"].as_i64().unwrap())
        .await[0]["id"]
        .as_i64()
        .unwrap();
    let mut held = std::collections::HashMap::new();
    for (c, who) in [(&anon, "orig"), (&keyed_agent, "keyed")] {
        let gj = c
            .post(
                "/backend",
                json!({"address": "127.0.0.1", "msg": "get-job", "wait": 5}),
            )
            .await;
        held.insert(who, gj.expect(200)["job"]["id"].as_i64().unwrap());
    }
    assert_eq!(
        {
            let mut v = vec![held["orig"], held["keyed"]];
            v.sort();
            v
        },
        {
            let mut v = vec![j1, j2];
            v.sort();
            v
        }
    );
    let udp = s.server.as_ref().unwrap().udp_addr;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rec = |job: i64, m: &str| {
        json!({"message": m, "service": "agent", "tool": "shell", "job": job, "step": 0, "branch": 999, "flow": 999})
            .to_string()
    };
    // 127.0.0.1 claims the keyed agent's job: ignored; its own: stored.
    sock.send_to(rec(held["keyed"], "injected").as_bytes(), udp)
        .unwrap();
    sock.send_to(rec(held["orig"], "genuine").as_bytes(), udp)
        .unwrap();
    let end = std::time::Instant::now() + WAIT;
    while admin.job_log(held["orig"]).await.is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "the genuine line is stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        admin.job_log(held["orig"]).await,
        vec!["genuine".to_string()]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(admin.job_log(held["keyed"]).await.is_empty());
    // Not allowed any more: nothing from the address agent is taken.
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": false}}),
        )
        .await
        .expect(200);
    sock.send_to(rec(held["orig"], "after").as_bytes(), udp)
        .unwrap();
    anon.post(
        "/backend",
        json!({"address": "127.0.0.1", "msg": "get-job-step"}),
    )
    .await
    .expect(401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        admin.job_log(held["orig"]).await,
        vec!["genuine".to_string()]
    );
}

#[tokio::test]
async fn registrations_are_bounded_in_size_and_number_and_expire() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let big = "a".repeat(5 * 1024 * 1024);
    let a = keyed(&s, &random_key()).post("/backend", hello(&big)).await;
    a.expect(400);
    assert!(a.message().contains("address"), "{}", a.body);
    let long = "a".repeat(kraken_core::model::limits::ADDRESS + 1);
    keyed(&s, &random_key())
        .post("/backend", hello(&long))
        .await
        .expect(400);
    let info = json!({"address": "x", "msg": "host-info", "info": {"system": "s", "pad": "p".repeat(9000)}});
    keyed(&s, &random_key())
        .post("/backend", info)
        .await
        .expect(400);
    assert_eq!(
        admin.get("/api/agents?unauthorized=true").await.body["total"],
        0
    );
    // 256 may wait for authorization, not more.
    for i in 0..256 {
        keyed(&s, &random_key())
            .post("/backend", hello(&format!("r{i}")))
            .await
            .expect(200);
    }
    let over = keyed(&s, &random_key())
        .post("/backend", hello("one-more"))
        .await;
    over.expect(403);
    assert!(
        over.message().contains("wait for authorization"),
        "{}",
        over.body
    );
    assert_eq!(
        admin.get("/api/agents?unauthorized=true").await.body["total"],
        256
    );
    // Registrations not heard from expire.
    let n = s
        .core()
        .expire_agent_registrations(now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(n, 256);
    keyed(&s, &random_key())
        .post("/backend", hello("one-more"))
        .await
        .expect(200);
}

#[tokio::test]
async fn servers_on_one_database_have_their_own_builtin_agents_and_run_each_job_once() {
    let s = TestServer::start_with_agents(2).await;
    if s.db.is_postgres() {
        return;
    }
    // A second server on the same data dir would be the same agents: refused.
    let same = kraken_server::start(kraken_server::ServerConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: s.data_dir.clone(),
        agents: 1,
        ..Default::default()
    })
    .await;
    let err = same
        .err()
        .expect("a second server on one data dir is refused");
    assert!(err.to_string().contains("in use"), "{err}");
    // A second server with its own data dir on the same database.
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", s.data_dir.join("kraken.db").display());
    let second = kraken_server::start(kraken_server::ServerConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: tmp.path().join("data"),
        db_url: Some(db),
        agents: 2,
        ..Default::default()
    })
    .await
    .expect("second server");
    let admin = s.admin().await;
    let agents = admin.get("/api/agents").await;
    let items = agents.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4, "{items:?}");
    let ids: std::collections::HashSet<i64> =
        items.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    // Same labels, different agents.
    let labels: std::collections::HashSet<&str> = items
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");

    let ran = tempfile::tempdir().unwrap();
    let file = ran.path().join("ran.txt");
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let cmd = format!("echo $$ >> {}", file.display());
    admin
        .stage(bid, "build", &shell_stage("root", "j", &[&cmd]))
        .await;
    let mut flows = Vec::new();
    for _ in 0..12 {
        flows.push(admin.flow(bid).await["id"].as_i64().unwrap());
    }
    for f in flows {
        admin.wait_flow(f, Duration::from_secs(60)).await;
    }
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(lines.lines().count(), 12, "each job ran once: {lines}");
    second.shutdown().await.unwrap();
}
