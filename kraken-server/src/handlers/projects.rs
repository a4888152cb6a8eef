//! Projects, secrets, branches, sequences, environment variables.

use axum::Json;
use axum::http::StatusCode;
use kraken_core::model::{
    Branch, BranchChanges, BranchSequence, BranchStats, Empty, EnvVar, List, MoveBranch, NewBranch,
    NewProject, Project, ProjectChanges, RetentionPolicy, Secret, SecretInput, SequenceValue,
};

use crate::extract::{Caller, J, P, Q, R};

pub async fn get_projects(Caller(k): Caller) -> R<Json<List<Project>>> {
    Ok(Json(k.get_projects().await?))
}

pub async fn create_project(
    Caller(k): Caller,
    J(body): J<NewProject>,
) -> R<(StatusCode, Json<Project>)> {
    Ok((StatusCode::CREATED, Json(k.create_project(&body).await?)))
}

pub async fn get_project(Caller(k): Caller, P(id): P<i64>, q: Q) -> R<Json<Project>> {
    Ok(Json(
        k.get_project(id, q.bool("with_results")?.unwrap_or(false))
            .await?,
    ))
}

pub async fn update_project(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<ProjectChanges>,
) -> R<Json<Project>> {
    Ok(Json(k.update_project(id, &body).await?))
}

pub async fn delete_project(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_project(id).await?))
}

pub async fn create_secret(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<SecretInput>,
) -> R<(StatusCode, Json<Secret>)> {
    Ok((StatusCode::CREATED, Json(k.create_secret(id, &body).await?)))
}

pub async fn update_secret(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<SecretInput>,
) -> R<Json<Secret>> {
    Ok(Json(k.update_secret(id, &body).await?))
}

pub async fn delete_secret(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_secret(id).await?))
}

pub async fn create_branch(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<NewBranch>,
) -> R<(StatusCode, Json<Branch>)> {
    Ok((StatusCode::CREATED, Json(k.create_branch(id, &body).await?)))
}

pub async fn update_branch(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<BranchChanges>,
) -> R<Json<Branch>> {
    Ok(Json(k.update_branch(id, &body).await?))
}

pub async fn delete_branch(Caller(k): Caller, P(id): P<i64>) -> R<Json<Empty>> {
    Ok(Json(k.delete_branch(id).await?))
}

pub async fn get_branch(Caller(k): Caller, P(id): P<i64>) -> R<Json<Branch>> {
    Ok(Json(k.get_branch(id).await?))
}

pub async fn get_branch_sequences(
    Caller(k): Caller,
    P(id): P<i64>,
) -> R<Json<List<BranchSequence>>> {
    Ok(Json(k.get_branch_sequences(id).await?))
}

pub async fn update_branch_sequence(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<SequenceValue>,
) -> R<Json<BranchSequence>> {
    Ok(Json(k.update_branch_sequence(id, &body).await?))
}

pub async fn get_branch_stats(Caller(k): Caller, P(id): P<i64>) -> R<Json<BranchStats>> {
    Ok(Json(k.get_branch_stats(id).await?))
}

pub async fn move_branch(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<MoveBranch>,
) -> R<Json<Branch>> {
    Ok(Json(k.move_branch(id, &body).await?))
}

pub async fn update_retention_policy(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<RetentionPolicy>,
) -> R<Json<RetentionPolicy>> {
    Ok(Json(k.update_branch_retention_policy(id, &body).await?))
}

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

pub async fn delete_env_var(Caller(k): Caller, P((id, name)): P<(i64, String)>) -> R<Json<Empty>> {
    Ok(Json(k.delete_branch_env_var(id, &name).await?))
}
