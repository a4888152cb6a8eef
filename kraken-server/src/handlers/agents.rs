//! Agents, agents groups, systems.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::model::{
    Agent, AgentAuthorization, AgentChanges, Empty, Group, GroupInput, Job, List, System,
};

use crate::extract::{Caller, J, JList, P, Q, R};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    get,
    path = "/agents",
    tag = "agents",
    summary = "List agents (authorized, or waiting for authorization)",
    params(("unauthorized" = Option<bool>, Query, description = "List the agents waiting for authorization"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Agent>), ReadErrors),
)]
pub async fn get_agents(Caller(k): Caller, q: Q) -> R<Json<List<Agent>>> {
    Ok(Json(
        k.get_agents(q.bool("unauthorized")?.unwrap_or(false), &q.paging()?)
            .await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/agents",
    tag = "agents",
    summary = "Authorize or deauthorize many agents (superadmin)",
    request_body = Vec<doc::AgentAuthorization>,
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn update_agents(
    Caller(k): Caller,
    JList(body): JList<AgentAuthorization>,
) -> R<Json<Empty>> {
    Ok(Json(k.update_agents(&body).await?))
}

#[utoipa::path(
    get,
    path = "/agents/{id}",
    tag = "agents",
    summary = "An agent",
    params(("id" = i64, Path, description = "Agent id")),
    responses((status = 200, description = "OK", body = doc::Agent), ReadErrors),
)]
pub async fn get_agent(Caller(k): Caller, P(id): P<i64>) -> R<Json<Agent>> {
    Ok(Json(k.get_agent(id).await?))
}

#[utoipa::path(
    put,
    path = "/agents/{id}",
    tag = "agents",
    summary = "Change an agent: groups, disabled, authorized, comment (superadmin)",
    params(("id" = i64, Path, description = "Agent id")),
    request_body = doc::AgentChanges,
    responses((status = 200, description = "OK", body = doc::Agent), WriteErrors),
)]
pub async fn update_agent(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<AgentChanges>,
) -> R<Json<Agent>> {
    Ok(Json(k.update_agent(id, &body).await?))
}

#[utoipa::path(
    delete,
    path = "/agents/{id}",
    tag = "agents",
    summary = "Delete an agent (superadmin)",
    params(("id" = i64, Path, description = "Agent id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_agent(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_agent(id).await?))
}

#[utoipa::path(
    get,
    path = "/agents/{id}/jobs",
    tag = "agents",
    summary = "Jobs an agent ran",
    params(("id" = i64, Path, description = "Agent id"), crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Job>), ReadErrors),
)]
pub async fn get_agent_jobs(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<List<Job>>> {
    Ok(Json(k.get_agent_jobs(id, &q.paging()?).await?))
}

#[utoipa::path(
    get,
    path = "/groups",
    tag = "agents",
    summary = "List agents groups",
    params(crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::Group>), ReadErrors),
)]
pub async fn get_groups(Caller(k): Caller, q: Q) -> R<Json<List<Group>>> {
    Ok(Json(k.get_groups(&q.paging()?).await?))
}

#[utoipa::path(
    post,
    path = "/groups",
    tag = "agents",
    summary = "Create an agents group (superadmin)",
    request_body = doc::GroupInput,
    responses((status = 201, description = "Created", body = doc::Group), WriteErrors),
)]
pub async fn create_group(
    Caller(k): Caller,
    J(body): J<GroupInput>,
) -> R<(StatusCode, Json<Group>)> {
    Ok((StatusCode::CREATED, Json(k.create_group(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/groups/{id}",
    tag = "agents",
    summary = "An agents group",
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, description = "OK", body = doc::Group), ReadErrors),
)]
pub async fn get_group(Caller(k): Caller, P(id): P<i64>) -> R<Json<Group>> {
    Ok(Json(k.get_group(id).await?))
}

#[utoipa::path(
    put,
    path = "/groups/{id}",
    tag = "agents",
    summary = "Change an agents group (superadmin)",
    params(("id" = i64, Path, description = "Group id")),
    request_body = doc::GroupInput,
    responses((status = 200, description = "OK", body = doc::Group), WriteErrors),
)]
pub async fn update_group(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<GroupInput>,
) -> R<Json<Group>> {
    Ok(Json(k.update_group(id, &body).await?))
}

#[utoipa::path(
    delete,
    path = "/groups/{id}",
    tag = "agents",
    summary = "Delete an agents group (superadmin)",
    params(("id" = i64, Path, description = "Group id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_group(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_group(id).await?))
}

#[utoipa::path(
    get,
    path = "/systems",
    tag = "agents",
    summary = "List systems jobs ran on",
    responses((status = 200, description = "OK", body = doc::List<doc::System>), ReadErrors),
)]
pub async fn get_systems(Caller(k): Caller) -> R<Json<List<System>>> {
    Ok(Json(k.get_systems().await?))
}
