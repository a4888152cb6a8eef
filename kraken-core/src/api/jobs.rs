//! Reading jobs and steps.

use super::Local;
use crate::error::Result;
use crate::model::{Job, List, Paging};
use crate::store::jobs::JobRow;

impl Local {
    /// The project a job belongs to.
    pub(crate) async fn job_project(&self, job: &JobRow) -> Result<i64> {
        let run = self.store().require_run(job.run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.branch_project(flow.branch_id).await
    }

    /// `GET /jobs/{id}`.
    pub async fn get_job(&self, id: i64) -> Result<Job> {
        let job = self.store().require_job(id).await?;
        self.who.require_view(self.job_project(&job).await?)?;
        Ok(
            crate::view::jobs_json(self.store(), std::slice::from_ref(&job), true)
                .await?
                .remove(0),
        )
    }

    /// `GET /runs/{id}/jobs` (steps masked).
    pub async fn get_run_jobs(
        &self,
        run_id: i64,
        paging: &Paging,
        include_covered: bool,
    ) -> Result<List<Job>> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.who
            .require_view(self.branch_project(flow.branch_id).await?)?;
        let all = self.store().run_jobs(run_id, include_covered).await?;
        let total = all.len() as i64;
        let (start, limit) = crate::store::page(paging.start, paging.limit, 1000, 10_000);
        let page: Vec<JobRow> = all
            .into_iter()
            .skip(start as usize)
            .take(limit as usize)
            .collect();
        Ok(List {
            items: crate::view::jobs_json(self.store(), &page, true).await?,
            total,
        })
    }

    /// `GET /agents/{id}/jobs`: the jobs an agent ran, newest first (superadmins).
    pub async fn get_agent_jobs(&self, agent_id: i64, paging: &Paging) -> Result<List<Job>> {
        self.who
            .require_superadmin("only superadmin can see agents")?;
        self.agent_row(agent_id).await?;
        let (start, limit) = crate::store::page(paging.start, paging.limit, 10, 1000);
        let (rows, total) = self.store().agent_jobs(agent_id, start, limit).await?;
        Ok(List {
            items: crate::view::jobs_json(self.store(), &rows, true).await?,
            total,
        })
    }
}
