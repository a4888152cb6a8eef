//! Stages: create, read, update, delete, schema preview and schedule.

use serde_json::{Map, Value};

use super::Local;
use crate::engine::context::CtxFor;
use crate::engine::stage_schema::Prepare;
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    Empty, Schedule, Stage, StageInput, StageSchedule, StageSchemaCode, StageSchemaPreview,
    Timestamp,
};
use crate::schema::SchemaEnv;
use crate::store::stages::{StageFields, StageRow};
use crate::triggers::timers_of;

impl Local {
    /// Evaluate, validate and check stage code (empty code: the default
    /// stage). Returns the code used and the schema; errors are 400s.
    async fn evaluate_stage_code(
        &self,
        code: &str,
        ctx: Value,
        env: SchemaEnv,
    ) -> Result<(String, Value)> {
        let (code, schema) = self
            .engine()
            .prepare_stage_schema(code, ctx, Prepare::Store(env))
            .await?;
        // Timed and repository triggers must parse too.
        timers_of(schema.get("triggers")).map_err(Error::BadRequest)?;
        crate::triggers::repo_trigger_of(schema.get("triggers")).map_err(Error::BadRequest)?;
        Ok((code, schema))
    }

    async fn stage_row(&self, id: i64) -> Result<StageRow> {
        self.store()
            .stage(id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))
    }

    /// Whether the stage reads its schema from a repository after this
    /// input, checking that the repository fields it needs are there.
    fn check_repo_fields(input: &StageInput, current: Option<&StageRow>) -> Result<bool> {
        let from_repo = input
            .schema_from_repo_enabled
            .unwrap_or_else(|| current.is_some_and(|c| c.schema_from_repo_enabled));
        if !from_repo {
            return Ok(false);
        }
        let field = |given: &Option<String>, stored: Option<&Option<String>>| {
            given
                .clone()
                .or_else(|| stored.cloned().flatten())
                .filter(|v| !v.trim().is_empty())
        };
        match field(&input.repo_url, current.map(|c| &c.repo_url)) {
            None => {
                return Err(Error::bad_request(
                    "repo_url is required when schema_from_repo_enabled is true",
                ));
            }
            Some(u) if !crate::engine::repo::is_git_url(&u) => {
                return Err(Error::bad_request(format!(
                    "repo_url '{u}' is not a git repository URL (https, http, ssh, git, file, user@host:path or an absolute path)"
                )));
            }
            Some(_) => {}
        }
        if field(&input.schema_file, current.map(|c| &c.schema_file)).is_none() {
            return Err(Error::bad_request(
                "schema_file is required when schema_from_repo_enabled is true (e.g. \"kraken.star\")",
            ));
        }
        if let Some(every) = field(
            &input.repo_refresh_interval,
            current.map(|c| &c.repo_refresh_interval),
        ) && crate::triggers::parse_interval(&every).is_none()
        {
            return Err(Error::bad_request(format!(
                "incorrect repo_refresh_interval '{every}': use e.g. '10m' or '1h'"
            )));
        }
        crate::engine::stage_repo::clone_params(
            field(
                &input.git_clone_params,
                current.map(|c| &c.git_clone_params),
            )
            .as_deref(),
        )?;
        Ok(true)
    }

    /// `POST /branches/{id}/stages`: evaluate the schema code with the branch's
    /// context and store the stage (pwrusr). Nothing is stored on error.
    pub async fn create_stage(&self, branch_id: i64, input: &StageInput) -> Result<Stage> {
        input.check_limits()?;
        let branch = self.branch_row(branch_id).await?;
        self.who.require_pwrusr(branch.project_id)?;
        let name = super::required(&input.name, "'name' is a required property")?.to_string();
        let from_repo = Self::check_repo_fields(input, None)?;
        if self
            .store()
            .stage_by_name(branch_id, &name)
            .await?
            .is_some()
        {
            return Err(Error::bad_request(format!(
                "Stage with name {name} already exists in this branch"
            )));
        }
        let ctx = self
            .engine()
            .prepare_context(CtxFor::Branch(&branch), &Map::new())
            .await?;
        let env = self.engine().schema_env(&branch, &name).await?;
        // A schema from a repository starts as the default one until read.
        let code = if from_repo {
            ""
        } else {
            input.schema_code.as_deref().unwrap_or("")
        };
        let (code, schema) = self.evaluate_stage_code(code, ctx, env).await?;
        let fields = StageFields {
            name,
            description: input.description.clone(),
            enabled: input.enabled.unwrap_or(true),
            schema,
            schema_code: Some(code),
            schema_from_repo_enabled: from_repo,
            repo_url: input.repo_url.clone(),
            repo_branch: input.repo_branch.clone(),
            repo_access_token: input.repo_access_token.clone(),
            repo_refresh_interval: input.repo_refresh_interval.clone(),
            schema_file: input.schema_file.clone(),
            git_clone_params: input.git_clone_params.clone(),
        };
        let row = self
            .store()
            .create_stage(branch_id, &fields, [0, 0, 0])
            .await?;
        self.stage_timers_and_schema(&row).await
    }

    /// Register a stored stage's timers and, when its schema comes from a
    /// repository, read it now (an error shows on the stage, as `repo_error`).
    async fn stage_timers_and_schema(&self, row: &StageRow) -> Result<Stage> {
        self.engine()
            .register_stage_timers(
                row.id,
                &row.schema.0,
                row.schema_from_repo_enabled
                    .then(|| row.repo_refresh_interval.as_deref().unwrap_or("")),
            )
            .await?;
        if row.schema_from_repo_enabled {
            self.engine().refresh_stage_schema(row.id).await?;
        }
        Ok(self.stage_row(row.id).await?.to_model(true))
    }

    /// `GET /stages/{id}`.
    pub async fn get_stage(&self, id: i64) -> Result<Stage> {
        let stage = self.stage_row(id).await?;
        self.who
            .require_view(self.branch_project(stage.branch_id).await?)?;
        Ok(stage.to_model(true))
    }

    /// `PUT /stages/{id}`: change fields; new schema code is re-evaluated
    /// with the stage's context (pwrusr). `name` is required, as in the original.
    pub async fn update_stage(&self, id: i64, input: &StageInput) -> Result<Stage> {
        input.check_limits()?;
        let stage = self.stage_row(id).await?;
        let branch = self.branch_row(stage.branch_id).await?;
        self.who.require_pwrusr(branch.project_id)?;
        let name = super::required(&input.name, "'name' is a required property")?.to_string();
        let from_repo = Self::check_repo_fields(input, Some(&stage))?;
        if name != stage.name
            && self
                .store()
                .stage_by_name(branch.id, &name)
                .await?
                .is_some()
        {
            return Err(Error::bad_request(format!(
                "Stage with name {name} already exists in this branch"
            )));
        }
        let mut fields = StageFields::of(&stage);
        fields.name = name.clone();
        fields.schema_from_repo_enabled = from_repo;
        // With a schema from a repository, the repository is its source.
        if let Some(code) = input.schema_code.as_ref().filter(|_| !from_repo) {
            let args = crate::schema::stage_default_args(&stage.schema.0);
            let ctx = self
                .engine()
                .prepare_context(CtxFor::Stage(&stage, &branch), &args)
                .await?;
            let mut env = self.engine().schema_env(&branch, &name).await?;
            env.other_stages.retain(|s| *s != stage.name);
            let (code, schema) = self.evaluate_stage_code(code, ctx, env).await?;
            fields.schema = schema;
            fields.schema_code = Some(code);
        }
        if input.description.is_some() {
            fields.description = input.description.clone();
        }
        if let Some(e) = input.enabled {
            fields.enabled = e;
        }
        macro_rules! take {
            ($f:ident) => {
                if input.$f.is_some() {
                    fields.$f = input.$f.clone();
                }
            };
        }
        take!(repo_url);
        take!(repo_branch);
        take!(repo_access_token);
        take!(repo_refresh_interval);
        take!(schema_file);
        take!(git_clone_params);
        self.store().update_stage(id, &fields).await?;
        let row = self.stage_row(id).await?;
        self.stage_timers_and_schema(&row).await
    }

    /// `DELETE /stages/{id}`: soft delete; its timed triggers stop (pwrusr).
    pub async fn delete_stage(&self, id: i64) -> Result<Empty> {
        let stage = self.stage_row(id).await?;
        self.who
            .require_pwrusr(self.branch_project(stage.branch_id).await?)?;
        self.store().delete_stage(id).await?;
        Ok(Empty {})
    }

    /// `PUT /stages/{id}/schema`: evaluate code with the branch's context and
    /// return the schema as pretty JSON, or the error; nothing is stored (view).
    pub async fn get_stage_schema_as_json(
        &self,
        id: i64,
        input: &StageSchemaCode,
    ) -> Result<StageSchemaPreview> {
        input.check_limits()?;
        let stage = self.stage_row(id).await?;
        let branch = self.branch_row(stage.branch_id).await?;
        self.who.require_view(branch.project_id)?;
        let code = input.schema_code.clone().unwrap_or_default();
        let ctx = self
            .engine()
            .prepare_context(CtxFor::Branch(&branch), &Map::new())
            .await?;
        let outcome = match self
            .engine()
            .prepare_stage_schema(&code, ctx, Prepare::Preview)
            .await
        {
            Ok((_, s)) => Ok(s),
            Err(Error::BadRequest(e)) => Err(e),
            Err(e) => return Err(e),
        };
        Ok(match outcome {
            Ok(s) => StageSchemaPreview {
                stage_id: id,
                schema: Some(super::settings::json_indent4(&s)),
                error: None,
            },
            Err(e) => StageSchemaPreview {
                stage_id: id,
                schema: None,
                error: Some(e),
            },
        })
    }

    /// `GET /stages/{id}/schedule`: next run times of the stage's timed triggers.
    pub async fn get_stage_schedule(&self, id: i64) -> Result<StageSchedule> {
        let stage = self.stage_row(id).await?;
        let project = self.branch_project(stage.branch_id).await?;
        self.who.require_view(project)?;
        let schedules = self
            .store()
            .stage_timers(id)
            .await?
            .into_iter()
            .map(|t| Schedule {
                name: format!("{}: {}", t.kind, t.spec),
                job_id: format!("{}_planner_job_{}", t.kind, t.id),
                next_run_time: t.next_run_time.map(Timestamp),
            })
            .collect();
        Ok(StageSchedule { schedules })
    }
}
