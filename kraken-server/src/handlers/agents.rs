//! Agents, agents groups, systems.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::model::{
    Agent, AgentAuthorization, AgentChanges, Empty, Group, GroupInput, Job, List, System,
};

use crate::extract::{Caller, J, JList, P, Q, R};

pub async fn get_agents(Caller(k): Caller, q: Q) -> R<Json<List<Agent>>> {
    Ok(Json(
        k.get_agents(q.bool("unauthorized")?.unwrap_or(false), &q.paging()?)
            .await?,
    ))
}

pub async fn update_agents(
    Caller(k): Caller,
    JList(body): JList<AgentAuthorization>,
) -> R<Json<Empty>> {
    Ok(Json(k.update_agents(&body).await?))
}

pub async fn get_agent(Caller(k): Caller, P(id): P<i64>) -> R<Json<Agent>> {
    Ok(Json(k.get_agent(id).await?))
}

pub async fn update_agent(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<AgentChanges>,
) -> R<Json<Agent>> {
    Ok(Json(k.update_agent(id, &body).await?))
}

pub async fn delete_agent(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_agent(id).await?))
}

pub async fn get_agent_jobs(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Job>>> {
    Ok(Json(k.get_agent_jobs(id, &q.paging()?).await?))
}

pub async fn get_groups(Caller(k): Caller, q: Q) -> R<Json<List<Group>>> {
    Ok(Json(k.get_groups(&q.paging()?).await?))
}

pub async fn create_group(
    Caller(k): Caller,
    J(body): J<GroupInput>,
) -> R<(StatusCode, Json<Group>)> {
    Ok((StatusCode::CREATED, Json(k.create_group(&body).await?)))
}

pub async fn get_group(Caller(k): Caller, P(id): P<i64>) -> R<Json<Group>> {
    Ok(Json(k.get_group(id).await?))
}

pub async fn update_group(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<GroupInput>,
) -> R<Json<Group>> {
    Ok(Json(k.update_group(id, &body).await?))
}

pub async fn delete_group(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_group(id).await?))
}

pub async fn get_systems(Caller(k): Caller) -> R<Json<List<System>>> {
    Ok(Json(k.get_systems().await?))
}
