//! Sessions and users.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use kraken_core::model::{Empty, List, Login, NewUser, PasswordChange, Session, User, UserChanges};

use crate::extract::{
    AppState, Caller, J, P, Q, R, Source, cleared_session_cookie, session_cookie,
};
use crate::openapi::schemas as doc;
use crate::openapi::{LoginErrors, ReadErrors, WriteErrors};

/// `POST /sessions`: the session, and the session cookie for the browser's
/// download links (`HttpOnly; SameSite=Strict`).
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    summary = "Log in: the session and its token",
    request_body = doc::Login,
    security(()),
    responses((status = 201, description = "Logged in", body = doc::Session, headers(("set-cookie" = String, description = "kk_session_token=<token>; Path=/; HttpOnly; SameSite=Strict"))), LoginErrors),
)]
pub async fn login(
    State(st): State<AppState>,
    Source(source): Source,
    J(body): J<Login>,
) -> R<(StatusCode, [(HeaderName, String); 1], Json<Session>)> {
    let session = st.core.login_from(&body, source).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, session_cookie(&session.token))],
        Json(session),
    ))
}

#[utoipa::path(
    get,
    path = "/sessions/{token}",
    tag = "sessions",
    summary = "A session of the caller",
    params(("token" = String, Path, description = "Session token")),
    responses((status = 200, description = "OK", body = doc::Session), ReadErrors),
)]
pub async fn get_session(Caller(k): Caller, P(token): P<String>) -> R<Json<Session>> {
    Ok(Json(k.get_session(&token).await?))
}

#[utoipa::path(
    delete,
    path = "/sessions/{token}",
    tag = "sessions",
    summary = "Log out: end the session",
    params(("token" = String, Path, description = "Session token")),
    responses((status = 204, description = "Logged out; the session cookie is cleared"), WriteErrors),
)]
pub async fn logout(
    Caller(k): Caller,
    P(token): P<String>,
) -> R<(StatusCode, [(HeaderName, String); 1])> {
    k.logout(&token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cleared_session_cookie())],
    ))
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    summary = "List users (superadmin)",
    params(crate::openapi::Paging),
    responses((status = 200, description = "OK", body = doc::List<doc::User>), ReadErrors),
)]
pub async fn get_users(Caller(k): Caller, q: Q) -> R<Json<List<User>>> {
    Ok(Json(k.get_users(&q.paging()?).await?))
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    summary = "Create a user (superadmin)",
    request_body = doc::NewUser,
    responses((status = 201, description = "Created", body = doc::User), WriteErrors),
)]
pub async fn create_user(Caller(k): Caller, J(body): J<NewUser>) -> R<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(k.create_user(&body).await?)))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    summary = "A user, with their project roles",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "OK", body = doc::User), ReadErrors),
)]
pub async fn get_user(Caller(k): Caller, P(id): P<i64>) -> R<Json<User>> {
    Ok(Json(k.get_user(id).await?))
}

#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    summary = "Enable or disable a user, grant superadmin or project roles (superadmin)",
    params(("id" = i64, Path, description = "User id")),
    request_body = doc::UserChanges,
    responses((status = 201, description = "Created", body = doc::User), WriteErrors),
)]
pub async fn change_user_details(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<UserChanges>,
) -> R<(StatusCode, Json<User>)> {
    Ok((
        StatusCode::CREATED,
        Json(k.change_user_details(id, &body).await?),
    ))
}

#[utoipa::path(
    put,
    path = "/users/{id}/password",
    tag = "users",
    summary = "Change a password (the old one is required)",
    params(("id" = i64, Path, description = "User id")),
    request_body = doc::PasswordChange,
    responses((status = 201, description = "Created", body = doc::Empty), WriteErrors),
)]
pub async fn change_password(
    Caller(k): Caller,
    P(id): P<i64>,
    J(body): J<PasswordChange>,
) -> R<(StatusCode, Json<Empty>)> {
    Ok((
        StatusCode::CREATED,
        Json(k.change_password(id, &body).await?),
    ))
}
