//! Many agents at once: N simulated agents poll `/backend` for a fixed
//! time and run every job they are handed (get-job → get-job-step →
//! step-result2 → get-job-step), while a feeder keeps their group's queue
//! full; HTTP errors (must be 0) and jobs handed out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Ctx;
use crate::fixture::{Fixture, JobSpec, stage_code};
use crate::report::Output;
use crate::sim_agent::{self, SimAgent};
use crate::stats::{Samples, per_sec};

/// Jobs in each flow the feeder creates.
const JOBS_PER_FLOW: usize = 10;
/// Longest long-poll an agent asks for (bounds how late it notices the end).
const MAX_WAIT: Duration = Duration::from_secs(2);
/// Pause after an empty answer from a server that does not long-poll.
const POLL_AGAIN: Duration = Duration::from_millis(250);

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "agents", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

/// Shared tallies of all agents.
#[derive(Default)]
struct Tally {
    errors: AtomicU64,
    handed: AtomicU64,
    completed: AtomicU64,
    first_error: Mutex<Option<String>>,
    job_times: Mutex<Samples>,
}

impl Tally {
    fn error(&self, e: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_error.lock() {
            f.get_or_insert_with(|| format!("{e:#}"));
        }
    }
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("agents");
    let n = ctx.sizes.sim_agents;
    let enrol_start = Instant::now();
    let enrolled = sim_agent::enroll(fx, n, !ctx.plain_api).await?;
    let enrol_time = enrol_start.elapsed();
    fx.stage(
        "sim",
        &stage_code(&JobSpec {
            jobs: JOBS_PER_FLOW,
            cmd: "true",
            group: &enrolled.group,
            timeout: None,
        }),
    )
    .await?;

    let before = enrolled.requests.load(Ordering::Relaxed);
    let window = Duration::from_secs_f64(ctx.sizes.agents_secs);
    let start = Instant::now();
    let end = start + window;
    let tally = Arc::new(Tally::default());
    // One task per agent, all sharing the client's connection pool.
    let agents: Vec<_> = enrolled
        .agents
        .iter()
        .map(|a| {
            let (a, tally) = (a.clone(), tally.clone());
            tokio::spawn(async move { agent_loop(&a, end, &tally).await })
        })
        .collect();
    let fed = feed(fx, end, n, &tally).await;
    for a in agents {
        if let Err(e) = a.await {
            tally.error(&anyhow::anyhow!("agent task: {e}"));
        }
    }
    let took = start.elapsed();
    let requests = enrolled.requests.load(Ordering::Relaxed) - before;

    let errors = tally.errors.load(Ordering::Relaxed);
    let handed = tally.handed.load(Ordering::Relaxed);
    let completed = tally.completed.load(Ordering::Relaxed);
    out.figure("simulated agents", n as f64, "");
    out.figure("HTTP errors", errors as f64, "");
    out.figure("jobs handed out", handed as f64, "");
    out.figure("jobs completed", per_sec(completed as f64, took), "jobs/s");
    out.figure("/backend requests", per_sec(requests as f64, took), "req/s");
    if let Ok(times) = tally.job_times.lock() {
        out.latency("job protocol (3 requests)", &times);
    }
    out.figure("enrolment of all agents", enrol_time.as_secs_f64(), "s");
    if errors > 0 {
        let first = tally
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        out.fail(format!(
            "{errors} error(s) polling /backend; first: {first}"
        ));
    }
    if let Err(e) = fed {
        out.fail(format!("creating flows for the agents: {e:#}"));
    }
    if handed == 0 {
        out.fail("no job was handed out to the simulated agents");
    }
    let polling = if ctx.plain_api {
        format!(
            "no long-poll: asks again {} ms after an empty answer",
            POLL_AGAIN.as_millis()
        )
    } else {
        format!("long-poll `wait` ≤ {} s", MAX_WAIT.as_secs())
    };
    out.note(format!(
        "{n} agents registered with host-info, authorized with PATCH /api/agents and moved into \
         their own group; for {:.0} s each loops get-job ({polling}) → get-job-step \
         → step-result2 done → get-job-step, through one pooled HTTP client; flows of \
         {JOBS_PER_FLOW} jobs keep about {} jobs queued; job protocol = the three requests after \
         a job is handed out",
        window.as_secs_f64(),
        2 * n
    ));
    Ok(out)
}

/// One agent until `end`.
async fn agent_loop(agent: &SimAgent, end: Instant, tally: &Tally) {
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        let wait = (end - now).min(MAX_WAIT);
        match agent.get_job(wait).await {
            Ok(Some(job)) => {
                tally.handed.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match agent.finish_job(&job).await {
                    Ok(_) => {
                        tally.completed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut s) = tally.job_times.lock() {
                            s.push(t.elapsed());
                        }
                    }
                    Err(e) => tally.error(&e),
                }
            }
            Ok(None) => {
                // A server that does not long-poll answers at once: do not spin.
                if now.elapsed() < wait / 2 {
                    let left = end.saturating_duration_since(Instant::now());
                    tokio::time::sleep(left.min(POLL_AGAIN)).await;
                }
            }
            Err(e) => {
                tally.error(&e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Keep about `2 * agents` jobs queued until `end`.
async fn feed(fx: &Fixture, end: Instant, agents: usize, tally: &Tally) -> Result<()> {
    let mut created = 0u64;
    while Instant::now() < end {
        let outstanding = created.saturating_sub(tally.completed.load(Ordering::Relaxed));
        if outstanding < 2 * agents as u64 {
            fx.flow().await?;
            created += JOBS_PER_FLOW as u64;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}
