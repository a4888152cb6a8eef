//! Stage schemas and their triggers: the environment a schema is checked
//! in, the timers a schema registers, and schemas read from a repository
//! (`schema_from_repo_enabled`: `repo_url`, `repo_branch`,
//! `repo_access_token`, `schema_file`, `repo_refresh_interval`).

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use serde_json::Value;

use super::Engine;
use super::context::CtxFor;
use super::repo::CachedRepo;
use super::stage_schema::Prepare;
use crate::error::{Error, Result};
use crate::schema::SchemaEnv;
use crate::store::branches::BranchRow;
use crate::store::now_ms;
use crate::triggers::{REPO_TIMER, parse_interval, repo_trigger_of, timers_of};

/// Timer kind of a stage's schema refresh from its repository.
pub const SCHEMA_REPO_TIMER: &str = "schema_repo";

/// `repo_state` values, as the original's.
pub mod repo_state {
    /// The schema is the repository's.
    pub const OK: i64 = 0;
    /// Being read from the repository.
    pub const REFRESHING: i64 = 1;
    /// The last read failed (`repo_error` says why).
    pub const ERROR: i64 = 2;
}

/// The git options of a stage's `git_clone_params`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloneParams {
    /// Options of `git fetch` (`--depth`, `--shallow-since`, `--filter`).
    pub fetch_args: Vec<String>,
    /// `-c key=value` pairs.
    pub config: Vec<(String, String)>,
}

/// The options of `git_clone_params` a fetch takes: `-c key=value`,
/// `--depth N`, `--shallow-since=...` and `--filter=...` (no option that
/// runs a program).
pub fn clone_params(params: Option<&str>) -> Result<CloneParams> {
    let mut args = Vec::new();
    let mut cfg = Vec::new();
    let mut words = params.unwrap_or("").split_whitespace();
    while let Some(w) = words.next() {
        let bad = || {
            Error::bad_request(format!(
                "git_clone_params: '{w}' is not allowed; use -c key=value, --depth N, --shallow-since=DATE or --filter=SPEC"
            ))
        };
        match w {
            "-c" | "--config" => {
                let kv = words.next().ok_or_else(bad)?;
                let (k, v) = kv.split_once('=').ok_or_else(bad)?;
                // HTTP transfer settings only: no key that runs a program.
                if !super::repo::server_git_key_allowed(k) {
                    return Err(Error::bad_request(format!(
                        "git_clone_params: git config '{k}' is not allowed on the server; only http.* transfer settings (e.g. http.lowSpeedTime, http.sslVerify, http.proxy)"
                    )));
                }
                cfg.push((k.to_string(), v.to_string()));
            }
            "--depth" => {
                let n = words.next().ok_or_else(bad)?;
                n.parse::<u32>().map_err(|_| bad())?;
                args.push(format!("--depth={n}"));
            }
            _ if w.starts_with("--depth=") && w[8..].parse::<u32>().is_ok() => args.push(w.into()),
            _ if w.starts_with("--shallow-since=") || w.starts_with("--filter=") => {
                args.push(w.into());
            }
            _ => return Err(bad()),
        }
    }
    Ok(CloneParams {
        fetch_args: args,
        config: cfg,
    })
}

impl Engine {
    /// What a stage's schema is checked against: the other stages of its
    /// branch, the project's secrets and the agent groups.
    pub(crate) async fn schema_env(
        &self,
        branch: &BranchRow,
        stage_name: &str,
    ) -> Result<SchemaEnv> {
        let other_stages = self
            .store
            .branch_stages(branch.id)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let secrets: HashMap<String, i64> = self
            .store
            .project_secrets(branch.project_id)
            .await?
            .into_iter()
            .map(|s| (s.name, s.kind))
            .collect();
        let (groups, _) = self.store.list_groups(0, 1_000_000).await?;
        let groups: HashSet<String> = groups.into_iter().map(|g| g.name).collect();
        Ok(SchemaEnv {
            stage_name: stage_name.to_string(),
            other_stages,
            secrets,
            groups,
        })
    }

    /// Store the triggers of a stage's schema that fire on their own
    /// (interval, date, cron, repository polling) and, for a schema read
    /// from a repository, its refresh every `schema_refresh` (`Some("")`:
    /// no periodic refresh). Unchanged triggers keep their schedule.
    pub(crate) async fn register_stage_timers(
        &self,
        stage_id: i64,
        schema: &Value,
        schema_refresh: Option<&str>,
    ) -> Result<()> {
        let timers = timers_of(schema.get("triggers")).map_err(Error::BadRequest)?;
        let now = Utc::now();
        let mut rows: Vec<(String, String, Option<i64>)> = timers
            .iter()
            .map(|(t, spec)| {
                (
                    t.kind().to_string(),
                    spec.clone(),
                    t.next_after(now).map(|n| n.timestamp_millis()),
                )
            })
            .collect();
        // A repository trigger polls at once, then every interval.
        if let Some(repo) = schema.get("triggers").and_then(|t| t.get("repo"))
            && repo_trigger_of(schema.get("triggers"))
                .map_err(Error::BadRequest)?
                .is_some()
        {
            rows.push((
                REPO_TIMER.to_string(),
                repo.to_string(),
                Some(now.timestamp_millis()),
            ));
        }
        if let Some(every) = schema_refresh.filter(|s| !s.trim().is_empty()) {
            let secs = parse_interval(every).ok_or_else(|| {
                Error::bad_request(format!(
                    "incorrect repo_refresh_interval '{every}': use e.g. '10m' or '1h'"
                ))
            })?;
            rows.push((
                SCHEMA_REPO_TIMER.to_string(),
                every.to_string(),
                Some(now.timestamp_millis() + secs * 1000),
            ));
        }
        self.store.set_stage_timers(stage_id, &rows).await
    }

    /// Read a stage's schema from its repository: fetch `repo_branch`, read
    /// `schema_file` at its head, evaluate and check it as schema code, and
    /// store it with `repo_version` (the commit) and `repo_state` OK. A
    /// failure keeps the previous schema and says why in `repo_error`
    /// (`repo_state` ERROR). Returns whether the schema was (re)read.
    pub async fn refresh_stage_schema(&self, stage_id: i64) -> Result<bool> {
        let stage = self.store.require_stage(stage_id).await?;
        if !stage.schema_from_repo_enabled {
            return Ok(false);
        }
        let branch = self.store.require_branch(stage.branch_id).await?;
        let outcome = self.read_schema_from_repo(&stage, &branch).await;
        let now = now_ms();
        match outcome {
            Ok((version, code, schema)) => {
                self.store
                    .set_stage_repo_schema(stage.id, &schema, &code, &version, now)
                    .await?;
                self.register_stage_timers(
                    stage.id,
                    &schema,
                    Some(stage.repo_refresh_interval.as_deref().unwrap_or("")),
                )
                .await?;
                tracing::info!(
                    branch = branch.id,
                    "stage {}: schema read from {} at {version}",
                    stage.name,
                    stage.repo_url.as_deref().unwrap_or("")
                );
                Ok(true)
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(
                    branch = branch.id,
                    "stage {}: cannot read its schema from the repository, keeping the previous one: {msg}",
                    stage.name
                );
                self.store
                    .set_stage_repo_state(stage.id, repo_state::ERROR, Some(&msg), now)
                    .await?;
                Ok(false)
            }
        }
    }

    async fn read_schema_from_repo(
        &self,
        stage: &crate::store::stages::StageRow,
        branch: &BranchRow,
    ) -> Result<(String, String, Value)> {
        let url = stage
            .repo_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::bad_request("repo_url is not set"))?;
        let file = stage
            .schema_file
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .ok_or_else(|| Error::bad_request("schema_file is not set"))?;
        let token = match stage.repo_access_token.as_deref().filter(|t| !t.is_empty()) {
            Some(name) => Some(
                self.simple_secret(branch.project_id, name)
                    .await?
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "no secret '{name}' in the project for repo_access_token"
                        ))
                    })?,
            ),
            None => None,
        };
        let params = clone_params(stage.git_clone_params.as_deref())?;
        let repo = CachedRepo::new(&self.git_cache, url, token.as_deref(), &params.config)
            .with_fetch_args(params.fetch_args);
        let git_branch = stage
            .repo_branch
            .as_deref()
            .filter(|b| !b.is_empty())
            .unwrap_or("master");
        let head = repo.fetch(git_branch).await.map_err(Error::BadRequest)?;
        let code = repo
            .read_file(&head, file)
            .await
            .map_err(Error::BadRequest)?;
        let args = crate::schema::stage_default_args(&stage.schema.0);
        let ctx = self
            .prepare_context(CtxFor::Stage(stage, branch), &args)
            .await?;
        let mut env = self.schema_env(branch, &stage.name).await?;
        env.other_stages.retain(|s| *s != stage.name);
        let (code, schema) = self
            .prepare_stage_schema(&code, ctx, Prepare::Store(env))
            .await
            .map_err(|e| Error::bad_request(format!("{file} at {head}: {e}")))?;
        timers_of(schema.get("triggers")).map_err(Error::BadRequest)?;
        repo_trigger_of(schema.get("triggers")).map_err(Error::BadRequest)?;
        Ok((head, code, schema))
    }

    /// Re-read the schemas of a branch's stages that come from the
    /// repository `url` (a webhook or a poll saw a new commit there).
    pub(crate) async fn refresh_schemas_of_repo(&self, branch_id: i64, url: &str) -> Result<()> {
        for stage in self.store.branch_stages(branch_id).await? {
            if stage.schema_from_repo_enabled
                && stage
                    .repo_url
                    .as_deref()
                    .is_some_and(|u| crate::webhooks::same_repo(u, url))
            {
                self.refresh_stage_schema(stage.id).await?;
            }
        }
        Ok(())
    }
}
