//! Sessions and users.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use kraken_core::model::{Empty, List, Login, NewUser, PasswordChange, Session, User, UserChanges};

use crate::extract::{
    AppState, Caller, J, P, Q, R, Source, cleared_session_cookie, session_cookie,
};

/// `POST /sessions`: the session, and the session cookie for the browser's
/// download links (`HttpOnly; SameSite=Strict`).
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

pub async fn get_session(Caller(k): Caller, P(token): P<String>) -> R<Json<Session>> {
    Ok(Json(k.get_session(&token).await?))
}

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

pub async fn get_users(Caller(k): Caller, q: Q) -> R<Json<List<User>>> {
    Ok(Json(k.get_users(&q.paging()?).await?))
}

pub async fn create_user(Caller(k): Caller, J(body): J<NewUser>) -> R<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(k.create_user(&body).await?)))
}

pub async fn get_user(Caller(k): Caller, P(id): P<i64>) -> R<Json<User>> {
    Ok(Json(k.get_user(id).await?))
}

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
