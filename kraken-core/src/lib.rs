//! Kraken CI core: the whole domain of a Kraken CI server.
//!
//! * [`model`]: the JSON of the REST API as plain serde types.
//! * [`error`]: the [`Error`](error::Error) type and its HTTP meaning.
//! * [`api`]: the [`Kraken`](api::Kraken) handle, one method per REST
//!   operation, over HTTP (feature `client`) or in process (feature `local`).
//! * [`tls`]: the one rustls crypto provider (ring); programs call
//!   [`tls::install_provider`] first (feature `client`).
//!
//! With the feature `local` (on by default) the in-process half too:
//!
//! * [`store`]: SQLite / PostgreSQL storage.
//! * [`auth`]: passwords, sessions, roles.
//! * [`schema`]: stage schema code: evaluation, validation, `#{...}` substitution.
//! * [`engine`]: flows, runs, jobs, scheduling, completion, timeouts.
//! * [`agent`]: the job runner and its step tools.
//! * [`results`]: test results, issues, results-history analysis.
//!
//! A program that only talks to a server depends on
//! `kraken-core = { default-features = false, features = ["client"] }`.
#![forbid(unsafe_code)]

#[cfg(feature = "local")]
pub mod agent;
#[cfg(feature = "client")]
pub mod api;
#[cfg(feature = "local")]
pub mod auth;
pub mod credentials;
#[cfg(feature = "local")]
pub mod engine;
pub mod error;
#[cfg(feature = "local")]
pub mod events;
#[cfg(feature = "local")]
pub mod fault;
#[cfg(feature = "local")]
pub mod jq;
#[cfg(feature = "local")]
pub mod mask;
pub mod model;
#[cfg(feature = "local")]
pub mod notify;
#[cfg(feature = "local")]
pub mod results;
#[cfg(feature = "local")]
pub mod schema;
#[cfg(feature = "local")]
pub mod storage;
#[cfg(feature = "local")]
pub mod store;
#[cfg(feature = "client")]
pub mod tls;
#[cfg(feature = "local")]
pub mod triggers;
#[cfg(feature = "local")]
pub mod view;
#[cfg(feature = "local")]
pub mod webhooks;

#[cfg(feature = "client")]
pub use api::Kraken;
#[cfg(feature = "local")]
pub use api::{Config, Core, Local};
pub use error::{ApiError, Error, Result};

/// The version of this server, reported by `GET /version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
