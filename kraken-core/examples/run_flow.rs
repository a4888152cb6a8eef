//! Log in to a Kraken server, start a flow on a branch and wait for its
//! verdict; print the log of every failed job. Needs only the `client`
//! feature:
//!
//! ```text
//! cargo run -p kraken-core --no-default-features --features client \
//!     --example run_flow -- http://127.0.0.1:8080 demo/main GREETING=hello
//! ```
//!
//! The user and password come from `KRAKEN_USER` and `KRAKEN_PASSWORD`
//! (`admin` / `admin` when unset), the kind from `KRAKEN_FLOW_KIND` (`ci` or
//! `dev`), how long to wait from `KRAKEN_WAIT_SECS` (600). Exit code: 0
//! passed, 1 failed or cancelled, 2 usage or server error, 124 timed out.

use std::process::ExitCode;
use std::time::Duration;

use kraken_core::model::{FlowArgs, FlowKind, Outcome, Paging};
use kraken_core::{Error, Kraken};

const USAGE: &str = "usage: run_flow SERVER PROJECT/BRANCH [NAME=VALUE ...]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(Error::Timeout(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(124)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

async fn run() -> Result<ExitCode, Error> {
    let mut argv = std::env::args().skip(1);
    let (Some(server), Some(branch)) = (argv.next(), argv.next()) else {
        return Err(Error::bad_request(USAGE));
    };
    let Some((project, branch)) = branch.split_once('/') else {
        return Err(Error::bad_request(USAGE));
    };
    // Flow arguments: a plain map (the handle writes the original's
    // `"Common"` level on the wire).
    let mut args = FlowArgs::new();
    for a in argv {
        let Some((name, value)) = a.split_once('=') else {
            return Err(Error::bad_request(format!(
                "'{a}' is not NAME=VALUE\n{USAGE}"
            )));
        };
        args = args.arg(name, value);
    }
    let kind: FlowKind = env_or("KRAKEN_FLOW_KIND", "ci")
        .parse()
        .map_err(|e| Error::bad_request(format!("KRAKEN_FLOW_KIND: {e}")))?;
    let wait: u64 = env_or("KRAKEN_WAIT_SECS", "600")
        .parse()
        .map_err(|e| Error::bad_request(format!("KRAKEN_WAIT_SECS: {e}")))?;

    let user = env_or("KRAKEN_USER", "admin");
    let (k, _session) = Kraken::login(&server, &user, &env_or("KRAKEN_PASSWORD", "admin")).await?;
    let b = k.branch_by_name(project, branch).await?;
    let flow = k.start_flow(b.id, kind, &args).await?;
    println!("started {kind} flow {} on {project}/{branch}", flow.id);

    let o = k.wait_flow(flow.id, Duration::from_secs(wait)).await?;
    for run in &o.flow.runs {
        println!(
            "  stage {:<20} {:<10} jobs {}/{} failed, tests {}/{} passed",
            run.stage_name,
            run.run_state(),
            run.jobs_error,
            run.jobs_total,
            run.tests_passed,
            run.tests_total
        );
        if run.jobs_error == 0 {
            continue;
        }
        let jobs = k.get_run_jobs(run.id, &Paging::default(), false).await?;
        for job in jobs.items.iter().filter(|j| j.outcome().is_failure()) {
            let status = job.completion().map_or("unknown status", |c| c.describe());
            println!("  job {} ({}) {status}; its log:", job.id, job.name);
            for line in k.job_log(job.id, None).await?.lines() {
                println!("    {line}");
            }
        }
    }
    let c = o.counts;
    println!(
        "flow {}: {} ({} runs, {} jobs, {} failed, {} regressions)",
        o.id,
        o.verdict.word(),
        c.runs,
        c.jobs,
        c.jobs_failed,
        c.regressions
    );
    Ok(match o.verdict {
        Outcome::Passed => ExitCode::SUCCESS,
        Outcome::Failed(why) | Outcome::Cancelled(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
        // wait_flow returns only decided flows.
        Outcome::Running | Outcome::Manual => ExitCode::from(2),
    })
}
