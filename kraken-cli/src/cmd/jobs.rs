//! `kraken jobs`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::JobsCmd;
use crate::out::{Out, opt};

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
pub(crate) const JOB_HEADERS: &[&str] = &["JOB", "NAME", "STATE", "STATUS", "AGENT", "DURATION"];

/// A job's row under `JOB_HEADERS`.
pub(crate) fn job_row(j: &Job) -> Vec<String> {
    vec![
        j.id.to_string(),
        j.name.clone(),
        job_state_word(j),
        opt(&j.completion_status),
        j.agent_name.clone(),
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
                    &["STEP", "TOOL", "NAME", "STATUS"],
                    j.steps
                        .iter()
                        .map(|s| {
                            vec![
                                s.index.to_string(),
                                s.tool.clone(),
                                s.name.clone(),
                                status(s.status).into(),
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
