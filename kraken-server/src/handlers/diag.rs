//! The original UI's Diagnostics page and *Test access* buttons.

use axum::Json;
use serde_json::Value;

use crate::extract::{Caller, P, R};
use crate::openapi::ReadErrors;
use crate::openapi::schemas as doc;

/// `GET /diagnostics`.
#[utoipa::path(
    get,
    path = "/diagnostics",
    tag = "misc",
    summary = "Diagnostics of the server's parts (superadmin)",
    responses((status = 200, description = "OK", body = doc::JsonMap), ReadErrors),
)]
pub async fn get_diagnostics(Caller(k): Caller) -> R<Json<Value>> {
    Ok(Json(k.get_diagnostics().await?))
}

/// `GET /settings/{resource}/working-state`.
#[utoipa::path(
    get,
    path = "/settings/{resource}/working-state",
    tag = "misc",
    summary = "Check a setting: SMTP reachability, the Slack token (superadmin)",
    params(("resource" = String, Path, description = "`email`, `slack`, ...")),
    responses((status = 200, description = "OK", body = doc::JsonMap), ReadErrors),
)]
pub async fn get_settings_working_state(
    Caller(k): Caller,
    P(resource): P<String>,
) -> R<Json<Value>> {
    Ok(Json(k.get_settings_working_state(&resource).await?))
}
