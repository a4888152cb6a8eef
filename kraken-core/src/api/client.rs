//! The [`Kraken`] handle: the same typed methods over an in-process
//! database (`Kraken::open`, feature `local`) or a remote server
//! ([`Kraken::connect`], feature `client`). The CLI, the TUI and embedding
//! programs use it and never know which.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[cfg(feature = "local")]
use super::{Config, Core, Local};
use crate::error::{Error, Result};
use crate::model::LogFilter;
use crate::model::*;
use crate::model::{IssueFilter, TcrFilter};
#[cfg(feature = "local")]
use crate::store::Store;

/// A handle on Kraken: in process, or over HTTP.
#[derive(Clone)]
pub struct Kraken {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// The runtime is only held: it runs the engine while handles live.
    #[cfg(feature = "local")]
    Local(Local, #[allow(dead_code)] Option<Arc<LocalRuntime>>),
    Remote(Arc<Remote>),
}

impl std::fmt::Debug for Kraken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => write!(f, "Kraken(local, {})", k.core().database_url()),
            Backend::Remote(r) => write!(f, "Kraken(remote, {})", r.base),
        }
    }
}

/// The engine and agent of an in-process Kraken, running while a handle lives.
#[cfg(feature = "local")]
struct LocalRuntime {
    _engine: crate::engine::EngineLoops,
    stop: tokio::sync::watch::Sender<bool>,
    agent: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "local")]
impl Drop for LocalRuntime {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.agent.abort();
    }
}

/// How long an API call may take (streams have no limit).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// An error and its causes, e.g. `error sending request: connection refused`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

/// An HTTP client of the REST API.
struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// What a follower of a job's log receives.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowEvent {
    /// A log line.
    Line(LogLine),
    /// The job's state changed.
    State {
        /// State (see [`job_state`]).
        state: i64,
        /// Completion status, once completed.
        completion_status: Option<i64>,
    },
    /// The job is completed and every line was delivered.
    End {
        /// Completion status.
        completion_status: Option<i64>,
    },
}

/// Values that become query parameters.
pub trait QueryValue {
    /// Append `key=value` pairs.
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>);
}

impl QueryValue for i64 {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        out.push((key.into(), self.to_string()));
    }
}
impl QueryValue for bool {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        out.push((key.into(), self.to_string()));
    }
}
impl QueryValue for str {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        out.push((key.into(), self.to_string()));
    }
}
impl QueryValue for String {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        out.push((key.into(), self.clone()));
    }
}
impl<T: QueryValue + ?Sized> QueryValue for &T {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        (**self).push_query(key, out);
    }
}
impl<T: QueryValue> QueryValue for Option<T> {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        if let Some(v) = self {
            v.push_query(key, out);
        }
    }
}
impl<T: QueryValue> QueryValue for [T] {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        for v in self {
            v.push_query(key, out);
        }
    }
}
impl<T: QueryValue> QueryValue for Vec<T> {
    fn push_query(&self, key: &str, out: &mut Vec<(String, String)>) {
        self.as_slice().push_query(key, out);
    }
}
impl QueryValue for Paging {
    fn push_query(&self, _key: &str, out: &mut Vec<(String, String)>) {
        self.start.push_query("start", out);
        self.limit.push_query("limit", out);
        self.sort_field.push_query("sort_field", out);
        self.sort_dir.push_query("sort_dir", out);
    }
}
impl QueryValue for LogPaging {
    fn push_query(&self, _key: &str, out: &mut Vec<(String, String)>) {
        self.start.push_query("start", out);
        self.limit.push_query("limit", out);
        self.order.push_query("order", out);
    }
}
impl QueryValue for LogFilter {
    fn push_query(&self, _key: &str, out: &mut Vec<(String, String)>) {
        self.branch_id.push_query("branch_id", out);
        self.flow_kind.push_query("flow_kind", out);
        self.flow_id.push_query("flow_id", out);
        self.run_id.push_query("run_id", out);
        self.job_id.push_query("job_id", out);
        self.step.push_query("step_idx", out);
        self.agent_id.push_query("agent_id", out);
        self.services.push_query("services", out);
        self.level.push_query("level", out);
    }
}
impl QueryValue for TcrFilter {
    fn push_query(&self, _key: &str, out: &mut Vec<(String, String)>) {
        self.statuses.push_query("statuses", out);
        self.changes.push_query("changes", out);
        self.min_age.push_query("min_age", out);
        self.max_age.push_query("max_age", out);
        self.min_instability.push_query("min_instability", out);
        self.max_instability.push_query("max_instability", out);
        self.text.push_query("test_case_text", out);
        self.job.push_query("job", out);
        self.systems.push_query("systems", out);
        self.groups.push_query("groups", out);
    }
}
impl QueryValue for IssueFilter {
    fn push_query(&self, _key: &str, out: &mut Vec<(String, String)>) {
        self.types.push_query("issue_types", out);
        self.location.push_query("location", out);
        self.message.push_query("message", out);
        self.symbol.push_query("symbol", out);
        self.min_age.push_query("min_age", out);
        self.max_age.push_query("max_age", out);
        self.job.push_query("job", out);
    }
}

impl Remote {
    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}/api{}", self.base, path));
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            Error::Transport(format!(
                "cannot reach the Kraken server at {}: {}",
                self.base,
                error_chain(&e)
            ))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .or_else(|| v.get("detail"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                if body.is_empty() {
                    status.to_string()
                } else {
                    body
                }
            });
        // The original's long Flask text for a bad token says nothing a
        // person can act on.
        let msg = if status.as_u16() == 401 && msg == super::INVALID_TOKEN {
            if self.token.is_some() {
                "the session is invalid or expired: run `kraken login`".to_string()
            } else {
                "not logged in: run `kraken login` (or pass a token)".to_string()
            }
        } else {
            msg
        };
        Err(Error::from_status(status.as_u16(), msg))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> Result<T> {
        // A server that accepts the connection but never answers must not hang us.
        let mut req = self.request(method, path, query).timeout(CALL_TIMEOUT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = self.send(req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Transport(format!("reading the answer of {path}: {e}")))?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| {
            Error::Transport(format!(
                "unexpected answer from {path} (is this a Kraken server?): {e}"
            ))
        })
    }
}

macro_rules! ops {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty =
            $method:ident ($path:literal $(, $parg:expr)*)
            $([$($qk:literal => $qv:expr),* $(,)?])?
            $({$body:expr})?;
    )*) => {
        impl Kraken {
            $(
                $(#[$doc])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    match &self.backend {
                        #[cfg(feature = "local")]
                        Backend::Local(k, _) => k.$name($($arg),*).await,
                        Backend::Remote(r) => {
                            let path = format!($path $(, $parg)*);
                            #[allow(unused_mut)]
                            let mut q: Vec<(String, String)> = Vec::new();
                            $($( QueryValue::push_query(&$qv, $qk, &mut q); )*)?
                            #[allow(unused_mut, unused_assignments)]
                            let mut body: Option<Value> = None;
                            $( body = Some(serde_json::to_value($body)?); )?
                            r.call(Method::$method, &path, &q, body).await
                        }
                    }
                }
            )*
        }
    };
}

ops! {
    /// `GET /sessions/{token}`.
    fn get_session(token: &str) -> Session = GET ("/sessions/{}", token);
    /// `GET /users`.
    fn get_users(paging: &Paging) -> List<User> = GET ("/users") ["" => paging];
    /// `POST /users`.
    fn create_user(input: &NewUser) -> User = POST ("/users") {input};
    /// `GET /users/{id}`.
    fn get_user(id: i64) -> User = GET ("/users/{}", id);
    /// `PATCH /users/{id}`.
    fn change_user_details(id: i64, input: &UserChanges) -> User = PATCH ("/users/{}", id) {input};
    /// `PUT /users/{id}/password`.
    fn change_password(id: i64, input: &PasswordChange) -> Empty = PUT ("/users/{}/password", id) {input};

    /// `GET /projects`.
    fn get_projects() -> List<Project> = GET ("/projects");
    /// `POST /projects`.
    fn create_project(input: &NewProject) -> Project = POST ("/projects") {input};
    /// `GET /projects/{id}`.
    fn get_project(id: i64, with_results: bool) -> Project = GET ("/projects/{}", id) ["with_results" => with_results];
    /// `PUT /projects/{id}`.
    fn update_project(id: i64, input: &ProjectChanges) -> Project = PUT ("/projects/{}", id) {input};
    /// `DELETE /projects/{id}`.
    fn delete_project(id: i64) -> Empty = DELETE ("/projects/{}", id);
    /// `POST /projects/{id}/secrets`.
    fn create_secret(project_id: i64, input: &SecretInput) -> Secret = POST ("/projects/{}/secrets", project_id) {input};
    /// `PUT /secrets/{id}`.
    fn update_secret(id: i64, input: &SecretInput) -> Secret = PUT ("/secrets/{}", id) {input};
    /// `DELETE /secrets/{id}`.
    fn delete_secret(id: i64) -> Empty = DELETE ("/secrets/{}", id);

    /// `POST /projects/{id}/branches`.
    fn create_branch(project_id: i64, input: &NewBranch) -> Branch = POST ("/projects/{}/branches", project_id) {input};
    /// `PUT /branches/{id}`.
    fn update_branch(id: i64, input: &BranchChanges) -> Branch = PUT ("/branches/{}", id) {input};
    /// `DELETE /branches/{id}`.
    fn delete_branch(id: i64) -> Empty = DELETE ("/branches/{}", id);
    /// `GET /branches/{id}/cfg`.
    fn get_branch(id: i64) -> Branch = GET ("/branches/{}/cfg", id);
    /// `GET /branches/{id}/sequences`.
    fn get_branch_sequences(id: i64) -> List<BranchSequence> = GET ("/branches/{}/sequences", id);
    /// `PUT /sequences/{id}`.
    fn update_branch_sequence(id: i64, input: &SequenceValue) -> BranchSequence = PUT ("/sequences/{}", id) {input};
    /// `PUT /branches/{id}/project_id`.
    fn move_branch(id: i64, input: &MoveBranch) -> Branch = PUT ("/branches/{}/project_id", id) {input};
    /// `PUT /branches/{id}/retention_policy`.
    fn update_branch_retention_policy(id: i64, policy: &RetentionPolicy) -> RetentionPolicy = PUT ("/branches/{}/retention_policy", id) {policy};
    /// `POST /branches/{id}/env_vars`.
    fn create_branch_env_var(id: i64, input: &EnvVar) -> Empty = POST ("/branches/{}/env_vars", id) {input};
    /// `DELETE /branches/{id}/env_vars/{name}`.
    fn delete_branch_env_var(id: i64, name: &str) -> Empty = DELETE ("/branches/{}/env_vars/{}", id, name);
    /// `GET /branches/{id}/stats`.
    fn get_branch_stats(id: i64) -> BranchStats = GET ("/branches/{}/stats", id);

    /// `GET /branches/{id}/flows/{kind}`.
    fn get_flows(branch_id: i64, kind: &str, start: Option<i64>, limit: Option<i64>, middle: Option<i64>) -> List<Flow> =
        GET ("/branches/{}/flows/{}", branch_id, kind) ["start" => start, "limit" => limit, "middle" => middle];
    /// `POST /branches/{id}/flows/{kind}`.
    fn create_flow(branch_id: i64, kind: &str, input: &NewFlow) -> Flow = POST ("/branches/{}/flows/{}", branch_id, kind) {input};
    /// `GET /flows/{id}`.
    fn get_flow(id: i64) -> Flow = GET ("/flows/{}", id);
    /// `GET /flows/{id}/runs`.
    fn get_flow_runs(id: i64) -> Vec<Run> = GET ("/flows/{}/runs", id);
    /// `POST /flows/{id}/runs`.
    fn create_run(flow_id: i64, input: &NewRun) -> Run = POST ("/flows/{}/runs", flow_id) {input};
    /// `GET /flows/{id}/artifacts`.
    fn get_flow_artifacts(flow_id: i64) -> List<Artifact> = GET ("/flows/{}/artifacts", flow_id);
    /// `GET /flows/{id}/analysis`.
    fn get_flow_analysis(flow_id: i64) -> Value = GET ("/flows/{}/analysis", flow_id);
    /// `GET /flows/{id}/history`.
    fn get_branch_history(flow_id: i64, limit: Option<i64>) -> List<Value> = GET ("/flows/{}/history", flow_id) ["limit" => limit];

    /// `POST /branches/{id}/stages`.
    fn create_stage(branch_id: i64, input: &StageInput) -> Stage = POST ("/branches/{}/stages", branch_id) {input};
    /// `GET /stages/{id}`.
    fn get_stage(id: i64) -> Stage = GET ("/stages/{}", id);
    /// `PUT /stages/{id}`.
    fn update_stage(id: i64, input: &StageInput) -> Stage = PUT ("/stages/{}", id) {input};
    /// `DELETE /stages/{id}`.
    fn delete_stage(id: i64) -> Empty = DELETE ("/stages/{}", id);
    /// `PUT /stages/{id}/schema`.
    fn get_stage_schema_as_json(id: i64, input: &StageSchemaCode) -> StageSchemaPreview = PUT ("/stages/{}/schema", id) {input};
    /// `GET /stages/{id}/schedule`.
    fn get_stage_schedule(id: i64) -> StageSchedule = GET ("/stages/{}/schedule", id);
    /// `GET /stages/{id}/runs`.
    fn get_stage_runs(stage_id: i64, limit: Option<i64>) -> Vec<Run> = GET ("/stages/{}/runs", stage_id) ["limit" => limit];

    /// `GET /runs/{id}`.
    fn get_run(id: i64) -> Run = GET ("/runs/{}", id);
    /// `GET /runs/{id}/notifications`.
    fn get_run_notifications(run_id: i64) -> Vec<RunNotification> = GET ("/runs/{}/notifications", run_id);
    /// `PUT /runs/{id}`: start a manual run or replay.
    fn run_run_jobs(run_id: i64) -> Run = PUT ("/runs/{}", run_id);
    /// `POST /runs/{id}`: analyse again.
    fn force_run_analysis(run_id: i64) -> Run = POST ("/runs/{}", run_id);
    /// `DELETE /runs/{id}`: cancel.
    fn cancel_run(run_id: i64) -> Empty = DELETE ("/runs/{}", run_id);
    /// `GET /runs/{id}/jobs`.
    fn get_run_jobs(run_id: i64, paging: &Paging, include_covered: bool) -> List<Job> =
        GET ("/runs/{}/jobs", run_id) ["" => paging, "include_covered" => include_covered];
    /// `GET /runs/{id}/artifacts`.
    fn get_run_artifacts(run_id: i64, paging: &Paging) -> List<Artifact> = GET ("/runs/{}/artifacts", run_id) ["" => paging];
    /// `GET /runs/{id}/results`.
    fn get_run_results(run_id: i64, filter: &TcrFilter, paging: &Paging) -> List<TestCaseResult> =
        GET ("/runs/{}/results", run_id) ["" => filter, "" => paging];
    /// `GET /runs/{id}/issues`.
    fn get_run_issues(run_id: i64, filter: &IssueFilter, paging: &Paging) -> List<Issue> =
        GET ("/runs/{}/issues", run_id) ["" => filter, "" => paging];

    /// `GET /test_case_results/{id}`.
    fn get_result(id: i64) -> TestCaseResult = GET ("/test_case_results/{}", id);
    /// `GET /test_case_results/{id}/history`.
    fn get_result_history(id: i64, paging: &Paging) -> List<TestCaseResult> = GET ("/test_case_results/{}/history", id) ["" => paging];
    /// `POST /test_case_results/{id}/comment`.
    fn create_or_update_test_case_comment(id: i64, input: &CommentInput) -> TestCaseResult = POST ("/test_case_results/{}/comment", id) {input};

    /// `POST /jobs`.
    fn create_job(input: &NewJob) -> Empty = POST ("/jobs") {input};
    /// `GET /jobs/{id}`.
    fn get_job(id: i64) -> Job = GET ("/jobs/{}", id);
    /// `PUT /jobs/{id}`: rerun.
    fn job_rerun(job_id: i64) -> Job = PUT ("/jobs/{}", job_id);
    /// `DELETE /jobs/{id}`: cancel.
    fn delete_job(job_id: i64) -> Empty = DELETE ("/jobs/{}", job_id);
    /// `GET /jobs/{id}/logs`.
    fn get_job_logs(job_id: i64, paging: &LogPaging, internals: bool, text: Option<&str>) -> Logs =
        GET ("/jobs/{}/logs", job_id) ["" => paging, "internals" => internals, "filters" => text];
    /// `GET /jobs/{id}/{step}/logs`.
    fn get_step_logs(job_id: i64, step_idx: i64, paging: &LogPaging, text: Option<&str>) -> Logs =
        GET ("/jobs/{}/{}/logs", job_id, step_idx) ["" => paging, "filters" => text];
    /// `GET /logs`.
    fn get_logs(filter: &LogFilter, paging: &LogPaging) -> Logs = GET ("/logs") ["" => filter, "" => paging];
    /// `GET /services-logs`.
    fn get_services_logs(services: &[String], level: Option<&str>) -> Logs = GET ("/services-logs") ["services" => services, "level" => level];

    /// `GET /agents`.
    fn get_agents(unauthorized: bool, paging: &Paging) -> List<Agent> = GET ("/agents") ["unauthorized" => unauthorized, "" => paging];
    /// `PATCH /agents`.
    fn update_agents(items: &[AgentAuthorization]) -> Empty = PATCH ("/agents") {items};
    /// `GET /agents/{id}`.
    fn get_agent(id: i64) -> Agent = GET ("/agents/{}", id);
    /// `PUT /agents/{id}`.
    fn update_agent(id: i64, input: &AgentChanges) -> Agent = PUT ("/agents/{}", id) {input};
    /// `DELETE /agents/{id}`.
    fn delete_agent(id: i64) -> Empty = DELETE ("/agents/{}", id);
    /// `GET /agents/{id}/jobs`.
    fn get_agent_jobs(agent_id: i64, paging: &Paging) -> List<Job> = GET ("/agents/{}/jobs", agent_id) ["" => paging];
    /// `GET /groups`.
    fn get_groups(paging: &Paging) -> List<Group> = GET ("/groups") ["" => paging];
    /// `POST /groups`.
    fn create_group(input: &GroupInput) -> Group = POST ("/groups") {input};
    /// `GET /groups/{id}`.
    fn get_group(id: i64) -> Group = GET ("/groups/{}", id);
    /// `PUT /groups/{id}`.
    fn update_group(id: i64, input: &GroupInput) -> Group = PUT ("/groups/{}", id) {input};
    /// `DELETE /groups/{id}`.
    fn delete_group(id: i64) -> Empty = DELETE ("/groups/{}", id);
    /// `GET /systems`.
    fn get_systems() -> List<System> = GET ("/systems");

    /// `GET /tools`.
    fn get_tools(paging: &Paging) -> List<Tool> = GET ("/tools") ["" => paging];
    /// `GET /tools/{name}`.
    fn get_tool_versions(name: &str, paging: &Paging) -> List<Tool> = GET ("/tools/{}", name) ["" => paging];
    /// `POST /tools`.
    fn create_or_update_tool(input: &ToolInput) -> Tool = POST ("/tools") {input};
    /// `DELETE /tools/{id}`.
    fn delete_tool(id: i64) -> Empty = DELETE ("/tools/{}", id);
    /// `GET /workflow-schema`.
    fn get_workflow_schema() -> Value = GET ("/workflow-schema");

    /// `GET /version`.
    fn get_server_version() -> ServerVersion = GET ("/version");
    /// `GET /settings`.
    fn get_settings() -> Value = GET ("/settings");
    /// `PUT /settings`.
    fn update_settings(changes: &Value) -> Value = PUT ("/settings") {changes};
    /// `GET /user_data`.
    fn get_user_data(scope: &str, entity_id: i64) -> UserData = GET ("/user_data") ["scope" => scope, "entity_id" => entity_id];
    /// `GET /live-data`.
    fn get_live_data() -> LiveData = GET ("/live-data");
    /// `GET /last-rq-jobs`.
    fn get_last_rq_jobs() -> Value = GET ("/last-rq-jobs");
}

impl Kraken {
    #[cfg(feature = "local")]
    /// Open a database in process (`sqlite://ci.db`, `postgres://...`),
    /// acting as the local administrator, with the engine and one agent
    /// running in this process while the handle (or a clone) lives. Files
    /// (artifacts, work directories) go to `data_dir`.
    pub async fn open_with(url: &str, data_dir: &std::path::Path) -> Result<Kraken> {
        let store = Store::open(url).await?;
        let core = Core::open(
            store,
            Config {
                data_dir: data_dir.to_path_buf(),
                ..Config::default()
            },
        )
        .await?;
        Self::local(core, true).await
    }

    #[cfg(feature = "local")]
    /// Open a database in process (see [`Kraken::open_with`]); files go
    /// next to an SQLite database (`<file>.files/`) or to `./kraken-data`.
    pub async fn open(url: &str) -> Result<Kraken> {
        let data_dir = url
            .strip_prefix("sqlite://")
            .filter(|p| !p.contains(":memory:"))
            .map(|p| {
                std::path::PathBuf::from(format!("{}.files", p.split('?').next().unwrap_or(p)))
            })
            .unwrap_or_else(|| std::path::PathBuf::from("kraken-data"));
        Self::open_with(url, &data_dir).await
    }

    #[cfg(feature = "local")]
    /// A handle on an already open core, as its administrator; with
    /// `run_engine`, the engine and one built-in agent run while it lives.
    pub async fn local(core: Arc<Core>, run_engine: bool) -> Result<Kraken> {
        let runtime = if run_engine {
            // The agent is claimed (and marked seen) before the engine's
            // first pass, so a job it held when its last process exited is
            // resumed rather than taken for a dead agent's.
            let agent = crate::agent::InProcessAgent::new(core.clone());
            let claimed = agent.claim().await?;
            let engine = core.start_engine();
            let (stop, rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(agent.run(claimed, rx));
            Some(Arc::new(LocalRuntime {
                _engine: engine,
                stop,
                agent: task,
            }))
        } else {
            None
        };
        Ok(Kraken {
            backend: Backend::Local(core.local_admin(), runtime),
        })
    }

    /// The server's base URL (`http://host:8080`) for a handle on a remote
    /// server; `None` in process.
    pub fn base_url(&self) -> Option<&str> {
        match &self.backend {
            Backend::Remote(r) => Some(&r.base),
            #[cfg(feature = "local")]
            Backend::Local(..) => None,
        }
    }

    /// A handle on a remote server (`http://host:8080`) with a bearer token.
    pub fn connect(base: &str, token: Option<String>) -> Result<Kraken> {
        let base = server_base(base)?;
        let http = http_client()?;
        Ok(Kraken {
            backend: Backend::Remote(Arc::new(Remote { base, token, http })),
        })
    }

    /// Log in to a remote server: the session (its token) and a handle using it.
    pub async fn login(base: &str, user: &str, password: &str) -> Result<(Kraken, Session)> {
        let base = server_base(base)?;
        let base = base.as_str();
        let r = Remote {
            base: base.to_string(),
            token: None,
            http: http_client()?,
        };
        let input = Login {
            user: Some(user.into()),
            password: Some(password.into()),
            method: None,
            oidc_provider: None,
        };
        let session: Session = r
            .call(
                Method::POST,
                "/sessions",
                &[],
                Some(serde_json::to_value(&input)?),
            )
            .await?;
        let k = Self::connect(base, Some(session.token.clone()))?;
        Ok((k, session))
    }

    /// Whether this handle works in process.
    pub fn is_local(&self) -> bool {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(..) => true,
            Backend::Remote(_) => false,
        }
    }

    /// The in-process handle, when local.
    #[cfg(feature = "local")]
    pub fn as_local(&self) -> Option<&Local> {
        match &self.backend {
            Backend::Local(k, _) => Some(k),
            Backend::Remote(_) => None,
        }
    }

    /// Where this handle points: a database URL or a server URL.
    pub fn target(&self) -> String {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => k.core().database_url(),
            Backend::Remote(r) => r.base.clone(),
        }
    }

    /// `DELETE /sessions/{token}`: log out.
    pub async fn logout(&self, token: &str) -> Result<()> {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => k.logout(token).await,
            Backend::Remote(r) => r
                .send(r.request(Method::DELETE, &format!("/sessions/{token}"), &[]))
                .await
                .map(|_| ()),
        }
    }

    /// The plain text of a job's (or step's) log.
    pub async fn job_log_text(&self, job_id: i64, step_idx: Option<i64>) -> Result<String> {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => k.job_log_text(job_id, step_idx).await,
            Backend::Remote(r) => {
                let path = match step_idx {
                    Some(s) => format!("{}/job_log/{job_id}/{s}", r.base),
                    None => format!("{}/job_log/{job_id}", r.base),
                };
                let mut req = r.http.get(path);
                if let Some(t) = &r.token {
                    req = req.bearer_auth(t);
                }
                let resp = r.send(req).await?;
                resp.text()
                    .await
                    .map_err(|e| Error::Transport(format!("reading the job log: {e}")))
            }
        }
    }

    /// Download a public artifact of a flow (`f`) or run (`r`): bytes and file name.
    pub async fn read_artifact(
        &self,
        scope: &str,
        id: i64,
        path: &str,
    ) -> Result<(Vec<u8>, String)> {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => k.read_artifact(scope, id, path).await,
            Backend::Remote(r) => {
                let mut req = r
                    .http
                    .get(format!("{}/artifacts/public/{scope}/{id}/{path}", r.base));
                if let Some(t) = &r.token {
                    req = req.bearer_auth(t);
                }
                let resp = r.send(req).await?;
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| Error::Transport(format!("downloading {path}: {e}")))?;
                let name = path.rsplit('/').next().unwrap_or(path).to_string();
                Ok((bytes.to_vec(), name))
            }
        }
    }

    /// Register a tool version with its zip package.
    pub async fn upload_tool(&self, name: &str, meta: &ToolInput, zip: &[u8]) -> Result<Tool> {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => k.upload_tool(name, meta, zip).await,
            Backend::Remote(r) => {
                let form = reqwest::multipart::Form::new()
                    .text("meta", serde_json::to_string(meta)?)
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(zip.to_vec()).file_name("tool.zip"),
                    );
                let resp = r
                    .send(
                        r.request(Method::POST, &format!("/tools/{name}/zip"), &[])
                            .multipart(form),
                    )
                    .await?;
                resp.json()
                    .await
                    .map_err(|e| Error::Transport(format!("tool upload answer: {e}")))
            }
        }
    }

    /// Follow a job's log from cursor `after`: lines as they come, state
    /// changes, then [`FollowEvent::End`] once the job is completed and every
    /// line was delivered. Remote handles use the server-sent events stream
    /// and reconnect after a dropped connection without gaps or duplicates.
    pub fn follow_job(&self, job_id: i64, after: i64) -> BoxStream<'static, Result<FollowEvent>> {
        match &self.backend {
            #[cfg(feature = "local")]
            Backend::Local(k, _) => {
                let k = k.clone();
                futures_util::stream::once(async move { k.follow_job_stream(job_id, after).await })
                    .flat_map(|r| match r {
                        Ok(s) => s,
                        Err(e) => futures_util::stream::iter(vec![Err(e)]).boxed(),
                    })
                    .boxed()
            }
            Backend::Remote(r) => follow_remote(r.clone(), job_id, after),
        }
    }
}

/// The HTTP client of a remote handle. HTTPS goes through rustls with the
/// provider the program installed as its default, else ring (installed as
/// the process's default here: reqwest brings none).
fn http_client() -> Result<reqwest::Client> {
    crate::tls::install_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Transport(format!("cannot build an HTTP client: {e}")))
}

/// A server URL as the handle uses it: `http://` added when no scheme is
/// given (`127.0.0.1:8080`), no trailing `/` or `/api`; other schemes are
/// refused.
pub fn server_base(url: &str) -> Result<String> {
    let url = url.trim();
    if url.is_empty() {
        return Err(Error::bad_request("the server URL is empty"));
    }
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    if !(full.starts_with("http://") || full.starts_with("https://")) {
        return Err(Error::bad_request(format!(
            "server URL '{url}' must start with http:// or https://"
        )));
    }
    let base = full.trim_end_matches('/').trim_end_matches("/api");
    reqwest::Url::parse(base)
        .map_err(|e| Error::bad_request(format!("server URL '{url}' is not a URL: {e}")))?;
    Ok(base.to_string())
}

struct RemoteFollow {
    r: Arc<Remote>,
    job_id: i64,
    cursor: i64,
    resp: Option<reqwest::Response>,
    buf: String,
    /// Bytes of a character cut by the end of a chunk, waiting for the rest.
    pending: Vec<u8>,
    event: String,
    data: String,
    id: Option<String>,
    retries: u32,
    done: bool,
}

fn follow_remote(
    r: Arc<Remote>,
    job_id: i64,
    after: i64,
) -> BoxStream<'static, Result<FollowEvent>> {
    let st = RemoteFollow {
        r,
        job_id,
        cursor: after,
        resp: None,
        buf: String::new(),
        pending: Vec::new(),
        event: String::new(),
        data: String::new(),
        id: None,
        retries: 0,
        done: false,
    };
    futures_util::stream::unfold(st, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            if f.resp.is_none() {
                let mut req =
                    f.r.request(Method::GET, &format!("/jobs/{}/logs/stream", f.job_id), &[]);
                req = req.header("Last-Event-ID", f.cursor.to_string());
                match f.r.send(req).await {
                    Ok(resp) => {
                        f.resp = Some(resp);
                        f.buf.clear();
                        f.pending.clear();
                    }
                    Err(
                        e @ (Error::NotFound(_)
                        | Error::Forbidden(_)
                        | Error::Unauthorized(_)
                        | Error::BadRequest(_)),
                    ) => {
                        f.done = true;
                        return Some((Err(e), f));
                    }
                    Err(e) => {
                        f.retries += 1;
                        if f.retries > 30 {
                            f.done = true;
                            return Some((Err(e), f));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            // Parse what is buffered.
            while let Some(pos) = f.buf.find('\n') {
                let line = f.buf[..pos].trim_end_matches('\r').to_string();
                f.buf.drain(..=pos);
                if line.is_empty() {
                    if f.data.is_empty() {
                        continue;
                    }
                    let event = std::mem::take(&mut f.event);
                    let data = std::mem::take(&mut f.data);
                    let id = f.id.take();
                    match event.as_str() {
                        "log" => {
                            if let Ok(l) = serde_json::from_str::<LogLine>(&data) {
                                f.cursor = id.and_then(|i| i.parse().ok()).unwrap_or(l.id);
                                return Some((Ok(FollowEvent::Line(l)), f));
                            }
                        }
                        "state" | "end" => {
                            let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                            let state = v.get("state").and_then(Value::as_i64).unwrap_or(0);
                            let cs = v.get("completion_status").and_then(Value::as_i64);
                            if event == "end" {
                                f.done = true;
                                return Some((
                                    Ok(FollowEvent::End {
                                        completion_status: cs,
                                    }),
                                    f,
                                ));
                            }
                            return Some((
                                Ok(FollowEvent::State {
                                    state,
                                    completion_status: cs,
                                }),
                                f,
                            ));
                        }
                        "error" => {
                            f.done = true;
                            return Some((Err(Error::internal(data)), f));
                        }
                        _ => {}
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line
                    .split_once(':')
                    .map(|(a, b)| (a, b.strip_prefix(' ').unwrap_or(b)))
                    .unwrap_or((&line, ""));
                match field {
                    "event" => f.event = value.to_string(),
                    "data" => {
                        if !f.data.is_empty() {
                            f.data.push('\n');
                        }
                        f.data.push_str(value);
                    }
                    "id" => f.id = Some(value.to_string()),
                    _ => {}
                }
            }
            let Some(resp) = f.resp.as_mut() else {
                continue;
            };
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    f.retries = 0;
                    // A chunk may end inside a multi-byte character: decode
                    // up to there and keep the rest for the next chunk.
                    f.pending.extend_from_slice(&bytes);
                    let complete = match std::str::from_utf8(&f.pending) {
                        Ok(_) => f.pending.len(),
                        Err(e) if e.error_len().is_none() => e.valid_up_to(),
                        Err(_) => f.pending.len(),
                    };
                    f.buf
                        .push_str(&String::from_utf8_lossy(&f.pending[..complete]));
                    f.pending.drain(..complete);
                }
                // The connection ended or broke: reconnect from the cursor.
                Ok(None) | Err(_) => {
                    f.resp = None;
                    f.event.clear();
                    f.data.clear();
                    f.id = None;
                    f.retries += 1;
                    if f.retries > 60 {
                        f.done = true;
                        return Some((
                            Err(Error::Transport(format!(
                                "the log stream of job {} keeps breaking off",
                                f.job_id
                            ))),
                            f,
                        ));
                    }
                    // Back off while the stream keeps ending without news.
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(f.retries.min(10))))
                        .await;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTPS handle builds its TLS set-up (reqwest brings no crypto
    /// provider: the handle installs ring) and reports a refused connection
    /// as a transport error.
    #[tokio::test]
    async fn an_https_handle_builds_and_reports_an_unreachable_server() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let k = Kraken::connect(&format!("https://127.0.0.1:{port}"), None).expect("handle");
        assert_eq!(k.target(), format!("https://127.0.0.1:{port}"));
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let e = k.get_server_version().await.expect_err("nothing listens");
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        assert!(
            e.to_string().contains("cannot reach the Kraken server"),
            "{e}"
        );
    }
}
