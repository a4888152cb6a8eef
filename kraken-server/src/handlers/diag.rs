//! The original UI's Diagnostics page and *Test access* buttons.

use axum::Json;
use serde_json::Value;

use crate::extract::{Caller, P, R};

/// `GET /diagnostics`.
pub async fn get_diagnostics(Caller(k): Caller) -> R<Json<Value>> {
    Ok(Json(k.get_diagnostics().await?))
}

/// `GET /settings/{resource}/working-state`.
pub async fn get_settings_working_state(
    Caller(k): Caller,
    P(resource): P<String>,
) -> R<Json<Value>> {
    Ok(Json(k.get_settings_working_state(&resource).await?))
}
