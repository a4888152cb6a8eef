//! Installing an agent from the server, as the original web UI's *Add agent*
//! offers: `GET /install/kraken-agent-install.sh` answers a shell script that
//! downloads **this project's** agent (`kraken`, the CLI, whose `kraken
//! agent` runs jobs) from `GET /install/agent` and starts it against this
//! server — as a systemd service when run as root on a systemd machine,
//! otherwise it prints the command to run.
//!
//! The binary served is the `kraken` next to `kraken-server` (both come from
//! one build; a test binary's is one directory up).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kraken_core::Error;

use crate::extract::{AppError, R};

/// The `kraken` binary to hand out, if there is one.
fn agent_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("kraken"), dir.parent()?.join("kraken")]
        .into_iter()
        .find(|p| p.is_file())
}

/// This server's address as a client reached it.
fn server_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:8080");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// The install script, for `server`.
pub fn install_script(server: &str) -> String {
    format!(
        r#"#!/bin/sh
# Installs the Kraken agent (`kraken agent`) from {server} and starts it.
#   curl -fsSL {server}/install/kraken-agent-install.sh | sudo sh
# KRAKEN_BIN_DIR (default /usr/local/bin) and KRAKEN_AGENT_DIR (default
# /var/lib/kraken-agent) choose where it goes; KRAKEN_NO_SERVICE=1 only
# installs it. An administrator then authorizes the agent once:
#   kraken agents list --unauthorized; kraken agents authorize ID
set -eu
SERVER="{server}"
BIN_DIR="${{KRAKEN_BIN_DIR:-/usr/local/bin}}"
WORK_DIR="${{KRAKEN_AGENT_DIR:-/var/lib/kraken-agent}}"
mkdir -p "$BIN_DIR" "$WORK_DIR"
if command -v curl >/dev/null 2>&1; then
    curl -fsSL "$SERVER/install/agent" -o "$BIN_DIR/kraken.new"
elif command -v wget >/dev/null 2>&1; then
    wget -qO "$BIN_DIR/kraken.new" "$SERVER/install/agent"
else
    echo "kraken-agent-install: needs curl or wget" >&2
    exit 1
fi
chmod 755 "$BIN_DIR/kraken.new"
mv "$BIN_DIR/kraken.new" "$BIN_DIR/kraken"
"$BIN_DIR/kraken" --version
echo "installed $BIN_DIR/kraken"
CMD="$BIN_DIR/kraken agent --server $SERVER --work-dir $WORK_DIR"
if [ "${{KRAKEN_NO_SERVICE:-0}}" != 1 ] && [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/kraken-agent.service <<UNIT
[Unit]
Description=Kraken agent for $SERVER
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$CMD
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now kraken-agent
    echo "kraken-agent.service started; authorize it on the server (kraken agents authorize ID)"
else
    echo "start it with: $CMD"
    echo "then authorize it on the server (kraken agents list --unauthorized; kraken agents authorize ID)"
fi
"#
    )
}

/// `GET /install/kraken-agent-install.sh`.
pub async fn install_sh(headers: HeaderMap) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        install_script(&server_url(&headers)),
    )
        .into_response()
}

/// `GET /install/agent`: the `kraken` binary.
pub async fn agent(_headers: HeaderMap) -> R<Response> {
    let path = agent_binary().ok_or_else(|| {
        AppError(Error::not_found(
            "no kraken binary next to kraken-server to hand out: install the agent with `cargo install` or copy `kraken` next to the server",
        ))
    })?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        AppError(Error::internal(format!(
            "cannot read the agent binary {}: {e}",
            path.display()
        )))
    })?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=kraken".to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}
