//! Flows, runs and jobs (reading).

use axum::Json;
use kraken_core::model::{Flow, Job, List, Run, RunNotification, StageSchedule};

use crate::extract::{Caller, P, Q, R};
use crate::openapi::ReadErrors;
use crate::openapi::schemas as doc;

#[utoipa::path(
    get,
    path = "/branches/{id}/flows/{kind}",
    tag = "flows",
    summary = "Flows of a branch, newest first",
    params(("id" = i64, Path, description = "Branch id"), ("kind" = String, Path, description = "`ci` or `dev` (anything else is ci)"), ("start" = Option<i64>, Query, description = "First flow, from 0"), ("limit" = Option<i64>, Query, description = "Page size"), ("middle" = Option<i64>, Query, description = "A flow id to center the page on")),
    responses((status = 200, description = "OK", body = doc::List<doc::Flow>), ReadErrors),
)]
pub async fn get_flows(
    Caller(k): Caller,
    P((id, kind)): P<(i64, String)>,
    q: Q,
) -> R<Json<List<Flow>>> {
    Ok(Json(
        k.get_flows(
            id,
            &kind,
            q.int("start")?,
            q.int("limit")?,
            q.int("middle")?,
        )
        .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/flows/{id}",
    tag = "flows",
    summary = "A flow with its runs",
    params(("id" = i64, Path, description = "Flow id")),
    responses((status = 200, description = "OK", body = doc::Flow), ReadErrors),
)]
pub async fn get_flow(Caller(k): Caller, P(id): P<i64>) -> R<Json<Flow>> {
    Ok(Json(k.get_flow(id).await?))
}

#[utoipa::path(
    get,
    path = "/flows/{id}/runs",
    tag = "flows",
    summary = "Runs of a flow",
    params(("id" = i64, Path, description = "Flow id")),
    responses((status = 200, description = "OK", body = Vec<doc::Run>), ReadErrors),
)]
pub async fn get_flow_runs(Caller(k): Caller, P(id): P<i64>) -> R<Json<Vec<Run>>> {
    Ok(Json(k.get_flow_runs(id).await?))
}

#[utoipa::path(
    get,
    path = "/stages/{id}/runs",
    tag = "stages",
    summary = "Latest runs of a stage",
    params(("id" = i64, Path, description = "Stage id"), ("limit" = Option<i64>, Query, description = "How many")),
    responses((status = 200, description = "OK", body = Vec<doc::Run>), ReadErrors),
)]
pub async fn get_stage_runs(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<Vec<Run>>> {
    Ok(Json(k.get_stage_runs(id, q.int("limit")?).await?))
}

#[utoipa::path(
    get,
    path = "/stages/{id}/schedule",
    tag = "stages",
    summary = "Timed triggers of a stage",
    params(("id" = i64, Path, description = "Stage id")),
    responses((status = 200, description = "OK", body = doc::StageSchedule), ReadErrors),
)]
pub async fn get_stage_schedule(Caller(k): Caller, P(id): P<i64>) -> R<Json<StageSchedule>> {
    Ok(Json(k.get_stage_schedule(id).await?))
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    tag = "flows",
    summary = "A run",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "OK", body = doc::Run), ReadErrors),
)]
pub async fn get_run(Caller(k): Caller, P(id): P<i64>) -> R<Json<Run>> {
    Ok(Json(k.get_run(id).await?))
}

#[utoipa::path(
    get,
    path = "/runs/{id}/notifications",
    tag = "flows",
    summary = "Notifications of a run and how their delivery went",
    description = "Commit statuses, Slack, e-mail, Discord, Radicle and webhook notifications queued for the run's start and end (from its stage's `notification` section): where each goes (secrets masked), its state (`pending`, `delivered`, `failed`), the attempts made and the last error. Not in the original.",
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "OK", body = Vec<doc::RunNotification>), ReadErrors),
)]
pub async fn get_run_notifications(
    Caller(k): Caller,
    P(id): P<i64>,
) -> R<Json<Vec<RunNotification>>> {
    Ok(Json(k.get_run_notifications(id).await?))
}

#[utoipa::path(
    get,
    path = "/runs/{id}/jobs",
    tag = "flows",
    summary = "Jobs of a run",
    params(("id" = i64, Path, description = "Run id"), ("include_covered" = Option<bool>, Query, description = "Also the jobs superseded by a rerun"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Job>), ReadErrors),
)]
pub async fn get_run_jobs(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Job>>> {
    Ok(Json(
        k.get_run_jobs(
            id,
            &q.paging()?,
            q.bool("include_covered")?.unwrap_or(false),
        )
        .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "flows",
    summary = "A job with its steps",
    params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, description = "OK", body = doc::Job), ReadErrors),
)]
pub async fn get_job(Caller(k): Caller, P(id): P<i64>) -> R<Json<Job>> {
    Ok(Json(k.get_job(id).await?))
}
