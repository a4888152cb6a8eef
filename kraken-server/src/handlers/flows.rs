//! Flows, runs and jobs (reading).

use axum::Json;
use kraken_core::model::{Flow, Job, List, Run, StageSchedule};

use crate::extract::{Caller, P, Q, R};

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

pub async fn get_flow(Caller(k): Caller, P(id): P<i64>) -> R<Json<Flow>> {
    Ok(Json(k.get_flow(id).await?))
}

pub async fn get_flow_runs(Caller(k): Caller, P(id): P<i64>) -> R<Json<Vec<Run>>> {
    Ok(Json(k.get_flow_runs(id).await?))
}

pub async fn get_stage_runs(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<Vec<Run>>> {
    Ok(Json(k.get_stage_runs(id, q.int("limit")?).await?))
}

pub async fn get_stage_schedule(Caller(k): Caller, P(id): P<i64>) -> R<Json<StageSchedule>> {
    Ok(Json(k.get_stage_schedule(id).await?))
}

pub async fn get_run(Caller(k): Caller, P(id): P<i64>) -> R<Json<Run>> {
    Ok(Json(k.get_run(id).await?))
}

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

pub async fn get_job(Caller(k): Caller, P(id): P<i64>) -> R<Json<Job>> {
    Ok(Json(k.get_job(id).await?))
}
