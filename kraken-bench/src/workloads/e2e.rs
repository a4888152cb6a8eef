//! End to end on the server's own agents: one-job `echo` flows, one after
//! another; from creation to the first log line of the job (the first step
//! has started) and to the flow's completion.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use crate::client::id_at;
use crate::fixture::{
    Fixture, JobSpec, flow_failure, flow_jobs, job_summary, stage_code, wait_flow,
};
use crate::report::Output;
use crate::sse;
use crate::stats::Samples;

/// How often completion and (without SSE) log lines are polled.
const POLL: Duration = Duration::from_millis(10);
/// How long a log line may take to show up after the flow completed.
const GRACE: Duration = Duration::from_secs(10);

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "e2e", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("e2e");
    let n = ctx.sizes.e2e_flows;
    let code = stage_code(&JobSpec {
        jobs: 1,
        cmd: "echo kraken-bench-e2e",
        group: "all",
        timeout: None,
    });
    out = series(ctx, fx, "echo", &code, "", out).await?;
    if let Some(image) = &ctx.docker_image {
        // The same job in a container of `image`: its first log line is
        // the agent's "running in docker container ..." line, written once
        // the container runs, right before the first step starts.
        let docker = code.replace(
            "\"system\": \"any\"",
            &format!(
                "\"system\": {}, \"executor\": \"docker\"",
                serde_json::to_string(image)?
            ),
        );
        // A project of its own: a flow runs every root stage of its branch.
        let mut dfx = Fixture::create(&ctx.api, "e2e-docker", &ctx.tag).await?;
        let measured = series(ctx, &mut dfx, "echo-docker", &docker, "docker: ", out).await;
        out = dfx.cleanup(measured).await?;
        out.note(format!(
            "docker: the same flows with `\"executor\": \"docker\", \"system\": {image:?}`; the first log line is the agent's \
             `running in docker container ...`, written when the job's container runs, before its first step"
        ));
    }
    if let Some(kkagent) = &ctx.original_agent {
        // The same flows on the original Python agent, in a group of its own.
        let agent = OriginalAgent::start(ctx, kkagent).await?;
        let orig = code.replace(
            "\"agents_group\": \"all\"",
            &format!("\"agents_group\": {:?}", agent.group),
        );
        let mut ofx = Fixture::create(&ctx.api, "e2e-original", &ctx.tag).await?;
        let measured = series(
            ctx,
            &mut ofx,
            "echo-original",
            &orig,
            "original agent: ",
            out,
        )
        .await;
        out = ofx.cleanup(measured).await?;
        agent.stop(ctx).await;
        out.note(format!(
            "original agent: the same flows on the original Python agent ({}), idle between flows; \
             its first log line arrives as a UDP datagram",
            kkagent.display()
        ));
    }
    out.note(match ctx.sse() {
        Some(true) => "first step started = the job's first log line arrives as an SSE `log` event on GET /api/jobs/{id}/logs/stream".to_string(),
        _ => format!(
            "first step started = the job's first log line is readable by polling GET /api/jobs/{{id}}/logs every 10 ms ({})",
            if ctx.plain_api { "--plain-api" } else { "the server has no SSE log stream" }
        ),
    });
    out.note(format!(
        "{n} one-job `echo` flows run one after another on the server's own agents (group `all`); \
         both timed from the POST that creates the flow; completed = GET /api/flows/{{id}} \
         polled every 10 ms shows state `completed`"
    ));
    Ok(out)
}

/// Run `e2e_flows` flows of stage `code`, one after another, and add their
/// figures (names prefixed with `prefix`) to `out`.
async fn series(
    ctx: &Ctx,
    fx: &mut Fixture,
    stage: &str,
    code: &str,
    prefix: &str,
    mut out: Output,
) -> Result<Output> {
    let n = ctx.sizes.e2e_flows;
    fx.stage(stage, code).await?;
    let mut first = Samples::new();
    let mut done = Samples::new();
    let mut failed = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let flow = fx.flow().await?;
        let flow_id = id_at(&flow, "/id")?;
        let jobs = flow_jobs(&ctx.api, &flow, ctx.timeout).await?;
        let job_id = id_at(&jobs[0], "/id")?;
        let flow_done = OnceLock::new();
        let (line, completed) = tokio::join!(first_line(ctx, job_id, t0, &flow_done), async {
            let f = wait_flow(&ctx.api, flow_id, ctx.timeout, POLL).await;
            let _ = flow_done.set(Instant::now());
            Ok::<(Duration, Value), anyhow::Error>((t0.elapsed(), f?))
        });
        let (took, f) = completed?;
        fx.mark_done(flow_id);
        done.push(took);
        first.push(line?);
        if let Some(why) = flow_failure(&f) {
            failed.push(why);
        }
    }
    out.figure(format!("{prefix}flows"), n as f64, "");
    out.latency(&format!("{prefix}created → first log line"), &first);
    out.latency(&format!("{prefix}created → flow completed"), &done);
    if let Some(why) = failed.first() {
        out.fail(format!(
            "{prefix}{} of {n} flows failed; first: {why}",
            failed.len()
        ));
    }
    Ok(out)
}

/// Time from `t0` until the job's first log line is readable. Gives up
/// [`GRACE`] after the flow completed (`flow_done`) without one.
async fn first_line(
    ctx: &Ctx,
    job: i64,
    t0: Instant,
    flow_done: &OnceLock<Instant>,
) -> Result<Duration> {
    let end = t0 + ctx.timeout;
    if ctx.sse() != Some(false) {
        if first_line_sse(ctx, job, end).await? {
            ctx.set_sse(true);
            return Ok(t0.elapsed());
        }
        ctx.set_sse(false);
    }
    loop {
        let logs = ctx
            .api
            .get(&format!("/api/jobs/{job}/logs?start=0&limit=1"))
            .await?;
        let any = logs["items"].as_array().is_some_and(|i| !i.is_empty());
        if any {
            return Ok(t0.elapsed());
        }
        if flow_done.get().is_some_and(|d| d.elapsed() > GRACE) {
            bail!(
                "job {job} has no log line {}s after its flow completed ({})",
                GRACE.as_secs(),
                job_summary(&ctx.api, job).await
            );
        }
        if Instant::now() >= end {
            bail!(
                "job {job} printed no log line within {}s",
                ctx.timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follow the job's SSE log stream until its first `log` event; `false`
/// when the server has no such stream.
async fn first_line_sse(ctx: &Ctx, job: i64, end: Instant) -> Result<bool> {
    let left = end.saturating_duration_since(Instant::now());
    let resp = ctx
        .api
        .request(Method::GET, &format!("/api/jobs/{job}/logs/stream"))
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .timeout(left)
        .send()
        .await?;
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !resp.status().is_success() || !is_sse {
        // 404/405 or an HTML page: no log stream on this server.
        if resp.status().is_server_error() {
            bail!("GET /api/jobs/{job}/logs/stream: HTTP {}", resp.status());
        }
        return Ok(false);
    }
    let mut body = resp.bytes_stream();
    let mut parser = sse::Parser::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, body.next()).await else {
            bail!(
                "job {job} printed no log line within {}s",
                ctx.timeout.as_secs()
            );
        };
        let Some(chunk) = next else {
            bail!("the log stream of job {job} closed before its first line");
        };
        for ev in parser.feed(&chunk?) {
            match ev.event.as_str() {
                "log" => return Ok(true),
                "end" => bail!(
                    "job {job} ended without a log line ({})",
                    job_summary(&ctx.api, job).await
                ),
                "error" => bail!("the log stream of job {job} failed: {}", ev.data),
                _ => {}
            }
        }
    }
}

/// The original Python agent, started for the run: registered, authorized
/// and alone in a group of its own.
struct OriginalAgent {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    agent_id: i64,
    group_id: i64,
    group: String,
}

impl OriginalAgent {
    async fn start(ctx: &Ctx, kkagent: &std::path::Path) -> Result<OriginalAgent> {
        use anyhow::Context;
        let dir = tempfile::tempdir()?;
        let bin = kkagent
            .parent()
            .context("--original-agent: give the path of kkagent")?;
        // What it needs around it: kktool under /opt/kraken, a sudo that
        // runs its arguments.
        std::fs::create_dir_all("/opt/kraken")
            .context("--original-agent runs its tools from /opt/kraken: run the bench as root")?;
        let link = std::path::Path::new("/opt/kraken/kktool");
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(bin.join("kktool"), link)?;
        let shims = dir.path().join("shims");
        std::fs::create_dir_all(&shims)?;
        std::fs::write(shims.join("sudo"), "#!/bin/sh\nexec \"$@\"\n")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(shims.join("sudo"), std::fs::Permissions::from_mode(0o755))?;
        ctx.api
            .put(
                "/api/settings",
                &serde_json::json!({"general": {"allow_address_only_agents": true}}),
            )
            .await?;
        let child = tokio::process::Command::new(kkagent)
            .args([
                "run",
                "--no-update",
                "-s",
                &format!("{}/", ctx.api.base()),
                "-d",
            ])
            .arg(dir.path().join("data"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    shims.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent.log"))?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", kkagent.display()))?;
        let end = Instant::now() + ctx.timeout;
        let agent_id = loop {
            let l = ctx.api.get("/api/agents?unauthorized=true").await?;
            if let Some(id) = l["items"]
                .as_array()
                .and_then(|l| l.iter().find(|a| a["address"] == "127.0.0.1"))
                .and_then(|a| a["id"].as_i64())
            {
                break id;
            }
            if Instant::now() > end {
                bail!(
                    "the original agent did not register within {}s",
                    ctx.timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let group = format!("kraken-bench-original-{}", ctx.tag);
        let g = ctx
            .api
            .post("/api/groups", &serde_json::json!({"name": group}))
            .await?;
        let group_id = id_at(&g, "/id")?;
        ctx.api
            .patch(
                "/api/agents",
                &serde_json::json!([{"id": agent_id, "authorized": true}]),
            )
            .await?;
        ctx.api
            .put(
                &format!("/api/agents/{agent_id}"),
                &serde_json::json!({"groups": [{"id": group_id}]}),
            )
            .await?;
        Ok(OriginalAgent {
            child,
            _dir: dir,
            agent_id,
            group_id,
            group,
        })
    }

    async fn stop(mut self, ctx: &Ctx) {
        let _ = self.child.kill().await;
        let _ = ctx
            .api
            .delete(&format!("/api/agents/{}", self.agent_id))
            .await;
        let _ = ctx
            .api
            .delete(&format!("/api/groups/{}", self.group_id))
            .await;
    }
}
