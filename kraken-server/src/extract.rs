//! Request extractors that turn bad input into our JSON errors, and the
//! one place where a core [`Error`] becomes an HTTP response.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kraken_core::model::limits;
use kraken_core::{ApiError, Core, Error, Local};
use serde::de::DeserializeOwned;

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    /// The Kraken core.
    pub core: Arc<Core>,
}

/// An error answered as JSON `{code, message, status, title, detail, type}`.
#[derive(Debug)]
pub struct AppError(pub Error);

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = self.0.to_api_error();
        if body.code >= 500 {
            tracing::error!(error = %self.0, "request failed");
        }
        let mut resp = error_response(&body);
        if let Error::TooManyRequests { retry_after, .. } = &self.0 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(*retry_after));
        }
        resp
    }
}

/// The response for an [`ApiError`].
pub fn error_response(body: &ApiError) -> Response {
    let status = StatusCode::from_u16(body.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response()
}

/// Result of a handler.
pub type R<T> = Result<T, AppError>;

fn bad(msg: impl Into<String>) -> AppError {
    AppError(Error::BadRequest(msg.into()))
}

/// The caller, authenticated by `Authorization: Bearer <token>` (or the
/// session cookie, see [`bearer_token`]): a Kraken handle acting for them.
pub struct Caller(pub Local);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            cookie_write_refusal(parts).unwrap_or_else(|| {
                AppError(Error::Unauthorized(
                    "No authorization token provided".into(),
                ))
            })
        })?;
        let who = state.core.authenticate(&token).await?;
        Ok(Caller(state.core.kraken_as(who)))
    }
}

/// The name of the session cookie (the original's).
pub const SESSION_COOKIE: &str = "kk_session_token";

/// The `Set-Cookie` value of a new session: for the browser's download links
/// (artifacts, job logs); scripts cannot read it and other sites cannot send it.
pub fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie (logout).
pub fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// The client's address (from the connection).
pub struct Source(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Whether a `Content-Type` is JSON (`application/json`, `application/*+json`).
fn is_json_content_type(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// A caller who may be anonymous (e.g. `GET /settings`).
pub struct MaybeCaller(pub Option<Local>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(parts) {
            None => match cookie_write_refusal(parts) {
                Some(e) => Err(e),
                None => Ok(MaybeCaller(None)),
            },
            Some(token) => {
                let who = state.core.authenticate(&token).await?;
                Ok(MaybeCaller(Some(state.core.kraken_as(who))))
            }
        }
    }
}

/// The bearer token of a request, or the `kk_session_token` cookie (which
/// the original's download links use).
///
/// Against cross-site request forgery, a request authenticated by the cookie
/// alone that is not a read (GET, HEAD, OPTIONS) counts only with a JSON
/// `Content-Type`, which a page of another site cannot send without the
/// server's consent (CORS); otherwise it carries no token.
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(t) = header_token(parts) {
        return Some(t);
    }
    let token = cookie_token(parts)?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if safe || is_json_content_type(parts) {
        Some(token)
    } else {
        tracing::warn!(method = %parts.method, path = %parts.uri.path(), "session cookie without a JSON content type ignored for a write");
        None
    }
}

/// The 400 for a write that only the session cookie would authenticate and
/// that is not JSON (see [`bearer_token`]).
fn cookie_write_refusal(parts: &Parts) -> Option<AppError> {
    (header_token(parts).is_none() && cookie_token(parts).is_some()).then(|| {
        bad(format!(
            "{} {} is authenticated by the session cookie only, so it must have \
             Content-Type: application/json (protection against cross-site requests); \
             or send Authorization: Bearer <token>",
            parts.method,
            parts.uri.path()
        ))
    })
}

fn header_token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v);
        if !token.trim().is_empty() {
            return Some(token.trim().to_string());
        }
    }
    None
}

fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A JSON object body; an empty body counts as `{}`. Bad JSON, wrong types
/// and arrays (which serde would read as a struct's fields in order) are 400s
/// naming the field.
pub struct J<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for J<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(bad("request body must be a JSON object, not an array"));
        }
        parse_json(&bytes).map(J)
    }
}

/// A JSON array body (`PATCH /agents`).
pub struct JList<T>(pub Vec<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JList<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => parse_json(&bytes).map(JList),
            _ => Err(bad("request body must be a JSON array")),
        }
    }
}

/// The body, within the route's limit ([`limits::REQUEST_BODY`] for the
/// REST API).
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> R<axum::body::Bytes> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                bad(format!(
                    "request body is too large: the limit is {} KiB",
                    limits::REQUEST_BODY / 1024
                ))
            } else {
                bad(format!("cannot read request body: {e}"))
            }
        })
}

/// Parse a JSON document into `T` with a message that names the bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> R<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            bad(format!("request body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            bad(format!("invalid request body: {inner}"))
        } else {
            bad(format!("invalid request body at '{path}': {inner}"))
        }
    })
}

/// A path parameter; a value of the wrong type is a 400.
pub struct P<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(P(v)),
            Err(e) => Err(bad(format!("incorrect path parameter: {}", e.body_text()))),
        }
    }
}

/// Query parameters, with typed getters that answer 400 for bad values.
/// Repeated keys (`statuses=1&statuses=2`) are kept.
pub struct Q(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Q(form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()))
    }
}

impl Q {
    /// The last value of a key.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of a key (`key=a&key=b`, `key[]=a`, or `key=a,b`).
    pub fn list(&self, key: &str) -> Vec<String> {
        let alt = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| k == key || *k == alt)
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
    /// An integer value.
    pub fn int(&self, key: &str) -> R<Option<i64>> {
        match self.str(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("incorrect {key} value '{v}': expected an integer"))),
        }
    }
    /// A list of integers.
    pub fn ints(&self, key: &str) -> R<Vec<i64>> {
        self.list(key)
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| bad(format!("incorrect {key} value '{v}': expected integers")))
            })
            .collect()
    }
    /// A boolean value (`true`/`false`/`1`/`0`).
    pub fn bool(&self, key: &str) -> R<Option<bool>> {
        match self.str(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(v) => Err(bad(format!(
                "incorrect {key} value '{v}': expected true or false"
            ))),
        }
    }
    /// Paging and sorting parameters.
    pub fn paging(&self) -> R<kraken_core::model::Paging> {
        let start = self.int("start")?;
        let limit = self.int("limit")?;
        if start.is_some_and(|s| s < 0) {
            return Err(bad("incorrect start value: it must be 0 or more"));
        }
        if limit.is_some_and(|l| l < 0) {
            return Err(bad("incorrect limit value: it must be 0 or more"));
        }
        Ok(kraken_core::model::Paging {
            start,
            limit,
            sort_field: self.str("sort_field").map(str::to_string),
            sort_dir: self.str("sort_dir").map(str::to_string),
        })
    }
    /// All parameters as a map (last value wins).
    pub fn map(&self) -> HashMap<String, String> {
        self.0.iter().cloned().collect()
    }
}
