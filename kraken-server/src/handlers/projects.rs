//! Projects, secrets, branches, sequences, environment variables.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::model::{
    Branch, BranchChanges, BranchSequence, BranchStats, Empty, EnvVar, List, MoveBranch, NewBranch,
    NewProject, Project, ProjectChanges, RetentionPolicy, Secret, SecretInput, SequenceValue,
};

use crate::extract::{Caller, J, P, Q, R};
use crate::openapi::schemas as doc;
use crate::openapi::{ReadErrors, WriteErrors};

#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    summary = "List projects with their branches",
    responses((status = 200, description = "OK", body = doc::List<doc::Project>), ReadErrors),
)]
pub async fn get_projects(Caller(k): Caller) -> R<Json<List<Project>>> {
    Ok(Json(k.get_projects().await?))
}

#[utoipa::path(
    post,
    path = "/projects",
    tag = "projects",
    summary = "Create a project (superadmin)",
    request_body = doc::NewProject,
    responses((status = 201, description = "Created", body = doc::Project), WriteErrors),
)]
pub async fn create_project(
    Caller(k): Caller,
    J(body): J<NewProject>,
) -> R<(StatusCode, Json<Project>)> {
    Ok((StatusCode::CREATED, Json(k.create_project(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/projects/{id}",
    tag = "projects",
    summary = "A project",
    params(("id" = i64, Path, description = "Project id"), ("with_results" = Option<bool>, Query, description = "Also the latest flows of each branch")),
    responses((status = 200, description = "OK", body = doc::Project), ReadErrors),
)]
pub async fn get_project(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<Project>> {
    Ok(Json(
        k.get_project(id, q.bool("with_results")?.unwrap_or(false))
            .await?,
    ))
}

#[utoipa::path(
    put,
    path = "/projects/{id}",
    tag = "projects",
    summary = "Change a project (admin)",
    params(("id" = i64, Path, description = "Project id")),
    request_body = doc::ProjectChanges,
    responses((status = 200, description = "OK", body = doc::Project), WriteErrors),
)]
pub async fn update_project(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<ProjectChanges>,
) -> R<Json<Project>> {
    Ok(Json(k.update_project(id, &body).await?))
}

#[utoipa::path(
    delete,
    path = "/projects/{id}",
    tag = "projects",
    summary = "Delete a project (superadmin)",
    params(("id" = i64, Path, description = "Project id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_project(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_project(id).await?))
}

#[utoipa::path(
    post,
    path = "/projects/{id}/secrets",
    tag = "projects",
    summary = "Add a secret to a project (admin)",
    params(("id" = i64, Path, description = "Project id")),
    request_body = doc::SecretInput,
    responses((status = 201, description = "Created", body = doc::Secret), WriteErrors),
)]
pub async fn create_secret(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<SecretInput>,
) -> R<(StatusCode, Json<Secret>)> {
    Ok((StatusCode::CREATED, Json(k.create_secret(id, &body).await?)))
}

#[utoipa::path(
    put,
    path = "/secrets/{id}",
    tag = "projects",
    summary = "Change a secret (admin)",
    params(("id" = i64, Path, description = "Secret id")),
    request_body = doc::SecretInput,
    responses((status = 200, description = "OK", body = doc::Secret), WriteErrors),
)]
pub async fn update_secret(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<SecretInput>,
) -> R<Json<Secret>> {
    Ok(Json(k.update_secret(id, &body).await?))
}

#[utoipa::path(
    delete,
    path = "/secrets/{id}",
    tag = "projects",
    summary = "Delete a secret (admin)",
    params(("id" = i64, Path, description = "Secret id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_secret(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_secret(id).await?))
}

#[utoipa::path(
    post,
    path = "/projects/{id}/branches",
    tag = "branches",
    summary = "Create a branch, or fork one (pwrusr)",
    params(("id" = i64, Path, description = "Project id")),
    request_body = doc::NewBranch,
    responses((status = 201, description = "Created", body = doc::Branch), WriteErrors),
)]
pub async fn create_branch(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<NewBranch>,
) -> R<(StatusCode, Json<Branch>)> {
    Ok((StatusCode::CREATED, Json(k.create_branch(id, &body).await?)))
}

#[utoipa::path(
    put,
    path = "/branches/{id}",
    tag = "branches",
    summary = "Rename a branch (pwrusr)",
    params(("id" = i64, Path, description = "Branch id")),
    request_body = doc::BranchChanges,
    responses((status = 200, description = "OK", body = doc::Branch), WriteErrors),
)]
pub async fn update_branch(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<BranchChanges>,
) -> R<Json<Branch>> {
    Ok(Json(k.update_branch(id, &body).await?))
}

#[utoipa::path(
    delete,
    path = "/branches/{id}",
    tag = "branches",
    summary = "Delete a branch (admin)",
    params(("id" = i64, Path, description = "Branch id")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_branch(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_branch(id).await?))
}

#[utoipa::path(
    get,
    path = "/branches/{id}/cfg",
    tag = "branches",
    summary = "A branch with its stages and their schemas",
    params(("id" = i64, Path, description = "Branch id")),
    responses((status = 200, description = "OK", body = doc::Branch), ReadErrors),
)]
pub async fn get_branch(Caller(k): Caller, P(id): P<i64>) -> R<Json<Branch>> {
    Ok(Json(k.get_branch(id).await?))
}

#[utoipa::path(
    get,
    path = "/branches/{id}/sequences",
    tag = "branches",
    summary = "Sequences of a branch and its stages",
    params(("id" = i64, Path, description = "Branch id")),
    responses((status = 200, description = "OK", body = doc::List<doc::BranchSequence>), ReadErrors),
)]
pub async fn get_branch_sequences(
    Caller(k): Caller,
    P(id): P<i64>,
) -> R<Json<List<BranchSequence>>> {
    Ok(Json(k.get_branch_sequences(id).await?))
}

#[utoipa::path(
    put,
    path = "/sequences/{id}",
    tag = "branches",
    summary = "Set a sequence (admin)",
    params(("id" = i64, Path, description = "Sequence id")),
    request_body = doc::SequenceValue,
    responses((status = 200, description = "OK", body = doc::BranchSequence), WriteErrors),
)]
pub async fn update_branch_sequence(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<SequenceValue>,
) -> R<Json<BranchSequence>> {
    Ok(Json(k.update_branch_sequence(id, &body).await?))
}

#[utoipa::path(
    get,
    path = "/branches/{id}/stats",
    tag = "branches",
    summary = "Flow counts and durations of a branch",
    params(("id" = i64, Path, description = "Branch id")),
    responses((status = 200, description = "OK", body = doc::BranchStats), ReadErrors),
)]
pub async fn get_branch_stats(Caller(k): Caller, P(id): P<i64>) -> R<Json<BranchStats>> {
    Ok(Json(k.get_branch_stats(id).await?))
}

#[utoipa::path(
    put,
    path = "/branches/{id}/project_id",
    tag = "branches",
    summary = "Move a branch to another project (superadmin)",
    params(("id" = i64, Path, description = "Branch id")),
    request_body = doc::MoveBranch,
    responses((status = 200, description = "OK", body = doc::Branch), WriteErrors),
)]
pub async fn move_branch(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<MoveBranch>,
) -> R<Json<Branch>> {
    Ok(Json(k.move_branch(id, &body).await?))
}

#[utoipa::path(
    put,
    path = "/branches/{id}/retention_policy",
    tag = "branches",
    summary = "Set the retention policy of a branch (admin)",
    params(("id" = i64, Path, description = "Branch id")),
    request_body = doc::RetentionPolicyInput,
    responses((status = 200, description = "OK", body = doc::RetentionPolicy), WriteErrors),
)]
pub async fn update_retention_policy(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<RetentionPolicy>,
) -> R<Json<RetentionPolicy>> {
    Ok(Json(k.update_branch_retention_policy(id, &body).await?))
}

#[utoipa::path(
    post,
    path = "/branches/{id}/env_vars",
    tag = "branches",
    summary = "Set an environment variable of a branch (pwrusr)",
    params(("id" = i64, Path, description = "Branch id")),
    request_body = doc::EnvVar,
    responses((status = 201, description = "Created", body = doc::Empty), WriteErrors),
)]
pub async fn create_env_var(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<EnvVar>,
) -> R<(StatusCode, Json<Empty>)> {
    Ok((
        StatusCode::CREATED,
        Json(k.create_branch_env_var(id, &body).await?),
    ))
}

#[utoipa::path(
    delete,
    path = "/branches/{id}/env_vars/{name}",
    tag = "branches",
    summary = "Delete an environment variable of a branch (pwrusr)",
    params(("id" = i64, Path, description = "Branch id"), ("name" = String, Path, description = "Variable name")),
    responses((status = 200, description = "OK", body = doc::Empty), WriteErrors),
)]
pub async fn delete_env_var(Caller(k): Caller, P((id, name)): P<(i64, String)>) -> R<Json<Empty>> {
    Ok(Json(k.delete_branch_env_var(id, &name).await?))
}
