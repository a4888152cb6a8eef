//! `kraken-bench`: drive a Kraken-compatible CI server over HTTP with
//! realistic work and print a table of figures (or `--json`).
//!
//! It speaks only the public REST API (`/api/...`) and the agent protocol
//! (`/backend`), so the same run can be pointed at this project's server and
//! at any other server with the same API. Where this server has extensions
//! (the `wait` long-poll of `get-job`, the SSE log stream) the tool uses
//! them and falls back to plain polling on a server without them.
//!
//! Terms used in the output: a *flow* is one CI pass over a branch, a *run*
//! is a stage's part of a flow, a *job* runs steps on an agent, and
//! *processed* is the state of a run once its results were analysed.
#![forbid(unsafe_code)]

mod args;
mod bare;
mod client;
mod fixture;
mod report;
mod server;
mod sim_agent;
mod sse;
mod stats;
mod workloads;

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::Value;

use args::{Args, Plan};
use client::Api;
use report::{Figure, Message, Report};
use server::{Spawned, proc_status_mib, server_binary};
use workloads::Ctx;

/// The multi-threaded runtime, or exit code 2 (said on stderr).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("kraken-bench: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

fn main() -> ExitCode {
    // reqwest brings no rustls crypto provider (the workspace's one is ring,
    // and this crate does not depend on kraken-core): install it first. An
    // error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::args().nth(1).as_deref() == Some(bare::FLAG) {
        return bare::serve();
    }
    // clap itself exits with 2 on a usage error.
    let plan = match Args::parse().plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kraken-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(run(&plan)) {
        Ok(report) => {
            let text = if plan.json {
                let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
                s.push('\n');
                s
            } else {
                report.to_text()
            };
            // A closed pipe (`| head`) is not an error of the benchmark.
            let _ = std::io::stdout().write_all(text.as_bytes());
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("kraken-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Progress goes to stderr; stdout carries only the result.
fn progress(msg: &str) {
    eprintln!("kraken-bench: {msg}");
}

/// Start the server if asked, benchmark it, stop it. An error here is a
/// usage or connection problem (exit 2); workload problems are in the report.
async fn run(plan: &Plan) -> Result<Report> {
    let spawned = match &plan.spawn {
        Some(bin) => {
            let bin = server_binary(bin.as_deref())?;
            progress(&format!(
                "starting {} with {} agent(s)",
                bin.display(),
                plan.agents
            ));
            let s = Spawned::start(&bin, plan.agents, &plan.password).await?;
            progress(&format!("server pid {} at {}", s.pid, s.url));
            Some(s)
        }
        None => None,
    };
    let result = bench(plan, spawned.as_ref()).await;
    let stopped = match spawned {
        Some(s) => s.stop().await,
        None => Ok(()),
    };
    let mut report = result?;
    if let Err(e) = stopped {
        report.errors.push(Message {
            workload: "server".into(),
            text: format!("{e:#}"),
        });
        report.ok = false;
    }
    Ok(report)
}

async fn bench(plan: &Plan, spawned: Option<&Spawned>) -> Result<Report> {
    let url = spawned.map_or_else(|| plan.server.clone(), |s| s.url.clone());
    let pid = spawned.map(|s| s.pid).or(plan.pid);
    let mut api = Api::new(&url)?;
    api.login(&plan.user, &plan.password)
        .await
        .with_context(|| format!("cannot use the server at {url}"))?;
    let server_version = api.get("/api/version").await.unwrap_or(Value::Null);
    let mut report = Report {
        tool: format!("kraken-bench {}", env!("CARGO_PKG_VERSION")),
        server: url,
        server_version,
        spawned: spawned.is_some(),
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        smoke: plan.smoke,
        plain_api: plan.plain_api,
        sizes: plan.sizes.clone(),
        workloads: plan
            .workloads
            .iter()
            .map(|w| w.name().to_string())
            .collect(),
        figures: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
        ok: true,
    };
    let mut memory = Vec::new();
    let mut rss = |metric: String, report: &mut Report| {
        let Some(pid) = pid else { return };
        match proc_status_mib(pid, "VmRSS") {
            Some(mib) => memory.push(Figure {
                workload: "memory".into(),
                metric,
                value: mib,
                unit: "MiB".into(),
            }),
            None => {
                if !report.errors.iter().any(|e| e.workload == "memory") {
                    report.add(
                        "memory",
                        Err(anyhow::anyhow!(
                            "cannot read /proc/{pid}/status: is the server process local and running?"
                        )),
                    );
                }
            }
        }
    };
    // Idle: once freed memory has gone back to the system (allocators
    // return it with a delay), not in the middle of that.
    if let Some(p) = pid {
        settle(p).await;
    }
    rss("RSS idle".into(), &mut report);
    let mut ctx = Ctx::new(api, plan.sizes.clone(), plan.timeout, plan.plain_api);
    ctx.docker_image = plan.docker_image.clone();
    ctx.original_agent = plan.original_agent.clone();
    ctx.bare_axum = plan.bare_axum;
    let started = Instant::now();
    for w in &plan.workloads {
        progress(&format!("{}: running", w.name()));
        let t = Instant::now();
        let out = workloads::run(&ctx, *w).await;
        progress(&format!(
            "{}: {} in {:.1} s",
            w.name(),
            match &out {
                Ok(o) if o.failures.is_empty() => "done",
                _ => "FAILED",
            },
            t.elapsed().as_secs_f64()
        ));
        report.add(w.name(), out);
        rss(format!("RSS after {}", w.name()), &mut report);
    }
    if let Some(p) = pid {
        progress("memory: waiting for the server's RSS to settle");
        settle(p).await;
        rss("RSS settled after all workloads".into(), &mut report);
    }
    if let Some(peak) = pid.and_then(|p| proc_status_mib(p, "VmHWM")) {
        memory.push(Figure {
            workload: "memory".into(),
            metric: "peak RSS (VmHWM)".into(),
            value: peak,
            unit: "MiB".into(),
        });
    }
    report.figures.extend(memory);
    report.figures.push(Figure {
        workload: "run".into(),
        metric: "all workloads".into(),
        value: started.elapsed().as_secs_f64(),
        unit: "s".into(),
    });
    Ok(report)
}

/// Wait until the server's RSS has settled: readings once a second that
/// stay within 0.5 MiB for [`SETTLE_WINDOW`] readings, and at least
/// [`SETTLE_MIN`] after the start (allocators give freed memory back over
/// some seconds: jemalloc's decay is 10 s, and it gave a fresh server's start-up
/// memory back in two steps, 12 and 22 s later, flat in between), or 60 s.
async fn settle(pid: u32) {
    let start = Instant::now();
    let end = start + std::time::Duration::from_secs(60);
    let mut window: Vec<f64> = Vec::new();
    while Instant::now() < end {
        let Some(now) = proc_status_mib(pid, "VmRSS") else {
            return;
        };
        window.push(now);
        if window.len() > SETTLE_WINDOW {
            window.remove(0);
            let (lo, hi) = window
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            if hi - lo < 0.5 && start.elapsed() >= SETTLE_MIN {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Readings of [`settle`]'s window.
const SETTLE_WINDOW: usize = 12;

/// The shortest wait of [`settle`].
const SETTLE_MIN: std::time::Duration = std::time::Duration::from_secs(30);
