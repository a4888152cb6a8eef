//! Errors of the Kraken core and their HTTP meaning.
//!
//! Every failure the API can report is one [`Error`]. The variants are the
//! distinctions callers branch on; each maps to exactly one HTTP status, and
//! [`ApiError`] is the JSON body the server sends for it (and the remote client
//! reads back).

use serde::{Deserialize, Serialize};

/// What went wrong, with a message written for the person who made the call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request names something that does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or breaks a rule (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials were given (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but lacks the role for this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state, e.g. a duplicate name (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts: try again after `retry_after` seconds (HTTP 429).
    #[error("{message}")]
    TooManyRequests {
        /// What was refused.
        message: String,
        /// Seconds to wait (the `Retry-After` header).
        retry_after: u64,
    },
    /// A storage failure (HTTP 500); the message names the operation.
    #[cfg(feature = "local")]
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[cfg(feature = "local")]
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value could not be turned into JSON or back.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// The remote server could not be reached or answered garbage.
    #[error("{0}")]
    Transport(String),
    /// Waiting took longer than allowed (e.g. `Kraken::wait_flow`; HTTP 504).
    #[error("{0}")]
    Timeout(String),
    /// Anything else that is our fault (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// 404 with a message.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    /// 400 with a message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }
    /// 403 with a message.
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Error::Forbidden(msg.into())
    }
    /// 409 with a message.
    pub fn conflict(msg: impl Into<String>) -> Self {
        Error::Conflict(msg.into())
    }
    /// 500 with a message.
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// The HTTP status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::BadRequest(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::Conflict(_) => 409,
            Error::TooManyRequests { .. } => 429,
            Error::Transport(_) => 502,
            Error::Timeout(_) => 504,
            #[cfg(feature = "local")]
            Error::Database(sqlx::Error::RowNotFound) => 404,
            #[cfg(feature = "local")]
            Error::Database(_) | Error::Migrate(_) => 500,
            Error::Json(_) | Error::Internal(_) => 500,
        }
    }

    /// The JSON body for this error.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::new(self.status(), self.to_string())
    }

    /// Rebuild an error from a status and message received over HTTP.
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            400 | 405 | 413 | 415 | 422 => Error::BadRequest(message),
            401 => Error::Unauthorized(message),
            403 => Error::Forbidden(message),
            404 => Error::NotFound(message),
            409 => Error::Conflict(message),
            429 => Error::TooManyRequests {
                message,
                retry_after: 0,
            },
            _ => Error::Internal(format!("server answered {status}: {message}")),
        }
    }
}

/// The JSON error body: `{"code", "message"}` plus the RFC 7807 fields
/// (`status`, `title`, `detail`, `type`) that the original's clients read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// What went wrong.
    pub message: String,
    /// Same as `code` (RFC 7807).
    #[serde(default)]
    pub status: u16,
    /// The reason phrase of the status (RFC 7807).
    #[serde(default)]
    pub title: String,
    /// Same as `message` (RFC 7807).
    #[serde(default)]
    pub detail: String,
    /// Always `about:blank` (RFC 7807).
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl ApiError {
    /// Build the body for a status and message.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            code,
            status: code,
            title: reason_phrase(code).to_string(),
            detail: message.clone(),
            message,
            kind: "about:blank".to_string(),
        }
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}
