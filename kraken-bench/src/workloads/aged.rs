//! Flow creation on a branch with history: the same sequential creation as
//! `create`, after N flows were created on the branch. Work per flow that
//! grows with what the database already holds (finished tasks, earlier
//! flows and runs) shows here and not on a fresh server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use futures_util::future::join_all;

use super::Ctx;
use crate::fixture::{Fixture, JobSpec, stage_code};
use crate::report::Output;
use crate::stats::{Samples, per_sec};

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "aged", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

/// Create `n` flows with `c` in flight; their creation times and errors.
async fn create_many(fx: &Fixture, n: usize, c: usize) -> (Samples, Vec<String>) {
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
    let mut out = Output::new("aged");
    let history = ctx.sizes.aged_flows;
    let n = ctx.sizes.create_flows;
    let c = ctx.sizes.create_concurrency;
    let (_, group) = fx.group().await?;
    fx.stage(
        "build",
        &stage_code(&JobSpec {
            jobs: 1,
            cmd: "true",
            group: &group,
            timeout: None,
        }),
    )
    .await?;

    let t0 = Instant::now();
    let (hist, errors) = create_many(fx, history, c).await;
    let hist_time = t0.elapsed();
    fx.wait_all(ctx.timeout).await?;

    let mut seq = Samples::new();
    for _ in 0..n {
        let t = Instant::now();
        fx.flow().await?;
        seq.push(t.elapsed());
    }
    fx.wait_all(ctx.timeout).await?;

    // The branch's flows list, as the web UI and the TUI read it: the
    // newest page and its total, out of every flow of the branch.
    let list = format!("/api/branches/{}/flows/ci", fx.branch);
    let mut reads = Samples::new();
    for _ in 0..n {
        let t = Instant::now();
        let page = fx.api.get(&list).await?;
        reads.push(t.elapsed());
        let total = page["total"].as_u64().unwrap_or(0);
        if total < (history + n) as u64 {
            out.fail(format!(
                "the flows list counts {total} flows, not {}",
                history + n
            ));
            break;
        }
    }

    out.figure(
        format!("history ({c} in flight)"),
        per_sec(hist.len() as f64, hist_time),
        "flows/s",
    );
    out.latency("history create", &hist);
    out.latency(&format!("sequential create after {history} flows"), &seq);
    out.latency(&format!("GET flows list of {} flows", history + n), &reads);
    if let Some(first) = errors.first() {
        out.fail(format!(
            "{} of {history} creations failed; first: {first}",
            errors.len()
        ));
    }
    out.note(format!(
        "{history} flows created on one branch ({c} in flight), then {n} one after another, \
         then the branch's flows list (default page, with the total) read {n} times; the flows \
         are those of `create`"
    ));
    Ok(out)
}
