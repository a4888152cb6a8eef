//! Typed views of the API's words and numbers, for programs using the
//! [`Kraken`](crate::Kraken) handle: the flow kind, flow, run, job and step
//! states and job completion statuses as enums; flow arguments as a plain
//! map; what a flow came to ([`FlowOutcome`]); constructors that take the
//! required names of new objects as `String`s.
//!
//! The JSON keeps the original's shapes (kinds and run states as strings,
//! job states and completion statuses as integers); these types sit on top.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::{
    Flow, Job, JsonMap, NewBranch, NewFlow, NewProject, NewUser, Outcome, Run, StageInput, Step,
    completion, flow_kind, flow_state, job_state, run_state, step_status,
};

/// A word that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{word}': use one of {expected}")]
pub struct UnknownWord {
    /// What was parsed (`flow kind`, ...).
    pub what: &'static str,
    /// The word given.
    pub word: String,
    /// The words accepted.
    pub expected: String,
}

/// Enums with one word per value, for `Display` and `FromStr`.
macro_rules! words {
    ($ty:ident, $what:literal, { $($v:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),+];

            /// The value's word (as the API writes it, where it writes words).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => $word),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($ty::$v),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        word: s.to_string(),
                        expected: [$($word),+].join(", "),
                    }),
                }
            }
        }
    };
}

/// The kind of a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FlowKind {
    /// A CI flow (results are compared with the previous CI flow).
    #[default]
    Ci,
    /// A DEV flow (a developer's try, outside the CI history).
    Dev,
}
words!(FlowKind, "flow kind", { Ci => "ci", Dev => "dev" });

impl FlowKind {
    /// The number the database and some queries use ([`flow_kind`]).
    pub fn code(self) -> i64 {
        match self {
            FlowKind::Ci => flow_kind::CI,
            FlowKind::Dev => flow_kind::DEV,
        }
    }
}

/// The state of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// Some run is still going.
    InProgress,
    /// Every run has ended (the verdict may still wait for the results
    /// analysis: see [`Flow::outcome`]).
    Completed,
}
words!(FlowState, "flow state", { InProgress => "in-progress", Completed => "completed" });

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Being created.
    Creating,
    /// Jobs are running.
    InProgress,
    /// Every job has ended.
    Completed,
    /// The results analysis is done.
    Processed,
    /// Waits for a person to start it.
    Manual,
    /// Being started again.
    Replay,
}
words!(RunState, "run state", {
    Creating => "creating",
    InProgress => "in-progress",
    Completed => "completed",
    Processed => "processed",
    Manual => "manual",
    Replay => "replay",
});

impl RunState {
    /// The number the database uses ([`run_state`]).
    pub fn code(self) -> i64 {
        match self {
            RunState::Creating => run_state::CREATING,
            RunState::InProgress => run_state::IN_PROGRESS,
            RunState::Completed => run_state::COMPLETED,
            RunState::Processed => run_state::PROCESSED,
            RunState::Manual => run_state::MANUAL,
            RunState::Replay => run_state::REPLAY,
        }
    }
}

/// The state of a job (an integer in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Never used by this server.
    Prequeued,
    /// Waiting for an agent.
    Queued,
    /// Fetched by its agent and executing.
    Assigned,
    /// The agent has finished its steps.
    ExecutingFinished,
    /// Done: see its [`CompletionStatus`].
    Completed,
}
words!(JobState, "job state", {
    Prequeued => "prequeued",
    Queued => "queued",
    Assigned => "assigned",
    ExecutingFinished => "executing-finished",
    Completed => "completed",
});

impl JobState {
    /// The number in the JSON ([`job_state`]).
    pub fn code(self) -> i64 {
        match self {
            JobState::Prequeued => job_state::PREQUEUED,
            JobState::Queued => job_state::QUEUED,
            JobState::Assigned => job_state::ASSIGNED,
            JobState::ExecutingFinished => job_state::EXECUTING_FINISHED,
            JobState::Completed => job_state::COMPLETED,
        }
    }

    /// The state of a number, if it is one.
    pub fn from_code(code: i64) -> Option<JobState> {
        JobState::ALL.iter().copied().find(|s| s.code() == code)
    }
}

/// How a job ended (an integer in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompletionStatus {
    /// Every step passed.
    AllOk,
    /// The job ran over its time on the agent.
    JobTimeout,
    /// A step failed.
    AgentErrorReturned,
    /// The agent crashed on a step.
    AgentException,
    /// A step names a tool the server does not know.
    MissingToolInDb,
    /// A tool's files are missing.
    MissingToolFiles,
    /// A step ran over its time.
    StepTimeout,
    /// The server's watchdog ended the job after its timeout.
    ServerTimeout,
    /// A person cancelled it.
    UserCancel,
    /// The job names an agents group that does not exist.
    MissingAgentsGroup,
    /// The group has no usable agent.
    NoAgents,
    /// The agent stopped answering.
    AgentNotAlive,
}
words!(CompletionStatus, "completion status", {
    AllOk => "all-ok",
    JobTimeout => "job-timeout",
    AgentErrorReturned => "agent-error-returned",
    AgentException => "agent-exception",
    MissingToolInDb => "missing-tool-in-db",
    MissingToolFiles => "missing-tool-files",
    StepTimeout => "step-timeout",
    ServerTimeout => "server-timeout",
    UserCancel => "user-cancel",
    MissingAgentsGroup => "missing-agents-group",
    NoAgents => "no-agents",
    AgentNotAlive => "agent-not-alive",
});

impl CompletionStatus {
    /// The number in the JSON ([`completion`]).
    pub fn code(self) -> i64 {
        match self {
            CompletionStatus::AllOk => completion::ALL_OK,
            CompletionStatus::JobTimeout => completion::JOB_TIMEOUT,
            CompletionStatus::AgentErrorReturned => completion::AGENT_ERROR_RETURNED,
            CompletionStatus::AgentException => completion::AGENT_EXCEPTION,
            CompletionStatus::MissingToolInDb => completion::MISSING_TOOL_IN_DB,
            CompletionStatus::MissingToolFiles => completion::MISSING_TOOL_FILES,
            CompletionStatus::StepTimeout => completion::STEP_TIMEOUT,
            CompletionStatus::ServerTimeout => completion::SERVER_TIMEOUT,
            CompletionStatus::UserCancel => completion::USER_CANCEL,
            CompletionStatus::MissingAgentsGroup => completion::MISSING_AGENTS_GROUP,
            CompletionStatus::NoAgents => completion::NO_AGENTS,
            CompletionStatus::AgentNotAlive => completion::AGENT_NOT_ALIVE,
        }
    }

    /// The status of a number, if it is one.
    pub fn from_code(code: i64) -> Option<CompletionStatus> {
        CompletionStatus::ALL
            .iter()
            .copied()
            .find(|s| s.code() == code)
    }

    /// A short description (`ok`, `step failed`, `canceled`, ...).
    pub fn describe(self) -> &'static str {
        completion::describe(self.code())
    }

    /// Whether the job passed.
    pub fn is_ok(self) -> bool {
        self == CompletionStatus::AllOk
    }
}

/// The status of a step (an integer in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// Not started.
    NotStarted,
    /// Running.
    InProgress,
    /// Passed.
    Done,
    /// Failed.
    Error,
    /// Skipped by its `when`.
    Skipped,
}
words!(StepStatus, "step status", {
    NotStarted => "not-started",
    InProgress => "in-progress",
    Done => "done",
    Error => "error",
    Skipped => "skipped",
});

impl StepStatus {
    /// The number in the JSON ([`step_status`]).
    pub fn code(self) -> i64 {
        match self {
            StepStatus::NotStarted => step_status::NOT_STARTED,
            StepStatus::InProgress => step_status::IN_PROGRESS,
            StepStatus::Done => step_status::DONE,
            StepStatus::Error => step_status::ERROR,
            StepStatus::Skipped => step_status::SKIPPED,
        }
    }

    /// The status of a number, if it is one.
    pub fn from_code(code: i64) -> Option<StepStatus> {
        StepStatus::ALL.iter().copied().find(|s| s.code() == code)
    }
}

impl Flow {
    /// The flow's kind (anything but `dev` is CI, as in the original).
    pub fn flow_kind(&self) -> FlowKind {
        if flow_kind::parse(&self.kind) == flow_kind::DEV {
            FlowKind::Dev
        } else {
            FlowKind::Ci
        }
    }

    /// The flow's state (anything but `completed` is in progress).
    pub fn flow_state(&self) -> FlowState {
        if self.state == flow_state::name(flow_state::COMPLETED) {
            FlowState::Completed
        } else {
            FlowState::InProgress
        }
    }
}

impl Run {
    /// The run's state (an unknown word counts as in progress, as the
    /// server's own names do).
    pub fn run_state(&self) -> RunState {
        self.state.parse().unwrap_or(RunState::InProgress)
    }
}

impl Job {
    /// The job's state, if its number is a known one.
    pub fn job_state(&self) -> Option<JobState> {
        JobState::from_code(self.state)
    }

    /// How the job ended, once it has.
    pub fn completion(&self) -> Option<CompletionStatus> {
        if self.state != job_state::COMPLETED {
            return None;
        }
        self.completion_status.and_then(CompletionStatus::from_code)
    }
}

impl Step {
    /// The step's status, once touched.
    pub fn step_status(&self) -> Option<StepStatus> {
        self.status.and_then(StepStatus::from_code)
    }
}

/// The arguments of a new flow: a plain map for every stage, and maps for
/// single stages. On the wire the first is the original's `"Common"` entry
/// next to the stages' names; [`FlowArgs::to_new_flow`] writes that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowArgs {
    /// Arguments of every stage.
    pub common: BTreeMap<String, String>,
    /// Arguments of one stage, by stage name (they win over `common`).
    pub stages: BTreeMap<String, BTreeMap<String, String>>,
}

/// The key of the arguments of every stage in the original's wire format.
const COMMON: &str = "Common";

impl FlowArgs {
    /// No arguments.
    pub fn new() -> FlowArgs {
        FlowArgs::default()
    }

    /// Add an argument of every stage.
    pub fn arg(mut self, name: impl Into<String>, value: impl Into<String>) -> FlowArgs {
        self.common.insert(name.into(), value.into());
        self
    }

    /// Add an argument of one stage.
    pub fn stage_arg(
        mut self,
        stage: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> FlowArgs {
        self.stages
            .entry(stage.into())
            .or_default()
            .insert(name.into(), value.into());
        self
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.common.is_empty() && self.stages.values().all(BTreeMap::is_empty)
    }

    /// The body of `POST /branches/{id}/flows/{kind}`: `{"Common": {...},
    /// "<stage>": {...}}`. A stage named `Common` cannot be given arguments
    /// of its own (the wire format has that key for every stage's).
    pub fn to_new_flow(&self) -> Result<NewFlow, crate::Error> {
        if self.stages.contains_key(COMMON) {
            return Err(crate::Error::bad_request(
                "a stage named 'Common' cannot get arguments of its own: the original's \
                 wire format uses that key for the arguments of every stage",
            ));
        }
        if self.is_empty() {
            return Ok(NewFlow { args: None });
        }
        let map = |m: &BTreeMap<String, String>| -> JsonMap {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect()
        };
        let mut args = BTreeMap::new();
        if !self.common.is_empty() {
            args.insert(COMMON.to_string(), map(&self.common));
        }
        for (stage, a) in self.stages.iter().filter(|(_, a)| !a.is_empty()) {
            args.insert(stage.clone(), map(a));
        }
        Ok(NewFlow { args: Some(args) })
    }
}

impl From<BTreeMap<String, String>> for FlowArgs {
    fn from(common: BTreeMap<String, String>) -> FlowArgs {
        FlowArgs {
            common,
            stages: BTreeMap::new(),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for FlowArgs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> FlowArgs {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<_, _>>()
            .into()
    }
}

/// Counts over a flow's runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounts {
    /// Runs.
    pub runs: i64,
    /// Jobs (superseded reruns not counted).
    pub jobs: i64,
    /// Failed jobs.
    pub jobs_failed: i64,
    /// Test results.
    pub tests: i64,
    /// Passed tests.
    pub tests_passed: i64,
    /// Tests not run.
    pub tests_not_run: i64,
    /// Regressions (tests that passed in the previous CI flow and fail now).
    pub regressions: i64,
    /// Fixes.
    pub fixes: i64,
    /// Issues.
    pub issues: i64,
    /// New issues.
    pub issues_new: i64,
}

impl FlowCounts {
    /// The sums over the runs of `flow`.
    pub fn of(flow: &Flow) -> FlowCounts {
        flow.runs
            .iter()
            .fold(FlowCounts::default(), |c, r| FlowCounts {
                runs: c.runs + 1,
                jobs: c.jobs + r.jobs_total,
                jobs_failed: c.jobs_failed + r.jobs_error,
                tests: c.tests + r.tests_total,
                tests_passed: c.tests_passed + r.tests_passed,
                tests_not_run: c.tests_not_run + r.tests_not_run,
                regressions: c.regressions + r.regr_cnt,
                fixes: c.fixes + r.fix_cnt,
                issues: c.issues + r.issues_total,
                issues_new: c.issues_new + r.issues_new,
            })
    }
}

/// What a flow came to: its verdict ([`Outcome`], the one the server, CLI
/// and dashboard share), state, kind and counts, and the flow as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowOutcome {
    /// Flow id.
    pub id: i64,
    /// Kind.
    pub kind: FlowKind,
    /// State.
    pub state: FlowState,
    /// Passed, failed (and why), cancelled; running or manual only when
    /// read before it was decided.
    pub verdict: Outcome,
    /// Counts over its runs.
    pub counts: FlowCounts,
    /// The flow with its runs.
    pub flow: Flow,
}

impl FlowOutcome {
    /// The outcome of a flow as read.
    pub fn of(flow: Flow) -> FlowOutcome {
        FlowOutcome {
            id: flow.id,
            kind: flow.flow_kind(),
            state: flow.flow_state(),
            verdict: flow.outcome(),
            counts: FlowCounts::of(&flow),
            flow,
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.verdict == Outcome::Passed
    }
}

impl NewProject {
    /// A new project named `name`.
    pub fn new(name: impl Into<String>) -> NewProject {
        NewProject {
            name: Some(name.into()),
            description: None,
        }
    }

    /// With a description.
    pub fn with_description(mut self, description: impl Into<String>) -> NewProject {
        self.description = Some(description.into());
        self
    }
}

impl NewBranch {
    /// A new branch named `name` (its git branch has the same name).
    pub fn new(name: impl Into<String>) -> NewBranch {
        NewBranch {
            name: Some(name.into()),
            ..NewBranch::default()
        }
    }

    /// With a git branch of another name.
    pub fn with_git_branch(mut self, branch_name: impl Into<String>) -> NewBranch {
        self.branch_name = Some(branch_name.into());
        self
    }
}

impl StageInput {
    /// A new stage named `name` with its workflow schema code
    /// (`def stage(ctx): return {...}`).
    pub fn new(name: impl Into<String>, schema_code: impl Into<String>) -> StageInput {
        StageInput {
            name: Some(name.into()),
            schema_code: Some(schema_code.into()),
            ..StageInput::default()
        }
    }
}

impl NewUser {
    /// A new user named `name` with a password.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> NewUser {
        NewUser {
            name: Some(name.into()),
            password: Some(password.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_say_what_is_accepted() {
        for k in FlowKind::ALL {
            assert_eq!(k.as_str().parse::<FlowKind>(), Ok(*k));
        }
        for s in RunState::ALL {
            assert_eq!(s.as_str().parse::<RunState>(), Ok(*s));
            assert_eq!(run_state::name(s.code()), s.as_str());
        }
        for s in FlowState::ALL {
            assert_eq!(s.as_str().parse::<FlowState>(), Ok(*s));
        }
        let e = "nightly".parse::<FlowKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown flow kind 'nightly': use one of ci, dev"
        );
    }

    #[test]
    fn codes_match_the_wire_numbers() {
        assert_eq!(FlowKind::Dev.code(), flow_kind::DEV);
        assert_eq!(JobState::from_code(5), Some(JobState::Completed));
        assert_eq!(JobState::from_code(0), None);
        assert_eq!(
            CompletionStatus::from_code(8),
            Some(CompletionStatus::UserCancel)
        );
        assert_eq!(CompletionStatus::from_code(99), None);
        assert_eq!(
            CompletionStatus::AgentErrorReturned.describe(),
            "step failed"
        );
        assert_eq!(StepStatus::from_code(4), Some(StepStatus::Skipped));
        // Every code maps back to its own value.
        for c in CompletionStatus::ALL {
            assert_eq!(CompletionStatus::from_code(c.code()), Some(*c));
        }
    }

    #[test]
    fn flow_args_put_the_common_key_on_the_wire_only() {
        let a: FlowArgs = [("COUNT", "3"), ("MODE", "fast")].into_iter().collect();
        let a = a.stage_arg("tests", "SHARD", "1");
        let body = serde_json::to_value(a.to_new_flow().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"args": {
                "Common": {"COUNT": "3", "MODE": "fast"},
                "tests": {"SHARD": "1"}
            }})
        );
        let none = FlowArgs::new().to_new_flow().unwrap();
        assert_eq!(serde_json::to_value(none).unwrap(), serde_json::json!({}));
        let clash = FlowArgs::new().stage_arg("Common", "X", "1").to_new_flow();
        assert!(matches!(clash, Err(crate::Error::BadRequest(_))));
    }
}
