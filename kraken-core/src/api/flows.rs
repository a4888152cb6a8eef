//! Reading flows and runs.

use std::collections::HashMap;

use super::Local;
use crate::error::{Error, Result};
use crate::model::{Flow, List, Run, RunNotification, flow_kind};
use crate::store::flows::{FlowRow, RunRow};

impl Local {
    /// The project id of a branch (for permission checks).
    pub(crate) async fn branch_project(&self, branch_id: i64) -> Result<i64> {
        Ok(crate::view::flow_place(self.store(), branch_id)
            .await?
            .project_id)
    }

    /// `GET /branches/{id}/flows/{kind}`: newest first; `middle` pages around a flow.
    pub async fn get_flows(
        &self,
        branch_id: i64,
        kind: &str,
        start: Option<i64>,
        limit: Option<i64>,
        middle: Option<i64>,
    ) -> Result<List<Flow>> {
        let branch = self
            .store()
            .branch(branch_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Branch {branch_id} not found")))?;
        self.who.require_view(branch.project_id)?;
        if start.is_some_and(|s| s < 0) {
            return Err(Error::bad_request(
                "incorrect start value: it must be 0 or more",
            ));
        }
        if limit.is_some_and(|l| l < 0) {
            return Err(Error::bad_request(
                "incorrect limit value: it must be 0 or more",
            ));
        }
        let kind = flow_kind::parse(kind);
        let limit = limit.unwrap_or(10).clamp(0, 1000);
        if let Some(middle) = middle {
            let rows = self
                .store()
                .branch_flows_around(branch_id, kind, middle, limit)
                .await?;
            return Ok(List {
                items: crate::view::flows_json(self.store(), &rows, false).await?,
                total: 0,
            });
        }
        if limit == 0 {
            let (_, total) = self.store().branch_flows(branch_id, kind, 0, 1).await?;
            return Ok(List {
                items: Vec::new(),
                total,
            });
        }
        let (rows, total) = self
            .store()
            .branch_flows(branch_id, kind, start.unwrap_or(0), limit)
            .await?;
        Ok(List {
            items: crate::view::flows_json(self.store(), &rows, false).await?,
            total,
        })
    }

    /// `GET /flows/{id}`.
    pub async fn get_flow(&self, id: i64) -> Result<Flow> {
        let flow = self.store().require_flow(id).await?;
        let project = self.branch_project(flow.branch_id).await?;
        self.who.require_view(project)?;
        crate::view::flows_json(self.store(), std::slice::from_ref(&flow), true)
            .await?
            .pop()
            .ok_or_else(|| Error::internal("flow disappeared"))
    }

    /// `GET /flows/{id}/runs`: a bare array, as the original answers.
    pub async fn get_flow_runs(&self, id: i64) -> Result<Vec<Run>> {
        let flow = self.store().require_flow(id).await?;
        let place = crate::view::flow_place(self.store(), flow.branch_id).await?;
        self.who.require_view(place.project_id)?;
        let runs = self.store().flow_runs(id).await?;
        self.runs_json(&runs, &place).await
    }

    async fn runs_json(&self, runs: &[RunRow], place: &crate::view::FlowPlace) -> Result<Vec<Run>> {
        let counts = crate::view::job_counts_by_run(self.store(), runs).await?;
        let flow_ids: Vec<i64> = runs.iter().map(|r| r.flow_id).collect();
        let flows: HashMap<i64, FlowRow> = self
            .store()
            .flows_by_ids(&flow_ids)
            .await?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
        runs.iter()
            .map(|r| {
                let flow = flows
                    .get(&r.flow_id)
                    .ok_or_else(|| Error::not_found("Flow not found"))?;
                Ok(crate::view::run_json(
                    r,
                    flow,
                    counts.get(&r.id),
                    Some(place),
                ))
            })
            .collect()
    }

    /// `GET /stages/{id}/runs`: a bare array, newest first.
    pub async fn get_stage_runs(&self, stage_id: i64, limit: Option<i64>) -> Result<Vec<Run>> {
        let stage = self
            .store()
            .stage(stage_id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))?;
        let place = crate::view::flow_place(self.store(), stage.branch_id).await?;
        self.who.require_view(place.project_id)?;
        let runs = self
            .store()
            .stage_runs(stage_id, limit.unwrap_or(100).clamp(1, 1000))
            .await?;
        self.runs_json(&runs, &place).await
    }

    /// `GET /runs/{id}/notifications`: the run's notifications and how
    /// their delivery went.
    pub async fn get_run_notifications(&self, run_id: i64) -> Result<Vec<RunNotification>> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        let place = crate::view::flow_place(self.store(), flow.branch_id).await?;
        self.who.require_view(place.project_id)?;
        Ok(self
            .store()
            .run_notifications(run_id)
            .await?
            .into_iter()
            .map(|n| RunNotification {
                id: n.id,
                run_id: n.run_id,
                event: n.event,
                channel: n.channel,
                target: n.target,
                state: n.state,
                attempts: n.attempts,
                last_error: n.last_error,
                created: crate::model::Timestamp(n.created),
                updated: crate::model::Timestamp(n.updated),
                delivered: n.delivered.map(crate::model::Timestamp),
            })
            .collect())
    }

    /// `GET /runs/{id}`.
    pub async fn get_run(&self, id: i64) -> Result<Run> {
        let run = self.store().require_run(id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        let place = crate::view::flow_place(self.store(), flow.branch_id).await?;
        self.who.require_view(place.project_id)?;
        let counts =
            crate::view::job_counts_by_run(self.store(), std::slice::from_ref(&run)).await?;
        Ok(crate::view::run_json(
            &run,
            &flow,
            counts.get(&id),
            Some(&place),
        ))
    }
}
