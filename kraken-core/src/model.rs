//! The JSON of the REST API as plain serde types.
//!
//! Field names and value shapes follow the original Kraken server's real
//! responses (its `get_json()` methods), not its loose OpenAPI document:
//! run and flow states and the flow kind are strings, job states, completion
//! statuses and step statuses are integers (see the constant modules below).
//!
//! Terms: a *project* holds *branches*; a branch holds *stages*, each with a
//! workflow schema; a *flow* is one CI or DEV pass over a branch; it starts a
//! *run* per stage; a run has *jobs* (one per job × environment × system); a
//! job has *steps* executed in order by an *agent*.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub mod limits;
mod logs;
mod typed;

pub use logs::{Artifact, LogChunk, LogLine, LogPaging, Logs};
pub use typed::{
    CompletionStatus, FlowArgs, FlowCounts, FlowKind, FlowOutcome, FlowState, JobState, RunState,
    StepStatus, UnknownWord,
};

/// A JSON object.
pub type JsonMap = serde_json::Map<String, Value>;

/// A point in time, stored as epoch milliseconds and written in JSON as
/// `YYYY-MM-DDTHH:MM:SSZ` (UTC), as the original does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }
    /// Epoch milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }
    /// As a chrono time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }
    /// From a chrono time.
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Timestamp(t.timestamp_millis())
    }
    /// Seconds elapsed from `self` to `later` (never negative).
    pub fn secs_until(self, later: Timestamp) -> i64 {
        ((later.0 - self.0) / 1000).max(0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_timestamp(&s)
            .map(Timestamp::from_datetime)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp '{s}'")))
    }
}

/// Parse the timestamp formats the API emits (and RFC 3339 in general).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|n| n.and_utc())
}

/// Render a duration the way the original does (`duration_to_txt`):
/// `"[Nd ][Nh ][Nm ]Ns"`. It compares with strict `>`, so exactly 60 s is
/// `"0s"` and exactly 3600 s is `"0m 0s"`; kept for compatibility.
pub fn duration_to_txt(secs: i64) -> String {
    let secs = secs.max(0);
    let mut out = String::new();
    let days = secs / 86_400;
    let hours = (secs % 86_400) / 3600;
    let minutes = (secs % 3600) / 60;
    let seconds = secs % 60;
    if secs > 86_400 {
        out.push_str(&format!("{days}d "));
    }
    if secs > 3600 {
        out.push_str(&format!("{hours}h "));
    }
    if secs > 60 {
        out.push_str(&format!("{minutes}m "));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// A list answer: `{"items": [...], "total": N}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct List<T> {
    /// The page of items.
    pub items: Vec<T>,
    /// How many items match in all (not only this page).
    pub total: i64,
}

impl<T> List<T> {
    /// A list whose total is its length.
    pub fn all(items: Vec<T>) -> Self {
        let total = items.len() as i64;
        List { items, total }
    }
}

/// An empty JSON object, the answer of operations that return `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Empty {}

/// Flow kinds.
pub mod flow_kind {
    /// A CI flow.
    pub const CI: i64 = 0;
    /// A DEV flow.
    pub const DEV: i64 = 1;
    /// The JSON name of a kind.
    pub fn name(kind: i64) -> &'static str {
        if kind == DEV { "dev" } else { "ci" }
    }
    /// Parse a kind as the original does: `dev` is DEV, anything else is CI.
    pub fn parse(s: &str) -> i64 {
        if s == "dev" { DEV } else { CI }
    }
}

/// Flow states.
pub mod flow_state {
    /// Some run is still going.
    pub const IN_PROGRESS: i64 = 1;
    /// Every run has ended.
    pub const COMPLETED: i64 = 2;
    /// The JSON name of a state.
    pub fn name(state: i64) -> &'static str {
        if state == COMPLETED {
            "completed"
        } else {
            "in-progress"
        }
    }
}

/// Run states.
pub mod run_state {
    /// Jobs are running.
    pub const IN_PROGRESS: i64 = 1;
    /// Every job has ended.
    pub const COMPLETED: i64 = 2;
    /// The results analysis is done.
    pub const PROCESSED: i64 = 3;
    /// Waits for a person to start it.
    pub const MANUAL: i64 = 4;
    /// Being started again.
    pub const REPLAY: i64 = 5;
    /// Being created.
    pub const CREATING: i64 = 6;
    /// The JSON name of a state.
    pub fn name(state: i64) -> &'static str {
        match state {
            COMPLETED => "completed",
            PROCESSED => "processed",
            MANUAL => "manual",
            REPLAY => "replay",
            CREATING => "creating",
            _ => "in-progress",
        }
    }
}

/// Job states (integers in JSON).
pub mod job_state {
    /// Never used.
    pub const PREQUEUED: i64 = 1;
    /// Waiting for an agent (possibly assigned but not yet fetched).
    pub const QUEUED: i64 = 2;
    /// Fetched by its agent and executing.
    pub const ASSIGNED: i64 = 3;
    /// The agent has finished its steps.
    pub const EXECUTING_FINISHED: i64 = 4;
    /// Done; see the completion status.
    pub const COMPLETED: i64 = 5;
    /// The word for a state: `prequeued`, `queued`, `assigned`,
    /// `executing-finished`, `completed`.
    pub fn name(state: i64) -> &'static str {
        match state {
            PREQUEUED => "prequeued",
            QUEUED => "queued",
            ASSIGNED => "assigned",
            EXECUTING_FINISHED => "executing-finished",
            COMPLETED => "completed",
            _ => "unknown",
        }
    }
}

/// Job completion statuses (integers in JSON).
pub mod completion {
    /// Every step passed.
    pub const ALL_OK: i64 = 0;
    /// The job ran over its time on the agent.
    pub const JOB_TIMEOUT: i64 = 1;
    /// A step failed.
    pub const AGENT_ERROR_RETURNED: i64 = 2;
    /// The agent crashed on a step.
    pub const AGENT_EXCEPTION: i64 = 3;
    /// A step names a tool the server does not know.
    pub const MISSING_TOOL_IN_DB: i64 = 4;
    /// Unused.
    pub const MISSING_TOOL_FILES: i64 = 5;
    /// A step ran over its time.
    pub const STEP_TIMEOUT: i64 = 6;
    /// The server's watchdog ended the job after its timeout.
    pub const SERVER_TIMEOUT: i64 = 7;
    /// A person canceled it.
    pub const USER_CANCEL: i64 = 8;
    /// The job names an agents group that does not exist.
    pub const MISSING_AGENTS_GROUP: i64 = 9;
    /// The group has no usable agent.
    pub const NO_AGENTS: i64 = 10;
    /// The agent stopped answering.
    pub const AGENT_NOT_ALIVE: i64 = 11;
    /// A short description of a status.
    pub fn describe(status: i64) -> &'static str {
        match status {
            ALL_OK => "ok",
            JOB_TIMEOUT => "job timeout",
            AGENT_ERROR_RETURNED => "step failed",
            AGENT_EXCEPTION => "agent exception",
            MISSING_TOOL_IN_DB => "missing tool",
            MISSING_TOOL_FILES => "missing tool files",
            STEP_TIMEOUT => "step timeout",
            SERVER_TIMEOUT => "server timeout",
            USER_CANCEL => "canceled",
            MISSING_AGENTS_GROUP => "missing agents group",
            NO_AGENTS => "no agents",
            AGENT_NOT_ALIVE => "agent not alive",
            _ => "unknown",
        }
    }
}

/// Step statuses (integers in JSON; agents send the names).
pub mod step_status {
    /// Not started.
    pub const NOT_STARTED: i64 = 0;
    /// Running.
    pub const IN_PROGRESS: i64 = 1;
    /// Passed.
    pub const DONE: i64 = 2;
    /// Failed.
    pub const ERROR: i64 = 3;
    /// Skipped by its `when`.
    pub const SKIPPED: i64 = 4;
    /// Parse the name an agent sends.
    pub fn parse(s: &str) -> Option<i64> {
        match s {
            "not-started" => Some(NOT_STARTED),
            "in-progress" => Some(IN_PROGRESS),
            "done" => Some(DONE),
            "error" => Some(ERROR),
            "skipped" => Some(SKIPPED),
            _ => None,
        }
    }
    /// The name of a status (what [`parse`] reads).
    pub fn name(status: i64) -> &'static str {
        match status {
            NOT_STARTED => "not-started",
            IN_PROGRESS => "in-progress",
            DONE => "done",
            ERROR => "error",
            SKIPPED => "skipped",
            _ => "unknown",
        }
    }
}

/// Test case results.
pub mod tc_result {
    /// Not run.
    pub const NOT_RUN: i64 = 0;
    /// Passed.
    pub const PASSED: i64 = 1;
    /// Failed.
    pub const FAILED: i64 = 2;
    /// Error.
    pub const ERROR: i64 = 3;
    /// Disabled / skipped.
    pub const DISABLED: i64 = 4;
    /// Unsupported.
    pub const UNSUPPORTED: i64 = 5;
    /// The display name of a result, as the original's UI and analysis use.
    pub fn name(r: i64) -> &'static str {
        match r {
            NOT_RUN => "Not Run",
            PASSED => "Passed",
            FAILED => "Failed",
            ERROR => "Error",
            DISABLED => "Disabled",
            UNSUPPORTED => "Unsupported",
            _ => "Unknown",
        }
    }
}

/// Result changes against history.
pub mod tc_change {
    /// Same as before.
    pub const NO: i64 = 0;
    /// Passed now after not passing.
    pub const FIX: i64 = 1;
    /// Not passing now after passing.
    pub const REGR: i64 = 2;
    /// First time seen.
    pub const NEW: i64 = 3;
    /// The API name of a change.
    pub fn name(c: i64) -> &'static str {
        match c {
            FIX => "fix",
            REGR => "regr",
            NEW => "new",
            _ => "no-change",
        }
    }
}

/// Branch sequence kinds.
pub mod seq_kind {
    /// All flows of the branch (`KK_FLOW_SEQ`).
    pub const FLOW: i64 = 0;
    /// CI flows (`KK_CI_DEV_FLOW_SEQ` of CI flows).
    pub const CI_FLOW: i64 = 1;
    /// DEV flows.
    pub const DEV_FLOW: i64 = 2;
    /// All runs of a stage (`KK_RUN_SEQ`).
    pub const RUN: i64 = 3;
    /// CI runs of a stage.
    pub const CI_RUN: i64 = 4;
    /// DEV runs of a stage.
    pub const DEV_RUN: i64 = 5;
}

/// Secret kinds.
pub mod secret_kind {
    /// `{username, key}`.
    pub const SSH_KEY: i64 = 0;
    /// `{secret}`.
    pub const SIMPLE: i64 = 1;
    /// The JSON name of a kind.
    pub fn name(kind: i64) -> &'static str {
        if kind == SSH_KEY { "ssh-key" } else { "simple" }
    }
}

/// Agent states.
pub mod agent_state {
    /// Seen recently.
    pub const ACTIVE: i64 = 0;
    /// Not seen for a while.
    pub const INACTIVE: i64 = 1;
}

/// A per-project role, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read the project.
    Viewer,
    /// May also run flows and change stages and branches.
    Pwrusr,
    /// May also delete and manage secrets.
    Admin,
}

impl Role {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Pwrusr => "pwrusr",
            Role::Admin => "admin",
        }
    }
    /// Parse a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "pwrusr" => Some(Role::Pwrusr),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------- users

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Whether the user may log in.
    pub enabled: bool,
    /// E-mail address or `""`.
    pub email: String,
    /// Whether the user may do everything.
    pub superadmin: bool,
    /// Roles per project id (only in `GET /users/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<BTreeMap<String, Role>>,
}

/// The roles of a session's user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Roles {
    /// Superadmin or not.
    pub superadmin: bool,
    /// Role per project id.
    pub projects: BTreeMap<String, Role>,
}

/// A login session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// Id.
    pub id: i64,
    /// The bearer token.
    pub token: String,
    /// Whose session it is.
    pub user: User,
    /// What the user may do.
    pub roles: Roles,
}

/// `POST /sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Login {
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// `local` (the default); other methods are not supported.
    #[serde(default)]
    pub method: Option<String>,
    /// OIDC provider (unsupported).
    #[serde(default)]
    pub oidc_provider: Option<String>,
}

/// `POST /users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewUser {
    /// Login name.
    #[serde(default)]
    pub name: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /users/{id}`: unknown fields (e.g. `password`, which has its own
/// endpoint) and nulls are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    /// Enable or disable the account (disabling ends its sessions).
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
    /// Grant or revoke superadmin.
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub superadmin: Option<bool>,
    /// Project id → role, or null to revoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<BTreeMap<String, Option<Role>>>,
}

/// `PUT /users/{id}/password`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PasswordChange {
    /// The current password.
    #[serde(default)]
    pub password_old: Option<String>,
    /// The new password.
    #[serde(default)]
    pub password_new: Option<String>,
}

// ---------------------------------------------------------------- projects

/// A project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time, if deleted.
    pub deleted: Option<Timestamp>,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Its secrets (values masked).
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Webhook settings.
    #[serde(default)]
    pub webhooks: Value,
    /// Its branches, by name.
    #[serde(default)]
    pub branches: Vec<Branch>,
    /// User data (`data` tool, scope project), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// `POST /projects`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewProject {
    /// Unique name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PUT /projects/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectChanges {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New webhook settings (merged into the current ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Webhooks>,
}

/// The webhook settings of a project (`PUT /projects/{id}`); other keys are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// Take GitHub webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_enabled: Option<bool>,
    /// HMAC secret of GitHub webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_secret: Option<String>,
    /// Take Gitea webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitea_enabled: Option<bool>,
    /// HMAC secret of Gitea webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitea_secret: Option<String>,
    /// Take GitLab webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab_enabled: Option<bool>,
    /// Token of GitLab webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab_secret: Option<String>,
    /// Take Radicle webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radicle_enabled: Option<bool>,
    /// HMAC secret of Radicle webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radicle_secret: Option<String>,
}

/// A project secret; `key` and `secret` are always `******` in answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Secret {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// Name (letters, digits, `_`).
    pub name: String,
    /// Owning project.
    pub project_id: i64,
    /// Owning project's name.
    pub project_name: String,
    /// `ssh-key` or `simple`.
    pub kind: String,
    /// SSH user name (ssh-key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Masked key (ssh-key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Masked secret (simple).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `POST /projects/{id}/secrets` and `PUT /secrets/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretInput {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ssh-key` or `simple` (create only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// SSH user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SSH private key (`******` leaves it unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Secret value (`******` leaves it unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

// ---------------------------------------------------------------- branches

/// Retention policy of a branch (months).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RetentionPolicy {
    /// CI logs.
    #[serde(default = "six")]
    pub ci_logs: i64,
    /// DEV logs.
    #[serde(default = "three")]
    pub dev_logs: i64,
    /// CI artifacts.
    #[serde(default = "six")]
    pub ci_artifacts: i64,
    /// DEV artifacts.
    #[serde(default = "three")]
    pub dev_artifacts: i64,
}

fn six() -> i64 {
    6
}
fn three() -> i64 {
    3
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            ci_logs: 6,
            dev_logs: 3,
            ci_artifacts: 6,
            dev_artifacts: 3,
        }
    }
}

/// A short summary of a branch's latest flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowBrief {
    /// Flow id.
    pub id: i64,
    /// Flow label.
    pub label: String,
    /// Finish time (completed flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// Creation time (incomplete flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Whether any run has failed jobs.
    pub errors: bool,
}

/// A branch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Branch {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// Display name.
    pub name: String,
    /// Owning project.
    pub project_id: i64,
    /// Owning project's name.
    pub project_name: String,
    /// Git branch (webhooks match on it).
    pub branch_name: Option<String>,
    /// Retention policy.
    pub retention_policy: RetentionPolicy,
    /// Environment variables (`ctx.env`).
    pub env_vars: BTreeMap<String, String>,
    /// Latest completed CI flow (in project lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completed_flow: Option<Option<FlowBrief>>,
    /// Latest incomplete CI flow (in project lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_incomplete_flow: Option<Option<FlowBrief>>,
    /// The 10 latest CI flows (`with_results`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_flows: Option<Vec<Flow>>,
    /// The 10 latest DEV flows (`with_results`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_flows: Option<Vec<Flow>>,
    /// Stages with schemas (`cfg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<Stage>>,
}

/// `POST /projects/{id}/branches`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewBranch {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Git branch; defaults to the name.
    #[serde(default)]
    pub branch_name: Option<String>,
    /// Branch to fork from.
    #[serde(default)]
    pub id: Option<i64>,
    /// `model-1`: the fork continues the source's numbering (the source restarts from 0).
    #[serde(default)]
    pub forking_model: Option<String>,
}

/// `PUT /branches/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BranchChanges {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Git branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
}

/// A branch or stage sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BranchSequence {
    /// Id.
    pub id: i64,
    /// Kind (see [`seq_kind`]).
    pub kind: i64,
    /// Branch.
    pub branch_id: i64,
    /// Branch name.
    pub branch_name: String,
    /// Stage (per-stage kinds).
    pub stage_id: Option<i64>,
    /// Stage name.
    pub stage_name: Option<String>,
    /// Current value.
    pub value: i64,
}

/// An environment variable of a branch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvVar {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Value.
    #[serde(default)]
    pub value: Option<String>,
}

/// Branch stats per flow kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BranchStatsByKind {
    /// Flows in all.
    pub flows_total: i64,
    /// Flows in the last 30 days.
    pub flows_last_month: i64,
    /// Flows in the last 7 days.
    pub flows_last_week: i64,
    /// Mean duration of finished flows, last 30 days.
    pub avg_duration_last_month: Option<String>,
    /// Mean duration of finished flows, last 7 days.
    pub avg_duration_last_week: Option<String>,
    /// Every flow's duration, oldest first.
    pub durations: Vec<FlowDuration>,
}

/// One flow's duration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowDuration {
    /// Label, or `"<id>."`.
    pub flow_label: String,
    /// Seconds, or null while running.
    pub duration: Option<i64>,
}

/// `GET /branches/{id}/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BranchStats {
    /// Branch id.
    pub id: i64,
    /// CI flows.
    pub ci: BranchStatsByKind,
    /// DEV flows.
    pub dev: BranchStatsByKind,
}

// ---------------------------------------------------------------- stages

/// A stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stage {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// Name, unique in the branch.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Disabled stages are not started.
    pub enabled: bool,
    /// The schema is read from `schema_file` in the repository `repo_url`.
    pub schema_from_repo_enabled: bool,
    /// Repository URL.
    pub repo_url: Option<String>,
    /// Repository branch.
    pub repo_branch: Option<String>,
    /// Name of the secret with the repository token.
    pub repo_access_token: Option<String>,
    /// Repository refresh state.
    pub repo_state: i64,
    /// Last repository error.
    pub repo_error: Option<String>,
    /// Repository refresh interval.
    pub repo_refresh_interval: Option<String>,
    /// Extra git clone parameters.
    pub git_clone_params: Option<String>,
    /// Repository version.
    pub repo_version: Option<String>,
    /// Schema file in the repository.
    pub schema_file: Option<String>,
    /// When the schema was last read from the repository.
    #[serde(default)]
    pub last_repo_refresh: Option<Timestamp>,
    /// The evaluated schema (with schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// The schema code (with schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_code: Option<String>,
}

/// `POST /branches/{id}/stages` and `PUT /stages/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageInput {
    /// Name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Schema code (Starlark, `def stage(ctx): return {...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_code: Option<String>,
    /// Schema from a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_from_repo_enabled: Option<bool>,
    /// Repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// Repository branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_branch: Option<String>,
    /// Secret name with the repository token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_access_token: Option<String>,
    /// Refresh interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_refresh_interval: Option<String>,
    /// Schema file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
    /// Git clone parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_clone_params: Option<String>,
}

/// `PUT /stages/{id}/schema` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageSchemaPreview {
    /// Stage id.
    pub stage_id: i64,
    /// Pretty JSON of the evaluated schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Why evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `PUT /stages/{id}/schema` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageSchemaCode {
    /// The code to evaluate.
    #[serde(default)]
    pub schema_code: Option<String>,
}

/// One timed trigger of a stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schedule {
    /// Trigger kind and spec, e.g. `cron: 0 13 * * *`.
    pub name: String,
    /// Identifier of the timer.
    pub job_id: String,
    /// Next firing time.
    pub next_run_time: Option<Timestamp>,
}

/// `GET /stages/{id}/schedule`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageSchedule {
    /// The stage's timed triggers.
    pub schedules: Vec<Schedule>,
}

// ---------------------------------------------------------------- flows & runs

/// A flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flow {
    /// Id.
    pub id: i64,
    /// Label (`"<id>."` by default).
    pub label: String,
    /// Creation time.
    pub created: Timestamp,
    /// Finish time.
    pub finished: Option<Timestamp>,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// `in-progress` or `completed`.
    pub state: String,
    /// `ci` or `dev`.
    pub kind: String,
    /// Duration text.
    pub duration: String,
    /// Git branch name of the flow.
    pub branch_name: Option<String>,
    /// Flow arguments.
    pub args: JsonMap,
    /// First trigger record, if triggered by a repository change.
    pub trigger: Option<Value>,
    /// Artifact counters.
    pub artifacts: Value,
    /// Sequences `{shared, own}`.
    pub seq: Value,
    /// Report entries.
    pub report_entries: Vec<ReportEntry>,
    /// Stages of the branch (no schemas).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Runs.
    #[serde(default)]
    pub runs: Vec<Run>,
    /// Project (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    /// Project name (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// Branch (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<i64>,
    /// Branch display name (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch_name: Option<String>,
    /// Summary of a completed CI flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
}

/// A report entry (an HTML report uploaded as an artifact).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportEntry {
    /// Display name.
    pub name: String,
    /// Download URL.
    pub url: String,
}

/// `POST /branches/{id}/flows/{kind}`: unknown fields are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFlow {
    /// `{"Common": {...}, "<stage name>": {...}}` (`null`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<BTreeMap<String, JsonMap>>,
}

/// For `Option` fields that may be left out but not sent as `null`
/// (with `#[serde(default)]`).
fn non_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Read an optional field of a JSON object as `T` (`null` counts as absent);
/// the error names the field.
fn object_field<T: serde::de::DeserializeOwned>(
    map: &JsonMap,
    key: &str,
) -> Result<Option<T>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
    }
}

/// A notification of a run's start or end (`GET /runs/{id}/notifications`):
/// where it went and how its delivery went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunNotification {
    /// Id.
    pub id: i64,
    /// Run.
    pub run_id: i64,
    /// `start` or `end`.
    pub event: String,
    /// `github`, `gitlab`, `gitea`, `slack`, `email`, `discord`, `radicle` or `webhook`.
    pub channel: String,
    /// Where it goes (secrets masked).
    pub target: String,
    /// `pending` (being sent or waiting for a retry), `delivered` or `failed` (given up).
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Queued.
    pub created: Timestamp,
    /// Last attempt (or queued).
    pub updated: Timestamp,
    /// Delivered.
    pub delivered: Option<Timestamp>,
}

/// A run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// Id.
    pub id: i64,
    /// Label.
    pub label: Option<String>,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// First job start.
    pub started: Option<Timestamp>,
    /// All jobs ended.
    pub finished: Option<Timestamp>,
    /// Analysis time.
    pub processed_at: Option<Timestamp>,
    /// Duration text.
    pub duration: String,
    /// State name.
    pub state: String,
    /// Stage name.
    pub stage_name: String,
    /// Stage id.
    pub stage_id: i64,
    /// Flow id.
    pub flow_id: i64,
    /// `ci` or `dev`.
    pub flow_kind: String,
    /// Flow label.
    pub flow_label: String,
    /// Run arguments.
    pub args: JsonMap,
    /// Jobs (non-covered).
    pub jobs_total: i64,
    /// Jobs waiting.
    pub jobs_waiting: i64,
    /// Jobs executing.
    pub jobs_executing: i64,
    /// Jobs being finished.
    pub jobs_processing: i64,
    /// Failed jobs.
    pub jobs_error: i64,
    /// Tests.
    pub tests_total: i64,
    /// Passed tests.
    pub tests_passed: i64,
    /// Tests not run.
    pub tests_not_run: i64,
    /// Issues.
    pub issues_total: i64,
    /// New issues.
    pub issues_new: i64,
    /// New tests.
    pub new_cnt: i64,
    /// Unchanged tests.
    pub no_change_cnt: i64,
    /// Regressions.
    pub regr_cnt: i64,
    /// Fixes.
    pub fix_cnt: i64,
    /// Repository changes that triggered it.
    pub repo_data: Option<Value>,
    /// Why it was started.
    pub reason: String,
    /// Notes (timeouts, cancel).
    pub note: Option<String>,
    /// Sequences `{shared, own}`.
    pub seq: Value,
    /// Project (not in flow answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    /// Project name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<i64>,
    /// Branch display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    /// Number of artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_total: Option<i64>,
    /// Report entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_entries: Option<Vec<ReportEntry>>,
}

/// `POST /flows/{id}/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewRun {
    /// Stage to run.
    #[serde(default)]
    pub stage_id: Option<i64>,
    /// Run arguments.
    #[serde(default)]
    pub args: Option<JsonMap>,
}

// ---------------------------------------------------------------- jobs

/// A step of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Id.
    pub id: i64,
    /// Position in the job, from 0.
    pub index: i64,
    /// Tool name.
    pub tool: String,
    /// Tool id.
    pub tool_id: i64,
    /// Tool location (`""` for built-ins).
    pub tool_location: String,
    /// Tool entry.
    pub tool_entry: String,
    /// Tool version.
    pub tool_version: String,
    /// Job.
    pub job_id: i64,
    /// Status (see [`step_status`]), null before it was touched.
    pub status: Option<i64>,
    /// Result reported by the agent.
    pub result: Option<Value>,
    /// Display name.
    pub name: String,
    /// Times the step was handed to an agent: more than 1 when it was
    /// restarted (its agent or server stopped while it ran), which is why its
    /// log then repeats lines after a `--- step restarted ... ---` marker.
    #[serde(default)]
    pub attempts: i64,
    /// The step's fields (`cmd`, `cwd`, ...).
    #[serde(flatten)]
    pub fields: JsonMap,
}

/// A job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// First fetched by its agent.
    pub started: Option<Timestamp>,
    /// Agent finished.
    pub finished: Option<Timestamp>,
    /// Completed.
    pub completed: Option<Timestamp>,
    /// Duration text (`""` before it started).
    pub duration: String,
    /// Name.
    pub name: String,
    /// State (see [`job_state`]).
    pub state: i64,
    /// Completion status (see [`completion`]).
    pub completion_status: Option<i64>,
    /// Timeout in seconds.
    pub timeout: i64,
    /// Superseded by a rerun.
    pub covered: bool,
    /// Notes.
    pub notes: Option<String>,
    /// System id.
    pub system_id: i64,
    /// System name.
    pub system: String,
    /// Executor.
    pub executor: String,
    /// Run id.
    pub run_id: i64,
    /// Agents group id.
    pub agents_group_id: i64,
    /// Agents group name.
    pub agents_group_name: String,
    /// Agent id (0 if none).
    pub agent_id: i64,
    /// Agent name (`""` if none).
    pub agent_name: String,
    /// Steps by index.
    pub steps: Vec<Step>,
}

/// `POST /jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewJob {
    /// The run to add jobs to.
    #[serde(default)]
    pub run: Option<i64>,
}

// ---------------------------------------------------------------- agents & groups

/// A group reference in an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRef {
    /// Group id.
    pub id: i64,
    /// Group name.
    #[serde(default)]
    pub name: String,
}

/// An agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Agent {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// Last contact.
    pub last_seen: Option<Timestamp>,
    /// Name.
    pub name: String,
    /// Address (identity).
    pub address: String,
    /// Authorized by an admin.
    pub authorized: bool,
    /// IP address.
    pub ip_address: Option<String>,
    /// State (see [`agent_state`]).
    pub state: i64,
    /// Disabled by an admin.
    pub disabled: bool,
    /// Comment.
    pub comment: Option<String>,
    /// Status line.
    pub status_line: Option<String>,
    /// Host information the agent reported.
    pub host_info: Option<Value>,
    /// User attributes.
    pub user_attrs: Option<Value>,
    /// Extra attributes.
    pub extra_attrs: Option<Value>,
    /// Groups.
    pub groups: Vec<GroupRef>,
    /// Current job.
    pub job: Option<Box<Job>>,
}

/// `PATCH /agents` item (a JSON object; see [`GroupId`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "JsonMap")]
pub struct AgentAuthorization {
    /// Agent id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Authorize or revoke.
    #[serde(default)]
    pub authorized: Option<bool>,
}

/// `PUT /agents/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentChanges {
    /// New set of groups (`[{id}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupId>>,
    /// Disable or enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Authorize or revoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized: Option<bool>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl TryFrom<JsonMap> for AgentAuthorization {
    type Error = String;
    fn try_from(map: JsonMap) -> Result<Self, String> {
        Ok(AgentAuthorization {
            id: object_field(&map, "id")?,
            authorized: object_field(&map, "authorized")?,
        })
    }
}

/// A group named by id: a JSON object `{"id": 1}` (serde's derive would also
/// take the array `[1]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "JsonMap")]
pub struct GroupId {
    /// Group id.
    pub id: i64,
}

impl TryFrom<JsonMap> for GroupId {
    type Error = String;
    fn try_from(map: JsonMap) -> Result<Self, String> {
        match object_field(&map, "id")? {
            Some(id) => Ok(GroupId { id }),
            None => Err("missing field `id`".to_string()),
        }
    }
}

/// An agents group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    pub deleted: Option<Timestamp>,
    /// Name.
    pub name: String,
    /// Project (project-scoped groups).
    pub project_id: Option<i64>,
    /// Project name.
    pub project_name: Option<String>,
    /// Non-deleted agents in it.
    pub agents_count: i64,
    /// Cloud deployment settings, with defaults filled in.
    pub deployment: Value,
}

/// `POST /groups` and `PUT /groups/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupInput {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Project scope (create only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    /// Deployment settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
}

/// The deployment settings of an agents group; other keys are refused.
/// This server runs method 0 (agents register themselves) only; the cloud
/// settings are kept for the original's clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// 0 manual; 2 AWS EC2, 3 AWS ECS Fargate, 4 Azure VM, 5 Kubernetes (unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<i64>,
    /// AWS EC2 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<JsonMap>,
    /// AWS ECS Fargate settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ecs_fargate: Option<JsonMap>,
    /// Azure VM settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_vm: Option<JsonMap>,
    /// Kubernetes settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<JsonMap>,
}

/// A system (OS or image) jobs run on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct System {
    /// Id.
    pub id: i64,
    /// Name (e.g. `ubuntu-22.04`, `any`, or an image).
    pub name: String,
    /// Executor: `local`, `docker` or `lxd`.
    pub executor: String,
}

// ---------------------------------------------------------------- tools

/// A tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Location (`""` for built-ins).
    pub location: Option<String>,
    /// Entry point.
    pub entry: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// JSON schema of the step parameters.
    pub fields: Value,
    /// Remote tool repository.
    pub url: Option<String>,
    /// Remote tool tag.
    pub tag: Option<String>,
    /// Remote tool file.
    pub tool_file: Option<String>,
}

/// `POST /tools` (a `tool.json`) or the `meta` part of a zip upload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolInput {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Parameters schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Version to overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Remote tool repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Remote tool tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Remote tool file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_file: Option<String>,
}

// ---------------------------------------------------------------- misc

/// `GET /version`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerVersion {
    /// Server version.
    pub version: String,
}

/// `PUT /sequences/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SequenceValue {
    /// New value (≥ -1).
    #[serde(default)]
    pub value: Option<i64>,
}

/// `PUT /branches/{id}/project_id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MoveBranch {
    /// Target project.
    #[serde(default)]
    pub project_id: Option<i64>,
}

/// `GET /user_data`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserData {
    /// The data as a JSON string (indent 4).
    pub data: String,
}

/// `GET /live-data`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveData {
    /// Server errors logged in the last hour.
    pub error_logs_count: i64,
    /// Authorized agents.
    pub authorized_agents: i64,
    /// Agents waiting for authorization.
    pub non_authorized_agents: i64,
}

/// Paging and sorting of list endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Paging {
    /// First item (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Field to sort by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_field: Option<String>,
    /// `asc` or `desc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_dir: Option<String>,
}

// ---------------------------------------------------------------- results

/// A comment thread on a failing test case (carried to later failures).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestCaseComment {
    /// State: 0 new, 1 investigating, 2 bug in product, 3 bug in test.
    pub state: i64,
    /// Entries, newest first: `{author, date, text, state, tcr}`.
    pub data: Vec<Value>,
}

/// A test case result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestCaseResult {
    /// Id.
    pub id: i64,
    /// Test case.
    pub test_case_id: i64,
    /// Test case name.
    pub test_case_name: String,
    /// Result (see [`tc_result`]).
    pub result: i64,
    /// Values (performance figures etc.).
    pub values: Option<Value>,
    /// Command line that ran it.
    pub cmd_line: Option<String>,
    /// What a failed test said (JUnit `<failure message=...>`).
    #[serde(default)]
    pub message: Option<String>,
    /// The failure's type, e.g. an exception class (JUnit `type=`).
    #[serde(default)]
    pub failure_type: Option<String>,
    /// The failure's text and the test's captured output.
    #[serde(default)]
    pub output: Option<String>,
    /// How long it took, in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Flips within the last 10 results.
    pub instability: i64,
    /// Flows in a row with this result.
    pub age: i64,
    /// Change (see [`tc_change`]).
    pub change: i64,
    /// Relevancy, 0–6.
    pub relevancy: i64,
    /// Job.
    pub job_id: i64,
    /// Job name.
    pub job_name: String,
    /// Agents group.
    pub agents_group_id: i64,
    /// Agents group name.
    pub agents_group_name: String,
    /// System.
    pub system_id: i64,
    /// System name.
    pub system_name: String,
    /// Agent (0 if none).
    pub agent_id: i64,
    /// Agent name.
    pub agent_name: String,
    /// Its comment thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<TestCaseComment>,
    /// Where it ran (single result answers): project, branch, flow, run, stage.
    #[serde(flatten)]
    pub place: Option<ResultPlace>,
}

/// Where a result ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultPlace {
    /// Project.
    pub project_id: i64,
    /// Project name.
    pub project_name: String,
    /// Branch.
    pub branch_id: i64,
    /// Branch name.
    pub branch_name: String,
    /// Flow.
    pub flow_id: i64,
    /// `ci` or `dev`.
    pub flow_kind: String,
    /// Flow label.
    pub flow_label: String,
    /// Flow creation time.
    pub flow_created_at: Timestamp,
    /// Run.
    pub run_id: i64,
    /// Stage.
    pub stage_id: i64,
    /// Stage name.
    pub stage_name: String,
}

/// `POST /test_case_results/{id}/comment`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommentInput {
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<i64>,
}

/// An issue found by an analysis step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Issue {
    /// Id.
    pub id: i64,
    /// Type: 0 error, 1 warning, 2 convention, 3 refactor.
    pub issue_type: i64,
    /// Line.
    pub line: Option<i64>,
    /// Column.
    pub column: Option<i64>,
    /// Path.
    pub path: Option<String>,
    /// Symbol.
    pub symbol: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Flows in a row it has been there.
    pub age: i64,
    /// Job.
    pub job_id: i64,
    /// Job name.
    pub job_name: String,
    /// Agents group.
    pub agents_group_id: i64,
    /// Agents group name.
    pub agents_group_name: String,
    /// Agent.
    pub agent_id: i64,
    /// Agent name.
    pub agent_name: String,
    /// Other fields reported (`type`, `module`, `url`, ...).
    #[serde(flatten)]
    pub extra: JsonMap,
}

// ---------------------------------------------------------------- agent protocol

/// One log line sent by an agent.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct AgentLogLine {
    /// The text.
    pub message: String,
    /// Epoch milliseconds (now when missing).
    #[serde(default)]
    pub time: Option<i64>,
    /// Level (`INFO` when missing).
    #[serde(default)]
    pub level: Option<String>,
    /// Tool that printed it (`''` for the agent's own lines).
    #[serde(default)]
    pub tool: Option<String>,
}

/// `POST /backend/logs`: log lines of a job step.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct AgentLogs {
    /// Agent address.
    pub address: String,
    /// Job.
    pub job_id: i64,
    /// Step index (-1 for lines about the job as a whole).
    pub step_idx: i64,
    /// The lines, in order.
    pub lines: Vec<AgentLogLine>,
}

// ---------------------------------------------------------------- query filters

/// Filters of `GET /runs/{id}/results`.
#[derive(Debug, Clone, Default)]
pub struct TcrFilter {
    /// Results (any of).
    pub statuses: Vec<i64>,
    /// Changes (any of).
    pub changes: Vec<i64>,
    /// Minimum age.
    pub min_age: Option<i64>,
    /// Maximum age.
    pub max_age: Option<i64>,
    /// Minimum instability.
    pub min_instability: Option<i64>,
    /// Maximum instability.
    pub max_instability: Option<i64>,
    /// Substring of the test case name.
    pub text: Option<String>,
    /// A job id (digits) or a substring of the job name.
    pub job: Option<String>,
    /// System ids (any of).
    pub systems: Vec<i64>,
    /// Group ids (any of).
    pub groups: Vec<i64>,
}

/// Filters of `GET /runs/{id}/issues`.
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    /// Issue types (any of).
    pub types: Vec<i64>,
    /// Substring of the path.
    pub location: Option<String>,
    /// Substring of the message.
    pub message: Option<String>,
    /// Substring of the symbol.
    pub symbol: Option<String>,
    /// Minimum age.
    pub min_age: Option<i64>,
    /// Maximum age.
    pub max_age: Option<i64>,
    /// A job id (digits) or a substring of the job name.
    pub job: Option<String>,
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Branch.
    pub branch_id: Option<i64>,
    /// Flow kind.
    pub flow_kind: Option<i64>,
    /// Flow.
    pub flow_id: Option<i64>,
    /// Run.
    pub run_id: Option<i64>,
    /// Job.
    pub job_id: Option<i64>,
    /// Step.
    pub step: Option<i64>,
    /// Agent.
    pub agent_id: Option<i64>,
    /// Services (any of).
    pub services: Vec<String>,
    /// Level (this level and more severe).
    pub level: Option<String>,
    /// Only lines after this id.
    pub after: Option<i64>,
    /// Only the output of tools (what a job log shows).
    pub tool_output_only: bool,
    /// Substring of the message.
    pub text: Option<String>,
}

// ---------------------------------------------------------------- verdicts

/// What a flow, run or job came to: the one meaning of "failed" that the
/// server's summaries, the CLI's exit codes and the dashboard's colours
/// share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet: jobs still run, or the results are still being
    /// analysed (regressions are known only then).
    Running,
    /// A manual stage waiting for a person to start it.
    Manual,
    /// Everything passed.
    Passed,
    /// Failed jobs, regressions, or jobs that could not even start.
    Failed(String),
    /// A person (or a deleted branch) stopped it.
    Cancelled(String),
}

impl Outcome {
    /// Whether it is decided (neither running nor waiting for a person).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Outcome::Passed | Outcome::Failed(_) | Outcome::Cancelled(_)
        )
    }

    /// Whether it failed (cancelled is not failed).
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }

    /// One word: `running`, `manual`, `passed`, `failed`, `cancelled`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Manual => "manual",
            Outcome::Passed => "passed",
            Outcome::Failed(_) => "failed",
            Outcome::Cancelled(_) => "cancelled",
        }
    }

    /// Why it failed or was cancelled.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Failed(why) | Outcome::Cancelled(why) => Some(why),
            _ => None,
        }
    }
}

/// Whether a run's note says it was cancelled.
fn note_says_cancelled(note: Option<&str>) -> bool {
    note.is_some_and(|n| {
        let n = n.to_ascii_lowercase();
        n.contains("canceled") || n.contains("cancelled")
    })
}

impl Run {
    /// The verdict on this run. Failed jobs fail it as soon as they are
    /// known; otherwise it is decided when its results were analysed
    /// (`processed`), since regressions fail it too.
    pub fn outcome(&self) -> Outcome {
        match self.state.as_str() {
            "manual" => return Outcome::Manual,
            "completed" | "processed" => {}
            _ => return Outcome::Running,
        }
        let stage = &self.stage_name;
        if note_says_cancelled(self.note.as_deref()) {
            return Outcome::Cancelled(format!(
                "stage {stage}: {}",
                self.note.as_deref().unwrap_or("canceled")
            ));
        }
        if self.jobs_error > 0 {
            return Outcome::Failed(format!(
                "stage {stage} has {} failed job(s)",
                self.jobs_error
            ));
        }
        if self.jobs_total == 0
            && let Some(note) = self.note.as_deref().filter(|n| !n.is_empty())
        {
            return Outcome::Failed(format!("stage {stage}: {note}"));
        }
        if self.state != "processed" {
            return Outcome::Running;
        }
        if self.regr_cnt > 0 {
            return Outcome::Failed(format!("stage {stage} has {} regression(s)", self.regr_cnt));
        }
        Outcome::Passed
    }
}

impl Flow {
    /// The verdict on this flow: running while the flow or any of its runs
    /// is (manual runs waiting for a person do not hold it), else failed if
    /// any run failed, cancelled if any was cancelled, else passed.
    pub fn outcome(&self) -> Outcome {
        let runs: Vec<Outcome> = self.runs.iter().map(Run::outcome).collect();
        if self.state != "completed" || runs.contains(&Outcome::Running) {
            return Outcome::Running;
        }
        let id = self.id;
        if let Some(Outcome::Failed(why)) = runs.iter().find(|o| o.is_failure()) {
            return Outcome::Failed(format!("flow {id}: {why}"));
        }
        if let Some(Outcome::Cancelled(why)) =
            runs.iter().find(|o| matches!(o, Outcome::Cancelled(_)))
        {
            return Outcome::Cancelled(format!("flow {id}: {why}"));
        }
        Outcome::Passed
    }
}

impl Job {
    /// The verdict on this job from its completion status.
    pub fn outcome(&self) -> Outcome {
        if self.state != job_state::COMPLETED {
            return Outcome::Running;
        }
        match self.completion_status {
            Some(completion::ALL_OK) | None => Outcome::Passed,
            Some(completion::USER_CANCEL) => Outcome::Cancelled(
                self.notes
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "canceled".into()),
            ),
            Some(s) => Outcome::Failed(format!(
                "job {} ({}): {}",
                self.id,
                self.name,
                self.notes
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| completion::describe(s).to_string())
            )),
        }
    }
}
