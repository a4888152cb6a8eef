//! `kraken`: the Kraken CI command line.
//!
//! One backend is chosen per invocation: a server over HTTP (`--server` or
//! the stored login) or a database in process (`--db`). The commands only
//! see the `Kraken` handle; each resource's verbs live in `cmd`.

use std::process::ExitCode;

use clap::Parser;
use kraken_core::credentials::Credentials;
use kraken_core::{Error, Kraken};

mod args;
mod cmd;
mod out;
mod resolve;
mod words;

use args::*;
use out::{Exit, Out, usage};

fn main() -> ExitCode {
    // Before anything else (the runtime's threads included): this may be a
    // schema worker process (see kraken_core::schema::sandbox).
    kraken_core::schema::sandbox::run_worker_if_requested();
    // HTTPS (reqwest, object_store) needs the process's rustls provider: ring.
    kraken_core::tls::install_provider();
    cli_main()
}

#[tokio::main]
async fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KRAKEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, msg) = exit_of(&e);
            if let Some(m) = msg {
                eprintln!("kraken: {m}");
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code and message of an error.
fn exit_of(e: &anyhow::Error) -> (u8, Option<String>) {
    if let Some(x) = e.downcast_ref::<Exit>() {
        return (x.code, x.message.clone());
    }
    if let Some(k) = e.downcast_ref::<Error>() {
        return match k {
            Error::NotFound(m) => (3, Some(m.clone())),
            Error::Unauthorized(m) => (
                2,
                Some(format!("{m} (log in again: `kraken login --server URL`)")),
            ),
            other => (2, Some(other.to_string())),
        };
    }
    (2, Some(format!("{e:#}")))
}

/// The backend: `--db` in process, else a server with a token (given or stored).
async fn connect(cli: &Cli) -> anyhow::Result<Kraken> {
    if let Some(db) = &cli.db {
        return Ok(Kraken::open(db).await?);
    }
    let stored = Credentials::load()?;
    let server = cli
        .server
        .clone()
        .or_else(|| stored.as_ref().map(|c| c.server.clone()))
        .ok_or_else(|| {
            usage(
                "not logged in: run `kraken login --server URL`, or pass --server URL or --db URL",
            )
        })?;
    let token = cli
        .token
        .clone()
        .or_else(|| {
            stored
                .as_ref()
                .filter(|c| same_server(&c.server, &server))
                .map(|c| c.token.clone())
        })
        .ok_or_else(|| {
            usage(format!(
                "not logged in to {server}: run `kraken login --server {server}`"
            ))
        })?;
    Ok(Kraken::connect(&server, Some(token))?)
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Runs the command; `Ok` is exit code 0, an error carries its own (`exit_of`).
async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(f) = &cli.jq {
        let _ = out::JQ.set(f.clone());
    }
    let out = Out::new(cli.json || cli.jq.is_some());
    match &cli.command {
        Command::Login { user, password } => {
            return cmd::login::login(&cli, &out, user, password.clone()).await;
        }
        Command::Completions { shell } => return cmd::completions::run(&out, *shell),
        Command::Agent(a) => return cmd::agent::run(&cli, a).await,
        Command::Schema(s) => return cmd::schema::run(&out, s),
        _ => {}
    }
    let k = connect(&cli).await?;
    match &cli.command {
        Command::Logout => cmd::login::logout(&cli, &k).await,
        Command::Version => cmd::version::run(&k, &out).await,
        Command::Projects(c) => cmd::projects::run(&k, &out, c).await,
        Command::Branches(c) => cmd::branches::run(&k, &out, c).await,
        Command::Stages(c) => cmd::stages::run(&k, &out, c).await,
        Command::Flows(c) => cmd::flows::run(&k, &out, c).await,
        Command::Runs(c) => cmd::runs::run(&k, &out, c).await,
        Command::Jobs(c) => cmd::jobs::run(&k, &out, c).await,
        Command::Logs(a) => cmd::logs::run(&k, &out, a).await,
        Command::Results(c) => cmd::results::run(&k, &out, c).await,
        Command::Agents(c) => cmd::agents::run(&k, &out, c).await,
        Command::Groups(c) => cmd::groups::run(&k, &out, c).await,
        Command::Secrets(c) => cmd::secrets::run(&k, &out, c).await,
        Command::Users(c) => cmd::users::run(&k, &out, c).await,
        Command::Tools(c) => cmd::tools::run(&k, &out, c).await,
        Command::Settings(c) => cmd::settings::run(&k, &out, c).await,
        Command::Systems(c) => cmd::systems::run(&k, &out, c).await,
        Command::Login { .. }
        | Command::Completions { .. }
        | Command::Agent(_)
        | Command::Schema(_) => Ok(()),
    }
}
