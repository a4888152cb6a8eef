//! The job runner: speaks the agent protocol to a Kraken server, runs job
//! steps with the [`tools`], ships their output and reports results.

pub mod tools;
