//! The one event type the dashboard runs on.
//!
//! Everything that can change the screen arrives as a [`DashEvent`] over one
//! channel: keys and resizes from the input thread, ticks from a timer, and
//! data from the network tasks (lists, log lines, action results). The UI
//! loop only drains that channel, hands each event to
//! [`App::handle`](crate::App::handle) and redraws when something changed.

use std::time::Duration;

use kraken_core::api::logs::LogLine;
use kraken_core::model::{Agent, Flow, Job, Project, Run, TestCaseResult};
use ratatui::crossterm::event::KeyEvent;

/// Identifies one opened view. Answers addressed to a view that was left
/// (or re-opened since) are dropped, so a slow answer never lands in the
/// wrong list.
pub type ViewId = u64;

/// Something happened.
#[derive(Debug, Clone)]
pub enum DashEvent {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal was resized (columns, rows).
    Resize(u16, u16),
    /// A second went by: running durations move on, messages expire.
    Tick,
    /// Fresh data for a view; sent only when it differs from the last answer.
    Loaded {
        /// The view that asked.
        view: ViewId,
        /// What was read.
        data: Box<Loaded>,
    },
    /// Reading the data of a view failed; the task tries again by itself.
    LoadFailed {
        /// The view that asked.
        view: ViewId,
        /// What went wrong, for a person.
        error: String,
        /// When the next attempt is made.
        retry_in: Duration,
    },
    /// New lines of the followed job log (a batch: lines are coalesced).
    LogLines {
        /// The log view.
        view: ViewId,
        /// The lines, oldest first.
        lines: Vec<LogEntry>,
    },
    /// The followed job changed state.
    JobState {
        /// The log view.
        view: ViewId,
        /// State (see `kraken_core::model::job_state`).
        state: i64,
        /// Completion status, once completed.
        completion_status: Option<i64>,
    },
    /// The followed job is completed and its whole log was delivered.
    LogEnd {
        /// The log view.
        view: ViewId,
        /// Completion status.
        completion_status: Option<i64>,
    },
    /// Following the log failed for good (the task gave up retrying).
    LogFailed {
        /// The log view.
        view: ViewId,
        /// What went wrong.
        error: String,
    },
    /// An action (create flow, cancel a run or a flow, rerun jobs) finished.
    ActionDone {
        /// What happened, or what went wrong.
        result: Result<String, String>,
        /// What the action made (a new flow, a rerun job): the view's
        /// cursor goes to it.
        created: Created,
    },
    /// A message for the status line from outside the app (e.g. a
    /// background task that crashed).
    Notice(String),
}

/// What an action made or acted on, so that the view that asked can put
/// its cursor there: a flows view takes the flow, a runs view the run, a
/// jobs view the job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    /// A flow (created, or whose jobs were rerun).
    pub flow: Option<i64>,
    /// The run of the (first) new job.
    pub run: Option<i64>,
    /// A new job (the first, when there are several).
    pub job: Option<i64>,
}

/// An unfinished job with where it runs, for the jobs view.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    /// Project name.
    pub project: String,
    /// Branch display name.
    pub branch: String,
    /// Flow kind and label (`CI 3.`).
    pub flow: String,
    /// Stage name.
    pub stage: String,
    /// The job.
    pub job: Job,
}

/// Data a view reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// Every visible project with its branches and their latest CI flows.
    Projects(Vec<Project>),
    /// One page of a branch's flows of one kind, newest first.
    Flows {
        /// `ci` or `dev`.
        kind: String,
        /// The flows.
        flows: Vec<Flow>,
        /// How many there are in all.
        total: i64,
    },
    /// One flow with its runs.
    Flow(Box<Flow>),
    /// A run and its (current, not covered) jobs.
    Jobs {
        /// The run.
        run: Box<Run>,
        /// Its jobs.
        jobs: Vec<Job>,
        /// How its notifications went.
        notifications: Vec<kraken_core::model::RunNotification>,
    },
    /// One job with its steps.
    Job(Box<Job>),
    /// A run and its test results.
    Results {
        /// The run.
        run: Box<Run>,
        /// The results (at most [`RESULTS_LIMIT`](crate::net::RESULTS_LIMIT)).
        results: Vec<TestCaseResult>,
        /// How many there are in all.
        total: i64,
    },
    /// Every agent with its current job.
    Agents(Vec<Agent>),
    /// Running and queued jobs across projects.
    Running(Vec<RunningJob>),
    /// The server's services log, oldest first.
    Services(Vec<LogLine>),
    /// The user may not read this (agents and the services log are for
    /// superadmins): what the server said.
    Forbidden(String),
    /// The last results of a test case, newest first.
    History {
        /// The result whose history this is.
        id: i64,
        /// Its results on the branch, newest first.
        items: Vec<TestCaseResult>,
    },
}

/// One display line of a job log, cleaned of control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The id of the log line it comes from (the follow cursor).
    pub id: i64,
    /// Step index (-1: none).
    pub step: i64,
    /// Whether the agent wrote it (not a step's tool).
    pub internal: bool,
    /// The text, without escapes, tabs expanded.
    pub text: String,
}

impl LogEntry {
    /// Display lines of one API log line: a message with newlines becomes
    /// several lines; escapes and control characters are removed.
    pub fn from_line(line: &kraken_core::api::logs::LogLine) -> Vec<LogEntry> {
        let msg = line.message.strip_suffix('\n').unwrap_or(&line.message);
        msg.split('\n')
            .map(|part| LogEntry {
                id: line.id,
                step: line.step,
                internal: line.tool.is_empty(),
                text: crate::text::sanitize(part),
            })
            .collect()
    }
}
