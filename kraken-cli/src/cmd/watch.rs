//! `kraken flows watch`: a flow's live tree of runs, jobs and steps with
//! their states and durations (redrawn in place on a terminal, one line per
//! change in a pipe, JSON Lines with `--json`), optionally the running jobs'
//! logs underneath, until the flow is decided; the exit code is its verdict.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kraken_core::Kraken;
use kraken_core::api::FollowEvent;
use kraken_core::model::*;
use serde_json::json;
use tokio::sync::mpsc;

use crate::out::{Out, failed, timed_out};

/// How often the tree is read again.
const TICK: Duration = Duration::from_millis(500);
/// Log lines kept under the tree on a terminal.
const LOG_TAIL: usize = 10;

/// A step's state word.
fn step_word(s: &Step, job: &Job) -> &'static str {
    match s.status {
        Some(step_status::DONE) => "passed",
        Some(step_status::ERROR) => "failed",
        Some(step_status::SKIPPED) => "skipped",
        Some(step_status::IN_PROGRESS) if job.state == job_state::COMPLETED => "cancelled",
        Some(step_status::IN_PROGRESS) => "running",
        _ if job.state == job_state::COMPLETED => "skipped",
        _ => "waiting",
    }
}

/// A job's state word: its verdict once decided.
fn job_word(j: &Job) -> &'static str {
    match j.outcome() {
        Outcome::Running => match j.state {
            job_state::ASSIGNED | job_state::EXECUTING_FINISHED => "running",
            _ => "waiting",
        },
        o => o.word(),
    }
}

/// A run's state word.
fn run_word(r: &Run) -> &'static str {
    match r.outcome() {
        Outcome::Running if r.state == "completed" => "analysing",
        Outcome::Running => "running",
        o => o.word(),
    }
}

/// A mark for a state word on a terminal: colour and symbol.
fn mark(word: &str, tty: bool) -> String {
    let (sym, colour) = match word {
        "passed" => ("✓", "32"),
        "failed" => ("✗", "31;1"),
        "cancelled" | "skipped" => ("-", "90"),
        "running" | "analysing" => ("●", "33"),
        "manual" => ("?", "35"),
        _ => ("○", "34"),
    };
    if tty {
        format!("\x1b[{colour}m{sym} {word}\x1b[0m")
    } else {
        word.to_string()
    }
}

/// One line of the tree: what it is (for change detection) and its text.
struct Node {
    key: String,
    word: &'static str,
    text: String,
}

/// The tree of a flow: the flow, its runs, their jobs, their steps.
fn tree(f: &Flow, jobs: &BTreeMap<i64, Vec<Job>>, tty: bool) -> Vec<Node> {
    let flow_word = match f.outcome() {
        Outcome::Running => "running",
        o => o.word(),
    };
    let place = match (&f.project_name, &f.base_branch_name) {
        (Some(p), Some(b)) => format!(" on {p}/{b}"),
        _ => String::new(),
    };
    let mut out = vec![Node {
        key: format!("flow {}", f.id),
        word: flow_word,
        text: format!(
            "flow {} ({}){place}  {}  {}",
            f.id,
            f.label,
            mark(flow_word, tty),
            f.duration
        ),
    }];
    for r in &f.runs {
        let w = run_word(r);
        let done = r.jobs_total - r.jobs_waiting - r.jobs_executing;
        out.push(Node {
            key: format!("run {}", r.id),
            word: w,
            text: format!(
                "  {}  {}  {done}/{} jobs  {}",
                r.stage_name,
                mark(w, tty),
                r.jobs_total,
                r.duration
            ),
        });
        for j in jobs.get(&r.id).into_iter().flatten() {
            let w = job_word(j);
            out.push(Node {
                key: format!("job {}", j.id),
                word: w,
                text: format!(
                    "    job {} {}  {}  {}{}",
                    j.id,
                    j.name,
                    mark(w, tty),
                    j.duration,
                    if j.agent_name.is_empty() {
                        String::new()
                    } else {
                        format!("  on {}", j.agent_name)
                    }
                ),
            });
            for s in &j.steps {
                let w = step_word(s, j);
                let took = s
                    .result
                    .as_ref()
                    .and_then(|r| r.get("duration"))
                    .and_then(|d| d.as_str())
                    .map(|d| format!("  {d}"))
                    .unwrap_or_default();
                out.push(Node {
                    key: format!("step {}/{}", j.id, s.index),
                    word: w,
                    text: format!("      {} {}  {}{took}", s.index, s.name, mark(w, tty)),
                });
            }
        }
    }
    out
}

/// Watch flow `id` until it is decided (or `timeout` seconds pass).
pub async fn watch(
    k: &Kraken,
    out: &Out,
    id: i64,
    log: bool,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    let tty = out.tty && !out.json;
    let start = Instant::now();
    let (tx, mut rx) = mpsc::channel::<(i64, String)>(1024);
    let mut followed: HashSet<i64> = HashSet::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut seen: HashMap<String, &'static str> = HashMap::new();
    let mut drawn = 0usize;
    loop {
        let f = k.get_flow(id).await?;
        let mut jobs = BTreeMap::new();
        for r in &f.runs {
            let l = k.get_run_jobs(r.id, &Paging::default(), false).await?;
            jobs.insert(r.id, l.items);
        }
        if log {
            for j in jobs.values().flatten() {
                let live = matches!(j.state, job_state::ASSIGNED | job_state::EXECUTING_FINISHED);
                if (live || j.state == job_state::COMPLETED) && followed.insert(j.id) {
                    spawn_follow(k, j.id, tx.clone());
                }
            }
        }
        let mut new_lines = Vec::new();
        while let Ok(l) = rx.try_recv() {
            new_lines.push(l);
        }
        let nodes = tree(&f, &jobs, tty);
        let decided = f.outcome().is_final();
        if tty {
            for (job, line) in new_lines {
                tail.push_back(format!("job {job} | {line}"));
                if tail.len() > LOG_TAIL {
                    tail.pop_front();
                }
            }
            let mut frame = String::new();
            if drawn > 0 {
                frame.push_str(&format!("\x1b[{drawn}A\x1b[J"));
            }
            let mut lines: Vec<String> = nodes.iter().map(|n| n.text.clone()).collect();
            if log && !tail.is_empty() {
                lines.push("  ── log ──".into());
                lines.extend(tail.iter().cloned());
            }
            for l in &lines {
                frame.push_str(l);
                frame.push('\n');
            }
            drawn = lines.len();
            let mut so = std::io::stdout().lock();
            if so
                .write_all(frame.as_bytes())
                .and_then(|()| so.flush())
                .is_err()
            {
                return Ok(()); // the terminal went away
            }
        } else {
            for n in &nodes {
                if seen.get(&n.key) != Some(&n.word) {
                    seen.insert(n.key.clone(), n.word);
                    out.entry(
                        &json!({"what": n.key, "state": n.word}),
                        n.text.trim_start(),
                    )?;
                }
            }
            for (job, line) in new_lines {
                out.entry(
                    &json!({"job": job, "log": line}),
                    format!("job {job} | {line}"),
                )?;
            }
        }
        if decided {
            // Let the followers deliver what is left of the logs.
            if log && !tty {
                let deadline = Instant::now() + Duration::from_secs(2);
                while let Ok(Some((job, line))) =
                    tokio::time::timeout_at(deadline.into(), rx.recv()).await
                {
                    out.entry(
                        &json!({"job": job, "log": line}),
                        format!("job {job} | {line}"),
                    )?;
                }
            }
            return match f.outcome() {
                Outcome::Failed(why) | Outcome::Cancelled(why) => Err(failed(why)),
                _ => Ok(()),
            };
        }
        if let Some(t) = timeout
            && start.elapsed() > Duration::from_secs(t)
        {
            return Err(timed_out(format!("flow {id} is not done after {t}s")));
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Follow one job's log (its tool output) into `tx`.
fn spawn_follow(k: &Kraken, job: i64, tx: mpsc::Sender<(i64, String)>) {
    let mut stream = k.follow_job(job, 0);
    tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(FollowEvent::Line(l)) if !l.tool.is_empty() => {
                    if tx.send((job, l.message)).await.is_err() {
                        return;
                    }
                }
                Ok(FollowEvent::End { .. }) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
}
