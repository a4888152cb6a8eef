//! Flow creation on a branch with history: the same sequential creation as
//! `create`, after N flows were created on the branch. Work per flow that
//! grows with what the database already holds (finished tasks, earlier
//! flows and runs) shows here and not on a fresh server.

use std::time::Instant;

use anyhow::Result;

use super::Ctx;
use super::create::create_at_once;
use crate::fixture::Fixture;
use crate::report::Output;
use crate::stats::{Samples, per_sec};

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "aged", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("aged");
    let history = ctx.sizes.aged_flows;
    let n = ctx.sizes.create_flows;
    let c = ctx.sizes.create_concurrency;
    fx.idle_stage().await?;

    let t0 = Instant::now();
    let (hist, errors) = create_at_once(fx, history, c).await;
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
