//! The server's own OpenAPI 3.1 document, made from the code: every REST
//! operation is a handler with `#[utoipa::path]`, registered with
//! `utoipa_axum::routes!`, which adds the route to the router and the
//! operation to the document in one step (see `api_router` in `lib.rs`).
//! The document is served at `/api/openapi.json` (and `/bk/api/openapi.json`)
//! with a Swagger UI at `/api/docs/`, from files compiled into the binary.

pub mod schemas;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Server};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

use crate::extract::SESSION_COOKIE;

/// Where the document is served (under `/api` and `/bk/api`).
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the Swagger UI is served (under `/api` and `/bk/api`).
pub const UI_PATH: &str = "/docs";

const DESCRIPTION: &str = "\
The REST API of Kraken in Rust, a CI server compatible with Kraken CI.

Every path here is under `/api`; the server serves the same API under `/bk/api` \
too (the original server does), so `/bk/api/projects` is `/api/projects`. \
Authenticate with `Authorization: Bearer <token>` (the `token` of `POST /api/sessions`), \
or with the `kk_session_token` cookie that login sets (writes authenticated by the \
cookie alone must send `Content-Type: application/json`). \
Every failure answers `application/problem+json` with `{\"code\", \"message\"}` \
(plus `status`, `title`, `detail`, `type`). \
The agent protocol (`/backend`), plain-text log downloads (`/job_log/...`) and \
artifact downloads (`/artifacts/...`) are outside `/api` and not described here.";

/// The document's fixed parts; the operations come from the router.
#[derive(OpenApi)]
#[openapi(
    info(title = "Kraken CI", description = DESCRIPTION),
    modifiers(&Security),
    components(schemas(schemas::ApiError)),
    security(("bearer" = []), ("session_cookie" = [])),
    tags(
        (name = "sessions", description = "Login and sessions"),
        (name = "users", description = "Users and their roles"),
        (name = "projects", description = "Projects and their secrets"),
        (name = "branches", description = "Branches, sequences, environment variables"),
        (name = "stages", description = "Stages and their workflow schemas"),
        (name = "flows", description = "Flows, runs and jobs"),
        (name = "logs", description = "Job, step and server logs"),
        (name = "results", description = "Test results, issues, analysis, background tasks"),
        (name = "agents", description = "Agents, agents groups and systems"),
        (name = "tools", description = "Tools and the workflow schema"),
        (name = "misc", description = "Version, settings, user data, live data"),
    )
)]
pub struct ApiDoc;

/// The two ways to send a session token.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
    }
}

/// The finished document: `paths` are made absolute (`/api/...`).
pub fn finish(mut doc: Document) -> Document {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("/api{path}"), item))
        .collect();
    doc.servers = Some(vec![Server::new("/")]);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// Failures of an operation that reads.
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// Bad input: a malformed path or query parameter.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(schemas::ApiError),
    /// No valid session token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(schemas::ApiError),
    /// The caller's role does not allow it.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(schemas::ApiError),
    /// No such thing.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(schemas::ApiError),
}

/// Failures of an operation that changes something.
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// Bad input: a malformed parameter or body, a value over its limit, a broken rule.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(schemas::ApiError),
    /// No valid session token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(schemas::ApiError),
    /// The caller's role does not allow it.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(schemas::ApiError),
    /// No such thing.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(schemas::ApiError),
    /// It conflicts with what exists, e.g. a name already taken.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(schemas::ApiError),
}

/// Failures of a login.
#[derive(IntoResponses)]
pub enum LoginErrors {
    /// A malformed body or an unsupported login method.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(schemas::ApiError),
    /// Unknown user, wrong password, or a disabled account.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(schemas::ApiError),
    /// Too many failed logins of this user or from this address: wait `Retry-After` seconds.
    #[response(
        status = 429,
        content_type = "application/problem+json",
        headers(("retry-after" = u64, description = "Seconds to wait"))
    )]
    TooManyRequests(schemas::ApiError),
}

/// Paging and sorting of a list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// First item, from 0.
    #[param(minimum = 0)]
    pub start: Option<i64>,
    /// Page size.
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    /// Field to sort by.
    pub sort_field: Option<String>,
    /// `asc` or `desc`.
    pub sort_dir: Option<String>,
}

/// Paging of log lines.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogPaging {
    /// First line, from 0.
    pub start: Option<i64>,
    /// Page size (200 by default).
    pub limit: Option<i64>,
    /// `asc` (the default) or `desc`.
    pub order: Option<String>,
}
