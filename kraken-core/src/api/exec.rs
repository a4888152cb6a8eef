//! Execution endpoints: create flows and runs, start manual runs, replay,
//! cancel, rerun jobs, list artifacts.

use serde_json::{Value, json};

use super::Local;
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    Empty, Flow, Job, List, NewFlow, NewJob, NewRun, Paging, Run, completion, flow_kind, job_state,
    run_state,
};
use crate::store::jobs::NewJobRow;

pub use crate::model::Artifact;

impl Local {
    /// `POST /branches/{id}/flows/{kind}`: create a flow and start its root stages (pwrusr).
    pub async fn create_flow(&self, branch_id: i64, kind: &str, input: &NewFlow) -> Result<Flow> {
        input.check_limits()?;
        let branch = self.branch_row(branch_id).await?;
        self.who.require_pwrusr(branch.project_id)?;
        let args: serde_json::Map<String, Value> = input
            .args
            .as_ref()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        // The branch's stages, read once for the start and the answer.
        let stages = self.store().branch_stages(branch.id).await?;
        let flow = self
            .engine()
            .start_flow_with(
                &branch,
                flow_kind::parse(kind),
                &args,
                "manual",
                &crate::engine::planner::flow_roots(&stages),
                None,
            )
            .await?;
        crate::view::created_flow_json(self.store(), &flow, &branch, &stages).await
    }

    /// `POST /flows/{id}/runs`: start (or replay) a stage in a flow (pwrusr).
    pub async fn create_run(&self, flow_id: i64, input: &NewRun) -> Result<Run> {
        input.check_limits()?;
        let flow = self.store().require_flow(flow_id).await?;
        let branch = self
            .store()
            .branch_any(flow.branch_id)
            .await?
            .ok_or_else(|| Error::not_found("Branch not found"))?;
        self.who.require_pwrusr(branch.project_id)?;
        let stage_id = input
            .stage_id
            .ok_or_else(|| Error::bad_request("Missing stage_id"))?;
        let stage = self
            .store()
            .stage(stage_id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))?;
        if stage.branch_id != flow.branch_id {
            return Err(Error::bad_request(format!(
                "stage {stage_id} belongs to another branch than flow {flow_id}"
            )));
        }
        let args = crate::engine::string_args(&input.args.clone().unwrap_or_default())?;
        let run = self
            .engine()
            .start_run(&stage, &flow, json!({"reason": "manual"}), &args, None)
            .await?;
        self.get_run(run.id).await
    }

    /// `PUT /runs/{id}`: start a manual run, or replay every job of a run (pwrusr).
    pub async fn run_run_jobs(&self, run_id: i64) -> Result<Run> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.who
            .require_pwrusr(self.branch_project(flow.branch_id).await?)?;
        let replay = run.state != run_state::MANUAL;
        if replay && !self.store().open_jobs_of_run(run_id).await?.is_empty() {
            return Err(Error::bad_request(format!(
                "run {run_id} still has running jobs: cancel it first (DELETE /runs/{run_id})"
            )));
        }
        self.engine().restart_run(&run, replay).await?;
        self.get_run(run_id).await
    }

    /// `POST /runs/{id}`: recompute the run's counters and queue its
    /// results-history analysis again (pwrusr).
    pub async fn force_run_analysis(&self, run_id: i64) -> Result<Run> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.who
            .require_pwrusr(self.branch_project(flow.branch_id).await?)?;
        if matches!(run.state, run_state::COMPLETED | run_state::PROCESSED) {
            let counters = self.store().run_counters(run_id).await?;
            self.store().set_run_counters(run_id, &counters).await?;
            if run.state == run_state::PROCESSED {
                self.store()
                    .set_run_state(run_id, run_state::COMPLETED)
                    .await?;
            }
            self.engine().enqueue_history_analysis(run_id).await?;
        }
        self.get_run(run_id).await
    }

    /// `DELETE /runs/{id}`: cancel every unfinished job (pwrusr).
    pub async fn cancel_run(&self, run_id: i64) -> Result<Empty> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.who
            .require_pwrusr(self.branch_project(flow.branch_id).await?)?;
        if matches!(run.state, run_state::COMPLETED | run_state::PROCESSED) {
            return Ok(Empty {});
        }
        let note = format!("run {run_id} canceled by user");
        let open = self.store().open_jobs_of_run(run_id).await?;
        if open.is_empty() {
            self.engine().complete_run(run_id, Some(&note)).await?;
        } else {
            self.store().append_run_note(run_id, &note).await?;
            for job in open {
                self.engine()
                    .cancel_job(&job, "canceled by user", completion::USER_CANCEL)
                    .await?;
            }
        }
        Ok(Empty {})
    }

    /// Stop everything still going on a branch (it is being deleted): its
    /// unfinished jobs are canceled and its waiting runs completed.
    pub(crate) async fn stop_branch_work(&self, branch_id: i64, why: &str) -> Result<()> {
        for run in self.store().unfinished_runs_of_branch(branch_id).await? {
            let open = self.store().open_jobs_of_run(run.id).await?;
            if open.is_empty() {
                self.engine().complete_run(run.id, Some(why)).await?;
            } else {
                self.store().append_run_note(run.id, why).await?;
                for job in open {
                    self.engine()
                        .cancel_job(&job, why, completion::USER_CANCEL)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// `PUT /jobs/{id}`: run a completed job again; the old one is covered (pwrusr).
    pub async fn job_rerun(&self, job_id: i64) -> Result<Job> {
        let job = self.store().require_job(job_id).await?;
        let project = self.job_project(&job).await?;
        self.who.require_pwrusr(project)?;
        if job.state != job_state::COMPLETED {
            return Err(Error::bad_request(format!(
                "job {job_id} is still running: cancel it first (DELETE /jobs/{job_id})"
            )));
        }
        if job.covered {
            return Err(Error::bad_request(format!(
                "job {job_id} was already rerun"
            )));
        }
        let steps = self.store().steps_of(&[job_id]).await?;
        let new_id = self
            .store()
            .insert_job(&NewJobRow {
                run_id: job.run_id,
                name: job.name.clone(),
                agents_group_id: job.agents_group_id,
                system_id: job.system_id,
                timeout: job.timeout,
                completed_with: None,
                network: job.network.clone(),
            })
            .await?;
        for s in &steps {
            let mut fields = s.fields_raw.0.clone();
            if let Some(o) = fields.as_object_mut() {
                o.remove("tool");
            }
            self.store()
                .insert_step(new_id, s.idx, s.tool_id, &fields, &fields, &s.fields_raw.0)
                .await?;
        }
        self.store().cover_job(job_id).await?;
        let run = self.store().require_run(job.run_id).await?;
        self.store().resume_run(run.id).await?;
        self.store().reopen_flow(run.flow_id).await?;
        self.events().publish(crate::events::Event::Run {
            run_id: run.id,
            flow_id: run.flow_id,
        });
        self.events().wake_scheduler();
        let new_job = self.store().require_job(new_id).await?;
        Ok(
            crate::view::jobs_json(self.store(), std::slice::from_ref(&new_job), true)
                .await?
                .remove(0),
        )
    }

    /// `DELETE /jobs/{id}`: cancel a job (pwrusr).
    pub async fn delete_job(&self, job_id: i64) -> Result<Empty> {
        let job = self.store().require_job(job_id).await?;
        self.who.require_pwrusr(self.job_project(&job).await?)?;
        self.engine()
            .cancel_job(&job, "canceled by user", completion::USER_CANCEL)
            .await?;
        Ok(Empty {})
    }

    /// `POST /jobs {run}`: create the jobs of a run again from its stage's
    /// schema (a replay of a finished run); the original left this a stub.
    pub async fn create_job(&self, input: &NewJob) -> Result<Empty> {
        let run_id = input.run.ok_or_else(|| Error::bad_request("Missing run"))?;
        self.run_run_jobs(run_id).await?;
        Ok(Empty {})
    }

    fn artifact_list(
        rows: Vec<crate::store::results::ArtifactRow>,
        prefix: &str,
        id: i64,
    ) -> List<Artifact> {
        let items: Vec<Artifact> = rows
            .into_iter()
            .filter(|a| a.section == 1)
            .map(|a| Artifact {
                url: format!("/bk/artifacts/public/{prefix}/{id}/{}", a.path),
                id: a.id,
                path: a.path,
                size: a.size,
                flow_id: a.flow_id,
                run_id: a.run_id,
                stage: a.stage,
            })
            .collect();
        List::all(items)
    }

    /// `GET /flows/{id}/artifacts`: public artifacts of a flow.
    pub async fn get_flow_artifacts(&self, flow_id: i64) -> Result<List<Artifact>> {
        let flow = self.store().require_flow(flow_id).await?;
        self.who
            .require_view(self.branch_project(flow.branch_id).await?)?;
        let rows = self.store().flow_artifacts(flow_id).await?;
        Ok(Self::artifact_list(rows, "f", flow_id))
    }

    /// `GET /runs/{id}/artifacts`: public artifacts of a run.
    pub async fn get_run_artifacts(&self, run_id: i64, paging: &Paging) -> Result<List<Artifact>> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.who
            .require_view(self.branch_project(flow.branch_id).await?)?;
        let rows = self.store().run_artifacts(run_id).await?;
        let mut list = Self::artifact_list(rows, "r", run_id);
        let (start, limit) = crate::store::page(paging.start, paging.limit, 1000, 10_000);
        list.items = list
            .items
            .into_iter()
            .skip(start as usize)
            .take(limit as usize)
            .collect();
        Ok(list)
    }
}
