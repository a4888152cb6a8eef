//! Reading jobs and steps.

use serde_json::{Map, Value};

use super::Local;
use crate::error::Result;
use crate::model::{Job, List, Paging, Step, duration_to_txt};
use crate::store::jobs::{JobRow, StepRow};
use crate::store::now_ms;
use crate::store::users::{ots, ts};

/// The display name of a step: its `name`, else for shell the first line of
/// the script (with `...`) or the command, for git `checkout: <url>`, else
/// the tool name.
pub(crate) fn step_display_name(tool: &str, fields: &Map<String, Value>) -> String {
    let get = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(n) = get("name") {
        return n.to_string();
    }
    match tool {
        "shell" => {
            if let Some(script) = get("script") {
                let first = script.trim_start().lines().next().unwrap_or("").trim();
                return format!("{first}...");
            }
            get("cmd")
                .map(str::to_string)
                .unwrap_or_else(|| tool.to_string())
        }
        "git" => get("checkout")
            .map(|u| format!("checkout: {u}"))
            .unwrap_or_else(|| tool.to_string()),
        _ => tool.to_string(),
    }
}

impl Local {
    /// Step JSON; `masked` shows the copy with secrets hidden.
    pub(crate) fn step_json(s: &StepRow, masked: bool) -> Step {
        let source = if masked {
            s.fields_masked.as_ref().map(|m| &m.0)
        } else {
            None
        };
        let mut fields = source
            .or(Some(&s.fields.0))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .or_else(|| s.fields_raw.0.as_object())
            .cloned()
            .unwrap_or_default();
        fields.remove("tool");
        for k in [
            "id",
            "index",
            "tool_id",
            "tool_location",
            "tool_entry",
            "tool_version",
            "job_id",
            "status",
            "result",
        ] {
            fields.remove(k);
        }
        let name = step_display_name(&s.tool_name, &fields);
        fields.remove("name");
        let mut result = s.result.as_ref().map(|r| r.0.clone());
        if let Some(Value::Object(r)) = result.as_mut()
            && let Some(d) = r.get("duration").and_then(Value::as_i64)
        {
            r.insert("duration".into(), Value::String(duration_to_txt(d)));
        }
        Step {
            id: s.id,
            index: s.idx,
            tool: s.tool_name.clone(),
            tool_id: s.tool_id,
            tool_location: s.tool_location.clone().unwrap_or_default(),
            tool_entry: s.tool_entry.clone().unwrap_or_default(),
            tool_version: s.tool_version.clone().unwrap_or_default(),
            job_id: s.job_id,
            status: s.status,
            result,
            name,
            fields,
        }
    }

    /// Job JSON with its steps.
    pub(crate) fn job_json(j: &JobRow, steps: &[StepRow], masked: bool) -> Job {
        let duration = match j.started {
            Some(start) => {
                duration_to_txt((j.finished.or(j.completed).unwrap_or_else(now_ms) - start) / 1000)
            }
            None => String::new(),
        };
        Job {
            id: j.id,
            created: ts(j.created),
            deleted: ots(j.deleted),
            started: ots(j.started),
            finished: ots(j.finished),
            completed: ots(j.completed),
            duration,
            name: j.name.clone(),
            state: j.state,
            completion_status: j.completion_status,
            timeout: j.timeout,
            covered: j.covered,
            notes: j.notes.clone(),
            system_id: j.system_id,
            system: j.system_name.clone(),
            executor: j.executor.clone(),
            run_id: j.run_id,
            agents_group_id: j.agents_group_id,
            agents_group_name: j.agents_group_name.clone(),
            agent_id: j.agent_used_id.unwrap_or(0),
            agent_name: j.agent_name.clone().unwrap_or_default(),
            steps: steps
                .iter()
                .filter(|s| s.job_id == j.id)
                .map(|s| Self::step_json(s, masked))
                .collect(),
        }
    }

    pub(crate) async fn jobs_json(&self, jobs: &[JobRow], masked: bool) -> Result<Vec<Job>> {
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let steps = self.store().steps_of(&ids).await?;
        Ok(jobs
            .iter()
            .map(|j| Self::job_json(j, &steps, masked))
            .collect())
    }

    /// The project a job belongs to.
    pub(crate) async fn job_project(&self, job: &JobRow) -> Result<i64> {
        let run = self.run_row(job.run_id).await?;
        let flow = self.flow_row(run.flow_id).await?;
        self.branch_project(flow.branch_id).await
    }

    /// `GET /jobs/{id}`.
    pub async fn get_job(&self, id: i64) -> Result<Job> {
        let job = self.store().require_job(id).await?;
        self.who.require_view(self.job_project(&job).await?)?;
        Ok(self
            .jobs_json(std::slice::from_ref(&job), true)
            .await?
            .remove(0))
    }

    /// `GET /runs/{id}/jobs` (steps masked).
    pub async fn get_run_jobs(
        &self,
        run_id: i64,
        paging: &Paging,
        include_covered: bool,
    ) -> Result<List<Job>> {
        let run = self.run_row(run_id).await?;
        let flow = self.flow_row(run.flow_id).await?;
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
            items: self.jobs_json(&page, true).await?,
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
            items: self.jobs_json(&rows, true).await?,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::step_display_name;
    use serde_json::json;

    #[test]
    fn display_names() {
        let f = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            step_display_name("shell", &f(json!({"cmd": "echo hi"}))),
            "echo hi"
        );
        assert_eq!(
            step_display_name("shell", &f(json!({"script": "\n  make\n  make test\n"}))),
            "make..."
        );
        assert_eq!(
            step_display_name("git", &f(json!({"checkout": "https://x/y.git"}))),
            "checkout: https://x/y.git"
        );
        assert_eq!(step_display_name("pytest", &f(json!({}))), "pytest");
        assert_eq!(
            step_display_name("shell", &f(json!({"name": "build", "cmd": "make"}))),
            "build"
        );
    }
}
