//! Branches, sequences, environment variables, retention, stats.

use serde_json::json;

use super::{Local, required};
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    Branch, BranchChanges, BranchSequence, BranchStats, BranchStatsByKind, Empty, EnvVar,
    FlowDuration, List, MoveBranch, NewBranch, RetentionPolicy, SequenceValue, duration_to_txt,
    flow_kind, seq_kind,
};
use crate::store::branches::{BranchInit, BranchRow};
use crate::store::now_ms;
use crate::store::stages::StageFields;

/// Names of environment variables: a letter or `_`, then letters, digits, `_`.
fn env_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Local {
    pub(crate) async fn branch_row(&self, id: i64) -> Result<BranchRow> {
        self.store()
            .branch(id)
            .await?
            .ok_or_else(|| Error::not_found("Branch not found"))
    }

    /// `POST /projects/{id}/branches`: a new branch, or a fork of branch `id`.
    pub async fn create_branch(&self, project_id: i64, input: &NewBranch) -> Result<Branch> {
        input.check_limits()?;
        self.store()
            .require_project(project_id)
            .await
            .map_err(|_| Error::not_found("Project not found"))?;
        self.who.require_pwrusr(project_id)?;
        let name = required(&input.name, "Missing name in branch")?;
        let branch_name = input
            .branch_name
            .as_deref()
            .filter(|b| !b.is_empty())
            .unwrap_or(name);
        let Some(source_id) = input.id else {
            let row = self
                .store()
                .create_branch(project_id, name, branch_name, BranchInit::default())
                .await?;
            return Ok(row.to_model());
        };

        // A fork: copy settings, data and stages of the source branch.
        let source = self.branch_row(source_id).await?;
        self.who.require_view(source.project_id)?;
        let continue_numbering = input.forking_model.as_deref() == Some("model-1");
        let seqs = self.store().branch_sequences(source.id).await?;
        let value_of = |kind: i64, stage: Option<i64>| {
            if !continue_numbering {
                return 0;
            }
            seqs.iter()
                .find(|s| s.kind == kind && s.stage_id == stage)
                .map_or(0, |s| s.value)
        };
        let init = BranchInit {
            sequences: [
                value_of(seq_kind::FLOW, None),
                value_of(seq_kind::CI_FLOW, None),
                value_of(seq_kind::DEV_FLOW, None),
            ],
            retention_policy: Some(json!(source.retention())),
            user_data: [
                source.user_data.0.clone(),
                source.user_data_ci.0.clone(),
                source.user_data_dev.0.clone(),
            ],
            env_vars: source.env_vars.0.clone(),
        };
        let row = self
            .store()
            .create_branch(project_id, name, branch_name, init)
            .await?;
        for stage in self.store().branch_stages(source.id).await? {
            let seq = [
                value_of(seq_kind::RUN, Some(stage.id)),
                value_of(seq_kind::CI_RUN, Some(stage.id)),
                value_of(seq_kind::DEV_RUN, Some(stage.id)),
            ];
            let fields = StageFields::of(&stage);
            let new_stage = self.store().create_stage(row.id, &fields, seq).await?;
            self.engine()
                .register_stage_timers(
                    new_stage.id,
                    &fields.schema,
                    fields
                        .schema_from_repo_enabled
                        .then(|| fields.repo_refresh_interval.as_deref().unwrap_or("")),
                )
                .await?;
        }
        if continue_numbering {
            // The fork continues the numbering; the source starts again.
            for s in &seqs {
                self.store().set_sequence(s.id, 0).await?;
            }
        }
        Ok(row.to_model())
    }

    /// `PUT /branches/{id}`: rename (pwrusr).
    pub async fn update_branch(&self, id: i64, input: &BranchChanges) -> Result<Branch> {
        input.check_limits()?;
        let row = self.branch_row(id).await?;
        self.who.require_pwrusr(row.project_id)?;
        let name = match &input.name {
            Some(n) if n.trim().is_empty() => {
                return Err(Error::bad_request("branch name cannot be empty"));
            }
            Some(n) if *n != row.name => {
                if self
                    .store()
                    .branch_by_name(row.project_id, n)
                    .await?
                    .is_some()
                {
                    return Err(Error::bad_request(format!(
                        "Branch with name {n} already exists in this project"
                    )));
                }
                n.clone()
            }
            _ => row.name.clone(),
        };
        let branch_name = input
            .branch_name
            .clone()
            .or_else(|| row.branch_name.clone());
        self.store()
            .update_branch(id, &name, branch_name.as_deref())
            .await?;
        Ok(self.branch_row(id).await?.to_model())
    }

    /// `DELETE /branches/{id}`: soft delete (admin).
    pub async fn delete_branch(&self, id: i64) -> Result<Empty> {
        let row = self.branch_row(id).await?;
        self.who.require_admin(row.project_id)?;
        self.stop_branch_work(id, "canceled: the branch was deleted")
            .await?;
        self.store().delete_branch(id).await?;
        Ok(Empty {})
    }

    /// `GET /branches/{id}/cfg`: the branch with its stages and their schemas.
    pub async fn get_branch(&self, id: i64) -> Result<Branch> {
        let row = self.branch_row(id).await?;
        self.who.require_view(row.project_id)?;
        let mut b = row.to_model();
        let stages = self.store().branch_stages(id).await?;
        b.stages = Some(stages.iter().map(|s| s.to_model(true)).collect());
        Ok(b)
    }

    /// `GET /branches/{id}/sequences`.
    pub async fn get_branch_sequences(&self, id: i64) -> Result<List<BranchSequence>> {
        let row = self.branch_row(id).await?;
        self.who.require_view(row.project_id)?;
        let seqs = self.store().branch_sequences(id).await?;
        Ok(List::all(seqs.iter().map(|s| s.to_model()).collect()))
    }

    /// `PUT /sequences/{id}`: set a value ≥ -1 (pwrusr).
    pub async fn update_branch_sequence(
        &self,
        id: i64,
        input: &SequenceValue,
    ) -> Result<BranchSequence> {
        let seq = self
            .store()
            .sequence(id)
            .await?
            .ok_or_else(|| Error::not_found("Branch sequence not found"))?;
        let branch = self.branch_row(seq.branch_id).await?;
        self.who.require_pwrusr(branch.project_id)?;
        let value = input
            .value
            .ok_or_else(|| Error::bad_request("Missing value in sequence"))?;
        if value < -1 {
            return Err(Error::bad_request("sequence value must be -1 or more"));
        }
        self.store().set_sequence(id, value).await?;
        Ok(self
            .store()
            .sequence(id)
            .await?
            .ok_or_else(|| Error::not_found("Branch sequence not found"))?
            .to_model())
    }

    /// `PUT /branches/{id}/project_id`: move to another project (admin on both).
    pub async fn move_branch(&self, id: i64, input: &MoveBranch) -> Result<Branch> {
        let row = self.branch_row(id).await?;
        let target = input
            .project_id
            .ok_or_else(|| Error::bad_request("Missing project_id"))?;
        self.store().require_project(target).await?;
        self.who.require_admin(row.project_id)?;
        self.who.require_admin(target)?;
        if target != row.project_id
            && self
                .store()
                .branch_by_name(target, &row.name)
                .await?
                .is_some()
        {
            return Err(Error::bad_request(format!(
                "Branch with name {} already exists in the target project",
                row.name
            )));
        }
        self.store().move_branch(id, target).await?;
        Ok(self.branch_row(id).await?.to_model())
    }

    /// `PUT /branches/{id}/retention_policy` (pwrusr): stored and echoed.
    pub async fn update_branch_retention_policy(
        &self,
        id: i64,
        policy: &RetentionPolicy,
    ) -> Result<RetentionPolicy> {
        let row = self.branch_row(id).await?;
        self.who.require_pwrusr(row.project_id)?;
        for (k, v) in [
            ("ci_logs", policy.ci_logs),
            ("dev_logs", policy.dev_logs),
            ("ci_artifacts", policy.ci_artifacts),
            ("dev_artifacts", policy.dev_artifacts),
        ] {
            if v < 0 {
                return Err(Error::bad_request(format!("{k} must be 0 or more")));
            }
        }
        self.store().set_retention_policy(id, policy).await?;
        Ok(policy.clone())
    }

    /// `POST /branches/{id}/env_vars` (pwrusr).
    pub async fn create_branch_env_var(&self, id: i64, input: &EnvVar) -> Result<Empty> {
        input.check_limits()?;
        let row = self.branch_row(id).await?;
        self.who.require_pwrusr(row.project_id)?;
        let name = input
            .name
            .as_deref()
            .ok_or_else(|| Error::bad_request("Missing name in env var"))?;
        if !env_name_ok(name) {
            return Err(Error::bad_request(format!(
                "incorrect env var name '{name}': it must start with a letter or '_' and contain only letters, digits and '_'"
            )));
        }
        let value = input
            .value
            .as_deref()
            .ok_or_else(|| Error::bad_request("Missing value in env var"))?;
        let mut vars = row.env();
        vars.insert(name.to_string(), value.to_string());
        self.store().set_env_vars(id, &vars).await?;
        Ok(Empty {})
    }

    /// `DELETE /branches/{id}/env_vars/{name}` (pwrusr).
    pub async fn delete_branch_env_var(&self, id: i64, name: &str) -> Result<Empty> {
        let row = self.branch_row(id).await?;
        self.who.require_pwrusr(row.project_id)?;
        let mut vars = row.env();
        if vars.remove(name).is_none() {
            return Err(Error::not_found(format!("Env var {name} not found")));
        }
        self.store().set_env_vars(id, &vars).await?;
        Ok(Empty {})
    }

    /// `GET /branches/{id}/stats`.
    pub async fn get_branch_stats(&self, id: i64) -> Result<BranchStats> {
        let row = self.branch_row(id).await?;
        self.who.require_view(row.project_id)?;
        let now = now_ms();
        let mut by_kind = Vec::new();
        for kind in [flow_kind::CI, flow_kind::DEV] {
            let flows = self.store().all_branch_flows(id, kind).await?;
            let month = now - 30 * 86_400_000;
            let week = now - 7 * 86_400_000;
            let avg = |since: i64| {
                let d: Vec<i64> = flows
                    .iter()
                    .filter(|f| f.created >= since)
                    .filter_map(|f| f.finished.map(|e| (e - f.created) / 1000))
                    .collect();
                if d.is_empty() {
                    None
                } else {
                    Some(duration_to_txt(d.iter().sum::<i64>() / d.len() as i64))
                }
            };
            by_kind.push(BranchStatsByKind {
                flows_total: flows.len() as i64,
                flows_last_month: flows.iter().filter(|f| f.created >= month).count() as i64,
                flows_last_week: flows.iter().filter(|f| f.created >= week).count() as i64,
                avg_duration_last_month: avg(month),
                avg_duration_last_week: avg(week),
                durations: flows
                    .iter()
                    .filter(|f| f.created >= month)
                    .map(|f| FlowDuration {
                        flow_label: f.label(),
                        duration: f.finished.map(|e| (e - f.created) / 1000),
                    })
                    .collect(),
            });
        }
        let dev = by_kind.pop().ok_or_else(|| Error::internal("stats"))?;
        let ci = by_kind.pop().ok_or_else(|| Error::internal("stats"))?;
        Ok(BranchStats { id, ci, dev })
    }
}

#[cfg(test)]
mod tests {
    use super::env_name_ok;

    #[test]
    fn env_var_names() {
        for ok in ["FOO", "_x", "a1_B"] {
            assert!(env_name_ok(ok), "{ok}");
        }
        for bad in ["", "!abc", "1abc", "a-b", "a b"] {
            assert!(!env_name_ok(bad), "{bad}");
        }
    }
}
