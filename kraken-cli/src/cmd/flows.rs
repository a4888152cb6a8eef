//! `kraken flows`: create, wait, inspect.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use kraken_core::Kraken;
use kraken_core::model::*;
use serde_json::{Map, Value};

use crate::args::FlowsCmd;
use crate::cmd::key_values;
use crate::cmd::runs::{RUN_HEADERS, run_row};
use crate::out::{Out, failed, opt, timed_out, usage};
use crate::resolve::{branch_id, flow_id};

/// A flow's state in one word: its verdict once decided
/// ([`Flow::outcome`]: passed, failed, cancelled), else its state.
fn state_word(f: &Flow) -> String {
    match f.outcome() {
        Outcome::Running => f.state.clone(),
        o => o.word().to_string(),
    }
}

async fn wait_flow(k: &Kraken, out: &Out, id: i64, timeout: Option<u64>) -> anyhow::Result<()> {
    let start = Instant::now();
    let progress = std::io::stderr().is_terminal() && !out.json;
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let f = loop {
        let f = k.get_flow(id).await?;
        if f.outcome().is_final() {
            break f;
        }
        if let Some(b) = &bar {
            let runs: Vec<String> = f
                .runs
                .iter()
                .map(|r| {
                    format!(
                        "{} {} ({}/{} jobs)",
                        r.stage_name,
                        r.state,
                        r.jobs_total - r.jobs_waiting - r.jobs_executing,
                        r.jobs_total
                    )
                })
                .collect();
            b.set_message(format!("flow {id} {}: {}", f.label, runs.join(", ")));
        }
        if let Some(t) = timeout
            && start.elapsed() > Duration::from_secs(t)
        {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(timed_out(format!("flow {id} is not done after {t}s")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // Without --json the verdict goes to stderr (and the exit code) only.
    out.json_only(&f)?;
    match f.outcome() {
        Outcome::Failed(why) | Outcome::Cancelled(why) => Err(failed(why)),
        _ => {
            if progress {
                eprintln!("flow {id} ({}) passed in {}", f.label, f.duration);
            }
            Ok(())
        }
    }
}

/// Runs one `kraken flows` verb.
pub async fn run(k: &Kraken, out: &Out, c: &FlowsCmd) -> anyhow::Result<()> {
    match c {
        FlowsCmd::List {
            branch,
            kind,
            limit,
        } => {
            let l = k
                .get_flows(branch_id(k, branch).await?, kind, None, Some(*limit), None)
                .await?;
            out.list(
                &l,
                &["ID", "LABEL", "KIND", "STATE", "CREATED", "DURATION"],
                |f| {
                    vec![
                        f.id.to_string(),
                        f.label.clone(),
                        f.kind.clone(),
                        state_word(f),
                        out.when(f.created),
                        f.duration.clone(),
                    ]
                },
            )?;
        }
        FlowsCmd::Show { flow } => {
            let f = k.get_flow(flow_id(k, flow).await?).await?;
            out.show(&f, || {
                out.fields(&[
                    ("id", f.id.to_string()),
                    ("label", f.label.clone()),
                    ("kind", f.kind.clone()),
                    ("state", state_word(&f)),
                    (
                        "branch",
                        format!("{} ({})", opt(&f.base_branch_name), opt(&f.branch_id)),
                    ),
                    ("created", out.when(f.created)),
                    ("duration", f.duration.clone()),
                ])?;
                if let Some(t) = &f.trigger {
                    out.fields(&[("trigger", trigger_line(t))])?;
                }
                out.table(RUN_HEADERS, f.runs.iter().map(run_row).collect())
            })?;
        }
        FlowsCmd::Create {
            branch,
            kind,
            args,
            stage_args,
            wait,
            wait_args,
        } => {
            if kind != "ci" && kind != "dev" {
                return Err(usage(format!("--kind must be ci or dev, not '{kind}'")));
            }
            let bid = branch_id(k, branch).await?;
            let mut all: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            if !args.is_empty() {
                all.insert("Common".into(), key_values(args)?);
            }
            for sa in stage_args {
                let (stage, kv) = sa
                    .split_once(':')
                    .ok_or_else(|| usage(format!("'{sa}' is not STAGE:KEY=VALUE")))?;
                all.entry(stage.to_string())
                    .or_default()
                    .extend(key_values(&[kv.to_string()])?);
            }
            let f = k
                .create_flow(
                    bid,
                    kind,
                    &NewFlow {
                        args: (!all.is_empty()).then_some(all),
                    },
                )
                .await?;
            if *wait {
                if !out.json {
                    out.line(f.id)?;
                }
                return wait_flow(k, out, f.id, wait_args.timeout).await;
            }
            out.value(&f, f.id)?;
        }
        FlowsCmd::Wait { flow, wait_args } => {
            return wait_flow(k, out, flow_id(k, flow).await?, wait_args.timeout).await;
        }
        FlowsCmd::Watch {
            flow,
            log,
            wait_args,
        } => {
            let id = flow_id(k, flow).await?;
            return super::watch::watch(k, out, id, *log, wait_args.timeout).await;
        }
        FlowsCmd::Cancel { flow } => {
            let id = flow_id(k, flow).await?;
            let f = k.get_flow(id).await?;
            let mut cancelled = Vec::new();
            for r in &f.runs {
                if matches!(r.state.as_str(), "completed" | "processed") {
                    continue;
                }
                k.cancel_run(r.id).await?;
                cancelled.push(r.id);
            }
            let msg = if cancelled.is_empty() {
                format!("flow {id} has nothing left to cancel")
            } else {
                format!("flow {id}: cancelled {} run(s)", cancelled.len())
            };
            out.value(
                &serde_json::json!({"flow": id, "cancelled_runs": cancelled}),
                msg,
            )?;
        }
        FlowsCmd::Rerun { flow, failed } => {
            let id = flow_id(k, flow).await?;
            let f = k.get_flow(id).await?;
            let mut jobs = Vec::new();
            let mut runs = Vec::new();
            for r in &f.runs {
                if *failed {
                    for j in k.get_run_jobs(r.id, &Paging::default(), false).await?.items {
                        if j.outcome().is_failure() {
                            jobs.push(k.job_rerun(j.id).await?.id);
                        }
                    }
                } else if r.state != "manual" {
                    runs.push(k.run_run_jobs(r.id).await?.id);
                }
            }
            if *failed && jobs.is_empty() {
                return Err(usage(format!("flow {id} has no failed job to rerun")));
            }
            out.value(
                &serde_json::json!({"flow": id, "rerun_jobs": jobs, "replayed_runs": runs}),
                if *failed {
                    format!("flow {id}: {} failed job(s) rerun", jobs.len())
                } else {
                    format!("flow {id}: {} run(s) replayed", runs.len())
                },
            )?;
        }
        FlowsCmd::Artifacts { flow } => {
            let l = k.get_flow_artifacts(*flow).await?;
            out.list(&l, &["PATH", "SIZE", "STAGE", "RUN"], |a| {
                vec![
                    a.path.clone(),
                    a.size.to_string(),
                    a.stage.clone(),
                    a.run_id.to_string(),
                ]
            })?;
        }
        FlowsCmd::Download { flow, path, output } => {
            let (bytes, name) = k.read_artifact("f", *flow, path).await?;
            match output.as_ref().map(|p| p.to_string_lossy().to_string()) {
                Some(ref o) if o == "-" => {
                    use std::io::Write;
                    let mut so = std::io::stdout().lock();
                    if let Err(e) = so.write_all(&bytes).and_then(|()| so.flush())
                        && e.kind() != std::io::ErrorKind::BrokenPipe
                    {
                        return Err(usage(format!("cannot write to stdout: {e}")));
                    }
                }
                other => {
                    let target = other.unwrap_or(name);
                    std::fs::write(&target, &bytes)
                        .with_context(|| format!("cannot write {target}"))?;
                    eprintln!("saved {target} ({} bytes)", bytes.len());
                }
            }
        }
    }
    Ok(())
}

/// What started a flow, in one line: `github-push of 3f2a9c1d (refs/heads/main)
/// to https://... by dev`, `git-push of ... (2 commits)`.
fn trigger_line(t: &Value) -> String {
    let text = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("");
    let after: String = text("after").chars().take(12).collect();
    let mut line = format!("{} of {after}", text("trigger"));
    if let Some(r) = t.get("ref").and_then(Value::as_str) {
        line.push_str(&format!(" ({r})"));
    }
    if let Some(pr) = t.get("pull_request") {
        let head = pr
            .pointer("/head/ref")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let base = pr
            .pointer("/base/ref")
            .and_then(Value::as_str)
            .unwrap_or("?");
        line.push_str(&format!(" ({head} into {base})"));
    }
    if !text("repo").is_empty() {
        line.push_str(&format!(" to {}", text("repo")));
    }
    let who = ["/pusher/name", "/pusher/username", "/sender/login"]
        .iter()
        .find_map(|p| t.pointer(p).and_then(Value::as_str));
    if let Some(w) = who {
        line.push_str(&format!(" by {w}"));
    }
    if let Some(n) = t.get("commits").and_then(Value::as_array).map(Vec::len)
        && n > 0
    {
        line.push_str(&format!(", {n} commit{}", if n == 1 { "" } else { "s" }));
    }
    line
}
