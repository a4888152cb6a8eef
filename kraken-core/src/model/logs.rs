//! Logs and artifacts as the API shows them.

use serde::{Deserialize, Serialize};

use super::{Job, Timestamp};

/// A log line as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logs {
    /// Lines.
    pub items: Vec<LogLine>,
    /// Lines matching in all.
    pub total: i64,
    /// The job, for job logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
}

/// Paging of log queries.
#[derive(Debug, Clone, Default)]
pub struct LogPaging {
    /// First line (from 0).
    pub start: Option<i64>,
    /// Page size (default 200).
    pub limit: Option<i64>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
}

/// Where a follower of a job log stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogChunk {
    /// New lines after the cursor, in order.
    pub lines: Vec<LogLine>,
    /// Whether the job is completed (no more lines will come once these are read).
    pub job_completed: bool,
    /// The job's state.
    pub job_state: i64,
    /// The job's completion status.
    pub completion_status: Option<i64>,
}

/// An artifact in a list answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
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
