//! What the original web UI and build monitors read besides the REST API:
//! branch badges (SVG) and the CCTray feed, the flat log download, and the
//! cloud look-ups this server answers with 501.

use std::time::Duration;

use kraken_tests::{TestServer, shell_stage};

const WAIT: Duration = Duration::from_secs(60);

async fn text(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, r.text().await.unwrap())
}

#[tokio::test]
async fn branch_badges_and_the_cctray_feed_follow_the_latest_ci_flow() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("app").await;
    let bid = admin.branch(pid, "Main").await;
    let badge = |what: &str| format!("{}/bk/branch-badge/{bid}{what}", s.url);

    // No flow yet.
    let (st, ctype, svg) = text(&badge("")).await;
    assert_eq!((st, ctype.as_str()), (200, "image/svg+xml; charset=utf-8"));
    assert!(svg.contains("kraken: no flows"), "{svg}");

    // A flow with a passing and a failing test: failing.
    let junit = r#"<testsuite><testcase classname="t" name="ok"/><testcase classname="t" name="bad"><failure message="no"/></testcase></testsuite>"#;
    admin
        .stage(
            bid,
            "tests",
            &shell_stage(
                "root",
                "t",
                &[&format!("echo '{junit}' > r.xml"), "false"],
            )
            .replace(
                "{\"tool\": \"shell\", \"cmd\": \"false\"}",
                "{\"tool\": \"junit_collect\", \"file_glob\": \"r.xml\"}, {\"tool\": \"shell\", \"cmd\": \"false\"}",
            ),
        )
        .await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let (_, _, svg) = text(&badge("")).await;
    assert!(svg.contains("kraken: failing"), "{svg}");
    // Without a session: badges are public, as in the original.
    let (_, _, svg) = text(&badge("/tests")).await;
    assert!(svg.contains("tests: 1/2 passed"), "{svg}");
    let (_, _, svg) = text(&badge("/issues")).await;
    assert!(svg.contains("issues: 0"), "{svg}");
    let (st, ctype, xml) = text(&badge("/cctray")).await;
    assert_eq!(st, 200);
    assert!(ctype.starts_with("application/xml"), "{ctype}");
    assert!(xml.contains("name=\"app/Main\""), "{xml}");
    assert!(xml.contains("lastBuildStatus=\"Failure\""), "{xml}");
    assert!(
        xml.contains(&format!(
            "lastBuildLabel=\"{}\"",
            done["label"].as_str().unwrap()
        )),
        "{xml}"
    );
    assert!(xml.contains("activity=\"Sleeping\""), "{xml}");
    assert!(xml.contains(&format!("/branches/{bid}\"")), "{xml}");
    // Also without /bk, and errors in the API's shape.
    let (st, _, _) = text(&format!("{}/branch-badge/{bid}", s.url)).await;
    assert_eq!(st, 200);
    let (st, _, body) = text(&badge("/nope")).await;
    assert_eq!(st, 404);
    assert!(body.contains("use tests, issues or cctray"), "{body}");
    let (st, _, _) = text(&format!("{}/bk/branch-badge/99999", s.url)).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn flat_logs_and_cloud_lookups() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(
            bid,
            "s",
            &shell_stage("root", "j", &["echo flat-line-1", "echo flat-line-2"]),
        )
        .await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let fid = done["id"].as_i64().unwrap();
    let r = admin
        .http
        .get(format!("{}/bk/any_log?flow_id={fid}", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.text().await.unwrap();
    let one = body.find("flat-line-1").expect(&body);
    let two = body.find("flat-line-2").expect(&body);
    assert!(one < two, "{body}");
    // The same access rules as GET /logs: nobody may read without a filter.
    let r = reqwest::get(format!("{}/bk/any_log", s.url)).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    for path in [
        "/api/aws-ec2-regions",
        "/api/aws-ec2-instance-types/eu-west-1",
        "/api/azure-locations",
        "/bk/api/azure-vm-sizes/westeurope",
    ] {
        let a = admin.get(path).await;
        assert_eq!(a.status, 501, "{path}: {:?}", a.body);
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("not supported by this server"),
            "{:?}",
            a.body
        );
    }
}

#[tokio::test]
async fn diagnostics_and_settings_checks() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let d = admin.get("/api/diagnostics").await;
    let d = d.expect(200).clone();
    assert_eq!(d["database"]["open"], true, "{d}");
    assert!(d["database"]["name"] == "SQLite" || d["database"]["name"] == "PostgreSQL");
    assert_eq!(d["storage"]["open"], true, "{d}");
    assert_eq!(d["agents"]["authorized"], 1, "{d}");
    assert!(d["rq"]["finished_jobs"].is_array(), "{d}");
    // Not for everybody.
    let (_, user) = s.user("eve").await;
    user.get("/api/diagnostics").await.expect(403);
    user.get("/api/settings/email/working-state")
        .await
        .expect(403);

    // Email: not configured, then a server that is not there. (A real SMTP
    // server answering "ok" is in notify.rs.)
    let st = admin.get("/api/settings/email/working-state").await;
    assert_eq!(st.expect(200)["state"], "STMP server address is empty");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    admin
        .put(
            "/api/settings",
            serde_json::json!({"notification": {"smtp_server": addr}}),
        )
        .await
        .expect(200);
    let st = admin.get("/api/settings/email/working-state").await;
    assert!(
        st.expect(200)["state"]
            .as_str()
            .unwrap()
            .starts_with("SMTP:"),
        "{:?}",
        st.body
    );
    let st = admin.get("/api/settings/slack/working-state").await;
    assert_eq!(st.expect(200)["state"], "Slack token is empty");
    let st = admin.get("/api/settings/aws/working-state").await;
    assert!(
        st.expect(200)["state"]
            .as_str()
            .unwrap()
            .contains("not supported")
    );
    admin
        .get("/api/settings/nope/working-state")
        .await
        .expect(400);
}

/// The server's own log lines that name a job are placed with its run,
/// flow and branch: the UI's per-flow Logs tab asks for them by flow and by
/// the original's service names. A line naming a flow gets its kind.
#[tokio::test]
async fn service_logs_naming_a_job_are_found_by_its_flow() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(bid, "s", &shell_stage("root", "j", &["true"]))
        .await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let fid = done["id"].as_i64().unwrap();
    let run = done["runs"][0]["id"].as_i64().unwrap();
    let job = admin.run_jobs(run).await[0]["id"].as_i64().unwrap();
    s.core()
        .write_service_logs(&[kraken_core::api::logs::NewLog {
            time: kraken_core::model::Timestamp::now().millis(),
            message: "job assigned".into(),
            service: "scheduler".into(),
            level: "INFO".into(),
            job_id: job,
            step: -1,
            ..Default::default()
        }])
        .await
        .unwrap();
    let logs = admin
        .get(&format!(
            "/api/logs?flow_id={fid}&services=server&services=rq&services=scheduler&services=watchdog&services=planner"
        ))
        .await;
    let items = logs.expect(200)["items"].as_array().unwrap().clone();
    let line = items
        .iter()
        .find(|l| l["message"] == "job assigned")
        .unwrap_or_else(|| panic!("{items:?}"));
    assert_eq!(line["run"], run);
    assert_eq!(line["branch"], bid);
    assert_eq!(line["service"], "scheduler");

    // A line naming a DEV flow and its branch (as "flow created" does) is
    // a DEV flow's line: found with flow_kind=1, not with the CI flows'.
    let dev = admin
        .post(
            &format!("/api/branches/{bid}/flows/dev"),
            serde_json::json!({}),
        )
        .await;
    let dev_id = dev.expect(201)["id"].as_i64().unwrap();
    admin.wait_flow(dev_id, WAIT).await;
    s.core()
        .write_service_logs(&[kraken_core::api::logs::NewLog {
            time: kraken_core::model::Timestamp::now().millis(),
            message: "dev flow line".into(),
            service: "planner".into(),
            level: "INFO".into(),
            flow_id: dev_id,
            branch_id: bid,
            step: -1,
            ..Default::default()
        }])
        .await
        .unwrap();
    let of_kind = |kind: i64| {
        let admin = admin.clone();
        async move {
            let logs = admin
                .get(&format!(
                    "/api/logs?branch_id={bid}&flow_kind={kind}&services=planner&limit=1000"
                ))
                .await;
            logs.expect(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["message"] == "dev flow line")
        }
    };
    assert!(of_kind(1).await, "the DEV flow's line is a DEV line");
    assert!(!of_kind(0).await, "the DEV flow's line is not a CI line");
}

/// The UI's *Add agent*: the install script fetched from the server
/// downloads this project's agent from the server and says how to start it.
#[tokio::test]
async fn the_install_script_installs_the_agent_from_the_server() {
    let s = TestServer::start().await;
    let (st, ctype, script) = text(&format!("{}/bk/install/kraken-agent-install.sh", s.url)).await;
    assert_eq!(st, 200);
    assert!(ctype.starts_with("text/x-shellscript"), "{ctype}");
    assert!(
        script.contains(&format!("SERVER=\"{}\"", s.url)),
        "{script}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("KRAKEN_BIN_DIR", dir.path().join("bin"))
        .env("KRAKEN_AGENT_DIR", dir.path().join("work"))
        .env("KRAKEN_NO_SERVICE", "1")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("kraken 0."), "{said}");
    assert!(
        said.contains(&format!("kraken agent --server {} --work-dir", s.url)),
        "{said}"
    );
    // What it installed is the kraken binary itself.
    let v = std::process::Command::new(dir.path().join("bin/kraken"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("kraken "));
}
