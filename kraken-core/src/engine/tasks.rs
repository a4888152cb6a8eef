//! Background tasks: the results-history analysis of completed runs, run
//! one at a time in the order the original requires (per stage, by flow).

use serde_json::{Value, json};

use super::Engine;
use super::recovery::{TASK_LEASE_MS, while_renewing};
use crate::error::Result;
use crate::events::Event;
use crate::model::{flow_kind, run_state};
use crate::notify::Event as NotifyEvent;
use crate::store::tasks::TaskQueue;

/// Task names.
pub const ANALYZE_RESULTS_HISTORY: &str = "analyze_results_history";
/// Recompute a run's counters and children (what `POST /runs/{id}` asks for).
pub const ANALYZE_RUN: &str = "analyze_run";
/// Start or join a flow for a webhook delivery: `[project_id, trigger]`.
pub const TRIGGER_FLOW: &str = "trigger_flow";

impl Engine {
    /// Queue the results-history analysis of a run.
    pub(crate) async fn enqueue_history_analysis(&self, run_id: i64) -> Result<()> {
        self.enqueue_task(ANALYZE_RESULTS_HISTORY, json!([run_id]))
            .await
    }

    /// Queue a task and wake the worker.
    pub(crate) async fn enqueue_task(&self, func: &str, args: Value) -> Result<()> {
        self.store.enqueue_task(func, &args).await?;
        self.events.tasks.notify_one();
        Ok(())
    }

    /// Run queued tasks until none is left.
    pub async fn run_queued_tasks(&self) -> Result<()> {
        while let Some(task) = self
            .store
            .claim_task(&self.instance, TASK_LEASE_MS, TaskQueue::Main)
            .await?
        {
            let run_id = task.args.0.get(0).and_then(Value::as_i64);
            let work = async {
                match (task.func.as_str(), run_id) {
                    (ANALYZE_RESULTS_HISTORY, Some(id)) => self.analyze_results_history(id).await,
                    (ANALYZE_RUN, Some(id)) => self.analyze_run(id).await,
                    (TRIGGER_FLOW, Some(project_id)) => {
                        let trigger = task.args.0.get(1).cloned().unwrap_or(Value::Null);
                        let outcome = self.trigger_flow(project_id, &trigger).await.map(|_| ());
                        // Failed: the code host's redelivery of it is taken again.
                        if outcome.is_err()
                            && let Some(delivery) = task.args.0.get(2).and_then(Value::as_str)
                        {
                            self.store
                                .forget_webhook_delivery(project_id, delivery)
                                .await?;
                        }
                        outcome
                    }
                    (other, _) => Err(crate::error::Error::bad_request(format!(
                        "unknown task {other} with arguments {}",
                        task.args.0
                    ))),
                }
            };
            // Hold the task while it runs; a worker that dies loses it after the lease.
            let every = std::time::Duration::from_millis((TASK_LEASE_MS / 3) as u64);
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
            let err = outcome.err().map(|e| e.to_string());
            if let Some(e) = &err {
                tracing::warn!(task = task.id, func = %task.func, error = %e, "background task failed");
            }
            self.store.finish_task(task.id, err.as_deref()).await?;
        }
        Ok(())
    }

    /// Compare a completed run's test results and issues with history and
    /// mark it processed. A CI run waits until the previous CI run of its
    /// stage is processed; the next one is analysed after it.
    pub(crate) async fn analyze_results_history(&self, run_id: i64) -> Result<()> {
        crate::fault::point("in-history-analysis");
        let run = self.store.require_run(run_id).await?;
        if run.state != run_state::COMPLETED && run.state != run_state::PROCESSED {
            return Ok(());
        }
        let flow = self.store.require_flow(run.flow_id).await?;
        if flow.kind == flow_kind::CI
            && let Some(prev) = self.store.previous_ci_run(&run, &flow).await?
            && prev.state != run_state::PROCESSED
            && prev.state != run_state::MANUAL
        {
            // Postponed: the previous run's analysis queues this one.
            return Ok(());
        }
        let counters = crate::results::analyze_run_history(&self.store, &run, &flow).await?;
        // The run becomes `processed` together with its finished flow's
        // summary, so nobody sees one without the other.
        let summary = if flow.kind == flow_kind::CI {
            Some(self.flow_summary(&flow, Some((run_id, &counters))).await?)
        } else {
            None
        };
        self.store
            .set_run_processed(run_id, &counters, summary.as_ref().map(|s| (flow.id, s)))
            .await?;
        crate::fault::point("after-run-processed");
        // Regressions and new issues are known now: tell people. (Keyed by
        // the completion, so doing this again after a restart queues nothing.)
        self.queue_notifications(run_id, NotifyEvent::End, run.finished.unwrap_or(0))
            .await;
        self.events.publish(Event::Run {
            run_id,
            flow_id: flow.id,
        });
        if let Some(next) = self.store.next_run_of_stage(&run, &flow).await?
            && next.state == run_state::COMPLETED
        {
            self.enqueue_history_analysis(next.id).await?;
        }
        Ok(())
    }
}
