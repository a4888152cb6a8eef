//! Helpers for end-to-end tests: a real `kraken-server` on `127.0.0.1:0`
//! backed by a temporary SQLite file, or by a fresh PostgreSQL database when
//! `KRAKEN_TEST_DB_URL` names a PostgreSQL server, and a small JSON client.
//!
//! reqwest brings no rustls crypto provider and panics when a client is
//! built before one is installed: starting a server (in process), the
//! helpers here and [`http`] install ring first. A test that builds a
//! reqwest client (or object_store's S3 client) before any of them uses
//! [`http`] or calls `kraken_core::tls::install_provider()`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kraken_server::{Server, ServerConfig};
use reqwest::Method;
use serde_json::{Value, json};

/// A plain HTTP client, after installing the process's rustls provider.
pub fn http() -> reqwest::Client {
    kraken_core::tls::install_provider();
    reqwest::Client::new()
}

/// A database for one test: a file in a temp dir, or its own PostgreSQL database.
pub struct TestDb {
    /// URL to open it with (`None`: the server's SQLite file in the data dir).
    pub url: Option<String>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database as `KRAKEN_TEST_DB_URL` selects.
    pub async fn new() -> TestDb {
        match std::env::var("KRAKEN_TEST_DB_URL") {
            Ok(base) if base.starts_with("postgres") => {
                let name = format!("kraken_test_{:016x}", rand::random::<u64>());
                let pool = sqlx::PgPool::connect(&base)
                    .await
                    .expect("connect to KRAKEN_TEST_DB_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let url = replace_db_name(&base, &name);
                TestDb {
                    url: Some(url),
                    pg_admin: Some((base, name)),
                }
            }
            _ => TestDb {
                url: None,
                pg_admin: None,
            },
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg_admin.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg_admin.take() {
            // Best effort: drop the database from a separate runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&pool)
                            .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{}", &base[..i], name),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A running server with its data directory and database.
pub struct TestServer {
    /// The server.
    pub server: Option<Server>,
    /// Base URL.
    pub url: String,
    /// Data directory (kept for restarts).
    pub data_dir: PathBuf,
    /// The database.
    pub db: TestDb,
    /// Built-in agents.
    pub agents: usize,
    _tmp: tempfile::TempDir,
}

impl TestServer {
    /// Start a server on `127.0.0.1:0` with a fresh database and one built-in agent.
    pub async fn start() -> TestServer {
        Self::start_with_agents(1).await
    }

    /// Start a server with `agents` built-in agents.
    pub async fn start_with_agents(agents: usize) -> TestServer {
        Self::start_with_storage(agents, None).await
    }

    /// Start a server with `agents` built-in agents and its blobs in
    /// `storage` (`None`: the data dir).
    pub async fn start_with_storage(agents: usize, storage: Option<String>) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let db = TestDb::new().await;
        let server = start_on(&data_dir, db.url.clone(), agents, storage).await;
        let url = server.url();
        TestServer {
            server: Some(server),
            url,
            data_dir,
            db,
            agents,
            _tmp: tmp,
        }
    }

    /// Another server on the same database (PostgreSQL: several servers
    /// share one), with its own data directory and `agents` built-in agents.
    pub async fn start_another(&self, agents: usize) -> Server {
        let dir = self
            .data_dir
            .with_file_name(format!("data-{:08x}", rand::random::<u32>()));
        start_on(&dir, self.db.url.clone(), agents, None).await
    }

    /// The server's core (database, engine) for test set-up.
    pub fn core(&self) -> std::sync::Arc<kraken_core::Core> {
        self.server.as_ref().expect("server running").core.clone()
    }

    /// Stop the server and start it again on the same data and database.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("shutdown");
        }
        let storage = self
            .server
            .as_ref()
            .and_then(|s| s.core.config.storage.clone());
        let server = start_on(&self.data_dir, self.db.url.clone(), self.agents, storage).await;
        self.url = server.url();
        self.server = Some(server);
    }

    /// A client logged in as `admin`.
    pub async fn admin(&self) -> Client {
        Client::login(&self.url, "admin", "admin").await
    }

    /// An anonymous client.
    pub fn anonymous(&self) -> Client {
        Client {
            base: self.url.clone(),
            token: None,
            http: http(),
        }
    }

    /// Create a user with a password and log in as them.
    pub async fn user(&self, name: &str) -> (i64, Client) {
        let admin = self.admin().await;
        let u = admin
            .post("/api/users", json!({"name": name, "password": "pw"}))
            .await;
        assert_eq!(u.status, 201, "create user: {}", u.body);
        let id = u.body["id"].as_i64().expect("user id");
        (id, Client::login(&self.url, name, "pw").await)
    }
}

/// The schema worker program built with these tests
/// (`kraken-tests-schema-worker`, next to the test binaries).
pub fn schema_worker_program() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut dir = exe.parent().expect("directory of the test binary");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let program = dir.join(format!(
        "kraken-tests-schema-worker{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        program.exists(),
        "{} is missing (it is built with the tests of kraken-tests)",
        program.display()
    );
    program
}

/// Evaluate schema code in worker processes, as `kraken-server` does (the
/// test server runs inside the test binary, which cannot be a worker),
/// unless `KRAKEN_SCHEMA_WORKER` says otherwise.
fn use_schema_workers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(kraken_core::schema::sandbox::WORKER_ENV).is_none() {
            kraken_core::schema::sandbox::configure(kraken_core::schema::sandbox::Mode::Workers {
                program: schema_worker_program(),
                workers: kraken_core::schema::sandbox::DEFAULT_WORKERS,
            });
        }
    });
}

async fn start_on(
    data_dir: &Path,
    db_url: Option<String>,
    agents: usize,
    storage: Option<String>,
) -> Server {
    use_schema_workers();
    kraken_server::start(ServerConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: data_dir.to_path_buf(),
        db_url,
        session_idle_timeout: Duration::from_secs(3600),
        admin_password: None,
        agents,
        udp_bind: None,
        s3_bind: None,
        storage,
    })
    .await
    .expect("start server")
}

/// An HTTP answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Answer {
    /// Assert the status, and for errors the JSON error shape.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.body
        );
        if status >= 400 {
            assert_eq!(
                self.body["code"],
                json!(status),
                "error body: {}",
                self.body
            );
            assert!(
                self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "error message: {}",
                self.body
            );
            assert_eq!(self.body["status"], json!(status));
            assert_eq!(self.body["detail"], self.body["message"]);
        }
        &self.body
    }

    /// The error message.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// A JSON client for the API.
#[derive(Clone)]
pub struct Client {
    /// Base URL.
    pub base: String,
    /// Bearer token.
    pub token: Option<String>,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl Client {
    /// Log in and keep the token.
    pub async fn login(base: &str, user: &str, password: &str) -> Client {
        let mut c = Client {
            base: base.to_string(),
            token: None,
            http: http(),
        };
        let a = c
            .post("/api/sessions", json!({"user": user, "password": password}))
            .await;
        assert_eq!(a.status, 201, "login {user}: {}", a.body);
        c.token = a.body["token"].as_str().map(str::to_string);
        c
    }

    /// Send a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// Send raw bytes.
    pub async fn send_raw(&self, method: Method, path: &str, body: &'static str) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }
    /// POST JSON.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }
    /// PUT JSON.
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }
    /// PATCH JSON.
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }
    /// DELETE.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Create a project and return its id.
    pub async fn project(&self, name: &str) -> i64 {
        let a = self.post("/api/projects", json!({"name": name})).await;
        a.expect(201)["id"].as_i64().expect("project id")
    }

    /// Set a project's webhook settings (`{"github_enabled": true, ...}`).
    pub async fn webhooks(&self, project: i64, settings: Value) {
        self.put(
            &format!("/api/projects/{project}"),
            json!({ "webhooks": settings }),
        )
        .await
        .expect(200);
    }

    /// Create a branch and return its id.
    pub async fn branch(&self, project: i64, name: &str) -> i64 {
        let a = self
            .post(
                &format!("/api/projects/{project}/branches"),
                json!({"name": name}),
            )
            .await;
        a.expect(201)["id"].as_i64().expect("branch id")
    }
}

/// A stage schema with one job of shell steps in group `all`.
pub fn shell_stage(parent: &str, job: &str, cmds: &[&str]) -> String {
    let steps: Vec<String> = cmds
        .iter()
        .map(|c| {
            format!(
                "{{\"tool\": \"shell\", \"cmd\": {}}}",
                serde_json::to_string(c).unwrap_or_default()
            )
        })
        .collect();
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"{parent}\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"{job}\", \"steps\": [{}], \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}\n",
        steps.join(", ")
    )
}

impl Client {
    /// Create a stage with schema code and return its id.
    pub async fn stage(&self, branch: i64, name: &str, code: &str) -> i64 {
        let a = self
            .post(
                &format!("/api/branches/{branch}/stages"),
                json!({"name": name, "schema_code": code}),
            )
            .await;
        a.expect(201)["id"].as_i64().expect("stage id")
    }

    /// Create a CI flow and return it.
    pub async fn flow(&self, branch: i64) -> Value {
        let a = self
            .post(&format!("/api/branches/{branch}/flows/ci"), json!({}))
            .await;
        a.expect(201).clone()
    }

    /// Wait until a flow is completed (and its runs are processed); returns it.
    pub async fn wait_flow(&self, flow: i64, timeout: Duration) -> Value {
        let end = std::time::Instant::now() + timeout;
        loop {
            let f = self.get(&format!("/api/flows/{flow}")).await;
            let done = f.body["state"] == "completed"
                && f.body["runs"].as_array().is_some_and(|r| {
                    r.iter()
                        .all(|r| r["state"] == "processed" || r["state"] == "manual")
                });
            if done {
                return f.body;
            }
            assert!(
                std::time::Instant::now() < end,
                "flow {flow} did not complete in {timeout:?}: {}",
                f.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `check` holds for `GET path`; returns the body.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = std::time::Instant::now() + timeout;
        loop {
            let a = self.get(path).await;
            if check(&a.body) {
                return a.body;
            }
            assert!(
                std::time::Instant::now() < end,
                "condition on {path} not met in {timeout:?}: {}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The jobs of the first run of a flow.
    pub async fn run_jobs(&self, run: i64) -> Vec<Value> {
        self.get(&format!("/api/runs/{run}/jobs")).await.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// All log messages of a job (tool output), in order.
    pub async fn job_log(&self, job: i64) -> Vec<String> {
        let a = self
            .get(&format!("/api/jobs/{job}/logs?limit=100000"))
            .await;
        a.body["items"]
            .as_array()
            .map(|i| {
                i.iter()
                    .filter_map(|l| l["message"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` name.
    pub event: String,
    /// `id:`.
    pub id: Option<String>,
    /// `data:` (lines joined with `\n`).
    pub data: String,
}

/// Read server-sent events from `path` until `stop` says so or the stream ends.
pub async fn read_sse(
    client: &Client,
    path: &str,
    last_event_id: Option<&str>,
    mut stop: impl FnMut(&SseEvent) -> bool,
) -> Vec<SseEvent> {
    use futures_util::StreamExt;
    let mut req = client.http.get(format!("{}{}", client.base, path));
    if let Some(t) = &client.token {
        req = req.bearer_auth(t);
    }
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.expect("sse request");
    assert_eq!(resp.status().as_u16(), 200, "sse status");
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let mut cur = SseEvent {
        event: "message".into(),
        id: None,
        data: String::new(),
    };
    let mut has_data = false;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find('\n') {
            let line = buf[..pos].trim_end_matches('\r').to_string();
            buf.drain(..=pos);
            if line.is_empty() {
                if has_data {
                    let ev = std::mem::replace(
                        &mut cur,
                        SseEvent {
                            event: "message".into(),
                            id: None,
                            data: String::new(),
                        },
                    );
                    has_data = false;
                    let done = stop(&ev);
                    out.push(ev);
                    if done {
                        return out;
                    }
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line
                .split_once(':')
                .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
                .unwrap_or((line.as_str(), ""));
            match field {
                "event" => cur.event = value.to_string(),
                "id" => cur.id = Some(value.to_string()),
                "data" => {
                    if has_data {
                        cur.data.push('\n');
                    }
                    cur.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }
    out
}

/// A local S3 endpoint for tests: moto's `moto_server` (`pip install
/// 'moto[server]'`) on a free port of 127.0.0.1, stopped when dropped.
/// Found at `$KRAKEN_TEST_MOTO_SERVER`, else as `moto_server` on the PATH.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Start it; `None` (after saying why on stderr) when it is not installed.
    pub async fn start() -> Option<Moto> {
        let program =
            std::env::var("KRAKEN_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = match std::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "skipped: {program} not found (pip install 'moto[server]', or set \
                     KRAKEN_TEST_MOTO_SERVER to its path; .ci/run does)"
                );
                return None;
            }
            Err(e) => panic!("cannot start {program}: {e}"),
        };
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let end = std::time::Instant::now() + Duration::from_secs(30);
        let http = http();
        while http.get(&moto.endpoint).send().await.is_err() {
            assert!(
                std::time::Instant::now() < end,
                "{program} did not answer on {} within 30 s",
                moto.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(moto)
    }

    /// Create a bucket (moto takes unsigned requests).
    pub async fn bucket(&self, name: &str) {
        let r = http()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(
            r.status().is_success(),
            "create bucket {name}: {}",
            r.status()
        );
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2, first 1000).
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = http()
            .get(format!("{}/{bucket}", self.endpoint))
            .query(&[("list-type", "2"), ("prefix", prefix)])
            .send()
            .await
            .expect("list objects")
            .text()
            .await
            .expect("list body");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// A `--storage` URL for `bucket/prefix` on this endpoint.
    pub fn storage_url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1&access_key_id=test&secret_access_key=test",
            self.endpoint
        )
    }
}

/// Registers an agent labelled `addr` with a key of its own, has it
/// authorized and picks up the key the server issues then: a client that
/// drives the agent protocol by hand, as this project's agent speaks it,
/// reporting `info` as its host info.
pub async fn manual_agent(s: &TestServer, admin: &Client, addr: &str, info: Value) -> Client {
    let mut agent = s.anonymous();
    agent.token = Some(format!("{:064x}", rand::random::<u128>()));
    let hello = json!({"address": addr, "msg": "host-info", "info": info});
    let reg = agent.post("/backend", hello.clone()).await;
    assert_eq!(reg.expect(200)["unauthorized"], true);
    let agents = admin.get("/api/agents?unauthorized=true").await;
    let aid = agents.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == addr)
        .expect("the agent is listed")["id"]
        .as_i64()
        .unwrap();
    admin
        .patch("/api/agents", json!([{"id": aid, "authorized": true}]))
        .await
        .expect(200);
    let hi = agent.post("/backend", hello).await;
    assert_eq!(hi.expect(200)["agent_id"], aid);
    agent.token = Some(
        hi.body["agent_key"]
            .as_str()
            .expect("a key is issued on authorization")
            .to_string(),
    );
    agent
}

/// Whether something a test needs from the machine is there (`found`). CI
/// (`.ci/run`) installs all of it and sets `KRAKEN_REQUIRE_TOOLS=1`, so
/// there a missing one fails the test; elsewhere the test says on stderr
/// that it did not run, and why (`what`, and `how` to get it).
pub fn required(found: bool, what: &str, how: &str) -> bool {
    if !found {
        assert!(
            std::env::var_os("KRAKEN_REQUIRE_TOOLS").is_none(),
            "this test needs {what}: {how}"
        );
        eprintln!("NOT RUN: this test needs {what} ({how})");
    }
    found
}

/// Run git in `dir` (as user Dev) and return its output; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Dev", "-c", "user.email=dev@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with two commits on `main`; returns its URL and both ids.
pub fn repo_with_two_commits(dir: &Path, name: &str) -> (String, String, String) {
    let repo = dir.join(name);
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("f.txt"), "one\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("f.txt"), "two\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "second"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    (format!("file://{}", repo.display()), first, second)
}
