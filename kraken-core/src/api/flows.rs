//! Reading flows and runs.

use std::collections::HashMap;

use serde_json::Value;

use super::Local;
use crate::error::{Error, Result};
use crate::model::{
    Flow, List, ReportEntry, Run, duration_to_txt, flow_kind, flow_state, run_state,
};
use crate::store::flows::{FlowRow, JobCounts, RunRow};
use crate::store::now_ms;
use crate::store::users::{ots, ts};

/// Project and branch a flow belongs to.
#[derive(Debug, Clone)]
pub(crate) struct FlowPlace {
    pub project_id: i64,
    pub project_name: String,
    pub branch_id: i64,
    pub branch_name: String,
}

fn report_entries(artifacts: &Value, prefix: &str, id: i64) -> Vec<ReportEntry> {
    artifacts
        .pointer("/public/entries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(Value::as_str)
                .map(|e| {
                    let base = e.rsplit('/').next().unwrap_or(e);
                    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
                    let mut name: Vec<char> = stem.chars().collect();
                    if let Some(c) = name.first_mut() {
                        *c = c.to_ascii_uppercase();
                    }
                    ReportEntry {
                        name: name.into_iter().collect(),
                        url: format!("/bk/artifacts/public/{prefix}/{id}/{e}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Local {
    /// The place (project, branch) of a branch id.
    pub(crate) async fn flow_place(&self, branch_id: i64) -> Result<FlowPlace> {
        let b = self
            .store()
            .branch_any(branch_id)
            .await?
            .ok_or_else(|| Error::not_found("Branch not found"))?;
        Ok(FlowPlace {
            project_id: b.project_id,
            project_name: b.project_name,
            branch_id: b.id,
            branch_name: b.name,
        })
    }

    /// Run JSON. `place` adds project/branch/artifact fields (single-run answers).
    pub(crate) fn run_json(
        &self,
        r: &RunRow,
        flow: &FlowRow,
        counts: Option<&JobCounts>,
        place: Option<&FlowPlace>,
    ) -> Run {
        let processed = r.state == run_state::PROCESSED;
        let c = counts.copied().unwrap_or_default();
        let start = r.started.unwrap_or(r.created);
        let end = r.finished.unwrap_or_else(now_ms);
        let reason = r
            .reason
            .0
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Repository changes come from webhooks and repository triggers,
        // which this server does not take: there is never any to show.
        let repo_data = None;
        Run {
            id: r.id,
            label: r.label.clone(),
            created: ts(r.created),
            deleted: ots(r.deleted),
            started: ots(r.started),
            finished: ots(r.finished),
            processed_at: ots(r.processed_at),
            duration: duration_to_txt((end - start) / 1000),
            state: run_state::name(r.state).to_string(),
            stage_name: r.stage_name.clone(),
            stage_id: r.stage_id,
            flow_id: r.flow_id,
            flow_kind: flow_kind::name(flow.kind).to_string(),
            flow_label: flow.label(),
            args: r.args.0.as_object().cloned().unwrap_or_default(),
            jobs_total: if processed { r.jobs_total } else { c.total },
            jobs_waiting: if processed { 0 } else { c.waiting },
            jobs_executing: if processed { 0 } else { c.executing },
            jobs_processing: if processed { 0 } else { c.processing },
            jobs_error: if processed { r.jobs_error } else { c.error },
            tests_total: r.tests_total,
            tests_passed: r.tests_passed,
            tests_not_run: r.tests_not_run,
            issues_total: r.issues_total,
            issues_new: r.issues_new,
            new_cnt: r.new_cnt,
            no_change_cnt: r.no_change_cnt,
            regr_cnt: r.regr_cnt,
            fix_cnt: r.fix_cnt,
            repo_data,
            reason,
            note: r.note.clone(),
            seq: r.seq.0.clone(),
            project_id: place.map(|p| p.project_id),
            project_name: place.map(|p| p.project_name.clone()),
            branch_id: place.map(|p| p.branch_id),
            branch_name: place.map(|p| p.branch_name.clone()),
            artifacts_total: place.map(|_| {
                r.artifacts
                    .0
                    .pointer("/public/count")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    + r.artifacts
                        .0
                        .pointer("/private/count")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
            }),
            report_entries: place.map(|_| report_entries(&r.artifacts.0, "r", r.id)),
        }
    }

    /// Flow JSON for several flows of one branch, with their runs and the branch's stages.
    pub(crate) async fn flows_json(&self, flows: &[FlowRow], full: bool) -> Result<Vec<Flow>> {
        let Some(first) = flows.first() else {
            return Ok(Vec::new());
        };
        let stages = self.store().branch_stages(first.branch_id).await?;
        let ids: Vec<i64> = flows.iter().map(|f| f.id).collect();
        let runs = self.store().runs_of_flows(&ids).await?;
        let run_ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let counts: HashMap<i64, JobCounts> = self
            .store()
            .job_counts(&run_ids)
            .await?
            .into_iter()
            .map(|c| (c.run_id, c))
            .collect();
        let place = if full {
            Some(self.flow_place(first.branch_id).await?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(flows.len());
        for f in flows {
            let trigger = match f.trigger_data_id {
                Some(id) => self
                    .store()
                    .repo_changes(id)
                    .await?
                    .and_then(|d| d.as_array().and_then(|a| a.first().cloned())),
                None => None,
            };
            let end = f.finished.unwrap_or_else(now_ms);
            out.push(Flow {
                id: f.id,
                label: f.label(),
                created: ts(f.created),
                finished: ots(f.finished),
                deleted: ots(f.deleted),
                state: flow_state::name(f.state).to_string(),
                kind: flow_kind::name(f.kind).to_string(),
                duration: duration_to_txt((end - f.created) / 1000),
                branch_name: f.branch_name.clone(),
                args: f.args.0.as_object().cloned().unwrap_or_default(),
                trigger,
                artifacts: f.artifacts.0.clone(),
                seq: f.seq.0.clone(),
                report_entries: report_entries(&f.artifacts.0, "f", f.id),
                stages: stages.iter().map(|s| s.to_model(full)).collect(),
                runs: runs
                    .iter()
                    .filter(|r| r.flow_id == f.id)
                    .map(|r| self.run_json(r, f, counts.get(&r.id), None))
                    .collect(),
                project_id: place.as_ref().map(|p| p.project_id),
                project_name: place.as_ref().map(|p| p.project_name.clone()),
                branch_id: place.as_ref().map(|p| p.branch_id),
                base_branch_name: place.as_ref().map(|p| p.branch_name.clone()),
                summary: f
                    .summary
                    .as_ref()
                    .map(|s| s.0.clone())
                    .filter(|s| !s.is_null()),
            });
        }
        Ok(out)
    }

    pub(crate) async fn flow_row(&self, id: i64) -> Result<FlowRow> {
        self.store()
            .flow(id)
            .await?
            .ok_or_else(|| Error::not_found("Flow not found"))
    }

    pub(crate) async fn run_row(&self, id: i64) -> Result<RunRow> {
        self.store()
            .run(id)
            .await?
            .ok_or_else(|| Error::not_found("Run not found"))
    }

    /// The project id of a branch (for permission checks).
    pub(crate) async fn branch_project(&self, branch_id: i64) -> Result<i64> {
        Ok(self.flow_place(branch_id).await?.project_id)
    }

    /// The `n` latest flows of a kind on a branch (list form).
    pub(crate) async fn latest_flows(
        &self,
        branch_id: i64,
        kind: i64,
        n: i64,
    ) -> Result<Vec<Flow>> {
        let (rows, _) = self.store().branch_flows(branch_id, kind, 0, n).await?;
        self.flows_json(&rows, false).await
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
                items: self.flows_json(&rows, false).await?,
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
            items: self.flows_json(&rows, false).await?,
            total,
        })
    }

    /// `GET /flows/{id}`.
    pub async fn get_flow(&self, id: i64) -> Result<Flow> {
        let flow = self.flow_row(id).await?;
        let project = self.branch_project(flow.branch_id).await?;
        self.who.require_view(project)?;
        self.flows_json(std::slice::from_ref(&flow), true)
            .await?
            .pop()
            .ok_or_else(|| Error::internal("flow disappeared"))
    }

    /// `GET /flows/{id}/runs`: a bare array, as the original answers.
    pub async fn get_flow_runs(&self, id: i64) -> Result<Vec<Run>> {
        let flow = self.flow_row(id).await?;
        let place = self.flow_place(flow.branch_id).await?;
        self.who.require_view(place.project_id)?;
        let runs = self.store().flow_runs(id).await?;
        self.runs_json(&runs, &place).await
    }

    async fn runs_json(&self, runs: &[RunRow], place: &FlowPlace) -> Result<Vec<Run>> {
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let counts: HashMap<i64, JobCounts> = self
            .store()
            .job_counts(&ids)
            .await?
            .into_iter()
            .map(|c| (c.run_id, c))
            .collect();
        let mut flows: HashMap<i64, FlowRow> = HashMap::new();
        let mut out = Vec::with_capacity(runs.len());
        for r in runs {
            if let std::collections::hash_map::Entry::Vacant(e) = flows.entry(r.flow_id) {
                e.insert(self.flow_row(r.flow_id).await?);
            }
            out.push(self.run_json(r, &flows[&r.flow_id], counts.get(&r.id), Some(place)));
        }
        Ok(out)
    }

    /// `GET /stages/{id}/runs`: a bare array, newest first.
    pub async fn get_stage_runs(&self, stage_id: i64, limit: Option<i64>) -> Result<Vec<Run>> {
        let stage = self
            .store()
            .stage(stage_id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))?;
        let place = self.flow_place(stage.branch_id).await?;
        self.who.require_view(place.project_id)?;
        let runs = self
            .store()
            .stage_runs(stage_id, limit.unwrap_or(100).clamp(1, 1000))
            .await?;
        self.runs_json(&runs, &place).await
    }

    /// `GET /runs/{id}`.
    pub async fn get_run(&self, id: i64) -> Result<Run> {
        let run = self.run_row(id).await?;
        let flow = self.flow_row(run.flow_id).await?;
        let place = self.flow_place(flow.branch_id).await?;
        self.who.require_view(place.project_id)?;
        let counts = self.store().job_counts(&[id]).await?;
        Ok(self.run_json(&run, &flow, counts.first(), Some(&place)))
    }
}
