//! Durability: work a stopped server left half done is finished by any
//! server, within seconds.
//!
//! Every state change that must be followed by another is either one
//! transaction or recorded as a lease on the row it concerns:
//!
//! * a flow and its first runs are inserted together; a run being planned
//!   holds `runs.planning_until` until its jobs are stored, in one
//!   transaction that also clears the lease ([`PLAN_LEASE_MS`], renewed
//!   before the stage schema is evaluated);
//! * a completed run holds `runs.completing_until` until its follow-up is
//!   done: counters, child stages, flow completion, the analysis queued
//!   ([`COMPLETE_LEASE_MS`], renewed while it works);
//! * a background task holds `bg_tasks.lease_until` while a worker runs it
//!   ([`TASK_LEASE_MS`], renewed while it works).
//!
//! [`Engine::recover`] runs at engine start and every [`RECOVERY_EVERY`]:
//! it takes over lapsed leases (replans the run, redoes the follow-up), and
//! finishes what no lease covers: runs whose jobs all ended, completed runs
//! with no analysis queued, flows with nothing left going. Each step is
//! idempotent, so two servers doing it at once, or a step done twice, is
//! harmless. A stopped server's work is thus finished at most one lease
//! plus one pass after any server runs again.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::Engine;
use super::tasks::ANALYZE_RESULTS_HISTORY;
use crate::error::Result;
use crate::model::{flow_kind, run_state};
use crate::store::flows::RunRow;
use crate::store::now_ms;

/// How long a planner holds a run (renewed before the schema is evaluated,
/// which is itself bounded to 2 s).
pub const PLAN_LEASE_MS: i64 = 10_000;
/// How long a server holds the follow-up of a completed run (renewed every third of it).
pub const COMPLETE_LEASE_MS: i64 = 10_000;
/// How long a worker holds a background task (renewed every third of it).
pub const TASK_LEASE_MS: i64 = 15_000;
/// How often the recovery pass runs.
pub const RECOVERY_EVERY: Duration = Duration::from_secs(3);
/// Runs and flows younger than this are left to the server working on them.
const GRACE_MS: i64 = 5_000;

/// Run `work`, calling `renew` every `every` until it ends.
pub(crate) async fn while_renewing<T, R, RF>(
    work: impl Future<Output = T>,
    every: Duration,
    mut renew: R,
) -> T
where
    R: FnMut() -> RF,
    RF: Future<Output = ()>,
{
    tokio::pin!(work);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => renew().await,
        }
    }
}

impl Engine {
    /// Finish what stopped servers left half done (see the module docs).
    pub async fn recover(&self) -> Result<()> {
        let now = now_ms();
        for run in self.store.runs_with_lapsed_planning(now).await? {
            let lease = now_ms() + PLAN_LEASE_MS;
            if self
                .store
                .move_planning_lease(run.id, run.planning_until, Some(lease))
                .await?
            {
                self.replan(run, lease).await;
            }
        }
        for run in self.store.runs_creating_unplanned().await? {
            let lease = now_ms() + PLAN_LEASE_MS;
            if self
                .store
                .move_planning_lease(run.id, None, Some(lease))
                .await?
            {
                self.replan(run, lease).await;
            }
        }
        for run in self.store.runs_done_but_open().await? {
            tracing::info!(
                run = run.id,
                "recovery: every job of the run ended: completing it"
            );
            if let Err(e) = self.complete_run_if_done(run.id).await {
                tracing::warn!(run = run.id, error = %e, "recovery: cannot complete the run");
            }
        }
        for run in self.store.runs_with_lapsed_completion(now).await? {
            let Some(old) = run.completing_until else {
                continue;
            };
            let lease = now_ms() + COMPLETE_LEASE_MS;
            if self
                .store
                .move_completing_lease(run.id, old, Some(lease))
                .await?
            {
                tracing::info!(
                    run = run.id,
                    "recovery: the run's follow-up was left undone: doing it"
                );
                if let Err(e) = self.follow_up_completed_run(run.id, lease).await {
                    tracing::warn!(run = run.id, error = %e, "recovery: run follow-up failed");
                }
            }
        }
        self.queue_missing_analyses(now).await?;
        for flow in self.store.stalled_flows(now - GRACE_MS).await? {
            tracing::info!(
                flow = flow.id,
                "recovery: nothing left going in the flow: completing it"
            );
            self.check_flow_completion(&flow).await?;
        }
        Ok(())
    }

    /// Plan a run again whose planner stopped (we hold its lease `lease`).
    async fn replan(&self, run: RunRow, lease: i64) {
        let run_id = run.id;
        tracing::info!(
            run = run.id,
            state = run.state,
            "recovery: the run's planner stopped: planning it again"
        );
        let outcome = async {
            match run.state {
                run_state::CREATING => {
                    let flow = self.store.require_flow(run.flow_id).await?;
                    let stage = self
                        .store
                        .stage_any(run.stage_id)
                        .await?
                        .ok_or_else(|| crate::error::Error::not_found("Stage not found"))?;
                    self.complete_starting_run(run, &stage, &flow, lease)
                        .await
                        .map(|_| ())
                }
                run_state::REPLAY => self.trigger_jobs_leased(&run, true, lease).await,
                run_state::IN_PROGRESS => self.trigger_jobs_leased(&run, false, lease).await,
                _ => self
                    .store
                    .move_planning_lease(run.id, Some(lease), None)
                    .await
                    .map(|_| ()),
            }
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(run = run_id, error = %e, "recovery: planning the run again failed");
        }
    }

    /// Queue the results-history analysis of completed runs that have none
    /// queued or running (their server stopped in between). A CI run whose
    /// previous run of the stage is not analysed yet is left to that one's
    /// analysis, which queues it.
    async fn queue_missing_analyses(&self, now: i64) -> Result<()> {
        let runs = self
            .store
            .unprocessed_runs(now - 90 * 86_400_000, now - GRACE_MS)
            .await?;
        if runs.is_empty() {
            return Ok(());
        }
        let pending: HashSet<i64> = self
            .store
            .pending_task_args(ANALYZE_RESULTS_HISTORY)
            .await?
            .iter()
            .filter_map(|a| a.get(0).and_then(Value::as_i64))
            .collect();
        for run in runs {
            if pending.contains(&run.id) {
                continue;
            }
            let flow = self.store.require_flow(run.flow_id).await?;
            if flow.kind == flow_kind::CI
                && let Some(prev) = self.store.previous_ci_run(&run, &flow).await?
                && prev.state != run_state::PROCESSED
                && prev.state != run_state::MANUAL
            {
                continue;
            }
            tracing::info!(
                run = run.id,
                "recovery: completed run without analysis: queued"
            );
            self.enqueue_history_analysis(run.id).await?;
        }
        Ok(())
    }

    /// The follow-up of a completed run (counters, child stages, flow
    /// completion, analysis queued) while holding its lease `lease`,
    /// renewed as it goes; the lease is cleared at the end.
    pub(crate) async fn follow_up_completed_run(&self, run_id: i64, lease: i64) -> Result<()> {
        let current = AtomicI64::new(lease);
        let every = Duration::from_millis((COMPLETE_LEASE_MS / 3) as u64);
        let out = while_renewing(self.analyze_run(run_id), every, || async {
            let old = current.load(Ordering::SeqCst);
            let new = now_ms() + COMPLETE_LEASE_MS;
            if let Ok(true) = self
                .store
                .move_completing_lease(run_id, old, Some(new))
                .await
            {
                current.store(new, Ordering::SeqCst);
            }
        })
        .await;
        out?;
        self.store
            .move_completing_lease(run_id, current.load(Ordering::SeqCst), None)
            .await?;
        Ok(())
    }
}
