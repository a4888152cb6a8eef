//! `kraken-server`: run a Kraken CI server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kraken_server::{ServerConfig, start};
use tracing_subscriber::EnvFilter;

/// Kraken CI server: the REST API, the agent backend, the engine and
/// built-in agents, in one process. With no options it keeps everything in
/// an SQLite database under ./kraken-data.
#[derive(Debug, Parser)]
#[command(name = "kraken-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "KRAKEN_BIND", default_value = "127.0.0.1:8080")]
    bind: String,

    /// Directory for the SQLite database and stored files (artifacts, tool packages).
    #[arg(long, env = "KRAKEN_DATA_DIR", default_value = "./kraken-data")]
    data_dir: PathBuf,

    /// Database URL instead of the SQLite file in the data directory,
    /// e.g. postgres://kraken:secret@localhost/kraken or sqlite:///var/lib/kraken/ci.db.
    #[arg(long, env = "KRAKEN_DB_URL")]
    db_url: Option<String>,

    /// Where artifacts and tool packages are stored: a directory,
    /// file:///shared/dir (one directory shared by several servers) or
    /// s3://bucket/prefix (endpoint, region and keys from AWS_ENDPOINT,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Default: the
    /// data directory.
    #[arg(long, alias = "storage-url", env = "KRAKEN_STORAGE")]
    storage: Option<String>,

    /// Log filter: error, warn, info, debug, trace, or a tracing filter
    /// such as "info,kraken_core=debug".
    #[arg(long, env = "KRAKEN_LOG", default_value = "info")]
    log_level: String,

    /// Number of built-in agents (0 disables them): they run jobs of group
    /// `all` in this process, under <data dir>/agents.
    #[arg(long, env = "KRAKEN_AGENTS", default_value_t = 1)]
    agents: usize,

    /// Address for the UDP log datagrams of the original Python agent
    /// (announced to agents); default: the --bind host with a free port.
    #[arg(long, env = "KRAKEN_UDP_BIND")]
    udp_bind: Option<String>,

    /// Address of the S3 endpoint the original agent's git, artifacts and
    /// cache tools talk to (with per-job credentials); default: the --bind
    /// host with a free port; "off" to disable. Agents are told this
    /// address, or the setting general.minio_addr when it is set.
    #[arg(long, env = "KRAKEN_S3_BIND")]
    s3_bind: Option<String>,

    /// Days after which an unused login session expires.
    #[arg(long, env = "KRAKEN_SESSION_IDLE_DAYS", default_value_t = 30)]
    session_idle_days: u64,
}

/// jemalloc, with its background thread (turned on in `main`), gives freed
/// memory back to the system within seconds (glibc's malloc keeps the
/// peaks of password hashing and results analysis for good).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // Before anything else (the runtime's threads included): this may be a
    // schema worker process (see kraken_core::schema::sandbox).
    kraken_core::schema::sandbox::run_worker_if_requested();
    // HTTPS (reqwest, object_store) needs the process's rustls provider: ring.
    kraken_core::tls::install_provider();
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: memory freed will not be given back to the system: {e}");
    }
    serve()
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level '{}'", args.log_level))?;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(kraken_server::service_logs::ServiceLogLayer)
        .init();

    let server = start(ServerConfig {
        bind: args.bind,
        data_dir: args.data_dir,
        db_url: args.db_url,
        storage: args.storage,
        session_idle_timeout: Duration::from_secs(args.session_idle_days.max(1) * 86_400),
        admin_password: std::env::var("KRAKEN_ADMIN_PASSWORD").ok(),
        agents: args.agents,
        udp_bind: args.udp_bind,
        s3_bind: args.s3_bind,
    })
    .await?;
    println!(
        "Kraken server listening on {} (database: {}, storage: {})",
        server.url(),
        server.core.database_url(),
        server.core.storage()
    );
    kraken_core::schema::sandbox::warm_up();

    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
