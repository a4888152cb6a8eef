//! Route handlers, one file per area. Each extracts, calls one method of
//! `kraken_core::Kraken`, and serializes; the REST API's handlers also say
//! what they take and answer with `#[utoipa::path]`, which is where the
//! OpenAPI document's operations come from (see `crate::openapi`).

pub mod agents;
pub mod backend;
pub mod badges;
pub mod cloud;
pub mod diag;
pub mod exec;
pub mod flows;
pub mod install;
pub mod logs;
pub mod misc;
pub mod projects;
pub mod results;
pub mod stages;
pub mod tools;
pub mod users;
pub mod webhooks;
