//! Network work, always in tokio tasks that report with [`DashEvent`]s:
//! keeping a view's data fresh ([`Net::watch`]), following a job's log
//! ([`Net::follow`]) and the actions ([`Net::run`]).
//!
//! Lists refresh by polling a remote server (it streams only job logs);
//! in process they refresh as soon as the engine publishes a change, with
//! polling as a fallback. A task sends data only when it differs from what
//! it sent last, so an idle dashboard does not redraw.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kraken_core::api::FollowEvent;
use kraken_core::events::Event;
use kraken_core::model::TcrFilter;
use kraken_core::model::{JsonMap, NewFlow, Outcome, Paging};
use kraken_core::{Error, Kraken};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::event::{Created, DashEvent, Loaded, LogEntry, RunningJob, ViewId};

/// How many flows a flows view reads.
pub const FLOWS_LIMIT: i64 = 100;
/// How many test results a results view reads.
pub const RESULTS_LIMIT: i64 = 5000;
/// How many unfinished flows (the latest of each branch, newest first) the
/// jobs view looks into.
pub const RUNNING_FLOWS_LIMIT: usize = 50;
/// How many results of a test case its history shows.
pub const HISTORY_LIMIT: i64 = 10;
/// How many log lines a follower sends in one batch at most.
const LOG_BATCH: usize = 4096;
/// How long one read may take before it counts as failed (the remote
/// handle has a connect timeout but none for a server that never answers).
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Data that can no longer change by itself is read this many times less often.
const SETTLED_FACTOR: u32 = 10;

/// What a view keeps loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Every project (with branches and their latest CI flows).
    Projects,
    /// The flows of a branch of one kind (`ci` or `dev`).
    Flows {
        /// Branch.
        branch_id: i64,
        /// `ci` or `dev`.
        kind: String,
    },
    /// One flow and its runs.
    Flow(i64),
    /// One run and its jobs.
    Run(i64),
    /// One job and its steps.
    Job(i64),
    /// One run and its test results.
    Results(i64),
    /// Every agent.
    Agents,
    /// Running and queued jobs across projects.
    Running,
    /// The server's services log, from a level on (`None`: all).
    Services {
        /// `info`, `warning`, `error` (this level and more severe).
        level: Option<String>,
    },
    /// The history of a test case result.
    History(i64),
}

/// An action that changes something on the server, as the CLI verbs do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create a flow: `POST /branches/{id}/flows/{kind}` (`kraken flows
    /// create BRANCH --kind KIND --arg K=V...`).
    CreateFlow {
        /// Branch.
        branch_id: i64,
        /// Its name (for messages).
        branch_name: String,
        /// `ci` or `dev`.
        kind: String,
        /// Flow arguments (`Common`, for every stage), in the order given.
        args: Vec<(String, String)>,
    },
    /// Cancel every unfinished run of a flow (`kraken flows cancel ID`).
    CancelFlow {
        /// Flow.
        flow_id: i64,
        /// Its label (for messages).
        label: String,
    },
    /// Rerun the failed jobs of a flow (`kraken flows rerun ID --failed`).
    RerunFailed {
        /// Flow.
        flow_id: i64,
        /// Its label (for messages).
        label: String,
    },
    /// Cancel a run and its unfinished jobs: `DELETE /runs/{id}`.
    CancelRun {
        /// Run.
        run_id: i64,
        /// Stage name (for messages).
        stage: String,
    },
    /// Run a completed job again: `PUT /jobs/{id}`.
    RerunJob {
        /// Job.
        job_id: i64,
        /// Job name (for messages).
        name: String,
    },
}

impl Command {
    /// The question the confirmation popup asks.
    pub fn question(&self) -> String {
        match self {
            Command::CreateFlow {
                branch_name,
                kind,
                args,
                ..
            } => {
                let with = if args.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", args_text(args))
                };
                format!(
                    "Create a new {} flow on branch {branch_name}{with}?",
                    kind.to_uppercase()
                )
            }
            Command::CancelFlow { flow_id, label } => {
                format!("Cancel flow {label} (id {flow_id}): every unfinished run?")
            }
            Command::RerunFailed { flow_id, label } => {
                format!("Rerun the failed jobs of flow {label} (id {flow_id})?")
            }
            Command::CancelRun { run_id, stage } => {
                format!("Cancel run {run_id} (stage {stage}) and all its unfinished jobs?")
            }
            Command::RerunJob { job_id, name } => format!("Rerun job {job_id} ({name})?"),
        }
    }

    /// What the status line says while it runs.
    pub fn doing(&self) -> String {
        match self {
            Command::CreateFlow { branch_name, .. } => format!("creating a flow on {branch_name}…"),
            Command::CancelFlow { label, .. } => format!("cancelling flow {label}…"),
            Command::RerunFailed { label, .. } => {
                format!("rerunning the failed jobs of flow {label}…")
            }
            Command::CancelRun { run_id, .. } => format!("cancelling run {run_id}…"),
            Command::RerunJob { job_id, .. } => format!("rerunning job {job_id}…"),
        }
    }
}

/// Flow arguments as typed: `A=1 B=two`.
pub fn args_text(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read flow arguments typed as `KEY=VALUE`, separated by commas or spaces
/// (nothing: no arguments); the error says which item is wrong, as `kraken
/// flows create --arg` does.
pub fn parse_args(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("'{item}' is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("'{item}' has an empty key"));
        }
        // A key given twice keeps its last value, in its first place.
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(kv) => kv.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        }
    }
    Ok(out)
}

/// A running task; dropping it stops the task.
#[derive(Debug)]
pub struct Task {
    handle: tokio::task::AbortHandle,
    refresh: Arc<Notify>,
}

impl Task {
    /// Ask the task to read again now (and reset its retry delay).
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The network side: a [`Kraken`] handle and the sender of the event channel.
#[derive(Clone)]
pub struct Net {
    kraken: Kraken,
    tx: mpsc::Sender<DashEvent>,
    /// How often lists are read again (when nothing tells us about changes).
    pub poll: Duration,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("kraken", &self.kraken)
            .field("poll", &self.poll)
            .finish()
    }
}

/// A person-readable error; a connection failure says where it tried.
pub fn describe(e: &Error) -> String {
    const UNREACHABLE: &str = "cannot reach the Kraken server at ";
    match e {
        // Short enough for a status line: where, and the cause if it says more
        // than "error sending request".
        Error::Transport(m) if m.starts_with(UNREACHABLE) => {
            let rest = &m[UNREACHABLE.len()..];
            match rest.split_once(": ") {
                Some((url, cause)) if !cause.starts_with("error sending request") => {
                    format!("cannot reach {url}: {cause}")
                }
                Some((url, _)) => format!("cannot reach {url}"),
                None => format!("cannot reach {rest}"),
            }
        }
        Error::Unauthorized(m) => {
            format!("not logged in or session expired ({m}): run `kraken login`")
        }
        other => other.to_string(),
    }
}

/// The delay before the `n`th retry: 1 s, 2 s, 4 s, ... at most 15 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(4)).min(Duration::from_secs(15))
}

impl Net {
    /// The network side of a dashboard on this handle.
    pub fn new(kraken: Kraken, tx: mpsc::Sender<DashEvent>) -> Net {
        Net {
            kraken,
            tx,
            poll: Duration::from_secs(2),
        }
    }

    /// The handle.
    pub fn kraken(&self) -> &Kraken {
        &self.kraken
    }

    /// Keep the data of `view` fresh until the task is dropped.
    pub fn watch(&self, view: ViewId, what: Watch) -> Task {
        let refresh = Arc::new(Notify::new());
        let net = self.clone();
        let r = refresh.clone();
        let handle = tokio::spawn(async move { net.watch_loop(view, what, r).await });
        Task {
            handle: handle.abort_handle(),
            refresh,
        }
    }

    async fn watch_loop(self, view: ViewId, what: Watch, refresh: Arc<Notify>) {
        let mut changes = self.kraken.as_local().map(|l| l.core().subscribe());
        let mut last: Option<Loaded> = None;
        let mut failures = 0u32;
        loop {
            let answer = match tokio::time::timeout(FETCH_TIMEOUT, fetch(&self.kraken, &what)).await
            {
                Ok(a) => a,
                Err(_) => Err(Error::Transport(format!(
                    "no answer from {} in {} s",
                    self.kraken.target(),
                    FETCH_TIMEOUT.as_secs()
                ))),
            };
            let wait = match answer {
                Ok(data) => {
                    failures = 0;
                    let wait = if settled(&data) {
                        self.poll * SETTLED_FACTOR
                    } else {
                        self.poll
                    };
                    if last.as_ref() != Some(&data) {
                        last = Some(data.clone());
                        let ev = DashEvent::Loaded {
                            view,
                            data: Box::new(data),
                        };
                        if self.tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    wait
                }
                Err(e) => {
                    failures += 1;
                    // After a failure the next success is always sent: it
                    // clears the error the view shows.
                    last = None;
                    let retry_in = backoff(failures);
                    let ev = DashEvent::LoadFailed {
                        view,
                        error: describe(&e),
                        retry_in,
                    };
                    if self.tx.send(ev).await.is_err() {
                        return;
                    }
                    retry_in
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = refresh.notified() => { failures = 0; }
                () = changed(&mut changes, &what) => {
                    // Let a burst of changes settle into one read.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Some(rx) = changes.as_mut() {
                        while rx.try_recv().is_ok() {}
                    }
                }
            }
        }
    }

    /// Follow the log of `job_id` after line `after` until the job ends or
    /// the task is dropped. Lines are sent in batches: whatever arrived
    /// since the last batch goes in the next one.
    pub fn follow(&self, view: ViewId, job_id: i64, after: i64) -> Task {
        let refresh = Arc::new(Notify::new());
        let tx = self.tx.clone();
        let stream = self.kraken.follow_job(job_id, after);
        let handle = tokio::spawn(async move {
            let mut stream = stream.ready_chunks(LOG_BATCH);
            while let Some(batch) = stream.next().await {
                let mut lines = Vec::new();
                let mut after_lines = Vec::new();
                for item in batch {
                    match item {
                        Ok(FollowEvent::Line(l)) => lines.extend(LogEntry::from_line(&l)),
                        Ok(FollowEvent::State {
                            state,
                            completion_status,
                        }) => after_lines.push(DashEvent::JobState {
                            view,
                            state,
                            completion_status,
                        }),
                        Ok(FollowEvent::End { completion_status }) => {
                            after_lines.push(DashEvent::LogEnd {
                                view,
                                completion_status,
                            });
                        }
                        Err(e) => after_lines.push(DashEvent::LogFailed {
                            view,
                            error: describe(&e),
                        }),
                    }
                }
                if !lines.is_empty() && tx.send(DashEvent::LogLines { view, lines }).await.is_err()
                {
                    return;
                }
                for ev in after_lines {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        });
        Task {
            handle: handle.abort_handle(),
            refresh,
        }
    }

    /// Run an action; its outcome arrives as [`DashEvent::ActionDone`].
    pub fn run(&self, cmd: Command) {
        let k = self.kraken.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let (result, created) = match perform(&k, &cmd).await {
                Ok((m, c)) => (Ok(m), c),
                Err(e) => (Err(describe(&e)), Created::default()),
            };
            let _ = tx.send(DashEvent::ActionDone { result, created }).await;
        });
    }
}

/// Whether data shows only ended things, which change no more unless a
/// person acts (a rerun, which the actions refresh at once).
fn settled(data: &Loaded) -> bool {
    use kraken_core::model::{Outcome, Run};
    // Decided, and its results analysed (counters change no more).
    let analysed = |r: &Run| r.outcome() != Outcome::Running && r.state != "completed";
    match data {
        Loaded::Projects(_)
        | Loaded::Flows { .. }
        | Loaded::Agents(_)
        | Loaded::Running(_)
        | Loaded::Services(_) => false,
        // Past results; a new one comes with a new flow, not here.
        // A permission changes rarely.
        Loaded::History { .. } | Loaded::Forbidden(_) => true,
        Loaded::Flow(f) => f.outcome() != Outcome::Running && f.runs.iter().all(analysed),
        Loaded::Jobs { run, .. } | Loaded::Results { run, .. } => analysed(run),
        Loaded::Job(j) => j.outcome() != Outcome::Running,
    }
}

/// Wait until the in-process engine reports a change that concerns `what`;
/// forever when there is no such source (remote handles).
async fn changed(rx: &mut Option<broadcast::Receiver<Event>>, what: &Watch) {
    let Some(rx) = rx.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(ev) if concerns(&ev, what) => return,
            Ok(_) => {}
            // Missed some: read again to be sure.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Whether an engine event may change what a view shows.
fn concerns(ev: &Event, what: &Watch) -> bool {
    match (ev, what) {
        // Log lines never change lists; the log view follows them itself.
        (Event::Logs { .. }, _) => false,
        (Event::Job { job_id, .. }, Watch::Job(id)) => job_id == id,
        (
            Event::Job { run_id, .. } | Event::Run { run_id, .. },
            Watch::Run(id) | Watch::Results(id),
        ) => run_id == id,
        (Event::Flow { flow_id, .. } | Event::Run { flow_id, .. }, Watch::Flow(id)) => {
            flow_id == id
        }
        (Event::Job { .. }, Watch::Flow(_)) => true,
        (Event::Flow { branch_id, .. }, Watch::Flows { branch_id: b, .. }) => branch_id == b,
        (Event::Run { .. } | Event::Job { .. }, Watch::Flows { .. }) => true,
        (_, Watch::Projects) => !matches!(ev, Event::Job { .. }),
        // An agent takes or ends a job; jobs start, end, queue.
        (_, Watch::Agents | Watch::Running) => true,
        _ => false,
    }
}

/// Read what a view shows.
pub async fn fetch(k: &Kraken, what: &Watch) -> kraken_core::Result<Loaded> {
    Ok(match what {
        Watch::Projects => Loaded::Projects(k.get_projects().await?.items),
        Watch::Flows { branch_id, kind } => {
            let l = k
                .get_flows(*branch_id, kind, None, Some(FLOWS_LIMIT), None)
                .await?;
            Loaded::Flows {
                kind: kind.clone(),
                flows: l.items,
                total: l.total,
            }
        }
        Watch::Flow(id) => Loaded::Flow(Box::new(k.get_flow(*id).await?)),
        Watch::Run(id) => {
            let run = k.get_run(*id).await?;
            let paging = Paging {
                limit: Some(1000),
                ..Paging::default()
            };
            let jobs = k.get_run_jobs(*id, &paging, false).await?.items;
            let notifications = k.get_run_notifications(*id).await?;
            Loaded::Jobs {
                run: Box::new(run),
                jobs,
                notifications,
            }
        }
        Watch::Job(id) => Loaded::Job(Box::new(k.get_job(*id).await?)),
        Watch::Agents => {
            let paging = Paging {
                limit: Some(1000),
                ..Paging::default()
            };
            match k.get_agents(false, &paging).await {
                Ok(l) => Loaded::Agents(l.items),
                Err(Error::Forbidden(m)) => Loaded::Forbidden(m),
                Err(e) => return Err(e),
            }
        }
        Watch::Running => Loaded::Running(running_jobs(k).await?),
        Watch::Services { level } => match k.get_services_logs(&[], level.as_deref()).await {
            Ok(l) => Loaded::Services(l.items),
            Err(Error::Forbidden(m)) => Loaded::Forbidden(m),
            Err(e) => return Err(e),
        },
        Watch::History(id) => {
            let paging = Paging {
                limit: Some(HISTORY_LIMIT),
                ..Paging::default()
            };
            Loaded::History {
                id: *id,
                items: k.get_result_history(*id, &paging).await?.items,
            }
        }
        Watch::Results(id) => {
            let run = k.get_run(*id).await?;
            let paging = Paging {
                limit: Some(RESULTS_LIMIT),
                sort_field: Some("relevancy".into()),
                sort_dir: Some("desc".into()),
                ..Paging::default()
            };
            let l = k
                .get_run_results(*id, &TcrFilter::default(), &paging)
                .await?;
            Loaded::Results {
                run: Box::new(run),
                results: l.items,
                total: l.total,
            }
        }
    })
}

/// Running and queued jobs across projects. There is no one call for
/// them: the latest unfinished CI flow of every branch (at most
/// [`RUNNING_FLOWS_LIMIT`], newest first) gives its unfinished runs and
/// their waiting and running jobs; the agents give the jobs they run
/// elsewhere (DEV flows, older flows), when the handle may list agents.
async fn running_jobs(k: &Kraken) -> kraken_core::Result<Vec<RunningJob>> {
    /// A flow, run or job removed while we read: skip it.
    fn gone<T>(r: kraken_core::Result<T>) -> kraken_core::Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
    let unfinished = |o: Outcome| o == Outcome::Running;
    let mut flows = Vec::new();
    for p in k.get_projects().await?.items {
        for b in &p.branches {
            if let Some(Some(f)) = &b.last_incomplete_flow {
                flows.push((p.name.clone(), b.name.clone(), f.id));
            }
        }
    }
    flows.sort_by_key(|f| Reverse(f.2));
    flows.truncate(RUNNING_FLOWS_LIMIT);
    let paging = Paging {
        limit: Some(1000),
        ..Paging::default()
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (project, branch, flow_id) in flows {
        let Some(flow) = gone(k.get_flow(flow_id).await)? else {
            continue;
        };
        for r in &flow.runs {
            if matches!(r.state.as_str(), "completed" | "processed" | "manual") {
                continue;
            }
            let Some(jobs) = gone(k.get_run_jobs(r.id, &paging, false).await)? else {
                continue;
            };
            for job in jobs.items {
                if unfinished(job.outcome()) && seen.insert(job.id) {
                    out.push(RunningJob {
                        project: project.clone(),
                        branch: branch.clone(),
                        flow: format!("{} {}", flow.kind.to_uppercase(), flow.label),
                        stage: r.stage_name.clone(),
                        job,
                    });
                }
            }
        }
    }
    let agents = match k.get_agents(false, &paging).await {
        Ok(l) => l.items,
        // Only superadmins may list agents: the flows above are all we see.
        Err(Error::Forbidden(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    for a in agents {
        let Some(job) = a.job else { continue };
        if !unfinished(job.outcome()) || !seen.insert(job.id) {
            continue;
        }
        let Some(run) = gone(k.get_run(job.run_id).await)? else {
            continue;
        };
        out.push(RunningJob {
            project: run.project_name.clone().unwrap_or_default(),
            branch: run.branch_name.clone().unwrap_or_default(),
            flow: format!("{} {}", run.flow_kind.to_uppercase(), run.flow_label),
            stage: run.stage_name.clone(),
            job: *job,
        });
    }
    out.sort_by_key(|j| j.job.id);
    Ok(out)
}

/// Do an action; the message says what was done, with what it made (a
/// flow, a job) for the cursor.
pub async fn perform(k: &Kraken, cmd: &Command) -> kraken_core::Result<(String, Created)> {
    match cmd {
        Command::CreateFlow {
            branch_id,
            branch_name,
            kind,
            args,
        } => {
            let input = if args.is_empty() {
                NewFlow::default()
            } else {
                let common: JsonMap = args
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                NewFlow {
                    args: Some(BTreeMap::from([("Common".to_string(), common)])),
                }
            };
            let f = k.create_flow(*branch_id, kind, &input).await?;
            Ok((
                format!(
                    "created {} flow {} (id {}) on {branch_name}",
                    kind.to_uppercase(),
                    f.label,
                    f.id
                ),
                Created {
                    flow: Some(f.id),
                    ..Created::default()
                },
            ))
        }
        Command::CancelRun { run_id, .. } => {
            k.cancel_run(*run_id).await?;
            Ok((format!("run {run_id} cancelled"), Created::default()))
        }
        Command::RerunJob { job_id, .. } => {
            let j = k.job_rerun(*job_id).await?;
            Ok((
                format!("job {job_id} rerun as job {}", j.id),
                Created {
                    run: Some(j.run_id),
                    job: Some(j.id),
                    ..Created::default()
                },
            ))
        }
        Command::CancelFlow { flow_id, label } => {
            // As `kraken flows cancel`: every run not yet completed.
            let f = k.get_flow(*flow_id).await?;
            let mut cancelled = 0;
            for r in &f.runs {
                if matches!(r.state.as_str(), "completed" | "processed") {
                    continue;
                }
                k.cancel_run(r.id).await?;
                cancelled += 1;
            }
            let msg = if cancelled == 0 {
                format!("flow {label} has nothing left to cancel")
            } else {
                format!("flow {label}: cancelled {cancelled} run(s)")
            };
            Ok((
                msg,
                Created {
                    flow: Some(*flow_id),
                    ..Created::default()
                },
            ))
        }
        Command::RerunFailed { flow_id, label } => {
            // As `kraken flows rerun --failed`: every failed current job.
            let f = k.get_flow(*flow_id).await?;
            let paging = Paging {
                limit: Some(1000),
                ..Paging::default()
            };
            let mut created = Created {
                flow: Some(*flow_id),
                ..Created::default()
            };
            let mut n = 0;
            for r in &f.runs {
                for j in k.get_run_jobs(r.id, &paging, false).await?.items {
                    if j.outcome().is_failure() {
                        let new = k.job_rerun(j.id).await?;
                        if created.job.is_none() {
                            created.job = Some(new.id);
                            created.run = Some(new.run_id);
                        }
                        n += 1;
                    }
                }
            }
            if n == 0 {
                return Err(Error::BadRequest(format!(
                    "flow {label} has no failed job to rerun"
                )));
            }
            Ok((format!("flow {label}: {n} failed job(s) rerun"), created))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_short() {
        let e = Error::Transport(
            "cannot reach the Kraken server at http://h:1: error sending request for url (http://h:1/api/projects)".into(),
        );
        assert_eq!(describe(&e), "cannot reach http://h:1");
        let e = Error::Transport("cannot reach the Kraken server at http://h:1: timed out".into());
        assert_eq!(describe(&e), "cannot reach http://h:1: timed out");
        assert!(describe(&Error::Unauthorized("bad token".into())).contains("kraken login"));
    }

    #[test]
    fn flow_arguments_are_key_values_separated_by_commas_or_spaces() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(parse_args(""), Ok(vec![]));
        assert_eq!(parse_args("  , "), Ok(vec![]));
        assert_eq!(
            parse_args("A=1, B=two  C="),
            Ok(vec![kv("A", "1"), kv("B", "two"), kv("C", "")])
        );
        // A value may hold `=`; a key given twice keeps its last value.
        assert_eq!(
            parse_args("URL=a=b,A=1,A=2"),
            Ok(vec![kv("URL", "a=b"), kv("A", "2")])
        );
        assert_eq!(
            parse_args("A=1 oops"),
            Err("'oops' is not KEY=VALUE".into())
        );
        assert_eq!(parse_args("=1"), Err("'=1' has an empty key".into()));
        assert_eq!(args_text(&[kv("A", "1"), kv("B", "2")]), "A=1 B=2");
    }

    #[test]
    fn retries_back_off_up_to_a_limit() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(50), Duration::from_secs(15));
    }

    #[test]
    fn engine_events_concern_the_right_views() {
        let job = Event::Job {
            job_id: 5,
            run_id: 2,
        };
        assert!(concerns(&job, &Watch::Job(5)));
        assert!(!concerns(&job, &Watch::Job(6)));
        assert!(concerns(&job, &Watch::Run(2)));
        assert!(!concerns(&job, &Watch::Projects));
        let logs = Event::Logs {
            job_id: 5,
            last_id: 9,
        };
        assert!(!concerns(&logs, &Watch::Job(5)));
        let flow = Event::Flow {
            flow_id: 3,
            branch_id: 1,
        };
        assert!(concerns(&flow, &Watch::Projects));
        assert!(concerns(
            &flow,
            &Watch::Flows {
                branch_id: 1,
                kind: "ci".into()
            }
        ));
        assert!(!concerns(
            &flow,
            &Watch::Flows {
                branch_id: 2,
                kind: "ci".into()
            }
        ));
    }
}
