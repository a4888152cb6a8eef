//! Test results: a simulated agent completes CI flows of one stage whose
//! job reports many test results in one `step-result2`; after `history`
//! flows the next one is measured: ingestion (the step-result2 request) and
//! analysis (job finished → run `processed`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::Ctx;
use crate::client::{Api, id_at};
use crate::fixture::{Fixture, JobSpec, stage_code};
use crate::report::Output;
use crate::sim_agent::{self, SimAgent};
use crate::stats::ms;

/// How often the run's state is polled.
const POLL: Duration = Duration::from_millis(10);
/// The goal for analysing a 10,000-test run with 10 flows of history.
const ANALYSIS_GOAL: Duration = Duration::from_secs(1);

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "results", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

/// Results of flow `k`: mostly passed, a steady 0.4 % failing and about one
/// test in a thousand flipping between passed and failed from flow to flow.
fn test_results(n: usize, k: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let status = if i % 1000 == 7 {
                if (k + i / 1000).is_multiple_of(2) {
                    1
                } else {
                    2
                }
            } else if i % 250 == 3 {
                2
            } else {
                1
            };
            json!({
                "test": format!("tests/test_module_{:03}.py::test_case_{i:05}", i / 100),
                "status": status,
                "cmd": format!("pytest -k test_case_{i:05}"),
            })
        })
        .collect()
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("results");
    let tests = ctx.sizes.tests;
    let history = ctx.sizes.history;
    let enrolled = sim_agent::enroll(fx, 1, !ctx.plain_api).await?;
    let agent = &enrolled.agents[0];
    fx.stage(
        "tests",
        &stage_code(&JobSpec {
            jobs: 1,
            cmd: "true",
            group: &enrolled.group,
            timeout: None,
        }),
    )
    .await?;
    let mut ingest = Vec::new();
    let mut analysis = Vec::new();
    let mut last_run = Value::Null;
    for k in 0..=history {
        let flow = fx.flow().await?;
        let flow_id = id_at(&flow, "/id")?;
        let run_id = id_at(&flow, "/runs/0/id")?;
        let job = next_job(agent, ctx.timeout).await?;
        let job_id = id_at(&job, "/id")?;
        let step = agent
            .get_job_step()
            .await?
            .with_context(|| format!("job {job_id} has no step"))?;
        let idx = step["index"].as_i64().unwrap_or(0);
        let msg = agent.step_result_msg(
            job_id,
            idx,
            &json!({"status": "done", "duration": 1, "test-results": test_results(tests, k)}),
        );
        let body = serde_json::to_vec(&msg)?;
        let t = Instant::now();
        let r = agent.send_raw(body, ctx.timeout).await?;
        ingest.push(t.elapsed());
        if r.get("cancel").and_then(Value::as_bool) == Some(true) {
            bail!("the server canceled job {job_id} on its test results");
        }
        if agent.get_job_step().await?.is_some() {
            bail!("job {job_id} has more than one step");
        }
        // The job is finished: now the server analyses the run.
        let t = Instant::now();
        last_run = wait_processed(&ctx.api, run_id, ctx.timeout).await?;
        analysis.push(t.elapsed());
        fx.mark_done(flow_id);
    }
    let (Some(ingested), Some(analysed)) = (ingest.last(), analysis.last()) else {
        bail!("no run was measured");
    };
    out.figure("test results in the measured run", tests as f64, "");
    out.figure("flows of history before it", history as f64, "");
    out.figure("ingestion (one step-result2)", ms(*ingested), "ms");
    out.figure(
        "analysis (job finished → run processed)",
        ms(*analysed),
        "ms",
    );
    let hist = &analysis[..analysis.len() - 1];
    if !hist.is_empty() {
        let mean = hist.iter().map(|d| ms(*d)).sum::<f64>() / hist.len() as f64;
        out.figure("analysis, mean of the history runs", mean, "ms");
    }
    let stored = last_run["tests_total"].as_i64().unwrap_or(-1);
    if stored != tests as i64 {
        out.fail(format!(
            "the measured run counts {stored} tests, {tests} were reported"
        ));
    }
    out.note(format!(
        "one simulated agent reports {tests} results {{test, status, cmd}} in one step-result2 \
         per flow; ingestion = that request's time; analysis = from the job's last get-job-step \
         until GET /api/runs/{{id}} (polled every 10 ms) says `processed`; goal for 10,000 tests \
         with 10 flows of history: analysis under {} s ({})",
        ANALYSIS_GOAL.as_secs(),
        match (tests >= 10_000 && history >= 10, *analysed < ANALYSIS_GOAL) {
            (false, _) => "not judged at these sizes",
            (true, true) => "met",
            (true, false) => "missed",
        }
    ));
    Ok(out)
}

/// Ask for a job until one is handed out.
async fn next_job(agent: &SimAgent, timeout: Duration) -> Result<Value> {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let t = Instant::now();
        let wait = left.min(Duration::from_secs(5));
        if let Some(job) = agent.get_job(wait).await? {
            return Ok(job);
        }
        if Instant::now() >= end {
            bail!("no job was handed out within {}s", timeout.as_secs());
        }
        // A server that does not long-poll answers at once: do not spin.
        if t.elapsed() < wait / 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Wait until a run's state is `processed`; returns the run.
async fn wait_processed(api: &Api, run: i64, timeout: Duration) -> Result<Value> {
    let end = Instant::now() + timeout;
    loop {
        let r = api.get(&format!("/api/runs/{run}")).await?;
        if r["state"] == "processed" {
            return Ok(r);
        }
        if Instant::now() >= end {
            bail!(
                "run {run} was not processed within {}s (state {})",
                timeout.as_secs(),
                r["state"]
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_results_flip_between_flows() {
        let a = test_results(10_000, 0);
        let b = test_results(10_000, 1);
        let flips = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x["status"] != y["status"])
            .count();
        assert_eq!(flips, 10);
        let failing = a.iter().filter(|x| x["status"] == 2).count();
        assert!(failing > 30 && failing < 60, "{failing}");
        assert_eq!(a[42]["test"], "tests/test_module_000.py::test_case_00042");
    }
}
