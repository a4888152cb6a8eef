//! Log ingestion: one job prints many lines (`seq 1 N`) on the server's own
//! agents; lines per second, and when the last line is readable through
//! the API compared with when the flow completes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::Ctx;
use crate::client::id_at;
use crate::fixture::{
    Fixture, JobSpec, flow_failure, flow_jobs, job_summary, stage_code, wait_flow,
};
use crate::report::Output;
use crate::stats::per_sec;

/// Polling before the first line shows up (fine, it is cheap then) ...
const POLL_EARLY: Duration = Duration::from_millis(50);
/// ... and after (each poll counts the job's lines: keep the load low).
const POLL_LATE: Duration = Duration::from_millis(250);
/// How long lines may keep arriving after the flow completed (a server may
/// store logs asynchronously).
const GRACE: Duration = Duration::from_secs(30);

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "logs", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("logs");
    let n = ctx.sizes.log_lines;
    let cmd = format!("seq 1 {n}");
    fx.stage(
        "chatty",
        &stage_code(&JobSpec {
            jobs: 1,
            cmd: &cmd,
            group: "all",
            timeout: Some(ctx.timeout.as_secs().max(300)),
        }),
    )
    .await?;
    let t0 = Instant::now();
    let flow = fx.flow().await?;
    let flow_id = id_at(&flow, "/id")?;
    let job = id_at(&flow_jobs(&ctx.api, &flow, ctx.timeout).await?[0], "/id")?;
    let flow_done = OnceLock::new();
    let (lines, completed) = tokio::join!(watch_lines(ctx, job, n, t0, &flow_done), async {
        let f = wait_flow(&ctx.api, flow_id, ctx.timeout, Duration::from_millis(100)).await;
        let _ = flow_done.set(Instant::now());
        Ok::<_, anyhow::Error>((t0.elapsed(), f?))
    });
    let (done_at, f) = completed?;
    fx.mark_done(flow_id);
    let (first_at, last_at) = lines?;
    if let Some(why) = flow_failure(&f) {
        out.fail(why);
    }
    // All lines seen by one poll (a small job): time them from the creation.
    let span = last_at.saturating_sub(first_at);
    let rate = if span < POLL_EARLY {
        per_sec(n as f64, last_at)
    } else {
        per_sec(n as f64, span)
    };
    out.figure("lines printed by the job", n as f64, "");
    out.figure("ingestion", rate, "lines/s");
    out.figure("created → first line readable", first_at.as_secs_f64(), "s");
    out.figure("created → last line readable", last_at.as_secs_f64(), "s");
    out.figure("created → flow completed", done_at.as_secs_f64(), "s");
    // Paging the finished log: the job's output view and its step's view.
    let pages = [
        (
            "job log, first page",
            format!("/api/jobs/{job}/logs?start=0&limit=10"),
        ),
        (
            "job log, middle page",
            format!("/api/jobs/{job}/logs?start={}&limit=10", n / 2),
        ),
        (
            "job log, last page",
            format!(
                "/api/jobs/{job}/logs?start={}&limit=10",
                n.saturating_sub(10)
            ),
        ),
        (
            "job log, newest (order=desc)",
            format!("/api/jobs/{job}/logs?start=0&limit=10&order=desc"),
        ),
        (
            "step log, last page",
            format!(
                "/api/jobs/{job}/0/logs?start={}&limit=10",
                n.saturating_sub(10)
            ),
        ),
    ];
    for (name, path) in pages {
        let mut took = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            ctx.api.get(&path).await?;
            took.push(t.elapsed());
        }
        took.sort();
        out.figure(
            format!("{name} (median of 5)"),
            took[2].as_secs_f64() * 1000.0,
            "ms",
        );
    }
    out.note(format!(
        "one job runs `{cmd}` on the server's agents; GET /api/jobs/{{id}}/logs?start=0&limit=3&order=desc \
         is polled (every {} ms, then {} ms) until it counts {n} lines and one of the newest is `{n}`; \
         ingestion = lines / (last line readable − first line readable), or / (last line \
         readable − created) when one poll saw them all",
        POLL_EARLY.as_millis(),
        POLL_LATE.as_millis()
    ));
    Ok(out)
}

/// Poll the job's newest line until the last one is readable; returns
/// when the first and the last line became readable (since `t0`). Gives up
/// [`GRACE`] after the flow completed (`flow_done`) without them.
async fn watch_lines(
    ctx: &Ctx,
    job: i64,
    n: u64,
    t0: Instant,
    flow_done: &OnceLock<Instant>,
) -> Result<(Duration, Duration)> {
    let end = t0 + ctx.timeout;
    let last = n.to_string();
    let mut first_at = None;
    loop {
        let page = ctx
            .api
            .get(&format!("/api/jobs/{job}/logs?start=0&limit=3&order=desc"))
            .await?;
        let total = page["total"].as_u64().unwrap_or(0);
        // The server ends a step's log with a line of its own (the exit
        // code): the job's last line is among the newest few.
        let newest_lines: Vec<&str> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["message"].as_str())
            .map(str::trim_end)
            .collect();
        let newest = newest_lines.first().copied().unwrap_or("");
        if total > 0 && first_at.is_none() {
            first_at = Some(t0.elapsed());
        }
        if total >= n && newest_lines.contains(&last.as_str()) {
            let at = t0.elapsed();
            return Ok((first_at.unwrap_or(at), at));
        }
        if flow_done.get().is_some_and(|d| d.elapsed() > GRACE) {
            bail!(
                "job {job}: only {total} of {n} lines readable {}s after its flow completed (newest: '{newest}'; {})",
                GRACE.as_secs(),
                job_summary(&ctx.api, job).await
            );
        }
        if Instant::now() >= end {
            bail!(
                "job {job}: {total} of {n} lines readable after {}s (newest: '{newest}'); raise --timeout for big --log-lines",
                ctx.timeout.as_secs()
            );
        }
        tokio::time::sleep(if first_at.is_some() {
            POLL_LATE
        } else {
            POLL_EARLY
        })
        .await;
    }
}
