//! The Kraken CI server: the REST API of the original (mounted at `/api` and
//! `/bk/api`), the agent backend, and the embedded engine and agents.
//!
//! [`start`] runs a server on a listener and returns a handle; tests bind
//! `127.0.0.1:0` and stop it with [`Server::shutdown`].
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use kraken_core::model::limits;
use kraken_core::{ApiError, Config, Core};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod extract;
pub mod handlers;
pub mod service_logs;

use extract::{AppState, error_response};
use handlers::{
    agents, backend, badges, cloud, diag, exec, flows, install, logs, misc, projects, results,
    stages, tools, users,
};

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Data directory (SQLite database and blobs).
    pub data_dir: PathBuf,
    /// Database URL; the SQLite file in the data directory when none.
    pub db_url: Option<String>,
    /// Where artifacts and tool packages are stored: the data directory
    /// when none, else a directory, `file:///dir` or `s3://bucket/prefix`
    /// (see `kraken_core::storage`).
    pub storage: Option<String>,
    /// Sessions unused for this long expire.
    pub session_idle_timeout: Duration,
    /// Password of `admin` on first start.
    pub admin_password: Option<String>,
    /// Number of built-in agents (in group `all`, authorized).
    pub agents: usize,
    /// Where to listen for the original agent's UDP log datagrams
    /// (announced to agents as `cfg.clickhouse_addr`); `None`: the HTTP
    /// host with a free port.
    pub udp_bind: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("kraken-data"),
            db_url: None,
            storage: None,
            session_idle_timeout: Duration::from_secs(30 * 24 * 3600),
            admin_password: None,
            agents: 1,
            udp_bind: None,
        }
    }
}

/// The routes of the REST API (mounted twice).
fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/version", get(misc::get_version))
        .route("/sessions", post(users::login))
        .route(
            "/sessions/{token}",
            get(users::get_session).delete(users::logout),
        )
        .route("/users", get(users::get_users).post(users::create_user))
        .route(
            "/users/{id}",
            get(users::get_user).patch(users::change_user_details),
        )
        .route("/users/{id}/password", put(users::change_password))
        .route("/systems", get(agents::get_systems))
        .route(
            "/projects",
            get(projects::get_projects).post(projects::create_project),
        )
        .route(
            "/projects/{id}",
            get(projects::get_project)
                .put(projects::update_project)
                .delete(projects::delete_project),
        )
        .route("/projects/{id}/secrets", post(projects::create_secret))
        .route(
            "/secrets/{id}",
            put(projects::update_secret).delete(projects::delete_secret),
        )
        .route("/projects/{id}/branches", post(projects::create_branch))
        .route("/workflow-schema", get(tools::get_workflow_schema))
        .route("/aws-ec2-regions", get(cloud::cloud_unsupported))
        .route(
            "/aws-ec2-instance-types/{region}",
            get(cloud::cloud_unsupported),
        )
        .route("/azure-locations", get(cloud::cloud_unsupported))
        .route("/azure-vm-sizes/{location}", get(cloud::cloud_unsupported))
        .route(
            "/branches/{id}",
            put(projects::update_branch).delete(projects::delete_branch),
        )
        .route("/branches/{id}/cfg", get(projects::get_branch))
        .route(
            "/branches/{id}/sequences",
            get(projects::get_branch_sequences),
        )
        .route("/sequences/{id}", put(projects::update_branch_sequence))
        .route("/branches/{id}/stats", get(projects::get_branch_stats))
        .route(
            "/branches/{id}/flows/{kind}",
            get(flows::get_flows).post(exec::create_flow),
        )
        .route("/branches/{id}/project_id", put(projects::move_branch))
        .route(
            "/branches/{id}/retention_policy",
            put(projects::update_retention_policy),
        )
        .route("/branches/{id}/env_vars", post(projects::create_env_var))
        .route(
            "/branches/{id}/env_vars/{name}",
            axum::routing::delete(projects::delete_env_var),
        )
        .route("/flows/{id}", get(flows::get_flow))
        .route(
            "/flows/{id}/runs",
            get(flows::get_flow_runs).post(exec::create_run),
        )
        .route("/flows/{id}/artifacts", get(exec::get_flow_artifacts))
        .route("/branches/{id}/stages", post(stages::create_stage))
        .route(
            "/stages/{id}",
            get(stages::get_stage)
                .put(stages::update_stage)
                .delete(stages::delete_stage),
        )
        .route("/stages/{id}/schema", put(stages::get_stage_schema_as_json))
        .route("/stages/{id}/schedule", get(flows::get_stage_schedule))
        .route("/stages/{id}/runs", get(flows::get_stage_runs))
        .route(
            "/runs/{id}",
            get(flows::get_run)
                .put(exec::run_run_jobs)
                .post(exec::force_run_analysis)
                .delete(exec::cancel_run),
        )
        .route("/runs/{id}/jobs", get(flows::get_run_jobs))
        .route("/runs/{id}/artifacts", get(exec::get_run_artifacts))
        .route("/jobs", post(exec::create_job))
        .route(
            "/jobs/{id}",
            get(flows::get_job)
                .put(exec::job_rerun)
                .delete(exec::delete_job),
        )
        .route("/jobs/{id}/logs", get(logs::get_job_logs))
        .route("/jobs/{id}/logs/stream", get(logs::stream_job_log))
        .route("/jobs/{id}/{step}/logs", get(logs::get_step_logs))
        .route("/logs", get(logs::get_logs))
        .route("/runs/{id}/results", get(results::get_run_results))
        .route("/runs/{id}/issues", get(results::get_run_issues))
        .route("/test_case_results/{id}", get(results::get_result))
        .route(
            "/test_case_results/{id}/history",
            get(results::get_result_history),
        )
        .route(
            "/test_case_results/{id}/comment",
            post(results::create_comment),
        )
        .route("/flows/{id}/analysis", get(results::get_flow_analysis))
        .route("/flows/{id}/history", get(results::get_branch_history))
        .route("/rq/queue", post(results::create_rq_entry))
        .route("/last-rq-jobs", get(results::get_last_rq_jobs))
        .route("/services-logs", get(logs::get_services_logs))
        .route(
            "/agents",
            get(agents::get_agents).patch(agents::update_agents),
        )
        .route(
            "/agents/{id}",
            get(agents::get_agent)
                .put(agents::update_agent)
                .delete(agents::delete_agent),
        )
        .route("/agents/{id}/jobs", get(agents::get_agent_jobs))
        .route(
            "/groups",
            get(agents::get_groups).post(agents::create_group),
        )
        .route(
            "/groups/{id}",
            get(agents::get_group)
                .put(agents::update_group)
                .delete(agents::delete_group),
        )
        .route(
            "/settings",
            get(misc::get_settings).put(misc::update_settings),
        )
        .route(
            "/settings/{resource}/working-state",
            get(diag::get_settings_working_state),
        )
        .route("/diagnostics", get(diag::get_diagnostics))
        .route(
            "/tools",
            get(tools::get_tools).post(tools::create_or_update_tool),
        )
        .route(
            "/tools/{name}",
            get(tools::get_tool_versions).delete(tools::delete_tool),
        )
        .route(
            "/tools/{name}/zip",
            post(tools::upload_tool).layer(DefaultBodyLimit::max(limits::UPLOAD_BODY)),
        )
        .route("/user_data", get(misc::get_user_data))
        .route("/live-data", get(misc::get_live_data))
        // JSON bodies of the REST API; uploads have their own limit above.
        .layer(DefaultBodyLimit::max(limits::REQUEST_BODY))
}

async fn not_found(uri: Uri) -> Response {
    error_response(&ApiError::new(
        404,
        format!(
            "no such endpoint: {} (see /api/... in the Kraken API)",
            uri.path()
        ),
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error_response(&ApiError::new(
        405,
        format!("method {method} is not allowed on {}", uri.path()),
    ))
}

/// The whole HTTP application.
pub fn app(core: Arc<Core>) -> Router {
    let api = api_routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let outside = Router::new()
        .route("/backend", post(backend::backend))
        .route("/backend/logs", post(backend::agent_logs))
        .route(
            "/backend/artifacts/{job}",
            axum::routing::put(backend::upload_artifact),
        )
        .route(
            "/backend/artifacts/{job}/list",
            get(backend::list_artifacts),
        )
        .route("/backend/artifacts/{job}/file", get(backend::read_artifact))
        .route("/backend/tools/{id}/package", get(backend::read_tool))
        .route(
            "/artifacts/{store}/{scope}/{id}/{*path}",
            get(results::download_artifact),
        )
        .route("/webhooks/{project}/{provider}", post(webhooks_unsupported))
        .route("/any_log", get(logs::any_log))
        .route("/install/kraken-agent-install.sh", get(install::install_sh))
        .route("/install/agent", get(install::agent))
        .route("/branch-badge/{id}", get(badges::branch_badge))
        .route("/branch-badge/{id}/{what}", get(badges::branch_badge_what))
        .route("/job_log/{id}", get(logs::job_log_text))
        .route("/job_log/{id}/{step}", get(logs::step_log_text));
    Router::new()
        .nest("/api", api.clone())
        .nest("/bk/api", api)
        .merge(outside.clone())
        .nest("/bk", outside)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits::UPLOAD_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState { core })
}

/// A running server.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The UDP address for log datagrams.
    pub udp_addr: SocketAddr,
    /// Its core (database, engine).
    pub core: Arc<Core>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    agents_stop: tokio::sync::watch::Sender<bool>,
    agents: Vec<JoinHandle<()>>,
    udp: JoinHandle<()>,
    engine: Option<kraken_core::api::EngineLoops>,
    service_logs: Option<JoinHandle<()>>,
    /// Locks on the built-in agents' work dirs, released on shutdown.
    agent_locks: Vec<std::fs::File>,
}

impl Server {
    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop the built-in agents and the engine, stop accepting requests,
    /// finish the ones in flight, and close the database.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.agents_stop.send(true);
        for a in self.agents.drain(..) {
            if tokio::time::timeout(Duration::from_secs(10), a)
                .await
                .is_err()
            {
                tracing::warn!("a built-in agent did not stop in time");
            }
        }
        self.engine.take();
        self.udp.abort();
        if let Some(w) = self.service_logs.take() {
            w.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        self.core.close().await;
        self.agent_locks.clear();
        Ok(())
    }

    /// Wait until the server stops by itself (it does not, unless it fails).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// Open the database, seed it and start serving.
pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
    // Each built-in agent is known by an id generated into its work dir,
    // which this process locks first: a second server on the same data dir
    // would be the same agents, so it refuses to start.
    let mut locks = Vec::new();
    let mut builtin_dirs = Vec::new();
    for i in 1..=config.agents {
        let work_dir = config.data_dir.join("agents").join(format!("builtin-{i}"));
        locks.push(kraken_core::agent::lock_work_dir(&work_dir).map_err(|e| {
            anyhow::anyhow!(
                "{e} (is another server using data dir {}?)",
                config.data_dir.display()
            )
        })?);
        builtin_dirs.push(work_dir);
    }
    let core = Core::open_database(
        config.db_url.as_deref(),
        Config {
            data_dir: config.data_dir.clone(),
            storage: config.storage.clone(),
            session_idle_timeout: config.session_idle_timeout,
            admin_password: config.admin_password.clone(),
        },
    )
    .await?;
    let listener = TcpListener::bind(&config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    let addr = listener.local_addr()?;
    let udp_bind = config
        .udp_bind
        .clone()
        .unwrap_or_else(|| format!("{}:0", addr.ip()));
    let udp_socket = tokio::net::UdpSocket::bind(&udp_bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for UDP logs on {udp_bind}: {e}"))?;
    let udp_addr = udp_socket.local_addr()?;
    core.set_udp_log_addr(udp_addr.to_string());
    let udp = tokio::spawn(udp_logs(core.clone(), udp_socket));
    let service_logs = service_logs::spawn_writer(core.clone());
    let engine = core.start_engine();
    let (agents_stop, agents_rx) = tokio::sync::watch::channel(false);
    let mut agents = Vec::new();
    for (i, work_dir) in (1..=config.agents).zip(builtin_dirs) {
        let uid = kraken_core::agent::work_dir_identity(&work_dir)?;
        let label = format!("builtin-{i}@{}", kraken_core::agent::hostname());
        let agent_id = core.ensure_builtin_agent(&label, &uid).await?;
        let cfg = kraken_core::agent::AgentConfig::new(&label, &work_dir);
        let agent = kraken_core::agent::Agent::new(
            Arc::new(kraken_core::agent::InProcess::new(core.clone(), agent_id)),
            cfg,
        );
        let rx = agents_rx.clone();
        agents.push(tokio::spawn(async move { agent.run(rx).await }));
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app(core.clone());
    // Small writes (an SSE event, a short answer) go out at once instead of
    // waiting for the peer's delayed ACK (Nagle): ~40 ms less per live log line.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .await
    });
    tracing::info!(%addr, database = %core.database_url(), storage = %core.storage(), "kraken server listening");
    Ok(Server {
        addr,
        udp_addr,
        core,
        stop: Some(stop),
        task,
        agents_stop,
        agents,
        udp,
        engine: Some(engine),
        service_logs,
        agent_locks: locks,
    })
}

/// Receive log datagrams of the original's agents; store them in batches
/// (each with its sender's IP: only the agent at that address running the
/// datagram's job is listened to).
async fn udp_logs(core: Arc<Core>, socket: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    let sender = |a: SocketAddr| a.ip().to_canonical().to_string();
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let mut batch = vec![(buf[..n].to_vec(), sender(from))];
        // Take what else has arrived meanwhile, up to a batch.
        while batch.len() < 500 {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => batch.push((buf[..n].to_vec(), sender(from))),
                Err(_) => break,
            }
        }
        if let Err(e) = core.ingest_udp_logs(&batch).await {
            tracing::warn!(error = %e, "cannot store UDP log records");
        }
    }
}

/// Webhooks of GitHub, Gitea, GitLab and Radicle are not taken by this server.
async fn webhooks_unsupported() -> Response {
    error_response(&ApiError::new(
        400,
        "webhooks are not supported by this server: start flows with `kraken flows create` or POST /api/branches/{id}/flows/ci",
    ))
}
