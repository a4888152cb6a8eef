//! `kraken login` and `kraken logout`.

use std::io::IsTerminal;

use kraken_core::Kraken;
use kraken_core::credentials::Credentials;
use serde_json::json;

use crate::args::Cli;
use crate::out::{Out, usage};

/// Logs in and stores the session.
pub async fn login(
    cli: &Cli,
    out: &Out,
    user: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let stored = Credentials::load().ok().flatten();
    let server = cli
        .server
        .clone()
        .or_else(|| stored.map(|c| c.server))
        .ok_or_else(|| usage("which server? run `kraken login --server URL`"))?;
    let server =
        kraken_core::api::client::server_base(&server).map_err(|e| usage(e.to_string()))?;
    let password = match password {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => dialoguer::Password::new()
            .with_prompt(format!("Password of {user} at {server}"))
            .interact()
            .map_err(|e| usage(format!("cannot read the password: {e}")))?,
        None => {
            return Err(usage(
                "no password: pass --password (or KRAKEN_PASSWORD) when not on a terminal",
            ));
        }
    };
    let (_, session) = Kraken::login(&server, user, &password).await?;
    let path = Credentials {
        server: server.clone(),
        token: session.token,
        user: user.to_string(),
    }
    .save()?;
    out.show(
        &json!({"server": server, "user": user, "credentials": path}),
        || {
            eprintln!(
                "logged in to {server} as {user} (session stored in {})",
                path.display()
            );
            Ok(())
        },
    )?;
    Ok(())
}

/// Ends the session (when it is a server's) and forgets it.
pub async fn logout(cli: &Cli, k: &Kraken) -> anyhow::Result<()> {
    if let Some(t) = cli
        .token
        .clone()
        .or_else(|| Credentials::load().ok().flatten().map(|c| c.token))
        && !k.is_local()
    {
        // An already dead session is fine: the goal is to be logged out.
        let _ = k.logout(&t).await;
    }
    Credentials::remove()?;
    eprintln!("logged out");
    Ok(())
}
