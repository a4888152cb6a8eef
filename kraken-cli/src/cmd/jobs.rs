//! `kraken jobs`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::JobsCmd;
use crate::out::Out;

/// A job's state in one word: queued, running, finishing while it runs;
/// then its verdict ([`Job::outcome`]): passed, failed (why), cancelled.
pub(crate) fn job_state_word(j: &Job) -> String {
    match j.outcome() {
        Outcome::Running => match j.state {
            job_state::ASSIGNED => "running".into(),
            job_state::EXECUTING_FINISHED => "finishing".into(),
            _ => "queued".into(),
        },
        Outcome::Failed(_) => format!(
            "failed ({})",
            completion::describe(j.completion_status.unwrap_or_default())
        ),
        o => o.word().into(),
    }
}

/// The columns of a job's row.
pub(crate) const JOB_HEADERS: &[&str] = &["JOB", "NAME", "STATE", "EXIT", "AGENT", "DURATION"];

/// What a step came to in a few characters: its exit code when a process
/// ran, else why it stopped (`timeout`, `canceled`, ...).
pub(crate) fn step_exit(s: &Step) -> String {
    let result = s.result.as_ref();
    let field = |k: &str| result.and_then(|r| r.get(k));
    match (field("retcode").and_then(|v| v.as_i64()), field("reason")) {
        (Some(c), _) => c.to_string(),
        (None, Some(serde_json::Value::String(r))) if s.status == Some(step_status::ERROR) => {
            r.clone()
        }
        _ => String::new(),
    }
}

/// The exit code that decided a job: its failed step's, else its last
/// finished step's.
pub(crate) fn job_exit(j: &Job) -> String {
    let failed = j
        .steps
        .iter()
        .find(|s| s.status == Some(step_status::ERROR));
    let last = j
        .steps
        .iter()
        .rev()
        .find(|s| s.status == Some(step_status::DONE));
    failed.or(last).map(step_exit).unwrap_or_default()
}

/// The agent running a job, or while it waits, why (its note: `no agent of
/// group 'all' can run executor 'docker'`).
pub(crate) fn job_agent(j: &Job) -> String {
    match (&j.notes, j.agent_name.is_empty(), j.state) {
        (Some(n), true, job_state::QUEUED) if !n.is_empty() => format!("({n})"),
        _ => j.agent_name.clone(),
    }
}

/// A job's row under `JOB_HEADERS`.
pub(crate) fn job_row(j: &Job) -> Vec<String> {
    vec![
        j.id.to_string(),
        j.name.clone(),
        job_state_word(j),
        job_exit(j),
        job_agent(j),
        j.duration.clone(),
    ]
}

/// Runs one `kraken jobs` verb.
pub async fn run(k: &Kraken, out: &Out, c: &JobsCmd) -> anyhow::Result<()> {
    match c {
        JobsCmd::Show { job } => {
            let j = k.get_job(*job).await?;
            out.show(&j, || {
                out.table(JOB_HEADERS, vec![job_row(&j)])?;
                let status = |s: Option<i64>| match s {
                    Some(step_status::DONE) => "done",
                    Some(step_status::ERROR) => "error",
                    Some(step_status::SKIPPED) => "skipped",
                    Some(step_status::IN_PROGRESS) => "running",
                    _ => "",
                };
                out.table(
                    &["STEP", "TOOL", "NAME", "STATUS", "EXIT"],
                    j.steps
                        .iter()
                        .map(|s| {
                            vec![
                                s.index.to_string(),
                                s.tool.clone(),
                                s.name.clone(),
                                status(s.status).into(),
                                step_exit(s),
                            ]
                        })
                        .collect(),
                )?;
                if let Some(n) = &j.notes {
                    out.line(format!("notes: {n}"))?;
                }
                Ok(())
            })
        }
        JobsCmd::Rerun { job } => {
            let j = k.job_rerun(*job).await?;
            out.value(&j, j.id)
        }
        JobsCmd::Cancel { job } => {
            k.delete_job(*job).await?;
            Ok(())
        }
    }
}
