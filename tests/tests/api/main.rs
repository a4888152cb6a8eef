//! End-to-end tests of the REST API against a real server on 127.0.0.1:0.
//! One binary with a module per area (links once).

mod agent_trust;
mod agents;
mod auth;
mod branches;
mod cache;
mod docker;
mod errors;
mod exec;
mod handle;
mod log_paging;
mod notify;
mod openapi;
mod original_agent;
mod projects;
mod repo_triggers;
mod restart;
mod results;
mod s3;
mod schema_sandbox;
mod secrets;
mod security;
mod stages;
mod tools;
mod ui_compat;
mod webhooks;
