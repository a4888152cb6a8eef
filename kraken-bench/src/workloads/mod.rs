//! The workloads. Each creates its own namespaced data (see
//! [`crate::fixture`]), measures, and cleans up whether it succeeded or not.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;

use crate::args::{Sizes, Workload};
use crate::client::Api;
use crate::report::Output;

mod aged;
mod agents;
mod create;
mod e2e;
mod logs;
mod reads;
mod results;
mod throughput;

/// What every workload gets.
pub struct Ctx {
    /// Logged-in client.
    pub api: Api,
    /// Sizes.
    pub sizes: Sizes,
    /// Longest single wait.
    pub timeout: Duration,
    /// Random tag of this run (part of every name it creates).
    pub tag: String,
    /// Use only the original's API: no SSE log stream, no get-job long-poll.
    pub plain_api: bool,
    /// e2e: an image to run the flows in with the `docker` executor too.
    pub docker_image: Option<String>,
    /// e2e: the original agent's `kkagent`, to run the flows on it too.
    pub original_agent: Option<std::path::PathBuf>,
    /// reads: also time a bare axum handler on this machine (the server is local).
    pub bare_axum: bool,
    /// Whether the server streams job logs over SSE (learned on first use).
    sse: Mutex<Option<bool>>,
}

impl Ctx {
    /// A context for a run.
    pub fn new(api: Api, sizes: Sizes, timeout: Duration, plain_api: bool) -> Ctx {
        Ctx {
            api,
            sizes,
            timeout,
            tag: format!("{:08x}", rand::random::<u32>()),
            plain_api,
            docker_image: None,
            original_agent: None,
            bare_axum: false,
            sse: Mutex::new(plain_api.then_some(false)),
        }
    }

    /// What was learned about SSE log streaming (`None`: not tried yet).
    pub fn sse(&self) -> Option<bool> {
        self.sse.lock().ok().and_then(|s| *s)
    }

    /// Remember whether SSE log streaming works.
    pub fn set_sse(&self, works: bool) {
        if let Ok(mut s) = self.sse.lock() {
            *s = Some(works);
        }
    }
}

/// Run one workload.
pub async fn run(ctx: &Ctx, w: Workload) -> Result<Output> {
    match w {
        Workload::Reads => reads::run(ctx).await,
        Workload::Create => create::run(ctx).await,
        Workload::Aged => aged::run(ctx).await,
        Workload::E2e => e2e::run(ctx).await,
        Workload::Throughput => throughput::run(ctx).await,
        Workload::Agents => agents::run(ctx).await,
        Workload::Results => results::run(ctx).await,
        Workload::Logs => logs::run(ctx).await,
    }
}
