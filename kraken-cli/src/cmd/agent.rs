//! `kraken agent`: a remote agent that takes jobs from a server over HTTP.

use std::sync::Arc;

use kraken_core::credentials::Credentials;

use crate::args::{AgentArgs, Cli};
use crate::out::usage;

/// Runs the agent until Ctrl-C (or after one job with --one-job).
pub async fn run(cli: &Cli, a: &AgentArgs) -> anyhow::Result<()> {
    let server = cli
        .server
        .clone()
        .or_else(|| Credentials::load().ok().flatten().map(|c| c.server))
        .ok_or_else(|| usage("which server? pass --server URL"))?;
    // One agent per work dir: its key lives there.
    let _lock = kraken_core::agent::lock_work_dir(&a.work_dir)?;
    let transport = kraken_core::agent::Http::for_agent(&server, &a.work_dir)?;
    let address = a
        .address
        .clone()
        .unwrap_or_else(kraken_core::agent::hostname);
    let mut cfg = kraken_core::agent::AgentConfig::new(&address, &a.work_dir);
    if let Some(s) = &a.system {
        cfg.system = s.clone();
    }
    cfg.one_job = a.one_job;
    let agent = kraken_core::agent::Agent::new(Arc::new(transport), cfg);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    eprintln!("kraken agent '{address}' working for {server}");
    agent.run(stop).await;
    Ok(())
}
