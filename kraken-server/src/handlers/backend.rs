//! The agent protocol: `POST /backend` (the original's messages), log lines
//! and artifacts of this project's agents.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use kraken_core::Error;
use kraken_core::api::backend::AgentLogs;
use serde_json::{Value, json};

use crate::extract::{AppError, AppState, J, P, Q, R};

pub async fn backend(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    J(msg): J<Value>,
) -> R<Json<Value>> {
    Ok(Json(
        st.core.backend(&msg, Some(&peer.ip().to_string())).await?,
    ))
}

pub async fn agent_logs(State(st): State<AppState>, J(body): J<AgentLogs>) -> R<Json<Value>> {
    Ok(Json(st.core.agent_logs(&body).await?))
}

fn required<'a>(q: &'a Q, key: &str) -> R<&'a str> {
    q.str(key)
        .ok_or_else(|| AppError(Error::bad_request(format!("missing {key} parameter"))))
}

pub async fn upload_artifact(
    State(st): State<AppState>,
    P(job_id): P<i64>,
    q: Q,
    body: Bytes,
) -> R<Json<Value>> {
    let address = required(&q, "address")?;
    let path = required(&q, "path")?;
    let public = q.bool("public")?.unwrap_or(false);
    let size = st
        .core
        .agent_upload_artifact(address, job_id, path, public, &body)
        .await?;
    Ok(Json(json!({"size": size})))
}

pub async fn list_artifacts(State(st): State<AppState>, P(job_id): P<i64>, q: Q) -> R<Json<Value>> {
    Ok(Json(
        st.core
            .agent_list_artifacts(required(&q, "address")?, job_id, required(&q, "pattern")?)
            .await?,
    ))
}

pub async fn read_artifact(State(st): State<AppState>, P(job_id): P<i64>, q: Q) -> R<Vec<u8>> {
    let run_id = q
        .int("run_id")?
        .ok_or_else(|| AppError(Error::bad_request("missing run_id parameter")))?;
    Ok(st
        .core
        .agent_read_artifact(
            required(&q, "address")?,
            job_id,
            run_id,
            required(&q, "path")?,
        )
        .await?)
}
