//! Kraken CI core: the whole domain of a Kraken CI server.
//!
//! * [`model`]: the JSON of the REST API as plain serde types.
//! * [`store`]: SQLite / PostgreSQL storage.
//! * [`auth`]: passwords, sessions, roles.
//! * [`api`]: the [`Kraken`](api::Kraken) service, one method per REST operation.
//! * [`error`]: the [`Error`](error::Error) type and its HTTP meaning.
//! * [`schema`]: stage schema code: evaluation, validation, `#{...}` substitution.
//! * [`engine`]: flows, runs, jobs, scheduling, completion, timeouts.
//! * [`agent`]: the job runner and its step tools.
//! * [`results`]: test results, issues, results-history analysis.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod auth;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod events;
pub mod fault;
pub mod jq;
pub mod mask;
pub mod model;
pub mod results;
pub mod schema;
pub mod storage;
pub mod store;
pub mod triggers;
pub mod view;

pub use api::{Config, Core, Kraken, Local};
pub use error::{ApiError, Error, Result};

/// The version of this server, reported by `GET /version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
