//! Builds started by repositories: flows for webhook deliveries (the
//! original's `bg.trigger_flow`) and for commits found by polling a
//! repository (`triggers.repo`).

use serde_json::{Value, json};

use super::Engine;
use crate::error::Result;
use crate::model::flow_kind;
use crate::store::flows::FlowRow;
use crate::store::stages::StageRow;
use crate::webhooks::same_repo;

/// The repository URLs a stage's jobs clone with `git` steps.
pub fn stage_git_repos(stage: &StageRow) -> Vec<String> {
    let mut out = Vec::new();
    for job in stage
        .schema
        .0
        .get("jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for step in job
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if step.get("tool").and_then(Value::as_str) == Some("git")
                && let Some(url) = step.get("checkout").and_then(Value::as_str)
            {
                out.push(url.to_string());
            }
        }
    }
    out
}

impl Engine {
    /// Start what a webhook's trigger record asks for in a project: a push
    /// builds a CI flow on the branch whose `branch_name` is the pushed
    /// branch, a pull/merge request or patch a DEV flow on the branch of its
    /// base. As the original: root stages that clone the triggering
    /// repository and have no run yet in the branch's latest flow of that
    /// kind join it; when none does, a new flow starts. Returns the flow
    /// started or joined, `None` when the trigger names no branch of the
    /// project (logged in the services log).
    pub async fn trigger_flow(&self, project_id: i64, trigger: &Value) -> Result<Option<FlowRow>> {
        let name = trigger.get("trigger").and_then(Value::as_str).unwrap_or("");
        let (kind_name, branch_name) = match crate::webhooks::target(trigger) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(project = project_id, "{e}");
                return Ok(None);
            }
        };
        let kind = flow_kind::parse(kind_name);
        let branches = self.store.project_branches(project_id).await?;
        let Some(branch) = branches
            .into_iter()
            .find(|b| b.branch_name.as_deref() == Some(branch_name.as_str()))
        else {
            tracing::warn!(
                project = project_id,
                "{name}: no branch of project {project_id} has branch_name '{branch_name}', nothing started"
            );
            return Ok(None);
        };
        let reason = crate::webhooks::reason(trigger);
        let repo = trigger.get("repo").and_then(Value::as_str).unwrap_or("");
        let rc_id = self.store.insert_repo_changes(&json!([trigger])).await?;

        let latest = self
            .store
            .branch_flows(branch.id, kind, 0, 1)
            .await?
            .0
            .into_iter()
            .next();
        if let Some(flow) = latest {
            let mut joined = false;
            for stage in self.store.branch_stages(branch.id).await? {
                if stage.parent() != "root" || !stage.enabled {
                    continue;
                }
                if !stage_git_repos(&stage).iter().any(|u| same_repo(u, repo)) {
                    continue;
                }
                if self
                    .store
                    .run_of_stage_in_flow(flow.id, stage.id)
                    .await?
                    .is_some()
                {
                    continue;
                }
                self.start_run(
                    &stage,
                    &flow,
                    json!({"reason": reason}),
                    &Default::default(),
                    Some(rc_id),
                )
                .await?;
                joined = true;
            }
            if joined {
                self.store.set_flow_trigger_data(flow.id, rc_id).await?;
                tracing::info!(
                    flow = flow.id,
                    branch = branch.id,
                    "{reason}: stages of {repo} joined flow {}",
                    flow.id
                );
                return Ok(Some(self.store.require_flow(flow.id).await?));
            }
        }
        let flow = self
            .start_flow(
                &branch,
                kind,
                &Default::default(),
                &reason,
                None,
                Some(rc_id),
            )
            .await?;
        let after = trigger.get("after").and_then(Value::as_str).unwrap_or("?");
        tracing::info!(
            flow = flow.id,
            branch = branch.id,
            "{reason}: flow {} started for {after} of {repo}",
            flow.id,
        );
        Ok(Some(flow))
    }
}
