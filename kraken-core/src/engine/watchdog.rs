//! Watchdog: job and run timeouts, agents that stopped answering, timed
//! triggers, log retention (§5.8, §5.9).

use chrono::Utc;
use serde_json::json;

use super::Engine;
use crate::error::Result;
use crate::events::Event;
use crate::model::{completion, flow_kind, job_state};
use crate::store::jobs::{JobRow, StepRow};
use crate::store::logs::NewLog;
use crate::store::now_ms;
use crate::triggers::timer_from_stored;

/// Agents not heard from for this long (45 s unless the environment
/// variable `KRAKEN_AGENT_TIMEOUT` gives other seconds) are marked gone and
/// their job is retried once on another agent. Agents are heard from at
/// least every 20 s while idle (their `get-job` long poll) and every 3 s
/// while they run a job (`keep-alive`).
pub fn agent_timeout_ms() -> i64 {
    static T: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        std::env::var("KRAKEN_AGENT_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(45)
            * 1000
    })
}

/// The line written into a job's log when a step is handed out again
/// (its agent, or the agent's server, stopped while it ran).
pub const STEP_RESTART_MARKER: &str = "--- step restarted after the agent came back ---";

/// Runs time out after this long (the original's DEFAULT_RUN_TIMEOUT).
pub const RUN_TIMEOUT_MS: i64 = 10_800 * 1000;

impl Engine {
    /// Cancel jobs whose agent has held them longer than their timeout.
    pub async fn check_job_timeouts(&self) -> Result<()> {
        for job in self.store.expired_jobs(now_ms()).await? {
            let note = format!("job expired after {}s", job.timeout);
            tracing::info!(job = job.id, %note);
            self.cancel_job(&job, &note, completion::SERVER_TIMEOUT)
                .await?;
        }
        Ok(())
    }

    /// Time out runs older than the run timeout.
    pub async fn check_run_timeouts(&self) -> Result<()> {
        let now = now_ms();
        for run in self.store.unfinished_runs().await? {
            let start = run.started.unwrap_or(run.created);
            if start + RUN_TIMEOUT_MS >= now {
                continue;
            }
            let deadline = crate::model::Timestamp(start + RUN_TIMEOUT_MS);
            let note = format!("run {} timed out, deadline was: {deadline}", run.id);
            self.store.append_run_note(run.id, &note).await?;
            let open = self.store.open_jobs_of_run(run.id).await?;
            if open.is_empty() {
                self.complete_run(run.id, None).await?;
            }
            for job in open {
                self.cancel_job(&job, &note, completion::SERVER_TIMEOUT)
                    .await?;
            }
        }
        Ok(())
    }

    /// Agents not seen for [`agent_timeout_ms`] become inactive; their
    /// job is retried once on another agent of its group (a new job covering
    /// the old one, which says why), or fails when it was a retry already.
    pub async fn check_dead_agents(&self) -> Result<()> {
        let secs = agent_timeout_ms() / 1000;
        let limit = now_ms() - agent_timeout_ms();
        for agent in self.store.silent_agents(limit).await? {
            let why = format!("agent {} was not seen for {secs} s", agent.name);
            tracing::info!(agent = agent.id, "{why}: inactivated");
            self.store
                .deactivate_agent(agent.id, &format!("{why}, inactivated"))
                .await?;
            let Some(job) = (match agent.job_id {
                Some(id) => self.store.job(id).await?,
                None => None,
            }) else {
                continue;
            };
            if job.state == job_state::COMPLETED {
                continue;
            }
            if let Some(first) = job.retry_of {
                let note = format!("{why}; the job (a retry of job {first}) is not retried again");
                self.cancel_job(&job, &note, completion::AGENT_NOT_ALIVE)
                    .await?;
                continue;
            }
            let old_note = format!("{why}: job retried on another agent");
            let new_note = format!("retry of job {} ({why})", job.id);
            if let Some(new_id) = self
                .store
                .retry_job(&job, completion::AGENT_NOT_ALIVE, &old_note, &new_note)
                .await?
            {
                tracing::info!(job = job.id, retry = new_id, "{why}: job retried");
                for id in [job.id, new_id] {
                    self.events.publish(Event::Job {
                        job_id: id,
                        run_id: job.run_id,
                    });
                }
                self.events.wake_scheduler();
            }
        }
        Ok(())
    }

    /// A step is handed to an agent: count the attempt, and when it was
    /// handed out before (its agent or server stopped while it ran) mark
    /// the restart in the job's log, so a reader sees why lines repeat.
    pub async fn step_handed_out(&self, job: &JobRow, step: &StepRow) -> Result<()> {
        let attempts = self.store.count_step_attempt(step.id).await?;
        if attempts < 2 {
            return Ok(());
        }
        tracing::info!(job = job.id, step = step.idx, attempts, "step restarted");
        self.step_log_marker(job, step, STEP_RESTART_MARKER, "WARNING")
            .await
    }

    /// Add a line of the server's own to a step's log (shown with the
    /// agent's output of that step): a restart, how the step ended.
    pub async fn step_log_marker(
        &self,
        job: &JobRow,
        step: &StepRow,
        message: &str,
        level: &str,
    ) -> Result<()> {
        let Some(place) = self.store.job_place(job.id).await? else {
            return Ok(());
        };
        let line = NewLog {
            time: now_ms(),
            message: message.to_string(),
            // Shown with the step's output (job logs are the agent's lines).
            service: "agent".into(),
            level: level.into(),
            branch_id: place.branch_id,
            flow_kind: place.flow_kind,
            flow_id: place.flow_id,
            run_id: place.run_id,
            job_id: job.id,
            step: step.idx,
            tool: step.tool_name.clone(),
            agent_id: job.agent_used_id.unwrap_or(0),
            ..NewLog::default()
        };
        if let Some(last_id) = self.store.insert_logs(&[line]).await? {
            self.events.publish(Event::Logs {
                job_id: job.id,
                last_id,
            });
        }
        Ok(())
    }

    /// The line that ends a step's log: its exit code (or why it stopped)
    /// and how long it took, from the result its agent reported.
    pub fn step_end_line(result: &serde_json::Value) -> Option<String> {
        let status = result.get("status").and_then(serde_json::Value::as_str)?;
        let took = result
            .get("duration")
            .and_then(serde_json::Value::as_f64)
            .map(|d| format!(" after {d} s"))
            .unwrap_or_default();
        let code = result.get("retcode").and_then(serde_json::Value::as_i64);
        let msg = result.get("msg").and_then(serde_json::Value::as_str);
        Some(match (status, code, msg) {
            ("done", Some(c), _) => format!("--- step done: exit code {c}{took} ---"),
            ("done", None, _) => format!("--- step done{took} ---"),
            ("error", Some(c), _) => format!("--- step failed: exit code {c}{took} ---"),
            ("error", None, Some(m)) => format!("--- step failed: {m}{took} ---"),
            ("error", None, None) => format!("--- step failed{took} ---"),
            _ => return None,
        })
    }

    /// Fire due timed triggers (interval, date, cron) of enabled, existing stages.
    pub async fn fire_timers(self: &std::sync::Arc<Self>) -> Result<()> {
        let now = Utc::now();
        for t in self.store.due_timers(now.timestamp_millis()).await? {
            let Some(expected) = t.next_run_time else {
                continue;
            };
            let next = timer_from_stored(&t.kind, &t.spec)
                .and_then(|tm| tm.next_after(now))
                .map(|n| n.timestamp_millis());
            if !self.store.advance_timer(t.id, expected, next).await? {
                continue; // another server fired it
            }
            let Some(stage) = self.store.stage(t.stage_id).await? else {
                continue;
            };
            if !stage.enabled {
                continue;
            }
            let Some(branch) = self.store.branch(stage.branch_id).await? else {
                continue;
            };
            if t.kind == crate::triggers::REPO_TIMER
                || t.kind == super::stage_repo::SCHEMA_REPO_TIMER
            {
                // Polled in the background: a slow remote delays no other trigger.
                let fresh = self
                    .polling
                    .lock()
                    .map(|mut p| p.insert(t.id))
                    .unwrap_or(false);
                if !fresh {
                    continue;
                }
                let engine = self.clone();
                tokio::spawn(async move {
                    let outcome = if t.kind == crate::triggers::REPO_TIMER {
                        engine.poll_repo_trigger(&t, &stage, &branch).await
                    } else {
                        engine.refresh_stage_schema(stage.id).await.map(|_| ())
                    };
                    if let Err(e) = outcome {
                        tracing::warn!(stage = stage.id, trigger = %t.kind, error = %e, "repository trigger failed");
                    }
                    if let Ok(mut p) = engine.polling.lock() {
                        p.remove(&t.id);
                    }
                });
                continue;
            }
            let reason = t.kind.clone();
            let outcome = if stage.parent() == "root" {
                self.start_flow(
                    &branch,
                    flow_kind::CI,
                    &Default::default(),
                    &reason,
                    Some(&stage),
                    None,
                )
                .await
                .map(|_| ())
            } else {
                self.trigger_child(&stage, &reason, None).await
            };
            if let Err(e) = outcome {
                tracing::warn!(stage = stage.id, trigger = %t.kind, error = %e, "timed trigger failed");
            }
        }
        Ok(())
    }

    /// A timed or repository trigger of a child stage runs it in the flow of
    /// the parent stage's latest CI run, unless that flow already has a run of it.
    pub(crate) async fn trigger_child(
        &self,
        stage: &crate::store::stages::StageRow,
        reason: &str,
        repo_data_id: Option<i64>,
    ) -> Result<()> {
        let Some(parent) = self
            .store()
            .stage_by_name(stage.branch_id, stage.parent())
            .await?
        else {
            return Ok(());
        };
        let Some(parent_run) = self
            .store()
            .stage_runs(parent.id, 1)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        if self
            .store()
            .run_of_stage_in_flow(parent_run.flow_id, stage.id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let flow = self.store.require_flow(parent_run.flow_id).await?;
        self.start_run(
            stage,
            &flow,
            json!({"reason": reason}),
            &Default::default(),
            repo_data_id,
        )
        .await?;
        Ok(())
    }

    /// Delete job logs older than each branch's retention policy.
    pub(crate) async fn apply_log_retention(&self) -> Result<()> {
        let month_ms: i64 = 30 * 86_400_000;
        for project in self.store.list_projects().await? {
            for branch in self.store.project_branches(project.id).await? {
                let rp = branch.retention();
                let now = now_ms();
                self.store
                    .delete_old_logs(branch.id, flow_kind::CI, now - rp.ci_logs * month_ms)
                    .await?;
                self.store
                    .delete_old_logs(branch.id, flow_kind::DEV, now - rp.dev_logs * month_ms)
                    .await?;
            }
        }
        Ok(())
    }
}
