//! Step tools of the agent: each runs one step of a job in the job's work
//! directory and reports a [`StepOutcome`].
//!
//! Built-in tools here: `shell`, `git`, `artifacts`, `junit_collect`,
//! `pytest`, `data`. Output lines are streamed through [`StepRun::output`]
//! as they come; a step stops when its timeout, the job deadline or a cancel
//! arrives, and its whole process group is killed.

pub mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

/// Where the `artifacts` tool stores and fetches files: the Kraken server.
pub trait ArtifactStore: Send + Sync {
    /// Upload the local file `local` as `dest` (a relative path, `/`-separated)
    /// of the current run; returns the stored size.
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
        public: bool,
    ) -> BoxFuture<'a, Result<u64, String>>;
    /// Download the artifact `source` (a path or a glob over the flow's
    /// artifacts, as stored by an earlier run of the same flow) into the
    /// directory `dest_dir`; returns the files written.
    fn download<'a>(
        &'a self,
        source: &'a str,
        dest_dir: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<PathBuf>, String>>;
}

/// Processes started with `background: true`, killed when the job ends.
#[derive(Debug, Default)]
pub struct BackgroundProcs {
    /// Process group ids.
    pub pgids: std::sync::Mutex<Vec<i32>>,
}

impl BackgroundProcs {
    /// Remember the process group `pgid`, to be killed when the job ends.
    pub fn register(&self, pgid: i32) {
        let mut g = self.pgids.lock().unwrap_or_else(|e| e.into_inner());
        if !g.contains(&pgid) {
            g.push(pgid);
        }
    }

    /// Take (and forget) the registered process groups.
    pub fn take(&self) -> Vec<i32> {
        std::mem::take(&mut *self.pgids.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Kill every registered process group: `SIGTERM`, then `SIGKILL`
    /// after `grace`. Call it when the job ends.
    pub async fn kill_all(&self, grace: Duration) {
        let pgids = self.take();
        if pgids.is_empty() {
            return;
        }
        for &p in &pgids {
            process::kill_group(p, nix::sys::signal::Signal::SIGTERM);
        }
        tokio::time::sleep(grace).await;
        for &p in &pgids {
            process::kill_group(p, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Everything a tool needs to run one step.
pub struct StepRun<'a> {
    /// Tool name (`shell`, `git`, ...).
    pub tool: &'a str,
    /// The step's fields as the server sent them (`cmd`, `cwd`, `timeout`, `attempts`, ...).
    pub fields: &'a Map<String, Value>,
    /// The job's work directory; `cwd` of a step is relative to it.
    pub job_dir: &'a Path,
    /// Extra environment for processes (the branch's env vars).
    pub env: &'a BTreeMap<String, String>,
    /// The job's deadline.
    pub deadline: Instant,
    /// Becomes `true` when the job is canceled.
    pub cancel: watch::Receiver<bool>,
    /// Output lines of the step, in order.
    pub output: mpsc::Sender<String>,
    /// The server's artifact storage.
    pub artifacts: &'a dyn ArtifactStore,
    /// Background processes of the job.
    pub background: &'a BackgroundProcs,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// `true`: status `done`; `false`: status `error`.
    pub ok: bool,
    /// Why it failed: `retcode`, `step-timeout`, `job-timeout`, `exception`, `canceled`.
    pub reason: Option<String>,
    /// Exit code of the process, when one ran.
    pub retcode: Option<i64>,
    /// A message for people.
    pub msg: Option<String>,
    /// Test results: `{test, status (int, see model::tc_result), cmd, values?}`.
    pub test_results: Vec<Value>,
    /// Issues (pylint-like dicts).
    pub issues: Vec<Value>,
    /// Uploaded artifacts: `{path, size, report_entry?}`.
    pub artifacts: Vec<Value>,
    /// Data reported by the `data` tool (a JSON value).
    pub data: Option<Value>,
}

impl StepOutcome {
    /// A passed step.
    pub fn done() -> Self {
        StepOutcome {
            ok: true,
            reason: None,
            retcode: None,
            msg: None,
            test_results: Vec::new(),
            issues: Vec::new(),
            artifacts: Vec::new(),
            data: None,
        }
    }

    /// A failed step.
    pub fn error(reason: &str, msg: impl Into<String>) -> Self {
        StepOutcome {
            ok: false,
            reason: Some(reason.to_string()),
            msg: Some(msg.into()),
            ..StepOutcome::done()
        }
    }

    /// The `result` object of a `step-result2` message (without `duration`).
    pub fn to_result(&self) -> Value {
        let mut r = Map::new();
        r.insert(
            "status".into(),
            json!(if self.ok { "done" } else { "error" }),
        );
        if let Some(x) = &self.reason {
            r.insert("reason".into(), json!(x));
        }
        if let Some(x) = self.retcode {
            r.insert("retcode".into(), json!(x));
        }
        if let Some(x) = &self.msg {
            r.insert("msg".into(), json!(x));
        }
        if !self.test_results.is_empty() {
            r.insert(
                "test-results".into(),
                Value::Array(self.test_results.clone()),
            );
        }
        if !self.issues.is_empty() {
            r.insert("issues".into(), Value::Array(self.issues.clone()));
        }
        if !self.artifacts.is_empty() {
            r.insert("artifacts".into(), Value::Array(self.artifacts.clone()));
        }
        if let Some(d) = &self.data {
            r.insert("data".into(), d.clone());
        }
        Value::Object(r)
    }
}

/// Run one step with its tool (honouring `attempts` and `sleep_time_after_attempt`).
pub async fn run_step(run: StepRun<'_>) -> StepOutcome {
    StepOutcome::error(
        "exception",
        format!("tool '{}' is not supported by this agent", run.tool),
    )
}
