//! The agent protocol: `POST /backend` (the original's messages), log lines
//! and artifacts of this project's agents. Who calls is the agent key in
//! `Authorization: Bearer`, or without one the source IP (the original's
//! agents, when allowed); never the `address` the request names.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use kraken_core::Error;
use kraken_core::api::backend::{AgentAuth, AgentLogs};
use serde_json::{Value, json};

use crate::extract::{AppError, AppState, J, P, Q, R};

/// The caller: a key when the request has one, else its source IP.
fn agent_auth(headers: &HeaderMap, peer: SocketAddr) -> AgentAuth {
    let ip = peer.ip().to_canonical().to_string();
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_string());
    match key {
        Some(key) => AgentAuth::Key { key, ip: Some(ip) },
        None => AgentAuth::Address { ip },
    }
}

pub async fn backend(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    J(msg): J<Value>,
) -> R<Json<Value>> {
    Ok(Json(
        st.core.backend(&msg, &agent_auth(&headers, peer)).await?,
    ))
}

pub async fn agent_logs(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    J(body): J<AgentLogs>,
) -> R<Json<Value>> {
    Ok(Json(
        st.core
            .agent_logs(&agent_auth(&headers, peer), &body)
            .await?,
    ))
}

fn required<'a>(q: &'a Q, key: &str) -> R<&'a str> {
    q.str(key)
        .ok_or_else(|| AppError(Error::bad_request(format!("missing {key} parameter"))))
}

fn required_int(q: &Q, key: &str) -> R<i64> {
    q.int(key)?
        .ok_or_else(|| AppError(Error::bad_request(format!("missing {key} parameter"))))
}

/// A blob streamed as bytes of known length.
fn octet_stream(blob: kraken_core::storage::Blob) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, blob.size.to_string()),
        ],
        Body::from_stream(blob.body),
    )
        .into_response()
}

pub async fn upload_artifact(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(job_id): P<i64>,
    q: Q,
    body: Body,
) -> R<Json<Value>> {
    let path = required(&q, "path")?;
    let public = q.bool("public")?.unwrap_or(false);
    // Streamed into the blob storage, which bounds its size.
    let body = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    let size = st
        .core
        .agent_upload_artifact(&agent_auth(&headers, peer), job_id, path, public, body)
        .await?;
    Ok(Json(json!({"size": size})))
}

pub async fn list_artifacts(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(job_id): P<i64>,
    q: Q,
) -> R<Json<Value>> {
    Ok(Json(
        st.core
            .agent_list_artifacts(
                &agent_auth(&headers, peer),
                job_id,
                required(&q, "pattern")?,
            )
            .await?,
    ))
}

pub async fn read_artifact(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(job_id): P<i64>,
    q: Q,
) -> R<Response> {
    let run_id = required_int(&q, "run_id")?;
    let blob = st
        .core
        .agent_read_artifact(
            &agent_auth(&headers, peer),
            job_id,
            run_id,
            required(&q, "path")?,
        )
        .await?;
    Ok(octet_stream(blob))
}

/// `GET /backend/tools/{id}/package?job=J`: a custom tool's package for the
/// agent running job `J`.
pub async fn read_tool(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(tool_id): P<i64>,
    q: Q,
) -> R<Vec<u8>> {
    let job_id = required_int(&q, "job")?;
    Ok(st
        .core
        .agent_read_tool(&agent_auth(&headers, peer), job_id, tool_id)
        .await?)
}

/// `PUT /backend/cache/{job}?key=K&name=N`: a file of the job's cache
/// entry under `key`, streamed into the blob storage.
pub async fn cache_put(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(job_id): P<i64>,
    q: Q,
    body: Body,
) -> R<Json<Value>> {
    let body = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    let size = st
        .core
        .agent_cache_put(
            &agent_auth(&headers, peer),
            job_id,
            required(&q, "key")?,
            required(&q, "name")?,
            body,
        )
        .await?;
    Ok(Json(json!({"size": size})))
}

/// `GET /backend/cache/{job}?key=K`: the entry a restore of `key` takes.
pub async fn cache_entry(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(job_id): P<i64>,
    q: Q,
) -> R<Json<Value>> {
    Ok(Json(
        st.core
            .agent_cache_entry(&agent_auth(&headers, peer), job_id, required(&q, "key")?)
            .await?,
    ))
}

/// `GET /backend/cache/{job}/file?key=K&entry=E&name=N`: a file of a cache
/// entry, streamed.
pub async fn cache_read(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    P(job_id): P<i64>,
    q: Q,
) -> R<Response> {
    let entry = required_int(&q, "entry")?;
    let blob = st
        .core
        .agent_cache_read(
            &agent_auth(&headers, peer),
            job_id,
            required(&q, "key")?,
            entry,
            required(&q, "name")?,
        )
        .await?;
    Ok(octet_stream(blob))
}
