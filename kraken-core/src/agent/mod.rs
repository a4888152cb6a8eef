//! The job runner: speaks the agent protocol to a Kraken server, runs job
//! steps with the [`tools`], ships their output as it comes and reports
//! results.
//!
//! The loop: `host-info` until authorized; then `get-job` (waiting on the
//! server for up to 20 s); for a job, `get-job-step` until the server says
//! `finish`, running each step and reporting it with `step-result2`. A
//! `keep-alive` every few seconds learns about a cancel; a cancel or the job
//! deadline kills the step's whole process group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::error::Result;
use crate::model::{AgentLogLine, AgentLogs};

pub mod docker;
mod in_process;
pub mod tools;
pub mod transport;

pub use in_process::{InProcessAgent, hostname, in_process_work_dir};
use tools::{ArtifactStore, BackgroundProcs, StepRun};
pub use transport::{Http, InProcess, Transport};

/// How an agent identifies itself and where it works.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Identity at the server (the original uses the IP address).
    pub address: String,
    /// Directory for job work directories.
    pub work_dir: PathBuf,
    /// System name reported in `host-info` (e.g. `debian-12`).
    pub system: String,
    /// How long to wait between retries while unauthorized or unreachable.
    pub retry: Duration,
    /// Stop after one job (for scripts and tests).
    pub one_job: bool,
}

impl AgentConfig {
    /// A configuration with the detected system name.
    pub fn new(address: &str, work_dir: &Path) -> AgentConfig {
        AgentConfig {
            address: address.to_string(),
            work_dir: work_dir.to_path_buf(),
            system: detect_system(),
            retry: Duration::from_secs(5),
            one_job: false,
        }
    }
}

/// The system name as the original agent computes it: `<distro id>-<version>`.
pub fn detect_system() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    match (get("ID"), get("VERSION_ID")) {
        (Some(id), Some(v)) => format!("{id}-{v}"),
        (Some(id), None) => id,
        _ => std::env::consts::OS.to_string(),
    }
}

async fn host_info(system: &str) -> Value {
    let (distro, version) = system.split_once('-').unwrap_or((system, ""));
    let mut info = json!({
        "system": system,
        "system_type": std::env::consts::OS,
        "distro_name": distro,
        "distro_version": version,
        "isolation_type": "bare-metal",
        "isolation": "bare-metal",
    });
    // The executors it can run besides `local`, as the original reports
    // them: the scheduler gives `docker` jobs only to agents that have it.
    if let Some(v) = docker::docker_version().await {
        info["docker"] = json!(v);
    }
    info
}

/// An agent bound to a transport.
pub struct Agent {
    transport: Arc<dyn Transport>,
    cfg: AgentConfig,
}

struct Store {
    transport: Arc<dyn Transport>,
    job_id: i64,
}

impl ArtifactStore for Store {
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
        public: bool,
    ) -> BoxFuture<'a, std::result::Result<u64, String>> {
        async move {
            self.transport
                .upload(self.job_id, dest.to_string(), public, local.to_path_buf())
                .await
                .map(|n| n as u64)
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn download<'a>(
        &'a self,
        source: &'a str,
        dest_dir: &'a Path,
    ) -> BoxFuture<'a, std::result::Result<Vec<PathBuf>, String>> {
        async move {
            let list = self
                .transport
                .list_artifacts(self.job_id, source.to_string())
                .await
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for a in list.as_array().into_iter().flatten() {
                let (Some(path), Some(run_id)) = (
                    a.get("path").and_then(Value::as_str),
                    a.get("run_id").and_then(Value::as_i64),
                ) else {
                    continue;
                };
                let target = dest_dir.join(path);
                self.transport
                    .read_artifact(self.job_id, run_id, path.to_string(), target.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                out.push(target);
            }
            if out.is_empty() {
                return Err(format!("no artifact matches '{source}' in this flow"));
            }
            Ok(out)
        }
        .boxed()
    }

    fn tool_package(&self, tool_id: i64) -> BoxFuture<'_, std::result::Result<Vec<u8>, String>> {
        async move {
            self.transport
                .read_tool(self.job_id, tool_id)
                .await
                .map_err(|e| format!("cannot fetch the package of tool {tool_id}: {e}"))
        }
        .boxed()
    }

    fn cache_save<'a>(
        &'a self,
        key: &'a str,
        name: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, std::result::Result<u64, String>> {
        async move {
            self.transport
                .cache_put(
                    self.job_id,
                    key.to_string(),
                    name.to_string(),
                    local.to_path_buf(),
                )
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn cache_lookup<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, std::result::Result<Option<tools::CacheEntry>, String>> {
        async move {
            let v = self
                .transport
                .cache_entry(self.job_id, key.to_string())
                .await
                .map_err(|e| e.to_string())?;
            let Some(id) = v.get("entry").and_then(Value::as_i64) else {
                return Ok(None);
            };
            let files = v
                .get("files")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, p)| Some((k.clone(), p.as_str()?.to_string())))
                .collect();
            Ok(Some(tools::CacheEntry { id, files }))
        }
        .boxed()
    }

    fn cache_fetch<'a>(
        &'a self,
        key: &'a str,
        entry: i64,
        name: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, std::result::Result<u64, String>> {
        async move {
            self.transport
                .cache_read(
                    self.job_id,
                    key.to_string(),
                    entry,
                    name.to_string(),
                    dest.to_path_buf(),
                )
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}

impl Agent {
    /// An agent talking through `transport`.
    pub fn new(transport: Arc<dyn Transport>, cfg: AgentConfig) -> Agent {
        Agent { transport, cfg }
    }

    /// Run until `stop` turns true (or after one job with `one_job`).
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        loop {
            if !self.register(&mut stop).await {
                return;
            }
            tracing::info!(address = %self.cfg.address, "agent authorized");
            match self.take_jobs(&mut stop).await {
                Next::Stop => return,
                Next::Register => {}
            }
        }
    }

    /// Send `host-info` until authorized; false when told to stop first.
    async fn register(&self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            if *stop.borrow() {
                return false;
            }
            let mut hi = self.msg("host-info");
            hi["info"] = host_info(&self.cfg.system).await;
            match self.transport.call(hi).await {
                Ok(r) if r.get("unauthorized").is_none() && r.get("error").is_none() => {
                    return true;
                }
                Ok(r) if r.get("error").is_some() => {
                    tracing::warn!(answer = %r, "server refused host info");
                }
                Ok(_) => tracing::info!(address = %self.cfg.address, "not authorized yet: waiting"),
                Err(e) => {
                    tracing::warn!(error = %e, "server refused the agent or cannot be reached");
                }
            }
            if wait_or_stop(stop, self.cfg.retry).await {
                return false;
            }
        }
    }

    fn msg(&self, m: &str) -> Value {
        json!({"address": self.cfg.address, "msg": m})
    }

    /// Ask for jobs and run them until stopped, or until the server no
    /// longer knows the agent (then it registers again).
    async fn take_jobs(&self, stop: &mut watch::Receiver<bool>) -> Next {
        loop {
            if *stop.borrow() {
                return Next::Stop;
            }
            let mut gj = self.msg("get-job");
            gj["wait"] = json!(20);
            let answer = tokio::select! {
                r = self.transport.call(gj) => r,
                _ = stop.changed() => return Next::Stop,
            };
            match answer {
                Ok(r) if r.get("unauthorized").is_some() => {
                    tracing::warn!("agent lost its authorization: waiting");
                    return Next::Register;
                }
                Ok(r) => {
                    let job = r.get("job").cloned().unwrap_or(Value::Null);
                    if job.get("id").and_then(Value::as_i64).is_some() {
                        if let Err(e) = self.run_job(&job, stop.clone()).await {
                            tracing::warn!(error = %e, "job failed on the agent");
                            if wait_or_stop(stop, Duration::from_secs(1)).await {
                                return Next::Stop;
                            }
                        }
                        if self.cfg.one_job {
                            return Next::Stop;
                        }
                    }
                }
                Err(crate::error::Error::Unauthorized(m)) => {
                    tracing::warn!(error = %m, "the server does not know this agent: registering again");
                    if wait_or_stop(stop, self.cfg.retry).await {
                        return Next::Stop;
                    }
                    return Next::Register;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the server");
                    if wait_or_stop(stop, self.cfg.retry).await {
                        return Next::Stop;
                    }
                }
            }
        }
    }

    async fn run_job(&self, job: &Value, stop: watch::Receiver<bool>) -> Result<()> {
        let job_id = job.get("id").and_then(Value::as_i64).unwrap_or(0);
        let timeout = job
            .get("timeout")
            .and_then(Value::as_i64)
            .unwrap_or(300)
            .max(1);
        let deadline = Instant::now() + Duration::from_secs(timeout as u64);
        let secrets: Vec<String> = job
            .get("secrets")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let jobs_dir = self.cfg.work_dir.join("jobs");
        if let Ok(mut rd) = tokio::fs::read_dir(&jobs_dir).await {
            while let Ok(Some(e)) = rd.next_entry().await {
                let _ = tokio::fs::remove_dir_all(e.path()).await;
            }
        }
        let job_dir = jobs_dir.join(job_id.to_string());
        tokio::fs::create_dir_all(&job_dir).await.map_err(|e| {
            crate::error::Error::internal(format!("cannot create {}: {e}", job_dir.display()))
        })?;
        tracing::info!(job = job_id, "running job");
        let executor = self.executor(job, job_id, &job_dir).await;

        let (cancel_tx, cancel_rx) = watch::channel(false);
        let cancel_tx = Arc::new(cancel_tx);
        // Set when the agent itself stops: the step is killed but not
        // reported, so the job goes on when the agent (or its server) returns.
        let abandon = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Keep-alive: learn about a cancel while a step runs; a stopping agent cancels too.
        let ka = {
            let transport = self.transport.clone();
            let address = self.cfg.address.clone();
            let cancel_tx = cancel_tx.clone();
            let abandon = abandon.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(3)) => {}
                        _ = stop.changed() => {
                            abandon.store(true, std::sync::atomic::Ordering::SeqCst);
                            let _ = cancel_tx.send(true);
                            return;
                        }
                    }
                    let r = transport
                        .call(json!({"address": address, "msg": "keep-alive", "job_id": job_id}))
                        .await;
                    if let Ok(r) = r
                        && r.get("cancel").and_then(Value::as_bool) == Some(true)
                    {
                        let _ = cancel_tx.send(true);
                    }
                }
            })
        };
        let background = BackgroundProcs::default();
        let store = Store {
            transport: self.transport.clone(),
            job_id,
        };
        let outcome = self
            .run_steps(
                job_id,
                &job_dir,
                deadline,
                &cancel_rx,
                &cancel_tx,
                &abandon,
                &secrets,
                &store,
                &background,
                &executor,
            )
            .await;
        ka.abort();
        background.kill_all(Duration::from_secs(2)).await;
        if let docker::Executor::Docker(c) = executor {
            c.remove().await;
        }
        outcome
    }

    /// Where job `job`'s steps run: on this host (`local`), or in a
    /// container of the image its system names (`docker`); any other
    /// executor, or a container that cannot start, fails every step.
    async fn executor(&self, job: &Value, job_id: i64, job_dir: &Path) -> docker::Executor {
        let kind = job
            .get("executor")
            .and_then(Value::as_str)
            .unwrap_or("local");
        match kind {
            "local" | "" => docker::Executor::Local,
            "docker" => {
                docker::remove_leftovers(&self.cfg.work_dir).await;
                let image = job.get("system").and_then(Value::as_str).unwrap_or("");
                let scratch = match tools::scratch_dir_of(job_dir) {
                    Ok(d) => d,
                    Err(e) => return docker::Executor::Broken(e),
                };
                let network = job.get("network").and_then(Value::as_str);
                let started = Instant::now();
                match docker::Container::start(
                    job_id,
                    image,
                    &self.cfg.work_dir,
                    &[job_dir.to_path_buf(), scratch],
                    network,
                )
                .await
                {
                    Ok(c) => {
                        tracing::info!(
                            job = job_id,
                            container = c.name(),
                            image,
                            ms = started.elapsed().as_millis() as u64,
                            "job container started"
                        );
                        docker::Executor::Docker(c)
                    }
                    Err(e) => docker::Executor::Broken(e),
                }
            }
            other => docker::Executor::Broken(format!(
                "executor '{other}' is not supported by this agent (it runs local and docker jobs)"
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_steps(
        &self,
        job_id: i64,
        job_dir: &Path,
        deadline: Instant,
        cancel_rx: &watch::Receiver<bool>,
        cancel_tx: &Arc<watch::Sender<bool>>,
        abandon: &std::sync::atomic::AtomicBool,
        secrets: &[String],
        store: &Store,
        background: &BackgroundProcs,
        executor: &docker::Executor,
    ) -> Result<()> {
        let address = self.cfg.address.clone();
        let mut first = true;
        loop {
            let r = self
                .transport
                .call(json!({"address": address, "msg": "get-job-step"}))
                .await?;
            let step = r
                .get("job_step")
                .cloned()
                .unwrap_or_else(|| json!({"finish": true}));
            if step.get("finish").and_then(Value::as_bool) != Some(false) {
                return Ok(());
            }
            let idx = step.get("index").and_then(Value::as_i64).unwrap_or(0);
            let tool = step
                .get("tool")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let fields: Map<String, Value> = step.as_object().cloned().unwrap_or_default();
            let env: BTreeMap<String, String> = step
                .get("branch_env")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let report = |result: Value| json!({"address": address, "msg": "step-result2", "job_id": job_id, "step_idx": idx, "result": result});
            let r = self
                .transport
                .call(report(json!({"status": "in-progress"})))
                .await?;
            if r.get("cancel").and_then(Value::as_bool) == Some(true) {
                let _ = cancel_tx.send(true);
            }

            // Ship output lines as they come: a batch per 100 ms, 4,096
            // lines or 8 MiB. One batch is in flight at a time (the lines
            // are stored in order) while the next one is gathered, so the
            // server stores a chatty step's lines back to back.
            let (out_tx, mut out_rx) = mpsc::channel::<String>(4096);
            let pump = {
                let transport = self.transport.clone();
                let address = address.clone();
                let secrets = secrets.to_vec();
                let cancel_tx = cancel_tx.clone();
                let tool = tool.clone();
                let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<AgentLogLine>>(1);
                let sender = tokio::spawn(async move {
                    while let Some(lines) = batch_rx.recv().await {
                        let logs = AgentLogs {
                            address: address.clone(),
                            job_id,
                            step_idx: idx,
                            lines,
                        };
                        match transport.send_logs(logs).await {
                            Ok(r) if r.get("cancel").and_then(Value::as_bool) == Some(true) => {
                                let _ = cancel_tx.send(true);
                            }
                            Ok(_) => {}
                            // The job no longer runs (canceled or finished).
                            Err(crate::error::Error::Conflict(_)) => {
                                let _ = cancel_tx.send(true);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot ship log lines"),
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut open = true;
                    while open {
                        let mut batch = Vec::new();
                        let mut bytes = 0;
                        let tick = tokio::time::sleep(Duration::from_millis(100));
                        tokio::pin!(tick);
                        loop {
                            tokio::select! {
                                line = out_rx.recv() => match line {
                                    Some(l) => {
                                        bytes += l.len();
                                        batch.push(AgentLogLine {
                                            message: crate::mask::mask_secrets(&l, &secrets),
                                            time: Some(chrono::Utc::now().timestamp_millis()),
                                            level: None,
                                            tool: Some(tool.clone()),
                                        });
                                        // Lines are up to 64 KiB: 8 MiB keeps a
                                        // batch well under the server's body limit.
                                        if batch.len() >= 4096 || bytes >= 8 << 20 { break; }
                                    }
                                    None => { open = false; break; }
                                },
                                _ = &mut tick => break,
                            }
                        }
                        if !batch.is_empty() && batch_tx.send(batch).await.is_err() {
                            break;
                        }
                    }
                    drop(batch_tx);
                    let _ = sender.await;
                })
            };
            if std::mem::take(&mut first)
                && let docker::Executor::Docker(c) = executor
            {
                let _ = out_tx
                    .send(format!(
                        "running in docker container {} of image {}",
                        c.name(),
                        c.image()
                    ))
                    .await;
            }
            let started = Instant::now();
            let outcome = tools::run_step(StepRun {
                tool: &tool,
                fields: &fields,
                job_dir,
                env: &env,
                deadline,
                cancel: cancel_rx.clone(),
                output: out_tx,
                artifacts: store,
                background,
                executor,
            })
            .await;
            // All output is stored before the result is reported.
            let _ = pump.await;
            if abandon.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::info!(
                    job = job_id,
                    step = idx,
                    "agent stopping: the step will run again when it returns"
                );
                return Ok(());
            }
            let mut result = outcome.to_result();
            result["duration"] = json!(started.elapsed().as_secs());
            let r = self.transport.call(report(result)).await?;
            if r.get("cancel").and_then(Value::as_bool) == Some(true) {
                let _ = cancel_tx.send(true);
            }
            if *cancel_rx.borrow() {
                tracing::info!(job = job_id, "job canceled");
            }
        }
    }
}

/// What the agent does after its job loop ends.
enum Next {
    Stop,
    Register,
}

/// The generated identity of the agent working in `work_dir`
/// (`work_dir/agent.id`, made up on first use: 128 random bits in hex).
pub fn work_dir_identity(work_dir: &Path) -> Result<String> {
    let io = |e: std::io::Error| {
        crate::error::Error::internal(format!("agent work dir {}: {e}", work_dir.display()))
    };
    std::fs::create_dir_all(work_dir).map_err(io)?;
    let file = work_dir.join("agent.id");
    if let Ok(id) = std::fs::read_to_string(&file)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let bytes: [u8; 16] = rand::random();
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&file, &id).map_err(io)?;
    Ok(id)
}

/// Lock an agent's work dir for this process: one agent per work dir (its
/// identity and key live there). The lock holds while the file is open.
pub fn lock_work_dir(work_dir: &Path) -> Result<std::fs::File> {
    let io = |e: std::io::Error| {
        crate::error::Error::internal(format!("agent work dir {}: {e}", work_dir.display()))
    };
    std::fs::create_dir_all(work_dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(work_dir.join("agent.lock"))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(crate::error::Error::Conflict(format!(
            "agent work dir {} is in use by another agent (or server): give each agent its own",
            work_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Sleep for `d` unless `stop` turns true first; returns whether to stop.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}
