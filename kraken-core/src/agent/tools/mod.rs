//! Step tools of the agent: each runs one step of a job in the job's work
//! directory and reports a [`StepOutcome`].
//!
//! Built-in tools here: `shell`, `git`, `artifacts`, `cache`,
//! `junit_collect`, `pytest`, `data`, `rndtest`, `values_collect`, `cloc`,
//! `gotest`, `pylint`, `nglint`, `local_tool`. Output lines are streamed through [`StepRun::output`]
//! as they come; a step stops when its timeout, the job deadline or a cancel
//! arrives, and its whole process group is killed (see [`process`]).
//!
//! [`run_step`] handles the fields common to every tool: `attempts`,
//! `sleep_time_after_attempt`, `cwd` (relative to the job directory; it must
//! exist) and `timeout` (seconds; the tools that run commands have their
//! own defaults). A failed step has one of the reasons `retcode` (with the
//! exit code), `step-timeout`, `job-timeout`, `canceled` or `exception`
//! (anything else, with a message).

mod artifacts;
mod cache;
mod cloc;
mod custom;
mod data;
mod git;
pub(crate) use git::url_with_token;
mod gotest;
mod junit;
mod lint;
pub mod process;
mod pytest;
mod rndtest;
mod shell;
mod values;

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
    /// The package (`tool.zip`) of custom tool `tool_id`.
    fn tool_package(&self, tool_id: i64) -> BoxFuture<'_, Result<Vec<u8>, String>>;
    /// Store the local file `local` as file `name` of this job's cache
    /// entry under `key`; [`CACHE_META`] (sent last) completes the entry.
    /// Returns the stored size.
    fn cache_save<'a>(
        &'a self,
        key: &'a str,
        name: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<u64, String>>;
    /// The entry a restore of `key` takes (the newest complete one of this
    /// job's stage and job name), if any.
    fn cache_lookup<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CacheEntry>, String>>;
    /// Write file `name` of cache entry `entry` of `key` to `dest`.
    fn cache_fetch<'a>(
        &'a self,
        key: &'a str,
        entry: i64,
        name: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<u64, String>>;
}

/// The file of a cache entry that lists its archives, sent last.
pub const CACHE_META: &str = "meta.json";

/// A saved cache entry: the id of the job that saved it and its archives
/// (archive name -> the path it was made from, as the step gave it).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// The saving job's id.
    pub id: i64,
    /// Archive name -> path.
    pub files: BTreeMap<String, String>,
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
    /// Where the job's commands run: on the host or in its container.
    pub executor: &'a crate::agent::docker::Executor,
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
///
/// A failed attempt is retried after `sleep_time_after_attempt` seconds
/// while attempts are left, unless the job was canceled or its deadline
/// passed. The outcome is the last attempt's.
pub async fn run_step(run: StepRun<'_>) -> StepOutcome {
    if let crate::agent::docker::Executor::Broken(why) = run.executor {
        log(&run, format!("error: {why}")).await;
        return StepOutcome::error("exception", why.clone());
    }
    let f = Fields(run.fields);
    let (attempts, pause) = match (f.u64("attempts"), f.u64("sleep_time_after_attempt")) {
        (Ok(a), Ok(p)) => (a.unwrap_or(1).max(1), p.unwrap_or(0)),
        (Err(e), _) | (_, Err(e)) => return StepOutcome::error("exception", e),
    };
    let mut limits = job_limits(&run);
    let mut attempt = 1;
    loop {
        if let Some(stop) = limits.check() {
            return stopped(stop, None);
        }
        let outcome = match run_tool(&run).await {
            Ok(o) => o,
            Err(msg) => {
                log(&run, format!("error: {msg}")).await;
                StepOutcome::error("exception", msg)
            }
        };
        let reason = outcome.reason.as_deref().unwrap_or("");
        if outcome.ok || attempt >= attempts || matches!(reason, "canceled" | "job-timeout") {
            return outcome;
        }
        log(
            &run,
            format!(
                "attempt {attempt} of {attempts} failed ({reason}: {}); retrying in {pause} s",
                outcome.msg.as_deref().unwrap_or("")
            ),
        )
        .await;
        if pause > 0 {
            let nap = tokio::time::sleep(Duration::from_secs(pause));
            if let Err(stop) = limits.guard(nap).await {
                return stopped(stop, None);
            }
        }
        attempt += 1;
    }
}

/// The built-in tools.
pub const TOOLS: &[&str] = &[
    "shell",
    "git",
    "artifacts",
    "cache",
    "junit_collect",
    "pytest",
    "data",
    "rndtest",
    "values_collect",
    "cloc",
    "gotest",
    "pylint",
    "nglint",
    "local_tool",
];

async fn run_tool(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    match run.tool {
        "shell" => shell::run(run).await,
        "git" => git::run(run).await,
        "artifacts" => artifacts::run(run).await,
        "cache" => cache::run(run).await,
        "junit_collect" => junit::run(run).await,
        "pytest" => pytest::run(run).await,
        "data" => data::run(run).await,
        "rndtest" => rndtest::run(run).await,
        "values_collect" => values::run(run).await,
        "cloc" => cloc::run(run).await,
        "gotest" => gotest::run(run).await,
        "pylint" => lint::pylint(run).await,
        "nglint" => lint::nglint(run).await,
        "local_tool" => custom::run(run).await,
        // A tool registered on the server: it has a package or a location.
        _ if Fields(run.fields)
            .str("tool_location")?
            .is_some_and(|l| !l.is_empty()) =>
        {
            custom::run(run).await
        }
        other => Err(format!(
            "tool '{other}' is not supported by this agent (built-in tools: {}; custom tools need a package: POST /tools/{other}/zip)",
            TOOLS.join(", ")
        )),
    }
}

/// Typed access to a step's fields; errors name the field.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The raw value; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("field '{key}' must be a string, not {v}")),
        }
    }

    /// A required string field.
    pub fn req_str(&self, key: &str) -> Result<&'a str, String> {
        self.str(key)?
            .ok_or_else(|| format!("field '{key}' is missing in the step"))
    }

    /// A non-negative integer field (a number or a numeric string, as
    /// substituted values are strings).
    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        let bad = || format!("field '{key}' must be a non-negative integer");
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(x), _) => Ok(Some(x)),
                (None, Some(x)) if x >= 0.0 && x.fract() == 0.0 && x < 1e15 => Ok(Some(x as u64)),
                _ => Err(bad()),
            },
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A boolean field (also `"true"`/`"True"`/`"false"`/`"False"`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(format!("field '{key}' must be a boolean, not {v}")),
        }
    }

    /// A string or a list of strings.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>, String> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(format!("field '{key}' must list strings, not {v}")),
                })
                .collect(),
            Some(v) => Err(format!(
                "field '{key}' must be a string or a list of strings, not {v}"
            )),
        }
    }

    /// A map of strings (`env`, `git_cfg`); numbers and booleans are
    /// taken as their text.
    pub fn str_map(&self, key: &str) -> Result<Vec<(String, String)>, String> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                    v => Err(format!("field '{key}.{k}' must be a string, not {v}")),
                })
                .collect(),
            Some(v) => Err(format!("field '{key}' must be an object, not {v}")),
        }
    }
}

/// Send a line to the step's output (a closed output is fine).
pub(crate) async fn log(run: &StepRun<'_>, line: impl Into<String>) {
    let _ = run.output.send(line.into()).await;
}

/// The step's working directory: `cwd` (default `.`) in the job directory;
/// it must exist.
pub(crate) fn step_cwd(run: &StepRun<'_>) -> Result<PathBuf, String> {
    let cwd = Fields(run.fields).str("cwd")?.unwrap_or(".");
    let path = run.job_dir.join(cwd);
    if path.is_dir() {
        Ok(path)
    } else if path.exists() {
        Err(format!(
            "working directory '{cwd}' ({}) is not a directory",
            path.display()
        ))
    } else {
        Err(format!(
            "working directory '{cwd}' ({}) does not exist",
            path.display()
        ))
    }
}

/// The limits of a step without a timeout of its own: the job's deadline and cancel.
pub(crate) fn job_limits(run: &StepRun<'_>) -> process::Limits {
    process::Limits {
        step_end: None,
        timeout_secs: None,
        deadline: tokio::time::Instant::from_std(run.deadline),
        cancel: run.cancel.clone(),
    }
}

/// The limits of a step: `timeout` (or `default` seconds; none when both
/// are absent), the job's deadline and cancel. Its clock starts now.
pub(crate) fn step_limits(
    run: &StepRun<'_>,
    default: Option<u64>,
) -> Result<process::Limits, String> {
    let secs = match Fields(run.fields).u64("timeout")? {
        Some(0) => return Err("field 'timeout' must be at least 1 second".into()),
        Some(t) => Some(t),
        None => default,
    };
    let mut l = job_limits(run);
    l.timeout_secs = secs;
    l.step_end = secs.map(|s| {
        let now = tokio::time::Instant::now();
        now.checked_add(Duration::from_secs(s))
            .unwrap_or(now + Duration::from_secs(86400 * 365))
    });
    Ok(l)
}

/// The environment of a step's processes: the branch's, then `extra`.
pub(crate) fn step_env(run: &StepRun<'_>, extra: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = run
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(extra);
    env
}

/// The outcome of a step stopped by a limit.
pub(crate) fn stopped(stop: process::Stop, timeout_secs: Option<u64>) -> StepOutcome {
    match stop {
        process::Stop::StepTimeout => StepOutcome::error(
            "step-timeout",
            match timeout_secs {
                Some(t) => format!("step timeout of {t} s exceeded"),
                None => "step timeout exceeded".to_string(),
            },
        ),
        process::Stop::JobTimeout => StepOutcome::error("job-timeout", "job deadline reached"),
        process::Stop::Canceled => StepOutcome::error("canceled", "job canceled"),
    }
}

/// The outcome of a command: done on exit code 0.
pub(crate) fn exit_outcome(
    exit: process::Exit,
    what: &str,
    limits: &process::Limits,
) -> StepOutcome {
    match exit {
        process::Exit::Code(0) => StepOutcome {
            retcode: Some(0),
            ..StepOutcome::done()
        },
        process::Exit::Code(c) => StepOutcome {
            retcode: Some(c),
            ..StepOutcome::error(
                "retcode",
                format!("{what} exited with non-zero retcode: {c}"),
            )
        },
        process::Exit::Stopped(s) => stopped(s, limits.timeout_secs),
    }
}

/// Run shell `script` in `cwd` (`/bin/sh -c`) with its standard output
/// going to a file, read back and returned: for tools that parse what a
/// program prints (`cloc --json`, `go test -json`, `pylint -f json`). Its
/// standard error goes to the step's log as it comes. `shown` is what the
/// log says was run.
pub(crate) async fn run_captured(
    run: &StepRun<'_>,
    cwd: &Path,
    shown: &str,
    script: &str,
    limits: &process::Limits,
) -> Result<(process::Exit, String), String> {
    let out = process::TempFile::reserve(&scratch_dir(run)?, "kk-out-", ".txt");
    let cmd = process::Cmd {
        env: step_env(
            run,
            vec![(
                "KK_STEP_OUTPUT".into(),
                out.path().to_string_lossy().into_owned(),
            )],
        ),
        ..process::Cmd::new("/bin/sh", cwd)
            .arg("-c")
            .arg(format!("{script} > \"$KK_STEP_OUTPUT\""))
    };
    log(run, format!("$ {shown}")).await;
    let exit = run_cmd(run, &cmd, limits).await?;
    let text = match std::fs::read(out.path()) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    Ok((exit, text))
}

/// The job's scratch directory (script, key and report files of its
/// steps): next to its work directory, `<jobs>/<id>.tmp`, so that what a
/// step counts or uploads in its work directory never includes them; it is
/// mounted in the job's container too. Created on first use, private.
pub(crate) fn scratch_dir(run: &StepRun<'_>) -> Result<PathBuf, String> {
    scratch_dir_of(run.job_dir)
}

/// [`scratch_dir`] of the job working in `job_dir`.
pub fn scratch_dir_of(job_dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let abs = std::path::absolute(job_dir)
        .map_err(|e| format!("bad job directory {}: {e}", job_dir.display()))?;
    let dir = abs.with_extension("tmp");
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    Ok(dir)
}

/// `cmd` as the job's executor runs it: as is on the host, or through
/// `docker exec` in the job's container.
pub(crate) fn in_executor(run: &StepRun<'_>, cmd: &process::Cmd) -> Result<process::Cmd, String> {
    use crate::agent::docker::Executor;
    match run.executor {
        Executor::Local => Ok(cmd.clone()),
        Executor::Docker(c) => Ok(c.exec(cmd)),
        Executor::Broken(why) => Err(why.clone()),
    }
}

/// Run `cmd` with the step's output, limits and background registry, where
/// the job's executor runs it. In a container, a stopped step has every
/// process of the container killed (killing `docker exec` does not reach
/// them).
pub(crate) async fn run_cmd(
    run: &StepRun<'_>,
    cmd: &process::Cmd,
    limits: &process::Limits,
) -> Result<process::Exit, String> {
    let cmd = in_executor(run, cmd)?;
    let exit = process::run(&cmd, limits, &run.output, run.background).await?;
    if let (crate::agent::docker::Executor::Docker(c), process::Exit::Stopped(_)) =
        (run.executor, &exit)
    {
        c.kill_processes().await;
    }
    Ok(exit)
}
