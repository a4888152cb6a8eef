//! The yardstick of the `reads` workload: a bare axum handler on the same
//! machine, in a process of its own like the server, answering
//! `GET /api/version` with a body of the same shape. The server's figure
//! against this one says what its routing, middleware and session check
//! cost over what axum and the kernel cost anyway.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

/// The hidden flag that makes this executable the bare server.
pub const FLAG: &str = "--serve-bare-axum";

/// Serve the bare handler on 127.0.0.1 (a free port, printed on the first
/// line of stdout) until killed.
pub fn serve() -> ExitCode {
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kraken-bench: bare axum server: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<()> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("{addr}");
    // As the server: no Nagle delay on small answers.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().route(
        "/api/version",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")}))
        }),
    );
    axum::serve(listener, app).await?;
    Ok(())
}

/// A bare server started from this executable; killed when dropped.
pub struct Bare {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Bare {
    /// Start it and wait for its address.
    pub fn spawn() -> Result<Bare> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut child = Command::new(exe)
            .arg(FLAG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the bare axum server")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let addr = line.trim();
        if addr.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the bare axum server did not say its address");
        }
        Ok(Bare {
            url: format!("http://{addr}"),
            child,
        })
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
