//! What every program using the [`Kraken`] handle writes otherwise: find a
//! branch by name, start a flow with plain arguments, wait for its verdict,
//! read a job's log as text.

use std::time::{Duration, Instant};

use super::Kraken;
use crate::error::{Error, Result};
use crate::model::{Branch, Flow, FlowArgs, FlowKind, FlowOutcome, RunState};

/// How often [`Kraken::wait_flow`] looks at the flow at first, and at most.
const POLL_FIRST: Duration = Duration::from_millis(200);
const POLL_MAX: Duration = Duration::from_secs(2);

/// The header line of the original's job log download.
const LOG_HEADER: &str = "message";

impl Kraken {
    /// The branch `branch` (its display name) of the project named `project`.
    pub async fn branch_by_name(&self, project: &str, branch: &str) -> Result<Branch> {
        let projects = self.get_projects().await?;
        let Some(p) = projects.items.iter().find(|p| p.name == project) else {
            return Err(Error::not_found(format!("no project named '{project}'")));
        };
        // The list may leave the branches out: ask for the project itself.
        let p = self.get_project(p.id, false).await?;
        p.branches
            .into_iter()
            .find(|b| b.name == branch)
            .ok_or_else(|| {
                Error::not_found(format!("no branch named '{branch}' in project '{project}'"))
            })
    }

    /// Start a flow of `kind` on a branch with `args` (plain names and
    /// values; for every stage, or for one: see [`FlowArgs`]).
    pub async fn start_flow(
        &self,
        branch_id: i64,
        kind: FlowKind,
        args: &FlowArgs,
    ) -> Result<Flow> {
        self.create_flow(branch_id, kind.as_str(), &args.to_new_flow()?)
            .await
    }

    /// Wait until flow `id` is decided (passed, failed or cancelled; runs of
    /// manual stages waiting for a person do not hold it) and say what it
    /// came to. [`Error::Timeout`] when it is not decided within `timeout`.
    pub async fn wait_flow(&self, id: i64, timeout: Duration) -> Result<FlowOutcome> {
        let start = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let outcome = FlowOutcome::of(self.get_flow(id).await?);
            if outcome.verdict.is_final() {
                return Ok(outcome);
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Err(Error::Timeout(format!(
                    "flow {id} is not decided after {}s: {}",
                    timeout.as_secs(),
                    still_running(&outcome.flow)
                )));
            }
            tokio::time::sleep(pause.min(timeout - elapsed)).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    /// The text of a job's log (or of one step's), one line per log line,
    /// without the header line of the original's download format.
    pub async fn job_log(&self, job_id: i64, step_idx: Option<i64>) -> Result<String> {
        let text = self.job_log_text(job_id, step_idx).await?;
        Ok(strip_log_header(text))
    }
}

/// The job log download without its first line when that is the header.
fn strip_log_header(text: String) -> String {
    match text.split_once('\n') {
        Some((first, rest)) if first.trim_end_matches('\r') == LOG_HEADER => rest.to_string(),
        None if text.trim_end_matches('\r') == LOG_HEADER => String::new(),
        _ => text,
    }
}

/// What a flow still waits for, e.g. `stage build in-progress (2/5 jobs)`.
fn still_running(flow: &Flow) -> String {
    let runs: Vec<String> = flow
        .runs
        .iter()
        .filter(|r| !matches!(r.run_state(), RunState::Processed | RunState::Manual))
        .map(|r| {
            format!(
                "stage {} {} ({}/{} jobs done)",
                r.stage_name,
                r.state,
                r.jobs_total - r.jobs_waiting - r.jobs_executing,
                r.jobs_total
            )
        })
        .collect();
    if runs.is_empty() {
        format!("flow {}", flow.state)
    } else {
        runs.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::strip_log_header;

    #[test]
    fn the_header_line_goes_and_nothing_else() {
        assert_eq!(
            strip_log_header("message\nhello\nworld\n".into()),
            "hello\nworld\n"
        );
        assert_eq!(strip_log_header("message\n".into()), "");
        assert_eq!(strip_log_header("message".into()), "");
        // A log whose first line merely starts with the word keeps it.
        assert_eq!(strip_log_header("messages\n".into()), "messages\n");
    }
}
