//! Namespaced set-up data of a workload: a project `bench-<workload>-<tag>`
//! with one branch, its stages and flows, agents groups and simulated
//! agents, all removed again by [`Fixture::cleanup`]. Also the waits every
//! workload needs, each bounded by a timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::client::{Api, id_at, short};
use crate::report::Output;

/// A flow this fixture created.
#[derive(Debug, Clone)]
struct Tracked {
    id: i64,
    runs: Vec<i64>,
    done: bool,
}

/// A workload's project and everything else it created.
pub struct Fixture {
    /// Client (logged in).
    pub api: Api,
    /// `bench-<workload>-<tag>`: the project's name and the prefix of
    /// every other name the workload picks.
    pub name: String,
    /// Project id.
    pub project: i64,
    /// Branch id.
    pub branch: i64,
    groups: Vec<i64>,
    agents: Vec<i64>,
    flows: Mutex<Vec<Tracked>>,
}

/// One stage of identical shell jobs.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    /// Jobs in the stage.
    pub jobs: usize,
    /// The job's one shell command.
    pub cmd: &'a str,
    /// Agents group that runs the jobs.
    pub group: &'a str,
    /// Job timeout in seconds (the server's default when `None`).
    pub timeout: Option<u64>,
}

/// Starlark schema code of a root stage with `spec.jobs` jobs named
/// `job-<i>`, each one `shell` step, on system `any`.
pub fn stage_code(spec: &JobSpec<'_>) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let timeout = spec
        .timeout
        .map(|t| format!("\"timeout\": {t}, "))
        .unwrap_or_default();
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"job-%d\" % i, {timeout}\"steps\": [{{\"tool\": \"shell\", \"cmd\": {cmd}}}], \"environments\": [{{\"system\": \"any\", \"agents_group\": {group}, \"config\": \"default\"}}]}} for i in range({n})]}}\n",
        cmd = quote(spec.cmd),
        group = quote(spec.group),
        n = spec.jobs,
    )
}

impl Fixture {
    /// Create the project `bench-<workload>-<tag>` with a branch `main`.
    pub async fn create(api: &Api, workload: &str, tag: &str) -> Result<Fixture> {
        let name = format!("bench-{workload}-{tag}");
        let p = api
            .post(
                "/api/projects",
                &json!({"name": name, "description": "kraken-bench data, deleted at the end of its run"}),
            )
            .await
            .context("cannot create the workload's project")?;
        let project = id_at(&p, "/id")?;
        let branch = match api
            .post(
                &format!("/api/projects/{project}/branches"),
                &json!({"name": "main", "branch_name": "main"}),
            )
            .await
            .and_then(|b| id_at(&b, "/id"))
        {
            Ok(b) => b,
            Err(e) => {
                let _ = api.delete(&format!("/api/projects/{project}")).await;
                return Err(e.context("cannot create the workload's branch"));
            }
        };
        Ok(Fixture {
            api: api.clone(),
            name,
            project,
            branch,
            groups: Vec::new(),
            agents: Vec::new(),
            flows: Mutex::new(Vec::new()),
        })
    }

    /// Create an agents group named after the fixture; returns its id and name.
    pub async fn group(&mut self) -> Result<(i64, String)> {
        let name = format!("{}-{}", self.name, self.groups.len() + 1);
        let g = self
            .api
            .post("/api/groups", &json!({"name": name}))
            .await
            .context("cannot create an agents group")?;
        let id = id_at(&g, "/id")?;
        self.groups.push(id);
        Ok((id, name))
    }

    /// Remember agents to delete at clean-up.
    pub fn track_agents(&mut self, ids: &[i64]) {
        self.agents.extend_from_slice(ids);
    }

    /// A group without agents and a stage `build` of one `true` job in it:
    /// the server plans and schedules each flow's job, which ends at once
    /// without running (flows finish quickly and leave the server idle).
    pub async fn idle_stage(&mut self) -> Result<()> {
        let (_, group) = self.group().await?;
        let code = stage_code(&JobSpec {
            jobs: 1,
            cmd: "true",
            group: &group,
            timeout: None,
        });
        self.stage("build", &code).await?;
        Ok(())
    }

    /// Create a stage on the branch.
    pub async fn stage(&self, name: &str, code: &str) -> Result<i64> {
        let s = self
            .api
            .post(
                &format!("/api/branches/{}/stages", self.branch),
                &json!({"name": name, "schema_code": code}),
            )
            .await
            .with_context(|| format!("cannot create stage '{name}'"))?;
        id_at(&s, "/id")
    }

    /// Create a CI flow; returns it as the server answered.
    pub async fn flow(&self) -> Result<Value> {
        let f = self
            .api
            .post(
                &format!("/api/branches/{}/flows/ci", self.branch),
                &json!({}),
            )
            .await?;
        let id = id_at(&f, "/id")?;
        let runs = f["runs"]
            .as_array()
            .map(|rs| rs.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default();
        if let Ok(mut flows) = self.flows.lock() {
            flows.push(Tracked {
                id,
                runs,
                done: false,
            });
        }
        Ok(f)
    }

    /// Note that a flow was seen completed (clean-up need not cancel it).
    pub fn mark_done(&self, flow: i64) {
        if let Ok(mut flows) = self.flows.lock()
            && let Some(t) = flows.iter_mut().find(|t| t.id == flow)
        {
            t.done = true;
        }
    }

    /// Wait until every flow created so far is completed; returns them.
    pub async fn wait_all(&self, timeout: Duration) -> Result<Vec<Value>> {
        let end = Instant::now() + timeout;
        let ids: Vec<i64> = self
            .flows
            .lock()
            .map(|f| f.iter().map(|t| t.id).collect())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let left = end.saturating_duration_since(Instant::now());
            let f = wait_flow(&self.api, id, left, Duration::from_millis(50)).await?;
            self.mark_done(id);
            out.push(f);
        }
        Ok(out)
    }

    /// Cancel the runs of flows not seen completed, delete the simulated
    /// agents, the project and the groups; fold any problem into `out`.
    pub async fn cleanup(self, out: Result<Output>) -> Result<Output> {
        let mut problems = Vec::new();
        let unfinished: Vec<Tracked> = self
            .flows
            .lock()
            .map(|f| f.iter().filter(|t| !t.done).cloned().collect())
            .unwrap_or_default();
        for run in unfinished.iter().flat_map(|t| t.runs.iter()) {
            // Cancelling a run that has completed meanwhile is harmless.
            if let Err(e) = self.api.delete(&format!("/api/runs/{run}")).await {
                problems.push(format!("{e:#}"));
            }
        }
        for agent in &self.agents {
            if let Err(e) = self.api.delete(&format!("/api/agents/{agent}")).await {
                problems.push(format!("{e:#}"));
            }
        }
        if let Err(e) = self
            .api
            .delete(&format!("/api/projects/{}", self.project))
            .await
        {
            problems.push(format!("{e:#}"));
        }
        for group in &self.groups {
            if let Err(e) = self.api.delete(&format!("/api/groups/{group}")).await {
                problems.push(format!("{e:#}"));
            }
        }
        if problems.is_empty() {
            return out;
        }
        problems.truncate(3);
        let what = format!("clean-up of {}: {}", self.name, problems.join("; "));
        match out {
            Ok(mut o) => {
                o.fail(what);
                Ok(o)
            }
            Err(e) => Err(anyhow!("{e:#}; {what}")),
        }
    }
}

/// Wait until flow `id` is completed (`state == "completed"`), polling
/// every `poll`; returns the flow.
pub async fn wait_flow(api: &Api, id: i64, timeout: Duration, poll: Duration) -> Result<Value> {
    let end = Instant::now() + timeout;
    loop {
        let f = api.get(&format!("/api/flows/{id}")).await?;
        if f["state"] == "completed" {
            return Ok(f);
        }
        if Instant::now() >= end {
            bail!(
                "flow {id} did not complete within {}s (state {})",
                timeout.as_secs(),
                f["state"]
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// The jobs of a flow's first run, once the server has created them.
pub async fn flow_jobs(api: &Api, flow: &Value, timeout: Duration) -> Result<Vec<Value>> {
    let run = id_at(flow, "/runs/0/id")?;
    let end = Instant::now() + timeout;
    loop {
        let j = api.get(&format!("/api/runs/{run}/jobs")).await?;
        if let Some(items) = j["items"].as_array().filter(|i| !i.is_empty()) {
            return Ok(items.clone());
        }
        if Instant::now() >= end {
            bail!(
                "run {run} has no jobs after {}s: {}",
                timeout.as_secs(),
                short(&j)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A job's state, completion status and notes, for error messages.
pub async fn job_summary(api: &Api, job: i64) -> String {
    match api.get(&format!("/api/jobs/{job}")).await {
        Ok(j) => format!(
            "job state {}, completion status {}, notes: {}",
            j["state"], j["completion_status"], j["notes"]
        ),
        Err(e) => format!("{e:#}"),
    }
}

/// Why a completed flow is not a success (its runs had failed jobs), if so.
pub fn flow_failure(flow: &Value) -> Option<String> {
    let failed: i64 = flow["runs"]
        .as_array()?
        .iter()
        .filter_map(|r| r["jobs_error"].as_i64())
        .sum();
    (failed > 0).then(|| format!("flow {} completed with {failed} failed job(s)", flow["id"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_code_has_n_jobs_in_the_group() {
        let code = stage_code(&JobSpec {
            jobs: 3,
            cmd: "echo \"hi\"",
            group: "bench-x",
            timeout: Some(600),
        });
        assert!(code.starts_with("def stage(ctx):\n    return {"));
        assert!(code.contains("for i in range(3)"));
        assert!(code.contains("\"cmd\": \"echo \\\"hi\\\"\""));
        assert!(code.contains("\"agents_group\": \"bench-x\""));
        assert!(code.contains("\"timeout\": 600, "));
    }

    #[test]
    fn failed_jobs_are_reported() {
        let ok = json!({"id": 1, "runs": [{"jobs_error": 0}]});
        assert_eq!(flow_failure(&ok), None);
        let bad = json!({"id": 2, "runs": [{"jobs_error": 1}, {"jobs_error": 2}]});
        assert_eq!(
            flow_failure(&bad).as_deref(),
            Some("flow 2 completed with 3 failed job(s)")
        );
    }
}
