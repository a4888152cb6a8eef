//! Flow creation: `POST /api/branches/{id}/flows/ci`, one after another and
//! then several in flight; flows/s and latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use futures_util::future::join_all;

use super::Ctx;
use crate::fixture::Fixture;
use crate::report::Output;
use crate::stats::{Samples, per_sec};

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "create", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

/// Create `n` flows with `c` in flight; their creation times and errors.
pub(super) async fn create_at_once(fx: &Fixture, n: usize, c: usize) -> (Samples, Vec<String>) {
    let next = AtomicUsize::new(0);
    let per_task = join_all((0..c).map(|_| async {
        let mut s = Samples::new();
        let mut errors = Vec::new();
        while next.fetch_add(1, Ordering::Relaxed) < n {
            let t = Instant::now();
            match fx.flow().await {
                Ok(_) => s.push(t.elapsed()),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        (s, errors)
    }))
    .await;
    let mut all = Samples::new();
    let mut errors = Vec::new();
    for (s, e) in per_task {
        all.extend(s);
        errors.extend(e);
    }
    (all, errors)
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("create");
    let n = ctx.sizes.create_flows;
    let c = ctx.sizes.create_concurrency;
    fx.idle_stage().await?;

    let mut seq = Samples::new();
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        fx.flow().await?;
        seq.push(t.elapsed());
    }
    let seq_time = t0.elapsed();
    // Let the server finish the flows before the next measurement.
    fx.wait_all(ctx.timeout).await?;

    let t0 = Instant::now();
    let (conc, errors) = create_at_once(fx, n, c).await;
    let conc_time = t0.elapsed();
    fx.wait_all(ctx.timeout).await?;

    out.figure("sequential", per_sec(n as f64, seq_time), "flows/s");
    out.latency("sequential create", &seq);
    out.figure(
        format!("concurrent ({c} in flight)"),
        per_sec(conc.len() as f64, conc_time),
        "flows/s",
    );
    out.latency("concurrent create", &conc);
    if let Some(first) = errors.first() {
        out.fail(format!(
            "{} of {n} concurrent creations failed; first: {first}",
            errors.len()
        ));
    }
    out.note(format!(
        "{n} flows per mode; a flow has one stage of one job whose agents group has no agents, \
         so the server plans and schedules the job, which ends at once without running"
    ));
    Ok(out)
}
