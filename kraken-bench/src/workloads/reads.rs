//! API reads under concurrency: N keep-alive connections hammer one
//! endpoint at a time for a fixed time; requests/s and p50/p99 latency.

use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::Method;

use super::Ctx;
use crate::client::Api;
use crate::fixture::Fixture;
use crate::report::Output;
use crate::stats::{Samples, per_sec};

/// Run the workload.
pub async fn run(ctx: &Ctx) -> Result<Output> {
    let mut fx = Fixture::create(&ctx.api, "reads", &ctx.tag).await?;
    let out = measure(ctx, &mut fx).await;
    fx.cleanup(out).await
}

async fn measure(ctx: &Ctx, fx: &mut Fixture) -> Result<Output> {
    let mut out = Output::new("reads");
    let s = &ctx.sizes;
    // The flows' one job goes to a group without agents: it ends at once,
    // so the reads run against finished flows and an idle server.
    fx.idle_stage().await?;
    for _ in 0..s.reads_flows {
        fx.flow().await?;
    }
    fx.wait_all(ctx.timeout).await?;

    let flows_path = format!("/api/branches/{}/flows/ci", fx.branch);
    let page_path = format!("{flows_path}?start=0&limit=50");
    let targets = [
        ("GET /api/version", "/api/version"),
        ("GET /api/projects", "/api/projects"),
        ("GET /api/branches/{id}/flows/ci", flows_path.as_str()),
        (
            "GET /api/branches/{id}/flows/ci?start=0&limit=50",
            page_path.as_str(),
        ),
    ];
    let window = Duration::from_secs_f64(s.reads_secs);
    let warmup = (window / 5).min(Duration::from_secs(1));
    let mut version_rate = None;
    for (label, path) in targets {
        let r = hammer(&ctx.api, path, s.connections, warmup, window).await;
        if path == "/api/version" {
            version_rate = Some(per_sec(r.samples.len() as f64, window));
        }
        out.figure(
            format!("{label} throughput"),
            per_sec(r.samples.len() as f64, window),
            "req/s",
        );
        out.latency(&format!("{label} latency"), &r.samples);
        out.figure(format!("{label} errors"), r.errors as f64, "");
        if r.errors > 0 {
            out.fail(format!(
                "{label}: {} failed request(s) under load; first: {}",
                r.errors,
                r.first_error.unwrap_or_default()
            ));
        }
    }
    if ctx.bare_axum {
        // The same load on a bare axum handler in a process of its own.
        let bare = crate::bare::Bare::spawn()?;
        let api = Api::new(&bare.url)?;
        let r = hammer(&api, "/api/version", s.connections, warmup, window).await;
        drop(bare);
        let rate = per_sec(r.samples.len() as f64, window);
        out.figure("bare axum handler throughput", rate, "req/s");
        out.latency("bare axum handler latency", &r.samples);
        if r.errors > 0 {
            out.fail(format!(
                "bare axum handler: {} failed request(s); first: {}",
                r.errors,
                r.first_error.unwrap_or_default()
            ));
        }
        if let Some(v) = version_rate.filter(|_| rate > 0.0) {
            out.figure("GET /api/version vs bare axum", 100.0 * v / rate, "%");
        }
    }
    out.note(format!(
        "{} concurrent keep-alive connections, {:.1} s per endpoint after a {:.1} s warm-up; \
         the branch holds {} completed flows (their job's group has no agents) and the flows \
         list is read with the server's default paging and as the first page of 50; the bare \
         axum handler (a process of kraken-bench, only when the server is on this machine) \
         answers GET /api/version with the same JSON shape",
        s.connections,
        window.as_secs_f64(),
        warmup.as_secs_f64(),
        s.reads_flows
    ));
    Ok(out)
}

/// What a load loop saw.
struct Load {
    samples: Samples,
    errors: u64,
    first_error: Option<String>,
}

/// `connections` tasks send `GET path` back to back through the shared
/// connection pool; requests started during `window` (after `warmup`) count.
async fn hammer(
    api: &Api,
    path: &str,
    connections: usize,
    warmup: Duration,
    window: Duration,
) -> Load {
    let from = Instant::now() + warmup;
    let end = from + window;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let api = api.clone();
            let path = path.to_string();
            tokio::spawn(async move {
                let mut load = Load {
                    samples: Samples::new(),
                    errors: 0,
                    first_error: None,
                };
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let result = match api.request(Method::GET, &path).send().await {
                        Ok(resp) => {
                            let status = resp.status();
                            match resp.bytes().await {
                                Ok(_) if status.is_success() => Ok(()),
                                Ok(_) => Err(format!("HTTP {status}")),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let counted = t0 >= from;
                    match result {
                        Ok(()) if counted => load.samples.push(t0.elapsed()),
                        Ok(()) => {}
                        Err(e) => {
                            load.errors += 1;
                            load.first_error.get_or_insert(e);
                            // Do not spin on a refusing server.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load {
        samples: Samples::new(),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        match t.await {
            Ok(l) => {
                total.samples.extend(l.samples);
                total.errors += l.errors;
                if total.first_error.is_none() {
                    total.first_error = l.first_error;
                }
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(format!("load task: {e}"));
            }
        }
    }
    total
}
