//! Version, settings, user data, live data.

use axum::Json;
use axum::extract::State;
use kraken_core::Error;
use kraken_core::model::{LiveData, ServerVersion, UserData};
use serde_json::Value;

use crate::extract::{AppError, AppState, Caller, J, MaybeCaller, Q, R};

pub async fn get_version(Caller(k): Caller) -> R<Json<ServerVersion>> {
    Ok(Json(k.get_server_version().await?))
}

pub async fn get_settings(
    State(st): State<AppState>,
    MaybeCaller(k): MaybeCaller,
) -> R<Json<Value>> {
    Ok(Json(match k {
        Some(k) => k.get_settings().await?,
        None => st.core.public_settings().await?,
    }))
}

pub async fn update_settings(Caller(k): Caller, J(body): J<Value>) -> R<Json<Value>> {
    Ok(Json(k.update_settings(&body).await?))
}

pub async fn get_user_data(Caller(k): Caller, q: Q) -> R<Json<UserData>> {
    let scope = q
        .str("scope")
        .ok_or_else(|| AppError(Error::bad_request("missing scope parameter")))?;
    let id = q
        .int("entity_id")?
        .ok_or_else(|| AppError(Error::bad_request("missing entity_id parameter")))?;
    Ok(Json(k.get_user_data(scope, id).await?))
}

pub async fn get_live_data(Caller(k): Caller) -> R<Json<LiveData>> {
    Ok(Json(k.get_live_data().await?))
}
