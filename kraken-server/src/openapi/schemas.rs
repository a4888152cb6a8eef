//! The schemas of the OpenAPI document: what the REST API really sends and
//! takes. The JSON is made by `kraken_core`'s serde types, which do not
//! depend on utoipa (the core stays lean for embedders); these types mirror
//! them field by field for the document only and are never built. A field is
//! `required` when the server always writes it, and nullable only when it
//! can be `null`. Keep them in step with `kraken_core::model` (the
//! schemathesis pass in `.ci/schemathesis.sh` checks real answers against
//! them).
use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A time in UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub struct Timestamp;

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples(["2026-12-02T11:49:38Z"])
            .into()
    }
}
impl ToSchema for Timestamp {}

/// A JSON object with any members.
pub struct JsonMap;

impl PartialSchema for JsonMap {
    fn schema() -> RefOr<Schema> {
        Object::with_type(Type::Object).into()
    }
}
impl ToSchema for JsonMap {}

/// One server-sent event of `GET /jobs/{id}/logs/stream` (`event`, `id` and
/// `data` of the event; `data` is JSON but for `error`).
pub struct JobLogEvent;

impl PartialSchema for JobLogEvent {
    fn schema() -> RefOr<Schema> {
        let event = |name: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([name]))
        };
        let json_data = |content: RefOr<Schema>| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(content))
        };
        let state = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "state",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("Job state (5: completed)")),
            )
            .required("state")
            .property(
                "completion_status",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                        Type::Integer,
                        Type::Null,
                    ]))
                    .description(Some("Completion status, once completed")),
            )
            .required("completion_status");
        let state: RefOr<Schema> = state.into();
        let kind = |name: &str, description: &str, data: ObjectBuilder, with_id: bool| {
            let mut o = ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(description))
                .property("event", event(name))
                .required("event")
                .property("data", data)
                .required("data");
            if with_id {
                o = o
                    .property(
                        "id",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some("The line's cursor (for `Last-Event-ID`)")),
                    )
                    .required("id");
            }
            o
        };
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(kind(
                "log",
                "A log line",
                json_data(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "LogLine",
                ))),
                true,
            ))
            .item(kind(
                "state",
                "The job's state changed",
                json_data(state.clone()),
                false,
            ))
            .item(kind(
                "end",
                "The job is completed and every line was sent: the last event",
                json_data(state),
                false,
            ))
            .item(kind(
                "error",
                "The stream failed",
                ObjectBuilder::new().schema_type(Type::String),
                false,
            ))
            .into()
    }
}
impl ToSchema for JobLogEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("LogLine".into(), LogLine::schema()));
        LogLine::schemas(schemas);
    }
}

/// A per-project role, weakest first.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read the project.
    Viewer,
    /// May also run flows and change stages and branches.
    Pwrusr,
    /// May also delete and manage secrets.
    Admin,
}

/// `{"<project id>": "viewer" | "pwrusr" | "admin" | null}`, or null.
fn role_changes() -> Schema {
    let role = utoipa::openapi::schema::OneOfBuilder::new()
        .item(Role::schema())
        .item(Object::with_type(Type::Null));
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .additional_properties(Some(Schema::from(role)))
        .into()
}

/// A list answer: a page of items and how many match in all.
#[derive(ToSchema)]
pub struct List<T> {
    /// The page of items.
    pub items: Vec<T>,
    /// How many items match in all (not only this page).
    pub total: i64,
}

/// An empty JSON object, the answer of operations that return `{}`.
#[derive(ToSchema)]
pub struct Empty {}

/// The error body of every failure: `code` and `message`, plus the RFC 7807
/// fields the original's clients read.
#[derive(ToSchema)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// What went wrong.
    pub message: String,
    /// Same as `code` (RFC 7807).
    pub status: u16,
    /// The reason phrase of the status (RFC 7807).
    pub title: String,
    /// Same as `message` (RFC 7807).
    pub detail: String,
    /// Always `about:blank` (RFC 7807).
    #[serde(rename = "type")]
    pub kind: String,
}

// ---------------------------------------------------------------- answers
/// A user.
#[derive(ToSchema)]
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
    #[schema(nullable = false)]
    pub projects: Option<BTreeMap<String, Role>>,
}

/// The roles of a session's user.
#[derive(ToSchema)]
pub struct Roles {
    /// Superadmin or not.
    pub superadmin: bool,
    /// Role per project id.
    pub projects: BTreeMap<String, Role>,
}

/// A login session.
#[derive(ToSchema)]
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

/// A project.
#[derive(ToSchema)]
pub struct Project {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time, if deleted.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// Unique name.
    pub name: String,
    /// Description.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Its secrets (values masked).
    pub secrets: Vec<Secret>,
    /// Webhook settings.
    pub webhooks: Value,
    /// Its branches, by name.
    pub branches: Vec<Branch>,
    /// User data (`data` tool, scope project), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub data: Option<Value>,
}

/// A project secret; `key` and `secret` are always `******` in answers.
#[derive(ToSchema)]
pub struct Secret {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
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
    #[schema(nullable = false)]
    pub username: Option<String>,
    /// Masked key (ssh-key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub key: Option<String>,
    /// Masked secret (simple).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub secret: Option<String>,
}

/// Retention policy of a branch (months).
#[derive(ToSchema)]
pub struct RetentionPolicy {
    /// CI logs.
    pub ci_logs: i64,
    /// DEV logs.
    pub dev_logs: i64,
    /// CI artifacts.
    pub ci_artifacts: i64,
    /// DEV artifacts.
    pub dev_artifacts: i64,
}

/// A short summary of a branch's latest flow.
#[derive(ToSchema)]
pub struct FlowBrief {
    /// Flow id.
    pub id: i64,
    /// Flow label.
    pub label: String,
    /// Finish time (completed flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub finished: Option<Timestamp>,
    /// Creation time (incomplete flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub created: Option<Timestamp>,
    /// Whether any run has failed jobs.
    pub errors: bool,
}

/// A branch.
#[derive(ToSchema)]
pub struct Branch {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// Display name.
    pub name: String,
    /// Owning project.
    pub project_id: i64,
    /// Owning project's name.
    pub project_name: String,
    /// Git branch (webhooks match on it).
    #[schema(required = true)]
    pub branch_name: Option<String>,
    /// Retention policy.
    pub retention_policy: RetentionPolicy,
    /// Environment variables (`ctx.env`).
    pub env_vars: BTreeMap<String, String>,
    /// Latest completed CI flow (in project lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completed_flow: Option<FlowBrief>,
    /// Latest incomplete CI flow (in project lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_incomplete_flow: Option<FlowBrief>,
    /// The 10 latest CI flows (`with_results`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ci_flows: Option<Vec<Flow>>,
    /// The 10 latest DEV flows (`with_results`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub dev_flows: Option<Vec<Flow>>,
    /// Stages with schemas (`cfg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stages: Option<Vec<Stage>>,
}

/// A branch or stage sequence.
#[derive(ToSchema)]
pub struct BranchSequence {
    /// Id.
    pub id: i64,
    /// Kind: 0 flows, 1 CI flows, 2 DEV flows, 3 runs of a stage, 4 its CI runs, 5 its DEV runs.
    pub kind: i64,
    /// Branch.
    pub branch_id: i64,
    /// Branch name.
    pub branch_name: String,
    /// Stage (per-stage kinds).
    #[schema(required = true)]
    pub stage_id: Option<i64>,
    /// Stage name.
    #[schema(required = true)]
    pub stage_name: Option<String>,
    /// Current value.
    pub value: i64,
}

/// Branch stats per flow kind.
#[derive(ToSchema)]
pub struct BranchStatsByKind {
    /// Flows in all.
    pub flows_total: i64,
    /// Flows in the last 30 days.
    pub flows_last_month: i64,
    /// Flows in the last 7 days.
    pub flows_last_week: i64,
    /// Mean duration of finished flows, last 30 days.
    #[schema(required = true)]
    pub avg_duration_last_month: Option<String>,
    /// Mean duration of finished flows, last 7 days.
    #[schema(required = true)]
    pub avg_duration_last_week: Option<String>,
    /// Every flow's duration, oldest first.
    pub durations: Vec<FlowDuration>,
}

/// One flow's duration.
#[derive(ToSchema)]
pub struct FlowDuration {
    /// Label, or `"<id>."`.
    pub flow_label: String,
    /// Seconds, or null while running.
    #[schema(required = true)]
    pub duration: Option<i64>,
}

/// `GET /branches/{id}/stats`.
#[derive(ToSchema)]
pub struct BranchStats {
    /// Branch id.
    pub id: i64,
    /// CI flows.
    pub ci: BranchStatsByKind,
    /// DEV flows.
    pub dev: BranchStatsByKind,
}

/// A stage.
#[derive(ToSchema)]
pub struct Stage {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// Name, unique in the branch.
    pub name: String,
    /// Description.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Disabled stages are not started.
    pub enabled: bool,
    /// The schema is read from `schema_file` in the repository `repo_url`.
    pub schema_from_repo_enabled: bool,
    /// Repository URL.
    #[schema(required = true)]
    pub repo_url: Option<String>,
    /// Repository branch.
    #[schema(required = true)]
    pub repo_branch: Option<String>,
    /// Name of the secret with the repository token.
    #[schema(required = true)]
    pub repo_access_token: Option<String>,
    /// Repository refresh state.
    pub repo_state: i64,
    /// Last repository error.
    #[schema(required = true)]
    pub repo_error: Option<String>,
    /// Repository refresh interval.
    #[schema(required = true)]
    pub repo_refresh_interval: Option<String>,
    /// Extra git clone parameters.
    #[schema(required = true)]
    pub git_clone_params: Option<String>,
    /// Repository version.
    #[schema(required = true)]
    pub repo_version: Option<String>,
    /// Schema file in the repository.
    #[schema(required = true)]
    pub schema_file: Option<String>,
    /// When the schema was last read from the repository.
    #[schema(required = true)]
    pub last_repo_refresh: Option<Timestamp>,
    /// The evaluated schema (with schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub schema: Option<Value>,
    /// The schema code (with schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub schema_code: Option<String>,
}

/// `PUT /stages/{id}/schema` answer.
#[derive(ToSchema)]
pub struct StageSchemaPreview {
    /// Stage id.
    pub stage_id: i64,
    /// Pretty JSON of the evaluated schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub schema: Option<String>,
    /// Why evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

/// One timed trigger of a stage.
#[derive(ToSchema)]
pub struct Schedule {
    /// Trigger kind and spec, e.g. `cron: 0 13 * * *`.
    pub name: String,
    /// Identifier of the timer.
    pub job_id: String,
    /// Next firing time.
    #[schema(required = true)]
    pub next_run_time: Option<Timestamp>,
}

/// A notification of a run's start or end (`GET /runs/{id}/notifications`).
#[derive(ToSchema)]
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

/// `GET /stages/{id}/schedule`.
#[derive(ToSchema)]
pub struct StageSchedule {
    /// The stage's timed triggers.
    pub schedules: Vec<Schedule>,
}

/// A flow.
#[derive(ToSchema)]
pub struct Flow {
    /// Id.
    pub id: i64,
    /// Label (`"<id>."` by default).
    pub label: String,
    /// Creation time.
    pub created: Timestamp,
    /// Finish time.
    #[schema(required = true)]
    pub finished: Option<Timestamp>,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// `in-progress` or `completed`.
    pub state: String,
    /// `ci` or `dev`.
    pub kind: String,
    /// Duration text.
    pub duration: String,
    /// Git branch name of the flow.
    #[schema(required = true)]
    pub branch_name: Option<String>,
    /// Flow arguments.
    pub args: JsonMap,
    /// First trigger record, if triggered by a repository change.
    #[schema(required = true)]
    pub trigger: Option<Value>,
    /// Artifact counters.
    pub artifacts: Value,
    /// Sequences `{shared, own}`.
    pub seq: Value,
    /// Report entries.
    pub report_entries: Vec<ReportEntry>,
    /// Stages of the branch (no schemas).
    pub stages: Vec<Stage>,
    /// Runs.
    pub runs: Vec<Run>,
    /// Project (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub project_id: Option<i64>,
    /// Project name (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub project_name: Option<String>,
    /// Branch (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub branch_id: Option<i64>,
    /// Branch display name (single flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub base_branch_name: Option<String>,
    /// Summary of a completed CI flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub summary: Option<Value>,
}

/// A report entry (an HTML report uploaded as an artifact).
#[derive(ToSchema)]
pub struct ReportEntry {
    /// Display name.
    pub name: String,
    /// Download URL.
    pub url: String,
}

/// A run.
#[derive(ToSchema)]
pub struct Run {
    /// Id.
    pub id: i64,
    /// Label.
    #[schema(required = true)]
    pub label: Option<String>,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// First job start.
    #[schema(required = true)]
    pub started: Option<Timestamp>,
    /// All jobs ended.
    #[schema(required = true)]
    pub finished: Option<Timestamp>,
    /// Analysis time.
    #[schema(required = true)]
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
    #[schema(required = true)]
    pub repo_data: Option<Value>,
    /// Why it was started.
    pub reason: String,
    /// Notes (timeouts, cancel).
    #[schema(required = true)]
    pub note: Option<String>,
    /// Sequences `{shared, own}`.
    pub seq: Value,
    /// Project (not in flow answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub project_id: Option<i64>,
    /// Project name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub project_name: Option<String>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub branch_id: Option<i64>,
    /// Branch display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub branch_name: Option<String>,
    /// Number of artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub artifacts_total: Option<i64>,
    /// Report entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub report_entries: Option<Vec<ReportEntry>>,
}

/// A step of a job.
#[derive(ToSchema)]
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
    /// Status: 0 not started, 1 in progress, 2 done, 3 error, 4 skipped; null before it was touched.
    #[schema(required = true)]
    pub status: Option<i64>,
    /// Result reported by the agent.
    #[schema(required = true)]
    pub result: Option<Value>,
    /// Display name.
    pub name: String,
    /// Times the step was handed to an agent: more than 1 when it was
    /// restarted (its agent or server stopped while it ran), which is why its
    /// log then repeats lines after a `--- step restarted ... ---` marker.
    pub attempts: i64,
    // The step's own fields (`cmd`, `cwd`, ...) follow: additional properties.
}

/// A job.
#[derive(ToSchema)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// First fetched by its agent.
    #[schema(required = true)]
    pub started: Option<Timestamp>,
    /// Agent finished.
    #[schema(required = true)]
    pub finished: Option<Timestamp>,
    /// Completed.
    #[schema(required = true)]
    pub completed: Option<Timestamp>,
    /// Duration text (`""` before it started).
    pub duration: String,
    /// Name.
    pub name: String,
    /// State: 1 prequeued, 2 queued, 3 assigned, 4 executing finished, 5 completed.
    pub state: i64,
    /// Completion status: 0 ok, 1 job timeout, 2 step failed, 3 agent exception, 4 missing tool,
    /// 5 missing tool files, 6 step timeout, 7 server timeout, 8 canceled, 9 missing agents group,
    /// 10 no agents, 11 agent not alive; null until completed.
    #[schema(required = true)]
    pub completion_status: Option<i64>,
    /// Timeout in seconds.
    pub timeout: i64,
    /// Superseded by a rerun.
    pub covered: bool,
    /// Notes.
    #[schema(required = true)]
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

/// A group reference in an agent.
#[derive(ToSchema)]
pub struct GroupRef {
    /// Group id.
    pub id: i64,
    /// Group name.
    pub name: String,
}

/// An agent.
#[derive(ToSchema)]
pub struct Agent {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// Last contact.
    #[schema(required = true)]
    pub last_seen: Option<Timestamp>,
    /// Name.
    pub name: String,
    /// Address (identity).
    pub address: String,
    /// Authorized by an admin.
    pub authorized: bool,
    /// IP address.
    #[schema(required = true)]
    pub ip_address: Option<String>,
    /// State: 0 active, 1 inactive.
    pub state: i64,
    /// Disabled by an admin.
    pub disabled: bool,
    /// Comment.
    #[schema(required = true)]
    pub comment: Option<String>,
    /// Status line.
    #[schema(required = true)]
    pub status_line: Option<String>,
    /// Host information the agent reported.
    #[schema(required = true)]
    pub host_info: Option<Value>,
    /// User attributes.
    #[schema(required = true)]
    pub user_attrs: Option<Value>,
    /// Extra attributes.
    #[schema(required = true)]
    pub extra_attrs: Option<Value>,
    /// Groups.
    pub groups: Vec<GroupRef>,
    /// Current job.
    #[schema(required = true)]
    pub job: Option<Box<Job>>,
}

/// An agents group.
#[derive(ToSchema)]
pub struct Group {
    /// Id.
    pub id: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Deletion time.
    #[schema(required = true)]
    pub deleted: Option<Timestamp>,
    /// Name.
    pub name: String,
    /// Project (project-scoped groups).
    #[schema(required = true)]
    pub project_id: Option<i64>,
    /// Project name.
    #[schema(required = true)]
    pub project_name: Option<String>,
    /// Non-deleted agents in it.
    pub agents_count: i64,
    /// Cloud deployment settings, with defaults filled in.
    pub deployment: Value,
}

/// A system (OS or image) jobs run on.
#[derive(ToSchema)]
pub struct System {
    /// Id.
    pub id: i64,
    /// Name (e.g. `ubuntu-22.04`, `any`, or an image).
    pub name: String,
    /// Executor: `local`, `docker` or `lxd`.
    pub executor: String,
}

/// A tool.
#[derive(ToSchema)]
pub struct Tool {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    #[schema(required = true)]
    pub description: Option<String>,
    /// Location (`""` for built-ins).
    #[schema(required = true)]
    pub location: Option<String>,
    /// Entry point.
    #[schema(required = true)]
    pub entry: Option<String>,
    /// Version.
    #[schema(required = true)]
    pub version: Option<String>,
    /// JSON schema of the step parameters.
    pub fields: Value,
    /// Remote tool repository.
    #[schema(required = true)]
    pub url: Option<String>,
    /// Remote tool tag.
    #[schema(required = true)]
    pub tag: Option<String>,
    /// Remote tool file.
    #[schema(required = true)]
    pub tool_file: Option<String>,
}

/// `GET /version`.
#[derive(ToSchema)]
pub struct ServerVersion {
    /// Server version.
    pub version: String,
}

/// `GET /user_data`.
#[derive(ToSchema)]
pub struct UserData {
    /// The data as a JSON string (indent 4).
    pub data: String,
}

/// `GET /live-data`.
#[derive(ToSchema)]
pub struct LiveData {
    /// Server errors logged in the last hour.
    pub error_logs_count: i64,
    /// Authorized agents.
    pub authorized_agents: i64,
    /// Agents waiting for authorization.
    pub non_authorized_agents: i64,
}

/// A comment thread on a failing test case (carried to later failures).
#[derive(ToSchema)]
pub struct TestCaseComment {
    /// State: 0 new, 1 investigating, 2 bug in product, 3 bug in test.
    pub state: i64,
    /// Entries, newest first: `{author, date, text, state, tcr}`.
    pub data: Vec<Value>,
}

/// A test case result.
#[derive(ToSchema)]
pub struct TestCaseResult {
    /// Id.
    pub id: i64,
    /// Test case.
    pub test_case_id: i64,
    /// Test case name.
    pub test_case_name: String,
    /// Result: 0 not run, 1 passed, 2 failed, 3 error, 4 disabled, 5 unsupported.
    pub result: i64,
    /// Values (performance figures etc.).
    #[schema(required = true)]
    pub values: Option<Value>,
    /// Command line that ran it.
    #[schema(required = true)]
    pub cmd_line: Option<String>,
    /// What a failed test said (JUnit `<failure message=...>`).
    #[schema(required = true)]
    pub message: Option<String>,
    /// The failure's type, e.g. an exception class (JUnit `type=`).
    #[schema(required = true)]
    pub failure_type: Option<String>,
    /// The failure's text and the test's captured output.
    #[schema(required = true)]
    pub output: Option<String>,
    /// How long it took, in seconds.
    #[schema(required = true)]
    pub duration: Option<f64>,
    /// Flips within the last 10 results.
    pub instability: i64,
    /// Flows in a row with this result.
    pub age: i64,
    /// Change: 0 none, 1 fix, 2 regression, 3 new.
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
    #[schema(nullable = false)]
    pub comment: Option<TestCaseComment>,
    /// Project (single result answers, with the fields below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub project_id: Option<i64>,
    /// Project name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub project_name: Option<String>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub branch_id: Option<i64>,
    /// Branch name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub branch_name: Option<String>,
    /// Flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub flow_id: Option<i64>,
    /// `ci` or `dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub flow_kind: Option<String>,
    /// Flow label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub flow_label: Option<String>,
    /// Flow creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub flow_created_at: Option<Timestamp>,
    /// Run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub run_id: Option<i64>,
    /// Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stage_id: Option<i64>,
    /// Stage name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stage_name: Option<String>,
}

/// An issue found by an analysis step.
#[derive(ToSchema)]
pub struct Issue {
    /// Id.
    pub id: i64,
    /// Type: 0 error, 1 warning, 2 convention, 3 refactor.
    pub issue_type: i64,
    /// Line.
    #[schema(required = true)]
    pub line: Option<i64>,
    /// Column.
    #[schema(required = true)]
    pub column: Option<i64>,
    /// Path.
    #[schema(required = true)]
    pub path: Option<String>,
    /// Symbol.
    #[schema(required = true)]
    pub symbol: Option<String>,
    /// Message.
    #[schema(required = true)]
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
    // Other fields the analysis reported (`type`, `module`, `url`, ...) follow: additional properties.
}

/// A log line as the API shows it.
#[derive(ToSchema)]
pub struct LogLine {
    /// Cursor: lines after this id follow it.
    pub id: i64,
    /// Time.
    pub time: Timestamp,
    /// The text.
    pub message: String,
    /// Service (`agent`, `server`, ...).
    pub service: String,
    /// Host.
    pub host: String,
    /// Level.
    pub level: String,
    /// Job (0: none).
    pub job: i64,
    /// Step index (-1: none).
    pub step: i64,
    /// Tool (`''`: the agent itself).
    pub tool: String,
    /// Branch.
    pub branch: i64,
    /// Flow.
    pub flow: i64,
    /// Run.
    pub run: i64,
    /// Agent.
    pub agent: i64,
}

/// A page of log lines.
#[derive(ToSchema)]
pub struct Logs {
    /// Lines.
    pub items: Vec<LogLine>,
    /// Lines matching in all.
    pub total: i64,
    /// The job, for job logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub job: Option<Job>,
}

/// An artifact in a list answer.
#[derive(ToSchema)]
pub struct Artifact {
    /// Id.
    pub id: i64,
    /// Path.
    pub path: String,
    /// Size in bytes.
    pub size: i64,
    /// Flow.
    pub flow_id: i64,
    /// Run.
    pub run_id: i64,
    /// Stage name.
    pub stage: String,
    /// Download URL.
    pub url: String,
}

// ---------------------------------------------------------------- request bodies

/// `PUT /branches/{id}/retention_policy`: months to keep logs and artifacts.
#[derive(ToSchema)]
pub struct RetentionPolicyInput {
    /// CI logs (6 when left out).
    #[serde(default)]
    pub ci_logs: i64,
    /// DEV logs (3 when left out).
    #[serde(default)]
    pub dev_logs: i64,
    /// CI artifacts (6 when left out).
    #[serde(default)]
    pub ci_artifacts: i64,
    /// DEV artifacts (3 when left out).
    #[serde(default)]
    pub dev_artifacts: i64,
}

/// `POST /sessions`.
#[derive(ToSchema)]
pub struct Login {
    /// User name.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub user: Option<String>,
    /// Password.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub password: Option<String>,
    /// `local` (the default); other methods are not supported.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub method: Option<String>,
    /// OIDC provider (unsupported).
    #[serde(default)]
    #[schema(max_length = 255)]
    pub oidc_provider: Option<String>,
}

/// `POST /users`.
#[derive(ToSchema)]
pub struct NewUser {
    /// Login name.
    #[serde(default)]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Password.
    #[serde(default)]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub password: Option<String>,
}

/// `PATCH /users/{id}`: unknown fields (e.g. `password`, which has its own
/// endpoint) and nulls are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    /// Enable or disable the account (disabling ends its sessions).
    #[serde(default)]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    /// Grant or revoke superadmin.
    #[serde(default)]
    #[schema(nullable = false)]
    pub superadmin: Option<bool>,
    /// Project id → role, or null to revoke.
    #[serde(default)]
    #[schema(schema_with = role_changes)]
    pub projects: Option<BTreeMap<String, Option<Role>>>,
}

/// `PUT /users/{id}/password`.
#[derive(ToSchema)]
pub struct PasswordChange {
    /// The current password.
    #[serde(default)]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub password_old: Option<String>,
    /// The new password.
    #[serde(default)]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub password_new: Option<String>,
}

/// `POST /projects`.
#[derive(ToSchema)]
pub struct NewProject {
    /// Unique name.
    #[serde(default)]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
}

/// `PUT /projects/{id}`.
#[derive(ToSchema)]
pub struct ProjectChanges {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// New webhook settings (merged into the current ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Webhooks>,
}

/// The webhook settings of a project (`PUT /projects/{id}`); other keys are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// Take GitHub webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_enabled: Option<bool>,
    /// HMAC secret of GitHub webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 65536)]
    pub github_secret: Option<String>,
    /// Take Gitea webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitea_enabled: Option<bool>,
    /// HMAC secret of Gitea webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 65536)]
    pub gitea_secret: Option<String>,
    /// Take GitLab webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab_enabled: Option<bool>,
    /// Token of GitLab webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 65536)]
    pub gitlab_secret: Option<String>,
    /// Take Radicle webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radicle_enabled: Option<bool>,
    /// HMAC secret of Radicle webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 65536)]
    pub radicle_secret: Option<String>,
}

/// `POST /projects/{id}/secrets` and `PUT /secrets/{id}`.
#[derive(ToSchema)]
pub struct SecretInput {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9_]+$"
    )]
    pub name: Option<String>,
    /// `ssh-key` or `simple` (create only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255, pattern = "^(simple|ssh-key)$")]
    pub kind: Option<String>,
    /// SSH user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub username: Option<String>,
    /// SSH private key (`******` leaves it unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 65536)]
    pub key: Option<String>,
    /// Secret value (`******` leaves it unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 65536)]
    pub secret: Option<String>,
}

/// `POST /projects/{id}/branches`.
#[derive(ToSchema)]
pub struct NewBranch {
    /// Display name.
    #[serde(default)]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Git branch; defaults to the name.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub branch_name: Option<String>,
    /// Branch to fork from.
    #[serde(default)]
    pub id: Option<i64>,
    /// `model-1`: the fork continues the source's numbering (the source restarts from 0).
    #[serde(default)]
    #[schema(max_length = 255)]
    pub forking_model: Option<String>,
}

/// `PUT /branches/{id}`.
#[derive(ToSchema)]
pub struct BranchChanges {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// Git branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub branch_name: Option<String>,
}

/// `PUT /sequences/{id}`.
#[derive(ToSchema)]
pub struct SequenceValue {
    /// New value (≥ -1).
    #[serde(default)]
    #[schema(required = true, nullable = false, minimum = -1)]
    pub value: Option<i64>,
}

/// `PUT /branches/{id}/project_id`.
#[derive(ToSchema)]
pub struct MoveBranch {
    /// Target project.
    #[serde(default)]
    pub project_id: Option<i64>,
}

/// An environment variable of a branch.
#[derive(ToSchema)]
pub struct EnvVar {
    /// Name.
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z_][A-Za-z0-9_]*$"
    )]
    pub name: Option<String>,
    /// Value.
    #[serde(default)]
    #[schema(max_length = 65536, required = true, nullable = false)]
    pub value: Option<String>,
}

/// `POST /branches/{id}/stages` and `PUT /stages/{id}`.
#[derive(ToSchema)]
pub struct StageInput {
    /// Name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
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

/// `PUT /stages/{id}/schema` body.
#[derive(ToSchema)]
pub struct StageSchemaCode {
    /// The code to evaluate.
    #[serde(default)]
    #[schema(max_length = 262144)]
    pub schema_code: Option<String>,
}

/// `POST /branches/{id}/flows/{kind}`: unknown fields are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlow {
    /// `{"Common": {...}, "<stage name>": {...}}` (`null`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<BTreeMap<String, JsonMap>>,
}

/// `POST /flows/{id}/runs`.
#[derive(ToSchema)]
pub struct NewRun {
    /// Stage to run.
    #[serde(default)]
    pub stage_id: Option<i64>,
    /// Run arguments.
    #[serde(default)]
    pub args: Option<JsonMap>,
}

/// `POST /jobs`.
#[derive(ToSchema)]
pub struct NewJob {
    /// The run to add jobs to.
    #[serde(default)]
    #[schema(required = true, nullable = false)]
    pub run: Option<i64>,
}

/// `PATCH /agents` item (a JSON object).
#[derive(ToSchema)]
pub struct AgentAuthorization {
    /// Agent id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Authorize or revoke.
    #[serde(default)]
    pub authorized: Option<bool>,
}

/// `PUT /agents/{id}`.
#[derive(ToSchema)]
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

/// A group named by id: a JSON object `{"id": 1}` (serde's derive would also
/// take the array `[1]`).
#[derive(ToSchema)]
pub struct GroupId {
    /// Group id.
    pub id: i64,
}

/// `POST /groups` and `PUT /groups/{id}`.
#[derive(ToSchema)]
pub struct GroupInput {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = true, nullable = false, min_length = 1, max_length = 255)]
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
#[derive(ToSchema)]
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

/// `POST /tools` (a `tool.json`, or `{url, tag, tool_file}` of a remote
/// tool) or the `meta` part of a zip upload.
#[derive(ToSchema)]
pub struct ToolInput {
    /// Name (required, but for a remote tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[^@/]+$"
    )]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub location: Option<String>,
    /// Entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub entry: Option<String>,
    /// Parameters schema (required, but for a remote tool: `{url, tag,
    /// tool_file}` alone, whose tool.json in the repository gives them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Version to overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub version: Option<String>,
    /// A git repository to load the tool from (without `name`): the server
    /// clones it at `tag` and registers its `tool_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    /// Tag or branch of a remote tool (default: the repository's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 255)]
    pub tag: Option<String>,
    /// A remote tool's tool.json, a path in the repository (default `tool.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub tool_file: Option<String>,
}

/// `POST /test_case_results/{id}/comment`.
#[derive(ToSchema)]
pub struct CommentInput {
    /// Text.
    #[serde(default)]
    #[schema(max_length = 65536, required = true, nullable = false)]
    pub text: Option<String>,
    /// Author.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub author: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<i64>,
}

/// `POST /rq/queue`: a background task to queue.
#[derive(ToSchema)]
pub struct RqEntry {
    /// The task: `analyze_results_history` or `analyze_run` (a module path may precede it).
    #[schema(
        required = true,
        nullable = false,
        pattern = r"^([A-Za-z0-9_]+\.)*(analyze_results_history|analyze_run)$"
    )]
    pub func_name: Option<String>,
    /// Its arguments: a string, a number or a list (joined with commas).
    pub args: Option<Value>,
}

/// `POST /tools/{name}/zip`: a multipart body.
#[derive(ToSchema)]
pub struct ToolUpload {
    /// The tool's JSON description (as `POST /tools` takes).
    pub meta: String,
    /// The tool's zip package.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
}
