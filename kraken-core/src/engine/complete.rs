//! Completion: jobs, runs, flows; child stages; cancel (§5.5–5.7).

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::Engine;
use crate::error::Result;
use crate::events::Event;
use crate::model::{Outcome, completion, flow_kind, run_state, step_status};
use crate::store::flows::{FlowRow, RunRow};
use crate::store::now_ms;

use super::recovery::COMPLETE_LEASE_MS;
use crate::store::jobs::JobRow;

/// The completion status a finished job gets from its steps.
fn status_from_steps(steps: &[crate::store::jobs::StepRow]) -> i64 {
    for s in steps {
        if s.status == Some(step_status::ERROR) {
            let reason = s
                .result
                .as_ref()
                .and_then(|r| r.0.get("reason"))
                .and_then(Value::as_str);
            return match reason {
                Some("job-timeout") => completion::JOB_TIMEOUT,
                Some("step-timeout") => completion::STEP_TIMEOUT,
                Some("exception") => completion::AGENT_EXCEPTION,
                _ => completion::AGENT_ERROR_RETURNED,
            };
        }
    }
    completion::ALL_OK
}

impl Engine {
    /// A job's agent finished its steps (or it was ended otherwise): complete
    /// it from its steps' results, then the run when all its jobs are done.
    pub async fn job_completed(&self, job_id: i64) -> Result<()> {
        let Some(job) = self.store.job(job_id).await? else {
            return Ok(());
        };
        let steps = self.store.steps_of(&[job_id]).await?;
        let status = status_from_steps(&steps);
        if self.store.complete_job(job_id, status, None).await? {
            crate::fault::point("after-job-complete");
            tracing::info!(job = job_id, run = job.run_id, status, "job completed");
            if let Some(agent) = job.agent_used_id {
                self.store.unassign_agent(agent, job_id).await?;
                self.events.wake_scheduler();
            }
            self.events.publish(Event::Job {
                job_id,
                run_id: job.run_id,
            });
            if let Err(e) = self.estimate_timeout(&job).await {
                tracing::warn!(job = job_id, error = %e, "cannot estimate the job timeout");
            }
        }
        self.complete_run_if_done(job.run_id).await
    }

    /// Complete the run when all its jobs are completed.
    pub(crate) async fn complete_run_if_done(&self, run_id: i64) -> Result<()> {
        if self.store.run_jobs_all_completed(run_id).await? {
            let run = self.store.require_run(run_id).await?;
            if matches!(run.state, run_state::IN_PROGRESS | run_state::REPLAY) {
                self.complete_run(run_id, None).await?;
            }
        }
        Ok(())
    }

    /// Learn a job's timeout from the history of the same job (as the
    /// original: at least 4 of the last 10 runs; 1.7 × the longest, at least 60 s
    /// and the schema's timeout; doubled after a timeout; at most 3 days).
    async fn estimate_timeout(&self, job: &JobRow) -> Result<()> {
        let run = self.store.require_run(job.run_id).await?;
        let history = self
            .store()
            .similar_completed_jobs(job, run.stage_id, 9)
            .await?;
        let mut all = vec![self.store.job(job.id).await?.unwrap_or_else(|| job.clone())];
        all.extend(history);
        let durations: Vec<i64> = all
            .iter()
            .filter(|j| {
                matches!(
                    j.completion_status,
                    Some(completion::ALL_OK) | Some(completion::JOB_TIMEOUT)
                )
            })
            .filter_map(|j| Some((j.finished? - j.started?) / 1000))
            .collect();
        if durations.len() < 4 {
            return Ok(());
        }
        let max = durations.iter().copied().max().unwrap_or(0);
        let mut timeout = ((max as f64 * 1.7) as i64).max(60);
        let timed_out = all
            .iter()
            .any(|j| j.completion_status == Some(completion::JOB_TIMEOUT));
        if timed_out {
            timeout = timeout.max(job.timeout * 2);
        }
        timeout = timeout.max(job.timeout).min(259_200);
        let Some(stage) = self.store.stage_any(run.stage_id).await? else {
            return Ok(());
        };
        let mut timeouts = stage
            .timeouts
            .as_ref()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| json!({}));
        if let Some(o) = timeouts.as_object_mut() {
            o.insert(
                format!("{}-{}-{}", job.name, job.system_id, job.agents_group_id),
                json!(timeout),
            );
        }
        self.store.set_stage_timeouts(stage.id, &timeouts).await
    }

    /// Complete a run (once): counters, child stages, flow completion.
    /// (Boxed: completing a run can start child runs, which can complete at once.)
    pub(crate) fn complete_run<'a>(
        &'a self,
        run_id: i64,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let lease = now_ms() + COMPLETE_LEASE_MS;
            if !self.store.complete_run_row(run_id, note, lease).await? {
                if let Some(n) = note {
                    self.store.append_run_note(run_id, n).await?;
                }
                return Ok(());
            }
            crate::fault::point("after-run-complete");
            let run = self.store.require_run(run_id).await?;
            self.events.publish(Event::Run {
                run_id,
                flow_id: run.flow_id,
            });
            tracing::info!(run = run_id, flow = run.flow_id, stage = %run.stage_name, note = note.unwrap_or(""), "run completed");
            self.follow_up_completed_run(run_id, lease).await
        })
    }

    /// Recompute a run's counters, start its child stages when it had no
    /// failed job, complete its flow when nothing else runs, and queue the
    /// results-history analysis. Idempotent, so it can be done again after
    /// a server stopped in the middle: a child stage whose run was started
    /// (or touched) since this run finished is not started again, and a
    /// processed run is not queued again.
    pub(crate) async fn analyze_run(&self, run_id: i64) -> Result<()> {
        let run = self.store.require_run(run_id).await?;
        let counters = self.store.run_counters(run_id).await?;
        self.store.set_run_counters(run_id, &counters).await?;
        let flow = self.store.require_flow(run.flow_id).await?;
        if counters.jobs_error == 0 && counters.jobs_total > 0 {
            self.trigger_child_stages(&run, &flow).await?;
        }
        self.check_flow_completion(&flow).await?;
        if run.state == run_state::PROCESSED && run.completing_until.is_some() {
            return Ok(());
        }
        self.enqueue_history_analysis(run_id).await
    }

    async fn trigger_child_stages(&self, run: &RunRow, flow: &FlowRow) -> Result<()> {
        let (parent, run_id) = (run.stage_name.as_str(), run.id);
        for stage in self.store.branch_stages(flow.branch_id).await? {
            if stage.parent() != parent || !stage.enabled {
                continue;
            }
            if let Some(finished) = run.finished
                && self
                    .store
                    .stage_run_touched_since(flow.id, stage.id, finished)
                    .await?
            {
                continue; // already started for this completion
            }
            let t = stage.triggers();
            let by_parent = t.and_then(|t| t.get("parent")).and_then(Value::as_bool) == Some(true);
            let manual = t.and_then(|t| t.get("manual")).and_then(Value::as_bool) == Some(true);
            if by_parent || manual {
                self.start_run(
                    &stage,
                    flow,
                    json!({"reason": "parent", "run_id": run_id}),
                    &Default::default(),
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Complete a flow when none of its runs is in progress.
    pub(crate) async fn check_flow_completion(&self, flow: &FlowRow) -> Result<()> {
        if self.store.flow_has_running_runs(flow.id).await? {
            return Ok(());
        }
        let summary = if flow.kind == flow_kind::CI {
            Some(self.flow_summary(flow, None).await?)
        } else {
            None
        };
        if self
            .store()
            .complete_flow(flow.id, summary.as_ref())
            .await?
        {
            if flow.kind == flow_kind::CI {
                self.store
                    .record_ci_flow_completed(flow.branch_id, flow.id)
                    .await?;
            }
            self.events.publish(Event::Flow {
                flow_id: flow.id,
                branch_id: flow.branch_id,
            });
            tracing::info!(flow = flow.id, branch = flow.branch_id, "flow completed");
        }
        Ok(())
    }

    /// The summary of a CI flow, kept when it completes; `processed` gives
    /// the history counters of a run about to be marked processed.
    pub(crate) async fn flow_summary(
        &self,
        flow: &FlowRow,
        processed: Option<(i64, &crate::store::flows::HistoryCounters)>,
    ) -> Result<Value> {
        let runs = crate::view::flow_runs_json(&self.store, flow, processed).await?;
        let errors = runs
            .iter()
            .any(|r| matches!(r.outcome(), Outcome::Failed(_) | Outcome::Cancelled(_)));
        let sum = |f: fn(&crate::model::Run) -> i64| runs.iter().map(f).sum::<i64>();
        let s = json!({"id": flow.id, "label": flow.label(), "errors": errors,
                       "tests_passed": sum(|r| r.tests_passed),
                       "tests_total": sum(|r| r.tests_total),
                       "tests_regr": sum(|r| r.regr_cnt),
                       "tests_fix": sum(|r| r.fix_cnt),
                       "issues_total": sum(|r| r.issues_total),
                       "issues_new": sum(|r| r.issues_new)});
        Ok(s)
    }

    /// Cancel a job (once): completed with `status` and `note`; its steps in
    /// progress become errors and untouched ones skipped. The agent learns it
    /// at its next call. Then the run completes if it was the last job.
    pub async fn cancel_job(&self, job: &JobRow, note: &str, status: i64) -> Result<()> {
        if self
            .store()
            .complete_job(job.id, status, Some(note))
            .await?
        {
            self.store.close_steps_of_canceled_job(job.id).await?;
            self.events.publish(Event::Job {
                job_id: job.id,
                run_id: job.run_id,
            });
        }
        self.complete_run_if_done(job.run_id).await
    }
}
