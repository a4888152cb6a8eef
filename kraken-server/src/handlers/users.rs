//! Sessions and users.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kraken_core::model::{Empty, List, Login, NewUser, PasswordChange, Session, User, UserChanges};

use crate::extract::{AppState, Caller, J, P, Q, R};

pub async fn login(
    State(st): State<AppState>,
    J(body): J<Login>,
) -> R<(StatusCode, Json<Session>)> {
    Ok((StatusCode::CREATED, Json(st.core.login(&body).await?)))
}

pub async fn get_session(Caller(k): Caller, P(token): P<String>) -> R<Json<Session>> {
    Ok(Json(k.get_session(&token).await?))
}

pub async fn logout(Caller(k): Caller, P(token): P<String>) -> R<StatusCode> {
    k.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
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
