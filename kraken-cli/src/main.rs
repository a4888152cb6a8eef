//! `kraken`: the Kraken CI command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

/// Kraken CI from the shell.
#[derive(Debug, Parser)]
#[command(name = "kraken", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent that takes jobs from a Kraken server over HTTP.
    ///
    /// The agent registers itself and waits until an administrator
    /// authorizes it (`PATCH /api/agents`); then it runs jobs of its groups.
    Agent {
        /// Server URL, e.g. http://ci.example.com:8080.
        #[arg(long, env = "KRAKEN_SERVER")]
        server: String,
        /// Identity of this agent at the server (default: the host name).
        #[arg(long, env = "KRAKEN_AGENT_ADDRESS")]
        address: Option<String>,
        /// Directory for job work directories.
        #[arg(long, env = "KRAKEN_AGENT_DIR", default_value = "./kraken-agent")]
        work_dir: PathBuf,
        /// System name reported to the server (default: detected, e.g. debian-12).
        #[arg(long, env = "KRAKEN_SYSTEM_ID")]
        system: Option<String>,
        /// Exit after running one job.
        #[arg(long)]
        one_job: bool,
    },
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KRAKEN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match cli.command {
        Command::Agent {
            server,
            address,
            work_dir,
            system,
            one_job,
        } => {
            let transport = match kraken_core::agent::Http::new(&server) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("kraken: {e}");
                    return ExitCode::from(2);
                }
            };
            let address = address.unwrap_or_else(hostname);
            let mut cfg = kraken_core::agent::AgentConfig::new(&address, &work_dir);
            if let Some(s) = system {
                cfg.system = s;
            }
            cfg.one_job = one_job;
            let agent = kraken_core::agent::Agent::new(Arc::new(transport), cfg);
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                let _ = stop_tx.send(true);
            });
            eprintln!("kraken agent '{address}' working for {server}");
            agent.run(stop).await;
            ExitCode::SUCCESS
        }
    }
}
