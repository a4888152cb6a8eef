//! Stages.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::model::{Empty, Stage, StageInput, StageSchemaCode, StageSchemaPreview};

use crate::extract::{Caller, J, P, R};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    post,
    path = "/branches/{id}/stages",
    tag = "stages",
    summary = "Create a stage (pwrusr)",
    params(("id" = i64, Path, description = "Branch id")),
    request_body = doc::StageInput,
    responses((status = 201, description = "Created", body = doc::Stage), WriteErrors),
)]
pub async fn create_stage(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<StageInput>,
) -> R<(StatusCode, Json<Stage>)> {
    Ok((StatusCode::CREATED, Json(k.create_stage(id, &body).await?)))
}

#[utoipa::path(
    get,
    path = "/stages/{id}",
    tag = "stages",
    summary = "A stage with its schema",
    params(("id" = i64, Path, description = "Stage id")),
    responses((status = 200, description = "OK", body = doc::Stage), ReadErrors),
)]
pub async fn get_stage(Caller(k): Caller, P(id): P<i64>) -> R<Json<Stage>> {
    Ok(Json(k.get_stage(id).await?))
}

#[utoipa::path(
    put,
    path = "/stages/{id}",
    tag = "stages",
    summary = "Change a stage (pwrusr)",
    params(("id" = i64, Path, description = "Stage id")),
    request_body = doc::StageInput,
    responses((status = 200, description = "OK", body = doc::Stage), WriteErrors),
)]
pub async fn update_stage(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<StageInput>,
) -> R<Json<Stage>> {
    Ok(Json(k.update_stage(id, &body).await?))
}

#[utoipa::path(
    delete,
    path = "/stages/{id}",
    tag = "stages",
    summary = "Delete a stage (pwrusr)",
    params(("id" = i64, Path, description = "Stage id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_stage(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_stage(id).await?))
}

#[utoipa::path(
    put,
    path = "/stages/{id}/schema",
    tag = "stages",
    summary = "Evaluate schema code for a stage without saving it (preview)",
    params(("id" = i64, Path, description = "Stage id")),
    request_body = doc::StageSchemaCode,
    responses((status = 200, description = "OK", body = doc::StageSchemaPreview), WriteErrors),
)]
pub async fn get_stage_schema_as_json(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<StageSchemaCode>,
) -> R<Json<StageSchemaPreview>> {
    Ok(Json(k.get_stage_schema_as_json(id, &body).await?))
}
