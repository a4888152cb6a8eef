//! Notifications of runs, sent from background tasks (`bg_tasks`, function
//! `notify`), never on the request or completion path.
//!
//! * A run that starts queues its `start` notifications; a run whose results
//!   were analysed (regressions and new issues known) its `end` ones: one
//!   `notifications` row and one task per channel, queued in one
//!   transaction under a key (run, event, channel, completion), so a server
//!   that does a step again, or a second server, queues nothing twice.
//! * A worker of its own claims them (several at once), so a slow endpoint
//!   delays neither the results analysis nor other notifications. A failed
//!   attempt that may succeed later (connection refused, timeout, 5xx, 429)
//!   is put back with a growing delay (`notification.retry_delay_ms`,
//!   doubled each time, at most 10 min) until `notification.retry_for_ms`
//!   after it was queued; then it is given up. The run is never affected.
//! * Every attempt and its outcome goes to the notification's row (`GET
//!   /runs/{id}/notifications`, `kraken runs show`) and to the run's
//!   services log (service `rq`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Engine;
use super::context::{CtxFor, secret_args};
use super::recovery::{TASK_LEASE_MS, while_renewing};
use crate::error::{Error, Result};
use crate::model::{Outcome, flow_kind};
use crate::notify::{self, Commit, Delivery, Event, SendError, Settings, Summary};
use crate::store::flows::{FlowRow, RunRow};
use crate::store::logs::NewLog;
use crate::store::now_ms;
use crate::store::tasks::{TaskQueue, TaskRow};

/// How many notifications one server sends at once.
pub const IN_FLIGHT: usize = 8;

/// Everything a notification of a run needs, loaded once per attempt.
struct Prepared {
    summary: Summary,
    /// The `notification` section, secrets resolved.
    raw: Value,
    /// The same, secrets masked.
    masked: Value,
    /// The secret values (masked out of whatever is recorded).
    secrets: Vec<String>,
    run: RunRow,
    flow: FlowRow,
}

impl Engine {
    /// Queue the notifications of `event` for a run (those its stage's
    /// `notification` section asks for). `generation` tells apart the
    /// starts and ends of one run (replays); the same one is queued once.
    pub(crate) async fn enqueue_notifications(
        &self,
        run_id: i64,
        event: Event,
        generation: i64,
    ) -> Result<()> {
        let run = self.store.require_run(run_id).await?;
        let Some(stage) = self.store.stage_any(run.stage_id).await? else {
            return Ok(());
        };
        if !has_notifications(&stage) {
            return Ok(());
        }
        let p = self.prepare_notification(&run, event).await?;
        let commit = p.summary.commit.clone();
        // Credentials go to a host taken from the trigger only when the
        // trigger's repository is one the stage clones or polls: a delivery
        // naming another host never receives the stage's tokens.
        let known_repo = commit.as_ref().is_some_and(|c| {
            let mut repos = super::repo::stage_git_repos(&stage);
            if let Ok(Some(t)) = crate::triggers::repo_trigger_of(stage.schema.0.get("triggers")) {
                repos.extend(t.repos.into_iter().map(|(u, _)| u));
            }
            repos.extend(stage.repo_url.clone());
            repos.iter().any(|u| crate::webhooks::same_repo(u, &c.repo))
        });
        let settings = self.notify_settings().await?;
        let mut queued = 0;
        for channel in notify::CHANNELS {
            let masked = p.masked.get(channel).cloned().unwrap_or(Value::Null);
            if !notify::applies(channel, event, &masked, commit.as_ref()) {
                continue;
            }
            let api_set = match channel {
                "gitlab" => !settings.gitlab_api_url.trim().is_empty(),
                "gitea" => !settings.gitea_api_url.trim().is_empty(),
                "radicle" => !settings.radicle_api_url.trim().is_empty(),
                _ => true,
            };
            if !api_set && !known_repo {
                self.notify_log(
                    &p,
                    "WARNING",
                    format!(
                        "{channel} notification of run {run_id} not sent: the trigger's repository {} is not one stage {} clones or polls, and no {channel}_api_url is set, so its credentials are not sent there",
                        commit.as_ref().map(|c| c.repo.as_str()).unwrap_or(""),
                        stage.name
                    ),
                )
                .await;
                continue;
            }
            let target = notify::target(channel, &masked, commit.as_ref());
            let key = format!("{run_id}:{}:{channel}:{generation}", event.name());
            if let Some(id) = self
                .store
                .enqueue_notification(run_id, event.name(), channel, &target, &key)
                .await?
            {
                queued += 1;
                self.notify_log(
                    &p,
                    "INFO",
                    format!(
                        "notification {id} queued: {} of run {run_id} to {target}",
                        event.name()
                    ),
                )
                .await;
            }
        }
        if queued > 0 {
            self.events.notify.notify_one();
        }
        Ok(())
    }

    /// [`Engine::enqueue_notifications`], logging instead of failing: a
    /// notification never stops a run.
    pub(crate) async fn queue_notifications(&self, run_id: i64, event: Event, generation: i64) {
        if let Err(e) = self.enqueue_notifications(run_id, event, generation).await {
            tracing::warn!(run = run_id, error = %e, "cannot queue the run's notifications");
        }
    }

    /// The summary and the substituted `notification` section of a run.
    async fn prepare_notification(&self, run: &RunRow, event: Event) -> Result<Prepared> {
        let flow = self.store.require_flow(run.flow_id).await?;
        let stage = self
            .store
            .stage_any(run.stage_id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))?;
        let branch = self
            .store
            .branch_any(flow.branch_id)
            .await?
            .ok_or_else(|| Error::not_found("Branch not found"))?;
        let section = stage
            .schema
            .0
            .get("notification")
            .cloned()
            .unwrap_or(Value::Null);
        // As the original: secrets and the run's arguments, and its context.
        let run_args: Map<String, Value> = run.args.0.as_object().cloned().unwrap_or_default();
        let ctx = self
            .prepare_context(CtxFor::Run(run, &flow, &stage, &branch), &run_args)
            .await?;
        let secret_values = secret_args(&self.store.project_secrets(branch.project_id).await?);
        let secrets: Vec<String> = secret_values
            .values()
            .filter_map(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
            .collect();
        let mut args = secret_values;
        args.extend(run_args);
        let (raw, masked) = crate::schema::substitute(&section, &args, &ctx);

        let server_url = self
            .store
            .setting("general", "server_url")
            .await?
            .unwrap_or_default();
        let server_url = server_url.trim().trim_end_matches('/').to_string();
        let place = crate::view::flow_place(&self.store, flow.branch_id).await?;
        let counts = self.store.job_counts(&[run.id]).await?;
        let json = crate::view::run_json(run, &flow, counts.first(), Some(&place));
        let (result, reason) = match event {
            Event::Start => ("pending".to_string(), String::new()),
            Event::End => match json.outcome() {
                Outcome::Failed(why) | Outcome::Cancelled(why) => ("failure".into(), why),
                _ if run.issues_new > 0 => (
                    "failure".into(),
                    format!(
                        "stage {} has {} new issue(s)",
                        run.stage_name, run.issues_new
                    ),
                ),
                _ => ("success".into(), String::new()),
            },
        };
        let repo_data = self.store.run_trigger_data(run.id).await?;
        let commit = repo_data.as_ref().and_then(Commit::from_trigger_data);
        let start = run.started.unwrap_or(run.created);
        let end = run.finished.unwrap_or_else(now_ms);
        let summary = Summary {
            event: event.name(),
            result,
            reason,
            project: notify::Named {
                id: place.project_id,
                name: place.project_name.clone(),
            },
            branch: notify::Named {
                id: place.branch_id,
                name: place.branch_name.clone(),
            },
            flow: notify::FlowInfo {
                id: flow.id,
                label: flow.label(),
                kind: flow_kind::name(flow.kind).to_string(),
                url: format!("{server_url}/flows/{}", flow.id),
            },
            stage: run.stage_name.clone(),
            run: notify::RunInfo {
                id: run.id,
                label: json.label.clone(),
                state: json.state.clone(),
                url: format!("{server_url}/runs/{}", run.id),
                started: json.started.map(|t| t.to_string()),
                finished: json.finished.map(|t| t.to_string()),
                duration: json.duration.clone(),
                duration_s: ((end - start) / 1000).max(0),
            },
            tests: notify::Tests {
                total: run.tests_total,
                passed: run.tests_passed,
                not_run: run.tests_not_run,
                new: run.new_cnt,
                regressions: run.regr_cnt,
                fixes: run.fix_cnt,
            },
            issues: notify::Issues {
                total: run.issues_total,
                new: run.issues_new,
            },
            jobs: notify::Jobs {
                total: json.jobs_total,
                failed: json.jobs_error,
            },
            commit,
        };
        Ok(Prepared {
            summary,
            raw,
            masked,
            secrets,
            run: run.clone(),
            flow,
        })
    }

    /// The notification settings.
    async fn notify_settings(&self) -> Result<Settings> {
        let get = |name: &'static str| async move {
            Ok::<_, Error>(
                self.store
                    .setting("notification", name)
                    .await?
                    .unwrap_or_default(),
            )
        };
        Ok(Settings {
            server_url: self
                .store
                .setting("general", "server_url")
                .await?
                .unwrap_or_default(),
            github_api_url: get("github_api_url").await?,
            gitlab_api_url: get("gitlab_api_url").await?,
            gitea_api_url: get("gitea_api_url").await?,
            radicle_api_url: get("radicle_api_url").await?,
            slack_api_url: get("slack_api_url").await?,
            slack_token: get("slack_token").await?,
            smtp_server: get("smtp_server").await?,
            smtp_tls: get("smtp_tls").await? == "true",
            smtp_from: get("smtp_from").await?,
            smtp_user: get("smtp_user").await?,
            smtp_password: get("smtp_password").await?,
        })
    }

    /// `notification.<name>` as an integer, `default` when unset or bad.
    async fn notify_int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self
            .store
            .setting("notification", name)
            .await?
            .and_then(|v| v.trim().parse().ok())
            .filter(|v: &i64| *v >= 0)
            .unwrap_or(default))
    }

    /// Check the e-mail or Slack settings for real (`working-state`).
    pub async fn check_notification_settings(
        &self,
        resource: &str,
    ) -> Result<std::result::Result<(), String>> {
        let settings = self.notify_settings().await?;
        Ok(match resource {
            "email" => notify::check_smtp(&settings).await,
            _ => notify::check_slack(http(), &settings).await,
        })
    }

    /// Claim and send due notifications, [`IN_FLIGHT`] at most at once,
    /// until the engine stops.
    pub(crate) async fn notification_worker(self: Arc<Self>) {
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < IN_FLIGHT {
                match self
                    .store
                    .claim_task(&self.instance, TASK_LEASE_MS, TaskQueue::Notify)
                    .await
                {
                    Ok(Some(task)) => {
                        let k = self.clone();
                        running.spawn(async move { k.run_notification_task(task).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "notification worker");
                        break;
                    }
                }
            }
            // Woken by a new notification, a finished one, or the next due
            // retry; every 2 s anyway (other servers queue too).
            // With every slot busy only a finished send (or the 2 s tick)
            // can make room: no polling for due retries meanwhile.
            let wait = if running.len() >= IN_FLIGHT {
                Duration::from_secs(2)
            } else {
                match self.store.next_task_due(TaskQueue::Notify).await {
                    Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(5, 2000) as u64),
                    _ => Duration::from_secs(2),
                }
            };
            tokio::select! {
                _ = self.events.notify.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt at a notification task, holding its lease meanwhile.
    async fn run_notification_task(&self, task: TaskRow) {
        let every = Duration::from_millis((TASK_LEASE_MS / 3) as u64);
        let work = self.attempt_notification(&task);
        let outcome = while_renewing(work, every, || async {
            if let Err(e) = self
                .store
                .renew_task_lease(task.id, &self.instance, TASK_LEASE_MS)
                .await
            {
                tracing::warn!(task = task.id, error = %e, "cannot renew the task's lease");
            }
        })
        .await;
        if let Err(e) = outcome {
            // Not the endpoint's doing (the database, a missing run): the
            // notification fails rather than staying pending.
            let why = e.to_string();
            tracing::warn!(task = task.id, error = %why, "notification task failed");
            if let Some(id) = task.args.0.get(0).and_then(Value::as_i64) {
                let _ = self
                    .store
                    .record_notification_attempt(id, "failed", Some(&why), "")
                    .await;
            }
            let _ = self.store.finish_task(task.id, Some(&why)).await;
        }
    }

    async fn attempt_notification(&self, task: &TaskRow) -> Result<()> {
        let Some(id) = task.args.0.get(0).and_then(Value::as_i64) else {
            return Err(Error::bad_request(format!(
                "notify task {} without a notification id",
                task.id
            )));
        };
        let Some(n) = self.store.notification(id).await? else {
            return self
                .store
                .finish_task(task.id, Some("the notification is gone"))
                .await;
        };
        if n.state != "pending" {
            return self.store.finish_task(task.id, None).await;
        }
        let event = Event::parse(&n.event).unwrap_or(Event::End);
        let attempt = task.attempts + 1;
        let Some(run) = self.store.run(n.run_id).await? else {
            self.store
                .record_notification_attempt(id, "failed", Some("the run is gone"), "")
                .await?;
            return self
                .store
                .finish_task(task.id, Some("the run is gone"))
                .await;
        };
        let p = self.prepare_notification(&run, event).await?;
        let settings = self.notify_settings().await?;
        let config = p.raw.get(&n.channel).cloned().unwrap_or(Value::Null);
        let masked = p.masked.get(&n.channel).cloned().unwrap_or(Value::Null);
        let target = notify::target(&n.channel, &masked, p.summary.commit.as_ref());
        let delivery = Delivery {
            channel: &n.channel,
            config: &config,
            summary: &p.summary,
            settings: &settings,
        };
        let sent = notify::send(http(), delivery).await;
        let what = format!(
            "notification {id} ({} of run {}, {}) attempt {attempt}",
            n.event, n.run_id, target
        );
        match sent {
            Ok(answer) => {
                let answer = crate::mask::mask_secrets(&answer, &p.secrets);
                self.store
                    .record_notification_attempt(id, "delivered", None, &target)
                    .await?;
                self.notify_log(&p, "INFO", format!("{what}: delivered ({answer})"))
                    .await;
                self.store.finish_task(task.id, None).await
            }
            Err(e) => {
                let why = crate::mask::mask_secrets(&e.to_string(), &p.secrets);
                let retry_for = self.notify_int("retry_for_ms", 3_600_000).await?;
                let first = self.notify_int("retry_delay_ms", 10_000).await?;
                let next = now_ms() + notify::backoff(first, attempt);
                let retry = matches!(e, SendError::Retry(_)) && next <= n.created + retry_for;
                if retry {
                    if !self
                        .store
                        .retry_task(task.id, &self.instance, next, &why)
                        .await?
                    {
                        // Its lease ran out and another worker has it now.
                        return Ok(());
                    }
                    self.store
                        .record_notification_attempt(id, "pending", Some(&why), &target)
                        .await?;
                    self.notify_log(
                        &p,
                        "WARNING",
                        format!(
                            "{what}: failed, retried in {} ms: {why}",
                            (next - now_ms()).max(0)
                        ),
                    )
                    .await;
                    self.events.notify.notify_one();
                    return Ok(());
                }
                let why = if matches!(e, SendError::Retry(_)) {
                    format!("gave up after {attempt} attempt(s): {why}")
                } else {
                    why
                };
                self.store
                    .record_notification_attempt(id, "failed", Some(&why), &target)
                    .await?;
                self.notify_log(&p, "ERROR", format!("{what}: failed: {why}"))
                    .await;
                self.store.finish_task(task.id, Some(&why)).await
            }
        }
    }

    /// A line in the run's services log (service `rq`, as the original's
    /// background jobs), written directly: it is there in process too.
    async fn notify_log(&self, p: &Prepared, level: &str, message: String) {
        tracing::debug!(run = p.run.id, "{message}");
        let line = NewLog {
            time: now_ms(),
            message: crate::mask::mask_secrets(&message, &p.secrets),
            service: "rq".into(),
            path: file!().into(),
            level: level.into(),
            branch_id: p.flow.branch_id,
            flow_kind: p.flow.kind,
            flow_id: p.flow.id,
            run_id: p.run.id,
            step: -1,
            ..NewLog::default()
        };
        if let Err(e) = self.store.append_logs(&[line]).await {
            tracing::warn!(run = p.run.id, error = %e, "cannot log a notification");
        }
    }
}

/// The HTTP client of notifications: no idle connections kept (they are
/// rare, and a connection must not outlive the runtime that opened it).
fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        crate::tls::install_provider();
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(notify::REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

/// Whether a stage's schema has a `notification` section (without one a
/// run of it queues nothing).
pub(crate) fn has_notifications(stage: &crate::store::stages::StageRow) -> bool {
    stage
        .schema
        .0
        .get("notification")
        .is_some_and(Value::is_object)
}
