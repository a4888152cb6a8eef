//! Version, settings, user data, live data.

use axum::Json;
use axum::extract::State;
use kraken_core::Error;
use kraken_core::model::{LiveData, ServerVersion, UserData};
use serde_json::Value;

use crate::extract::{AppError, AppState, Caller, J, MaybeCaller, Q, R};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    get,
    path = "/version",
    tag = "misc",
    summary = "The server version",
    responses((status = 200, description = "OK", body = doc::ServerVersion), ReadErrors),
)]
pub async fn get_version(Caller(k): Caller) -> R<Json<ServerVersion>> {
    Ok(Json(k.get_server_version().await?))
}

#[utoipa::path(
    get,
    path = "/settings",
    tag = "misc",
    summary = "Settings: all of them for a superadmin, the public ones without a token",
    security((), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "OK", body = doc::JsonMap), ReadErrors),
)]
pub async fn get_settings(
    State(st): State<AppState>,
    MaybeCaller(k): MaybeCaller,
) -> R<Json<Value>> {
    Ok(Json(match k {
        Some(k) => k.get_settings().await?,
        None => st.core.public_settings().await?,
    }))
}

#[utoipa::path(
    put,
    path = "/settings",
    tag = "misc",
    summary = "Change settings (superadmin)",
    request_body = doc::JsonMap,
    responses((status = 200, description = "OK", body = doc::JsonMap), WriteErrors),
)]
pub async fn update_settings(Caller(k): Caller, J(body): J<Value>) -> R<Json<Value>> {
    Ok(Json(k.update_settings(&body).await?))
}

#[utoipa::path(
    get,
    path = "/user_data",
    tag = "misc",
    summary = "User data stored by the `data` tool",
    params(("scope" = String, Query, description = "Whose data: `project`, `branch`, `branch-ci`, `branch-dev` or `flow`", pattern = "^(project|branch|branch-ci|branch-dev|flow)$"), ("entity_id" = i64, Query, description = "Id of the project, branch, ...")),
    responses((status = 200, description = "OK", body = doc::UserData), ReadErrors),
)]
pub async fn get_user_data(Caller(k): Caller, q: Q) -> R<Json<UserData>> {
    let scope = q
        .str("scope")
        .ok_or_else(|| AppError(Error::bad_request("missing scope parameter")))?;
    let id = q
        .int("entity_id")?
        .ok_or_else(|| AppError(Error::bad_request("missing entity_id parameter")))?;
    Ok(Json(k.get_user_data(scope, id).await?))
}

#[utoipa::path(
    get,
    path = "/live-data",
    tag = "misc",
    summary = "Counters for the web UI header",
    responses((status = 200, description = "OK", body = doc::LiveData), ReadErrors),
)]
pub async fn get_live_data(Caller(k): Caller) -> R<Json<LiveData>> {
    Ok(Json(k.get_live_data().await?))
}
