//! Watchdog: job and run timeouts, agents that stopped answering, timed
//! triggers, log retention (§5.8, §5.9).

use chrono::Utc;
use serde_json::json;

use super::Engine;
use crate::error::Result;
use crate::model::{completion, flow_kind};
use crate::store::now_ms;
use crate::triggers::timer_from_stored;

/// Agents not heard from for this long become inactive.
pub const AGENT_TIMEOUT_MS: i64 = 5 * 60 * 1000;
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

    /// Agents not seen for 5 minutes become inactive; their job fails.
    pub async fn check_dead_agents(&self) -> Result<()> {
        let limit = now_ms() - AGENT_TIMEOUT_MS;
        for agent in self.store.silent_agents(limit).await? {
            tracing::info!(
                agent = agent.id,
                "agent was not seen for 5 minutes: inactivated"
            );
            self.store
                .deactivate_agent(
                    agent.id,
                    "agent was not seen for last 5 minutes, inactivated",
                )
                .await?;
            if let Some(job_id) = agent.job_id
                && let Some(job) = self.store.job(job_id).await?
            {
                self.cancel_job(
                    &job,
                    "agent was not seen for last 5 minutes",
                    completion::AGENT_NOT_ALIVE,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Fire due timed triggers (interval, date, cron) of enabled, existing stages.
    pub async fn fire_timers(&self) -> Result<()> {
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
            let reason = t.kind.clone();
            let outcome = if stage.parent() == "root" {
                self.start_flow(
                    &branch,
                    flow_kind::CI,
                    &Default::default(),
                    &reason,
                    Some(&stage),
                )
                .await
                .map(|_| ())
            } else {
                self.trigger_child_by_timer(&stage, &reason).await
            };
            if let Err(e) = outcome {
                tracing::warn!(stage = stage.id, trigger = %t.kind, error = %e, "timed trigger failed");
            }
        }
        Ok(())
    }

    /// A timed trigger of a child stage runs it in the flow of the parent
    /// stage's latest CI run, unless that flow already has a run of it.
    async fn trigger_child_by_timer(
        &self,
        stage: &crate::store::stages::StageRow,
        reason: &str,
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
        self.start_run(stage, &flow, json!({"reason": reason}), &Default::default())
            .await?;
        Ok(())
    }

    /// Queue the analysis of runs that completed but were never analysed
    /// (e.g. the server stopped in between).
    pub(crate) async fn requeue_unprocessed_runs(&self) -> Result<()> {
        let now = now_ms();
        for run in self
            .store()
            .unprocessed_runs(now - 90 * 86_400_000, now - 20 * 60_000)
            .await?
        {
            self.enqueue_history_analysis(run.id).await?;
        }
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
