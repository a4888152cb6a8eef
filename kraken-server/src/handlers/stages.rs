//! Stages.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::model::{Empty, Stage, StageInput, StageSchemaCode, StageSchemaPreview};

use crate::extract::{Caller, J, P, R};

pub async fn create_stage(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<StageInput>,
) -> R<(StatusCode, Json<Stage>)> {
    Ok((StatusCode::CREATED, Json(k.create_stage(id, &body).await?)))
}

pub async fn get_stage(Caller(k): Caller, P(id): P<i64>) -> R<Json<Stage>> {
    Ok(Json(k.get_stage(id).await?))
}

pub async fn update_stage(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<StageInput>,
) -> R<Json<Stage>> {
    Ok(Json(k.update_stage(id, &body).await?))
}

pub async fn delete_stage(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_stage(id).await?))
}

pub async fn get_stage_schema_as_json(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<StageSchemaCode>,
) -> R<Json<StageSchemaPreview>> {
    Ok(Json(k.get_stage_schema_as_json(id, &body).await?))
}
