//! Flows, runs and jobs: creating, starting, canceling, rerunning; artifacts lists.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::api::exec::Artifact;
use kraken_core::model::{Empty, Flow, Job, List, NewFlow, NewJob, NewRun, Run};

use crate::extract::{Caller, J, P, Q, R};

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

pub async fn create_run(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<NewRun>,
) -> R<(StatusCode, Json<Run>)> {
    Ok((StatusCode::CREATED, Json(k.create_run(id, &body).await?)))
}

pub async fn run_run_jobs(Caller(k): Caller, P(id): P<i64>) -> R<Json<Run>> {
    Ok(Json(k.run_run_jobs(id).await?))
}

pub async fn force_run_analysis(Caller(k): Caller, P(id): P<i64>) -> R<Json<Run>> {
    Ok(Json(k.force_run_analysis(id).await?))
}

pub async fn cancel_run(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.cancel_run(id).await?))
}

pub async fn job_rerun(Caller(k): Caller, P(id): P<i64>) -> R<Json<Job>> {
    Ok(Json(k.job_rerun(id).await?))
}

pub async fn delete_job(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_job(id).await?))
}

pub async fn create_job(Caller(k): Caller, J(body): J<NewJob>) -> R<(StatusCode, Json<Empty>)> {
    Ok((StatusCode::CREATED, Json(k.create_job(&body).await?)))
}

pub async fn get_flow_artifacts(Caller(k): Caller, P(id): P<i64>) -> R<Json<List<Artifact>>> {
    Ok(Json(k.get_flow_artifacts(id).await?))
}

pub async fn get_run_artifacts(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Artifact>>> {
    Ok(Json(k.get_run_artifacts(id, &q.paging()?).await?))
}
