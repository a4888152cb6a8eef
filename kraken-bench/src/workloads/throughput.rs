//! Flows completed per second: F flows of N trivial jobs each, created back
//! to back on the server's own agents; time until the last one completes.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::Ctx;
use crate::fixture::{Fixture, JobSpec, flow_failure, stage_code, wait_flow};
use crate::report::Output;
use crate::stats::per_sec;

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "throughput", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("throughput");
    let flows = ctx.sizes.throughput_flows;
    let jobs = ctx.sizes.throughput_jobs;
    fx.stage(
        "trivial",
        &stage_code(&JobSpec {
            jobs,
            cmd: "true",
            group: "all",
            timeout: None,
        }),
    )
    .await?;
    let agents = ctx.api.get("/api/agents?start=0&limit=1").await?["total"]
        .as_i64()
        .unwrap_or(0);
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(flows);
    for _ in 0..flows {
        ids.push(crate::client::id_at(&fx.flow().await?, "/id")?);
    }
    let end = t0 + ctx.timeout;
    let mut failed = Vec::new();
    // Flows complete roughly in creation order: wait for each in turn.
    for id in ids {
        let left = end.saturating_duration_since(Instant::now());
        let f = wait_flow(&ctx.api, id, left, Duration::from_millis(20)).await?;
        fx.mark_done(id);
        if let Some(why) = flow_failure(&f) {
            failed.push(why);
        }
    }
    let took = t0.elapsed();
    out.figure("flows completed", per_sec(flows as f64, took), "flows/s");
    out.figure(
        "jobs completed",
        per_sec((flows * jobs) as f64, took),
        "jobs/s",
    );
    out.figure(
        format!("{flows} flows × {jobs} jobs, all completed in"),
        took.as_secs_f64(),
        "s",
    );
    if let Some(why) = failed.first() {
        out.fail(format!(
            "{} of {flows} flows failed; first: {why}",
            failed.len()
        ));
    }
    out.note(format!(
        "{flows} flows of {jobs} trivial jobs (`true`) created back to back on the server's \
         {agents} agent(s); timed from the first creation until the last flow is completed"
    ));
    Ok(out)
}
