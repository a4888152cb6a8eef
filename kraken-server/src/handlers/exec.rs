//! Flows, runs and jobs: creating, starting, canceling, rerunning; artifacts lists.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::api::exec::Artifact;
use kraken_core::model::{Empty, Flow, Job, List, NewFlow, NewJob, NewRun, Run};

use crate::extract::{Caller, J, P, Q, R};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    post,
    path = "/branches/{id}/flows/{kind}",
    tag = "flows",
    summary = "Start a flow of a branch (pwrusr)",
    params(("id" = i64, Path, description = "Branch id"), ("kind" = String, Path, description = "`ci` or `dev` (anything else is ci)")),
    request_body = doc::NewFlow,
    responses((status = 201, description = "Created", body = doc::Flow), WriteErrors),
)]
pub async fn create_flow(
    Caller(k): Caller,
    P((id, kind)): P<(i64, String)>,
    J(body): J<NewFlow>,
) -> R<(StatusCode, Json<Flow>)> {
    Ok((
        StatusCode::CREATED,
        Json(k.create_flow(id, &kind, &body).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/flows/{id}/runs",
    tag = "flows",
    summary = "Start a run of a stage in a flow (pwrusr)",
    params(("id" = i64, Path, description = "Flow id")),
    request_body = doc::NewRun,
    responses((status = 201, description = "Created", body = doc::Run), WriteErrors),
)]
pub async fn create_run(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<NewRun>,
) -> R<(StatusCode, Json<Run>)> {
    Ok((StatusCode::CREATED, Json(k.create_run(id, &body).await?)))
}

#[utoipa::path(
    put,
    path = "/runs/{id}",
    tag = "flows",
    summary = "Start a manual run, or replay a run (pwrusr)",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "OK", body = doc::Run), WriteErrors),
)]
pub async fn run_run_jobs(Caller(k): Caller, P(id): P<i64>) -> R<Json<Run>> {
    Ok(Json(k.run_run_jobs(id).await?))
}

#[utoipa::path(
    post,
    path = "/runs/{id}",
    tag = "flows",
    summary = "Analyse a run's results again (pwrusr)",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "OK", body = doc::Run), WriteErrors),
)]
pub async fn force_run_analysis(Caller(k): Caller, P(id): P<i64>) -> R<Json<Run>> {
    Ok(Json(k.force_run_analysis(id).await?))
}

#[utoipa::path(
    delete,
    path = "/runs/{id}",
    tag = "flows",
    summary = "Cancel a run (pwrusr)",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn cancel_run(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.cancel_run(id).await?))
}

#[utoipa::path(
    put,
    path = "/jobs/{id}",
    tag = "flows",
    summary = "Rerun a job (pwrusr)",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "OK", body = doc::Job), WriteErrors),
)]
pub async fn job_rerun(Caller(k): Caller, P(id): P<i64>) -> R<Json<Job>> {
    Ok(Json(k.job_rerun(id).await?))
}

#[utoipa::path(
    delete,
    path = "/jobs/{id}",
    tag = "flows",
    summary = "Cancel a job (pwrusr)",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_job(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_job(id).await?))
}

#[utoipa::path(
    post,
    path = "/jobs",
    tag = "flows",
    summary = "Add the jobs of a run again (pwrusr)",
    request_body = doc::NewJob,
    responses((status = 201, description = "Created", body = doc::Empty), WriteErrors),
)]
pub async fn create_job(Caller(k): Caller, J(body): J<NewJob>) -> R<(StatusCode, Json<Empty>)> {
    Ok((StatusCode::CREATED, Json(k.create_job(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/flows/{id}/artifacts",
    tag = "flows",
    summary = "Artifacts of a flow",
    params(("id" = i64, Path, description = "Flow id")),
    responses((status = 200, description = "OK", body = doc::List<doc::Artifact>), ReadErrors),
)]
pub async fn get_flow_artifacts(Caller(k): Caller, P(id): P<i64>) -> R<Json<List<Artifact>>> {
    Ok(Json(k.get_flow_artifacts(id).await?))
}

#[utoipa::path(
    get,
    path = "/runs/{id}/artifacts",
    tag = "flows",
    summary = "Artifacts of a run",
    params(("id" = i64, Path, description = "Run id"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Artifact>), ReadErrors),
)]
pub async fn get_run_artifacts(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Artifact>>> {
    Ok(Json(k.get_run_artifacts(id, &q.paging()?).await?))
}
