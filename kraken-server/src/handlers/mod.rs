//! Route handlers, one file per area. Each extracts, calls one method of
//! `kraken_core::Kraken`, and serializes.

pub mod agents;
pub mod flows;
pub mod misc;
pub mod projects;
pub mod tools;
pub mod users;
