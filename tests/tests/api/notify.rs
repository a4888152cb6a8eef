//! Notifications of runs against real endpoints on 127.0.0.1 started here:
//! an HTTP server that records requests (GitHub-, GitLab-, Gitea-, Slack-,
//! Discord-shaped and the generic webhook) and a small SMTP sink that
//! receives the e-mail sent by `lettre`. Flows carry trigger data (a GitHub
//! push) created directly, as a webhook would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use hmac::Mac;
use kraken_tests::{Client, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Bound of every wait (never reached when things work).
const WAIT: Duration = Duration::from_secs(60);
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "tok-5ecret-v4lue";
const HOOK_SECRET: &str = "h00k-5ecret";
/// A job that passes with one passing test.
const PASS: &str = "printf '<testsuite name=\"s\"><testcase classname=\"c\" name=\"t1\"/></testsuite>' > results.xml";

/// One request the recorder received.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// What it answered.
    status: u16,
}

impl Req {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

#[derive(Default)]
struct RecorderState {
    reqs: Mutex<Vec<Req>>,
    /// Requests to `/flaky/...` answered 503 before they succeed.
    flaky_failures: AtomicUsize,
}

/// An HTTP server on 127.0.0.1 that records every request.
struct Recorder {
    url: String,
    state: Arc<RecorderState>,
    _task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(flaky_failures: usize) -> Recorder {
        let state = Arc::new(RecorderState::default());
        state.flaky_failures.store(flaky_failures, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder {
            url,
            state,
            _task: task,
        }
    }

    fn requests(&self, prefix: &str) -> Vec<Req> {
        self.state
            .reqs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Wait (bounded) until `n` requests under `prefix` were answered 2xx.
    async fn wait_ok(&self, prefix: &str, n: usize) -> Vec<Req> {
        let end = std::time::Instant::now() + WAIT;
        loop {
            let ok: Vec<Req> = self
                .requests(prefix)
                .into_iter()
                .filter(|r| r.status < 300)
                .collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                std::time::Instant::now() < end,
                "{n} requests to {prefix} expected, got {:?}",
                self.requests(prefix)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(st): State<Arc<RecorderState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path().to_string();
    let (status, answer) = if path.starts_with("/flaky") {
        let failing = st
            .flaky_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            (StatusCode::SERVICE_UNAVAILABLE, "down".to_string())
        } else {
            (StatusCode::OK, "{}".to_string())
        }
    } else if path.starts_with("/slack/") {
        let good = headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer xoxb-good");
        let answer = if good {
            json!({"ok": true})
        } else {
            json!({"ok": false, "error": "invalid_auth"})
        };
        (StatusCode::OK, answer.to_string())
    } else if path.starts_with("/discord/") {
        (StatusCode::NO_CONTENT, String::new())
    } else {
        (StatusCode::CREATED, "{}".to_string())
    };
    st.reqs.lock().unwrap().push(Req {
        method: method.to_string(),
        path,
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
    });
    (status, answer)
}

/// A mail received by the SMTP sink.
#[derive(Debug, Clone, Default)]
struct Mail {
    auth: String,
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server (enough for a client: EHLO, AUTH PLAIN/LOGIN,
/// MAIL, RCPT, DATA, QUIT) that keeps what it receives.
struct SmtpSink {
    addr: String,
    mails: Arc<Mutex<Vec<Mail>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let m = m.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(sock, m).await;
                });
            }
        });
        SmtpSink {
            addr,
            mails,
            _task: task,
        }
    }

    async fn wait_mails(&self, n: usize) -> Vec<Mail> {
        let end = std::time::Instant::now() + WAIT;
        loop {
            let got = self.mails.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < end,
                "{n} mails expected, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn smtp_session(
    sock: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            w.write_all(b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n").await?;
        } else if upper.starts_with("AUTH PLAIN") {
            let arg = line[10..].trim().to_string();
            let arg = if arg.is_empty() {
                w.write_all(b"334 \r\n").await?;
                lines.next_line().await?.unwrap_or_default()
            } else {
                arg
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(arg.trim())
                .unwrap_or_default();
            mail.auth = String::from_utf8_lossy(&raw).replace('\0', " ");
            w.write_all(b"235 ok\r\n").await?;
        } else if upper.starts_with("AUTH LOGIN") {
            w.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let u = lines.next_line().await?.unwrap_or_default();
            w.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let p = lines.next_line().await?.unwrap_or_default();
            let dec = |s: &str| {
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .unwrap_or_default(),
                )
                .to_string()
            };
            mail.auth = format!(" {} {}", dec(&u), dec(&p));
            w.write_all(b"235 ok\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().to_string();
            w.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().to_string());
            w.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            mail.data = data;
            mails.lock().unwrap().push(mail.clone());
            w.write_all(b"250 queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            break;
        } else {
            // RSET, NOOP and the rest.
            w.write_all(b"250 ok\r\n").await?;
        }
    }
    Ok(())
}

/// Settings pointing every channel at the recorder and the SMTP sink;
/// retries after 50 ms, for `retry_for_ms`.
async fn configure(admin: &Client, rec: &Recorder, smtp: &str, retry_for_ms: i64) {
    admin
        .put(
            "/api/settings",
            json!({
                "general": {"server_url": "http://kraken.example"},
                "notification": {
                    "github_api_url": format!("{}/github", rec.url),
                    "gitlab_api_url": format!("{}/gitlab/api/v4", rec.url),
                    "gitea_api_url": format!("{}/gitea/api/v1", rec.url),
                    "radicle_api_url": format!("{}/radicle", rec.url),
                    "slack_api_url": format!("{}/slack", rec.url),
                    "slack_token": "xoxb-good",
                    "smtp_server": smtp,
                    "smtp_from": "kraken@example.com",
                    "smtp_user": "mailer",
                    "smtp_password": "mail-pw",
                    "retry_delay_ms": 50,
                    "retry_for_ms": retry_for_ms,
                }
            }),
        )
        .await
        .expect(200);
}

/// A stage whose job runs `cmd` (and collects `results.xml` when it
/// exists), with the `notification` section `notification` (Starlark).
fn stage(cmd: &str, notification: &str) -> String {
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \
         \"jobs\": [{{\"name\": \"check\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": {cmd}}}, \
         {{\"tool\": \"junit_collect\", \"file_glob\": \"results.xml\"}}], \
         \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}], \
         \"notification\": {notification}}}\n",
        cmd = serde_json::to_string(cmd).unwrap()
    )
}

/// Every channel but Radicle, the credentials from project secrets.
fn all_channels(rec: &Recorder) -> String {
    format!(
        "{{\"github\": {{\"credentials\": \"bot:#{{KK_SECRET_SIMPLE_token}}\"}}, \
         \"gitlab\": {{\"credentials\": \"bot:#{{KK_SECRET_SIMPLE_token}}\"}}, \
         \"gitea\": {{\"credentials\": \"bot:#{{KK_SECRET_SIMPLE_token}}\"}}, \
         \"slack\": {{\"channel\": \"ci-results\"}}, \
         \"email\": \"dev@example.com\", \
         \"discord\": {{\"webhook\": \"{url}/discord/#{{KK_SECRET_SIMPLE_token}}\"}}, \
         \"webhook\": {{\"url\": \"{url}/hook\", \"secret\": \"#{{KK_SECRET_SIMPLE_hook}}\"}}}}",
        url = rec.url
    )
}

/// A project with the secrets `token` and `hook`, a branch and a stage.
async fn project(admin: &Client, name: &str, code: &str) -> (i64, i64) {
    let pid = admin.project(name).await;
    for (n, v) in [("token", TOKEN), ("hook", HOOK_SECRET)] {
        admin
            .post(
                &format!("/api/projects/{pid}/secrets"),
                json!({"name": n, "kind": "simple", "secret": v}),
            )
            .await
            .expect(201);
    }
    let bid = admin.branch(pid, "main").await;
    admin.stage(bid, "build", code).await;
    (pid, bid)
}

/// Start a CI flow with GitHub push trigger data, as a webhook would.
async fn pushed_flow(s: &TestServer, branch: i64, sha: &str) -> i64 {
    let core = s.core();
    let engine = core.engine();
    let data = json!([{"trigger": "github-push", "ref": "refs/heads/main", "before": "0000",
                       "after": sha, "repo": "https://github.com/acme/widget.git",
                       "pusher": {"name": "dev"}, "commits": []}]);
    let id = engine.store().insert_repo_changes(&data).await.unwrap();
    let b = engine.store().branch_any(branch).await.unwrap().unwrap();
    engine
        .start_flow(
            &b,
            kraken_core::model::flow_kind::CI,
            &Default::default(),
            "github push",
            None,
            Some(id),
        )
        .await
        .unwrap()
        .id
}

/// Wait until no notification of the run is pending; returns them.
async fn settled(admin: &Client, run: i64, n: usize) -> Vec<Value> {
    let body = admin
        .wait_for(&format!("/api/runs/{run}/notifications"), WAIT, |b| {
            b.as_array()
                .is_some_and(|a| a.len() >= n && a.iter().all(|x| x["state"] != "pending"))
        })
        .await;
    body.as_array().unwrap().clone()
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[tokio::test]
async fn a_passing_run_sets_pending_then_success_and_tells_every_channel() {
    let rec = Recorder::start(0).await;
    let smtp = SmtpSink::start().await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    configure(&admin, &rec, &smtp.addr, 60_000).await;
    let (_, bid) = project(&admin, "widget", &stage(PASS, &all_channels(&rec))).await;
    let fid = pushed_flow(&s, bid, SHA).await;
    let flow = admin.wait_flow(fid, WAIT).await;
    let run = flow["runs"][0]["id"].as_i64().unwrap();
    let label = flow["label"].as_str().unwrap().to_string();

    // GitHub: pending at the start, success at the end, on the pushed commit.
    let gh = rec.wait_ok("/github/", 2).await;
    let path = format!("/github/repos/acme/widget/statuses/{SHA}");
    assert!(
        gh.iter().all(|r| r.method == "POST" && r.path == path),
        "{gh:?}"
    );
    assert!(
        gh.iter()
            .all(|r| r.header("authorization") == basic("bot", TOKEN))
    );
    let (first, last) = (gh[0].json(), gh[1].json());
    assert_eq!(first["state"], "pending", "{first}");
    assert_eq!(first["description"], "waiting for results");
    assert_eq!(last["state"], "success", "{last}");
    assert_eq!(
        last["description"],
        "regressions: 0, fixes: 0, new issues: 0"
    );
    for b in [&first, &last] {
        assert_eq!(b["context"], format!("kraken / build [{label}]"));
        assert_eq!(b["target_url"], format!("http://kraken.example/runs/{run}"));
    }

    // GitLab and Gitea: the same statuses in their shapes.
    let gl = rec.wait_ok("/gitlab/", 2).await;
    assert_eq!(
        gl[1].path,
        format!("/gitlab/api/v4/projects/acme%2Fwidget/statuses/{SHA}")
    );
    assert_eq!(gl[1].header("private-token"), TOKEN);
    assert_eq!(
        (gl[0].json()["state"].clone(), gl[1].json()["state"].clone()),
        (json!("pending"), json!("success"))
    );
    assert_eq!(gl[1].json()["name"], format!("kraken / build [{label}]"));
    let gt = rec.wait_ok("/gitea/", 2).await;
    assert_eq!(
        gt[1].path,
        format!("/gitea/api/v1/repos/acme/widget/statuses/{SHA}")
    );
    assert_eq!(gt[1].header("authorization"), basic("bot", TOKEN));
    assert_eq!(gt[1].json()["state"], "success");

    // Slack, Discord: the end only.
    let sl = rec.wait_ok("/slack/", 1).await;
    assert_eq!(sl[0].path, "/slack/chat.postMessage");
    assert_eq!(sl[0].header("authorization"), "Bearer xoxb-good");
    let text = sl[0].json()["text"].as_str().unwrap().to_string();
    assert_eq!(sl[0].json()["channel"], "ci-results");
    for part in [
        "Passed",
        "project widget",
        "branch main",
        "stage build",
        &format!("/runs/{run}"),
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let dc = rec.wait_ok("/discord/", 1).await;
    assert_eq!(dc[0].path, format!("/discord/{TOKEN}"));
    let embed = &dc[0].json()["embeds"][0];
    assert_eq!(embed["url"], format!("http://kraken.example/runs/{run}"));
    assert!(
        embed["title"].as_str().unwrap().starts_with("success"),
        "{embed}"
    );

    // The generic webhook: start and end, each signed.
    let hooks = rec.wait_ok("/hook", 2).await;
    for h in &hooks {
        assert_eq!(
            h.header("x-kraken-signature-256"),
            format!("sha256={}", hmac_hex(HOOK_SECRET, &h.body))
        );
    }
    let end = hooks
        .iter()
        .map(Req::json)
        .find(|b| b["event"] == "end")
        .unwrap();
    assert_eq!(end["result"], "success");
    assert_eq!(end["project"]["name"], "widget");
    assert_eq!(end["branch"]["name"], "main");
    assert_eq!(end["stage"], "build");
    assert_eq!(end["flow"]["label"], label);
    assert_eq!(end["run"]["id"], run);
    assert_eq!(
        end["run"]["url"],
        format!("http://kraken.example/runs/{run}")
    );
    assert_eq!(end["commit"]["sha"], SHA);
    assert_eq!(end["jobs"]["total"], 1);
    assert!(end["run"]["duration"].is_string());
    assert!(end["tests"]["regressions"].is_i64());
    assert_eq!(
        hooks
            .iter()
            .filter(|h| h.json()["event"] == "start")
            .count(),
        1
    );

    // E-mail, with the SMTP login of the settings.
    let mails = smtp.wait_mails(1).await;
    assert_eq!(mails[0].to, vec!["<dev@example.com>".to_string()]);
    assert_eq!(mails[0].from, "<kraken@example.com>");
    assert!(
        mails[0].auth.contains("mailer mail-pw"),
        "{:?}",
        mails[0].auth
    );
    assert!(
        mails[0].data.contains("Subject: [Kraken] success"),
        "{}",
        mails[0].data
    );

    // Secrets never appear in what is sent (bodies), nor in the records.
    for r in rec.requests("/") {
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains(TOKEN) && !body.contains(HOOK_SECRET),
            "{body}"
        );
    }
    assert!(!mails[0].data.contains(TOKEN));
    let notes = settled(&admin, run, 11).await;
    assert_eq!(notes.len(), 11, "{notes:?}");
    let text = serde_json::to_string(&notes).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains(HOOK_SECRET),
        "{text}"
    );
    assert!(
        notes
            .iter()
            .all(|n| n["state"] == "delivered" && n["attempts"] == 1),
        "{notes:?}"
    );
    let discord = notes.iter().find(|n| n["channel"] == "discord").unwrap();
    assert_eq!(
        discord["target"],
        format!("discord webhook {}/discord/******", rec.url)
    );

    // Each attempt is in the run's services log.
    let logs = admin
        .get(&format!("/api/logs?flow_id={fid}&services=rq&limit=1000"))
        .await;
    let lines: Vec<String> = logs.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["run"] == run)
        .map(|l| l["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("attempt 1: delivered"))
            .count(),
        11,
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(TOKEN)), "{lines:?}");
}

#[tokio::test]
async fn a_failed_job_and_a_regression_set_failure() {
    let rec = Recorder::start(0).await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    configure(&admin, &rec, "127.0.0.1:1", 60_000).await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("fail");
    // The test case passes unless the flag file exists; the job fails when
    // the file `exit` exists.
    let cmd = format!(
        "if [ -f {f} ]; then R='<failure message=\"boom\">x</failure>'; else R=''; fi; \
         printf '<testsuite name=\"s\"><testcase classname=\"c\" name=\"t1\">%s</testcase></testsuite>' \"$R\" > results.xml; \
         if [ -f {e} ]; then exit 3; fi",
        f = flag.display(),
        e = dir.path().join("exit").display()
    );
    let notification = format!(
        "{{\"github\": {{\"credentials\": \"bot:#{{KK_SECRET_SIMPLE_token}}\"}}, \
         \"webhook\": {{\"url\": \"{}/hook\"}}}}",
        rec.url
    );
    let (_, bid) = project(&admin, "widget", &stage(&cmd, &notification)).await;

    let end_status = |n: usize| {
        let rec = &rec;
        async move {
            let gh = rec.wait_ok("/github/", n).await;
            gh[n - 1].json()
        }
    };

    // 1: passes.
    let f1 = pushed_flow(&s, bid, "1111111111111111111111111111111111111111").await;
    admin.wait_flow(f1, WAIT).await;
    assert_eq!(end_status(2).await["state"], "success");

    // 2: the test regresses.
    std::fs::write(&flag, "").unwrap();
    let f2 = pushed_flow(&s, bid, "2222222222222222222222222222222222222222").await;
    let flow = admin.wait_flow(f2, WAIT).await;
    assert_eq!(flow["runs"][0]["regr_cnt"], 1, "{flow}");
    let st = end_status(4).await;
    assert_eq!(st["state"], "failure", "{st}");
    assert_eq!(st["description"], "regressions: 1, fixes: 0, new issues: 0");
    let hook = rec
        .wait_ok("/hook", 4)
        .await
        .iter()
        .map(Req::json)
        .rfind(|b| b["event"] == "end")
        .unwrap();
    assert_eq!(hook["result"], "failure");
    assert_eq!(hook["tests"]["regressions"], 1);
    assert!(
        hook["reason"].as_str().unwrap().contains("regression"),
        "{hook}"
    );
    // Unsigned: the webhook has no secret.
    assert!(
        rec.requests("/hook")
            .iter()
            .all(|r| r.header("x-kraken-signature-256").is_empty())
    );

    // 3: the job fails.
    std::fs::remove_file(&flag).unwrap();
    std::fs::write(dir.path().join("exit"), "").unwrap();
    let f3 = pushed_flow(&s, bid, "3333333333333333333333333333333333333333").await;
    admin.wait_flow(f3, WAIT).await;
    let st = end_status(6).await;
    assert_eq!(st["state"], "failure", "{st}");
    assert!(
        rec.requests("/github/")
            .last()
            .unwrap()
            .path
            .ends_with("3333333333333333333333333333333333333333")
    );
}

#[tokio::test]
async fn an_endpoint_down_then_up_gets_each_notification_once() {
    // The first 3 requests are refused with 503.
    let rec = Recorder::start(3).await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    configure(&admin, &rec, "127.0.0.1:1", 60_000).await;
    let notification = format!(
        "{{\"webhook\": {{\"url\": \"{}/flaky/hook\", \"secret\": \"#{{KK_SECRET_SIMPLE_hook}}\"}}}}",
        rec.url
    );
    let (_, bid) = project(&admin, "widget", &stage(PASS, &notification)).await;
    let fid = pushed_flow(&s, bid, SHA).await;
    let flow = admin.wait_flow(fid, WAIT).await;
    let run = flow["runs"][0]["id"].as_i64().unwrap();
    let notes = settled(&admin, run, 2).await;
    assert!(notes.iter().all(|n| n["state"] == "delivered"), "{notes:?}");
    let attempts: i64 = notes.iter().map(|n| n["attempts"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 5, "3 refused + 2 delivered: {notes:?}");
    let all = rec.requests("/flaky");
    assert_eq!(all.len(), 5, "{all:?}");
    let ok: Vec<Value> = all
        .iter()
        .filter(|r| r.status == 200)
        .map(Req::json)
        .collect();
    assert_eq!(ok.iter().filter(|b| b["event"] == "start").count(), 1);
    assert_eq!(ok.iter().filter(|b| b["event"] == "end").count(), 1);
    assert!(
        notes
            .iter()
            .any(|n| n["attempts"].as_i64().unwrap() > 1 && n["last_error"].is_null())
    );
    // The refusals are in the services log.
    let logs = admin
        .get(&format!("/api/logs?flow_id={fid}&services=rq&limit=1000"))
        .await;
    let retried = logs.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("failed, retried in")
        })
        .count();
    assert_eq!(retried, 3);
}

#[tokio::test]
async fn an_endpoint_never_up_is_given_up_and_the_run_is_unaffected() {
    let rec = Recorder::start(0).await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // Retried for 300 ms only.
    configure(&admin, &rec, "127.0.0.1:1", 300).await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let notification = format!(
        "{{\"webhook\": {{\"url\": \"http://{closed}/hook\"}}, \"email\": \"dev@example.com\"}}"
    );
    let (_, bid) = project(&admin, "widget", &stage(PASS, &notification)).await;
    let fid = pushed_flow(&s, bid, SHA).await;
    let flow = admin.wait_flow(fid, WAIT).await;
    let r = &flow["runs"][0];
    assert_eq!(r["state"], "processed");
    assert_eq!(r["jobs_error"], 0);
    let run = r["id"].as_i64().unwrap();
    let notes = settled(&admin, run, 3).await;
    assert_eq!(
        notes.len(),
        3,
        "webhook start and end, e-mail end: {notes:?}"
    );
    for n in &notes {
        assert_eq!(n["state"], "failed", "{n}");
        let err = n["last_error"].as_str().unwrap();
        assert!(err.starts_with("gave up after"), "{err}");
        assert!(n["attempts"].as_i64().unwrap() >= 1);
    }
    // The flow's verdict is still the run's own.
    let f = admin.get(&format!("/api/flows/{fid}")).await;
    assert_eq!(f.expect(200)["state"], "completed");
}

#[tokio::test]
async fn working_state_checks_smtp_and_slack_for_real() {
    let rec = Recorder::start(0).await;
    let smtp = SmtpSink::start().await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    configure(&admin, &rec, &smtp.addr, 60_000).await;
    let email = admin.get("/api/settings/email/working-state").await;
    assert_eq!(email.expect(200)["state"], "ok");
    let slack = admin.get("/api/settings/slack/working-state").await;
    assert_eq!(slack.expect(200)["state"], "ok");
    assert_eq!(rec.requests("/slack/auth.test").len(), 1);

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    admin
        .put(
            "/api/settings",
            json!({"notification": {"smtp_server": closed.to_string(), "slack_token": "xoxb-bad"}}),
        )
        .await
        .expect(200);
    let email = admin.get("/api/settings/email/working-state").await;
    let state = email.expect(200)["state"].as_str().unwrap().to_string();
    assert!(state.starts_with("SMTP:"), "{state}");
    let slack = admin.get("/api/settings/slack/working-state").await;
    assert_eq!(slack.expect(200)["state"], "Slack: invalid_auth");
}

/// Two servers on one PostgreSQL, both with agents and notification
/// workers: every notification is sent once.
#[tokio::test]
async fn two_servers_on_postgresql_send_each_notification_once() {
    let rec = Recorder::start(0).await;
    let s = TestServer::start_with_agents(2).await;
    if !s.db.is_postgres() {
        eprintln!(
            "skipped: two servers need a shared PostgreSQL; set KRAKEN_TEST_DB_URL=postgres://... to run it"
        );
        return;
    }
    let other = s.start_another(2).await;
    let admin = s.admin().await;
    configure(&admin, &rec, "127.0.0.1:1", 60_000).await;
    let notification = format!(
        "{{\"github\": {{\"credentials\": \"bot:#{{KK_SECRET_SIMPLE_token}}\"}}, \
         \"webhook\": {{\"url\": \"{}/hook\"}}}}",
        rec.url
    );
    let (_, bid) = project(&admin, "widget", &stage(PASS, &notification)).await;
    const FLOWS: usize = 6;
    let mut flows = Vec::new();
    for i in 0..FLOWS {
        flows.push(pushed_flow(&s, bid, &format!("{i:040}")).await);
    }
    let mut runs = Vec::new();
    for f in flows {
        let flow = admin.wait_flow(f, WAIT).await;
        runs.push(flow["runs"][0]["id"].as_i64().unwrap());
    }
    for &run in &runs {
        let notes = settled(&admin, run, 4).await;
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes
                .iter()
                .all(|n| n["state"] == "delivered" && n["attempts"] == 1)
        );
    }
    let gh = rec.wait_ok("/github/", 2 * FLOWS).await;
    let hooks = rec.wait_ok("/hook", 2 * FLOWS).await;
    assert_eq!(gh.len(), 2 * FLOWS, "{gh:?}");
    assert_eq!(hooks.len(), 2 * FLOWS);
    for &run in &runs {
        for event in ["start", "end"] {
            let n = hooks
                .iter()
                .map(Req::json)
                .filter(|b| b["run"]["id"] == run && b["event"] == event)
                .count();
            assert_eq!(n, 1, "run {run} {event}");
        }
    }
    other.shutdown().await.unwrap();
}

/// End to end with real deliveries: a GitHub push webhook sets `pending`
/// then `success` on the pushed commit, and a Radicle patch webhook gets
/// the results as a comment on that patch.
#[tokio::test]
async fn webhook_deliveries_get_commit_statuses_and_patch_comments() {
    let rec = Recorder::start(0).await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    configure(&admin, &rec, "127.0.0.1:1", 60_000).await;
    let notification = "{\"github\": {\"credentials\": \"bot:#{KK_SECRET_SIMPLE_token}\"}, \
         \"radicle\": {\"credentials\": \"bot:#{KK_SECRET_SIMPLE_token}\"}}";
    let (pid, _) = project(&admin, "hooked", &stage(PASS, notification)).await;
    admin
        .webhooks(
            pid,
            json!({"github_enabled": true, "radicle_enabled": true}),
        )
        .await;
    let http = reqwest::Client::new();

    let push = json!({"ref": "refs/heads/main", "before": "0", "after": SHA,
        "repository": {"clone_url": "https://github.com/acme/widget.git"},
        "pusher": {"name": "dev"}, "commits": []});
    let r = http
        .post(format!("{}/webhooks/{pid}/github", s.url))
        .header("X-GitHub-Event", "push")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let gh = rec.wait_ok("/github/", 2).await;
    assert_eq!(gh[0].json()["state"], "pending");
    assert_eq!(gh[1].json()["state"], "success");
    for r in &gh {
        assert_eq!(r.path, format!("/github/repos/acme/widget/statuses/{SHA}"));
        assert_eq!(r.header("authorization"), basic("bot", TOKEN));
    }

    let patch = json!({"action": "created",
        "patch": {"id": "41aafe22200464bf905b143d4233f7f1fa4a9210", "after": SHA, "title": "T",
                  "commits": [{"id": SHA}]},
        "author": {"alias": "dev"},
        "repository": {"id": "z3gqcJUoA1n9HaHKufZs5FCSGazv5", "default_branch": "main",
                       "clone_url": "https://seed.example/z3gqcJUoA1n9HaHKufZs5FCSGazv5.git"}});
    let r = http
        .post(format!("{}/webhooks/{pid}/radicle", s.url))
        .header("X-Radicle-Event-Type", "patch")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let rad = rec.wait_ok("/radicle/", 1).await;
    assert_eq!(
        rad[0].path,
        "/radicle/api/v1/projects/rad:z3gqcJUoA1n9HaHKufZs5FCSGazv5/patches/41aafe22200464bf905b143d4233f7f1fa4a9210"
    );
    assert_eq!(rad[0].header("authorization"), format!("Bearer {TOKEN}"));
    let body = rad[0].json();
    assert_eq!(body["type"], "revision.comment");
    assert!(body["body"].as_str().unwrap().contains("build"), "{body}");
}

/// A delivery naming a repository the stage neither clones nor polls never
/// makes the server send the stage's credentials to that repository's host.
#[tokio::test]
async fn credentials_go_only_to_repositories_the_stage_knows() {
    let rec = Recorder::start(0).await;
    let evil = Recorder::start(0).await;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    configure(&admin, &rec, "127.0.0.1:1", 60_000).await;
    // No API URL for GitLab: it would be taken from the repository's host.
    admin
        .put(
            "/api/settings",
            json!({"notification": {"gitlab_api_url": ""}}),
        )
        .await
        .expect(200);
    let notification = "{\"gitlab\": {\"credentials\": \"bot:#{KK_SECRET_SIMPLE_token}\"}, \
         \"webhook\": {\"url\": \"URL/hook\"}}"
        .replace("URL", &rec.url);
    let (pid, bid) = project(&admin, "guarded", &stage(PASS, &notification)).await;
    admin.webhooks(pid, json!({"github_enabled": true})).await;
    let push = json!({"ref": "refs/heads/main", "before": "0", "after": SHA,
        "repository": {"clone_url": format!("{}/evil/repo.git", evil.url)},
        "pusher": {"name": "mallory"}, "commits": []});
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/{pid}/github", s.url))
        .header("X-GitHub-Event", "push")
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let flows = admin
        .wait_for(&format!("/api/branches/{bid}/flows/ci"), WAIT, |b| {
            b["total"] == 1
        })
        .await;
    let fid = flows["items"][0]["id"].as_i64().unwrap();
    admin.wait_flow(fid, WAIT).await;
    // The webhook (no credentials) still reports the start and end of the run.
    rec.wait_ok("/hook", 2).await;
    assert!(
        evil.requests("/").is_empty(),
        "nothing goes to the delivery's host"
    );
    let logs = admin
        .get(&format!("/api/logs?flow_id={fid}&services=rq&limit=1000"))
        .await;
    assert!(
        logs.body
            .to_string()
            .contains("its credentials are not sent there"),
        "{}",
        logs.body
    );
}
