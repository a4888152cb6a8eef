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
use axum::routing::{get, post};
use kraken_core::model::limits;
use kraken_core::{ApiError, Config, Core};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub mod extract;
pub mod handlers;
pub mod openapi;
pub mod s3;
pub mod service_logs;

use extract::{AppState, error_response};
use handlers::{
    agents, backend, badges, cloud, diag, exec, flows, install, logs, misc, projects, results,
    stages, tools, users, webhooks,
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
    /// Where the S3 endpoint for the original agent's `git`, `artifacts`
    /// and `cache` tools listens; `None`: the HTTP host with a free port;
    /// `off`: nowhere (those tools then fail on the original agent).
    pub s3_bind: Option<String>,
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
            s3_bind: None,
        }
    }
}

/// The REST API (mounted twice) and its OpenAPI document. Every route is
/// added with `routes!`, which takes its path and method from the handler's
/// `#[utoipa::path]`, so whatever is served is in the document.
fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(misc::get_version))
        .routes(routes!(users::login))
        .routes(routes!(users::get_session, users::logout))
        .routes(routes!(users::get_users, users::create_user))
        .routes(routes!(users::get_user, users::change_user_details))
        .routes(routes!(users::change_password))
        .routes(routes!(agents::get_systems))
        .routes(routes!(projects::get_projects, projects::create_project))
        .routes(routes!(
            projects::get_project,
            projects::update_project,
            projects::delete_project
        ))
        .routes(routes!(projects::create_secret))
        .routes(routes!(projects::update_secret, projects::delete_secret))
        .routes(routes!(projects::create_branch))
        .routes(routes!(tools::get_workflow_schema))
        .routes(routes!(cloud::aws_ec2_regions))
        .routes(routes!(cloud::aws_ec2_instance_types))
        .routes(routes!(cloud::azure_locations))
        .routes(routes!(cloud::azure_vm_sizes))
        .routes(routes!(projects::update_branch, projects::delete_branch))
        .routes(routes!(projects::get_branch))
        .routes(routes!(projects::get_branch_sequences))
        .routes(routes!(projects::update_branch_sequence))
        .routes(routes!(projects::get_branch_stats))
        .routes(routes!(flows::get_flows, exec::create_flow))
        .routes(routes!(projects::move_branch))
        .routes(routes!(projects::update_retention_policy))
        .routes(routes!(projects::create_env_var))
        .routes(routes!(projects::delete_env_var))
        .routes(routes!(flows::get_flow))
        .routes(routes!(flows::get_flow_runs, exec::create_run))
        .routes(routes!(exec::get_flow_artifacts))
        .routes(routes!(stages::create_stage))
        .routes(routes!(
            stages::get_stage,
            stages::update_stage,
            stages::delete_stage
        ))
        .routes(routes!(stages::get_stage_schema_as_json))
        .routes(routes!(flows::get_stage_schedule))
        .routes(routes!(flows::get_stage_runs))
        .routes(routes!(
            flows::get_run,
            exec::run_run_jobs,
            exec::force_run_analysis,
            exec::cancel_run
        ))
        .routes(routes!(flows::get_run_jobs))
        .routes(routes!(flows::get_run_notifications))
        .routes(routes!(exec::get_run_artifacts))
        .routes(routes!(exec::create_job))
        .routes(routes!(flows::get_job, exec::job_rerun, exec::delete_job))
        .routes(routes!(logs::get_job_logs))
        .routes(routes!(logs::stream_job_log))
        .routes(routes!(logs::get_step_logs))
        .routes(routes!(logs::get_logs))
        .routes(routes!(results::get_run_results))
        .routes(routes!(results::get_run_issues))
        .routes(routes!(results::get_result))
        .routes(routes!(results::get_result_history))
        .routes(routes!(results::create_comment))
        .routes(routes!(results::get_flow_analysis))
        .routes(routes!(results::get_branch_history))
        .routes(routes!(results::create_rq_entry))
        .routes(routes!(results::get_last_rq_jobs))
        .routes(routes!(logs::get_services_logs))
        .routes(routes!(agents::get_agents, agents::update_agents))
        .routes(routes!(
            agents::get_agent,
            agents::update_agent,
            agents::delete_agent
        ))
        .routes(routes!(agents::get_agent_jobs))
        .routes(routes!(agents::get_groups, agents::create_group))
        .routes(routes!(
            agents::get_group,
            agents::update_group,
            agents::delete_group
        ))
        .routes(routes!(misc::get_settings, misc::update_settings))
        .routes(routes!(diag::get_settings_working_state))
        .routes(routes!(diag::get_diagnostics))
        .routes(routes!(tools::get_tools, tools::create_or_update_tool))
        .routes(routes!(tools::get_tool_versions, tools::delete_tool))
        .routes(routes!(tools::upload_tool).layer(DefaultBodyLimit::max(limits::UPLOAD_BODY)))
        .routes(routes!(misc::get_user_data))
        .routes(routes!(misc::get_live_data))
        // JSON bodies of the REST API; uploads have their own limit above.
        .layer(DefaultBodyLimit::max(limits::REQUEST_BODY))
        .split_for_parts();
    (router, openapi::finish(doc))
}

/// `/openapi.json` and the Swagger UI at `/docs/` under `prefix` (`/api`
/// or `/bk/api`); the UI's files are compiled in, nothing is fetched from
/// elsewhere.
fn documentation(prefix: &str, doc: &axum::body::Bytes) -> Router<AppState> {
    let json = format!("{prefix}{}", openapi::DOCUMENT_PATH);
    let ui = SwaggerUi::new(format!("{prefix}{}", openapi::UI_PATH))
        .config(utoipa_swagger_ui::Config::new([json.clone()]));
    let doc = doc.clone();
    Router::new()
        .route(
            &json,
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    doc,
                )
            }),
        )
        .merge(ui)
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
    let (api, doc) = api_router();
    // Made once: the document does not change while the server runs.
    let doc = axum::body::Bytes::from(doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot write the OpenAPI document");
        "{}".to_string()
    }));
    let api = api
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
            "/backend/cache/{job}",
            get(backend::cache_entry).put(backend::cache_put),
        )
        .route("/backend/cache/{job}/file", get(backend::cache_read))
        .route(
            "/artifacts/{store}/{scope}/{id}/{*path}",
            get(results::download_artifact),
        )
        .route(
            "/webhooks/{project}/{provider}",
            post(webhooks::receive).layer(DefaultBodyLimit::disable()),
        )
        .route("/any_log", get(logs::any_log))
        .route("/install/kraken-agent-install.sh", get(install::install_sh))
        .route("/install/agent", get(install::agent))
        .route("/branch-badge/{id}", get(badges::branch_badge))
        .route("/branch-badge/{id}/{what}", get(badges::branch_badge_what))
        .route("/job_log/{id}", get(logs::job_log_text))
        .route("/job_log/{id}/{step}", get(logs::step_log_text));
    Router::new()
        .merge(documentation("/api", &doc))
        .merge(documentation("/bk/api", &doc))
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
    /// The S3 endpoint's address (none when `--s3-bind off`).
    pub s3_addr: Option<SocketAddr>,
    /// Its core (database, engine).
    pub core: Arc<Core>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    agents_stop: tokio::sync::watch::Sender<bool>,
    agents: Vec<JoinHandle<()>>,
    udp: JoinHandle<()>,
    s3: Option<JoinHandle<()>>,
    cache_sweep: JoinHandle<()>,
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
        if let Some(s3) = self.s3.take() {
            s3.abort();
        }
        self.cache_sweep.abort();
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
    // The HTTP clients of notifications, agents and S3 storage need the
    // process's rustls provider (ring); `main` installs it too, a program
    // embedding the server may not have.
    kraken_core::tls::install_provider();
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
    let s3_bind = config
        .s3_bind
        .clone()
        .unwrap_or_else(|| format!("{}:0", addr.ip()));
    let (s3_addr, s3) = if s3_bind.trim() == "off" {
        (None, None)
    } else {
        let l = TcpListener::bind(&s3_bind).await.map_err(|e| {
            anyhow::anyhow!("cannot listen for S3 requests on {s3_bind} (--s3-bind): {e}")
        })?;
        let a = l.local_addr()?;
        core.set_s3_addr(a.to_string());
        (Some(a), Some(s3::serve(core.clone(), l)))
    };
    let cache_sweep = tokio::spawn(sweep_cache(core.clone()));
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
        s3_addr,
        core,
        stop: Some(stop),
        task,
        agents_stop,
        agents,
        udp,
        s3,
        cache_sweep,
        engine: Some(engine),
        service_logs,
        agent_locks: locks,
    })
}

/// Remove expired cache entries (and superseded ones) of every branch,
/// at start and then hourly; saves purge their own branch as they go.
async fn sweep_cache(core: Arc<Core>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match core.purge_cache(None, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "removed expired cache entries"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep the cache"),
        }
        match core.purge_s3_uploads(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(parts = n, "removed parts of abandoned S3 uploads"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep abandoned S3 uploads"),
        }
    }
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
