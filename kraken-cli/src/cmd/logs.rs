//! `kraken logs`: a job's log, followed or not, or the failed steps' logs of a flow.

use futures_util::StreamExt;
use kraken_core::Kraken;
use kraken_core::api::FollowEvent;
use kraken_core::api::logs::LogPaging;
use kraken_core::model::*;

use crate::args::LogsArgs;
use crate::cmd::jobs::job_state_word;
use crate::out::{Out, failed, not_found, usage};

async fn print_lines(k: &Kraken, out: &Out, job: i64, step: Option<i64>) -> anyhow::Result<()> {
    let mut start = 0;
    loop {
        let paging = LogPaging {
            start: Some(start),
            limit: Some(10_000),
            order: None,
        };
        let page = match step {
            Some(s) => k.get_step_logs(job, s, &paging, None).await?,
            None => k.get_job_logs(job, &paging, false, None).await?,
        };
        for l in &page.items {
            out.entry(l, &l.message)?;
        }
        start += page.items.len() as i64;
        if page.items.is_empty() || start >= page.total {
            return Ok(());
        }
    }
}

/// Prints a job's log (or the failed steps' logs of a flow).
pub async fn run(k: &Kraken, out: &Out, a: &LogsArgs) -> anyhow::Result<()> {
    if let Some(flow) = a.flow {
        let f = k.get_flow(flow).await?;
        let mut any = false;
        for r in &f.runs {
            for j in k.get_run_jobs(r.id, &Paging::default(), false).await?.items {
                if j.completion_status.is_none_or(|s| s == completion::ALL_OK) {
                    continue;
                }
                any = true;
                let failed_steps: Vec<&Step> = j
                    .steps
                    .iter()
                    .filter(|s| s.status == Some(step_status::ERROR))
                    .collect();
                if !out.json {
                    out.line(format!(
                        "== {} / job {} ({}): {}",
                        r.stage_name,
                        j.name,
                        j.id,
                        job_state_word(&j)
                    ))?;
                    if let Some(n) = &j.notes {
                        out.line(format!("   {n}"))?;
                    }
                }
                for s in failed_steps {
                    if !out.json {
                        out.line(format!("-- step {}: {}", s.index, s.name))?;
                    }
                    print_lines(k, out, j.id, Some(s.index)).await?;
                }
            }
        }
        if !any && !out.json {
            eprintln!("flow {flow} has no failed job");
        }
        return Ok(());
    }
    let job = a
        .job
        .ok_or_else(|| usage("name a job (or --flow ID --failed)"))?;
    if let Some(step) = a.step {
        let j = k.get_job(job).await?;
        if !j.steps.iter().any(|s| s.index == step) {
            let have = match j.steps.len() {
                0 => "it has no steps".to_string(),
                n => format!("its steps are 0 to {}", n - 1),
            };
            return Err(not_found(format!("job {job} has no step {step}: {have}")));
        }
    }
    if !a.follow {
        print_lines(k, out, job, a.step).await?;
        return Ok(());
    }
    let mut stream = k.follow_job(job, 0);
    let mut status = None;
    while let Some(ev) = stream.next().await {
        match ev? {
            FollowEvent::Line(l) => {
                // Agent lines about the job itself are internals, as in job logs.
                if l.tool.is_empty() || a.step.is_some_and(|s| s != l.step) {
                    continue;
                }
                out.entry(&l, &l.message)?;
            }
            FollowEvent::State { .. } => {}
            FollowEvent::End { completion_status } => {
                status = completion_status;
                break;
            }
        }
    }
    match status {
        Some(completion::ALL_OK) => Ok(()),
        Some(s) => Err(failed(format!(
            "job {job} failed: {}",
            completion::describe(s)
        ))),
        None => Ok(()),
    }
}
