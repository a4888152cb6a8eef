//! The stage-schema pipeline of the engine: the workflow validator for the
//! current tools, and evaluation off the async threads.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Engine;
use crate::error::{Error, Result};
use crate::schema::{self, Limits, Pipeline, SchemaEnv, WorkflowValidator};
use crate::store::Store;
use crate::store::tools::{ToolRow, pick_tool_version, split_tool_ref};

/// The tools as they were at one moment: the workflow validator compiled
/// for them and every version of each, so a run's steps find their tools
/// without a query per step.
pub(crate) struct ToolsSnapshot {
    /// [`Store::tools_fingerprint`] when it was taken.
    fingerprint: (i64, i64, i64, i64),
    validator: WorkflowValidator,
    /// Versions by name, newest first (as [`Store::tool_versions`]).
    versions: HashMap<String, Vec<ToolRow>>,
}

impl ToolsSnapshot {
    /// A tool by `name` (its latest version) or `name@version`, as
    /// [`Store::tool_by_ref`] finds it.
    pub(crate) fn tool_by_ref(&self, tool_ref: &str) -> Option<&ToolRow> {
        let (name, version) = split_tool_ref(tool_ref);
        pick_tool_version(self.versions.get(name)?, version)
    }
}

impl std::fmt::Debug for ToolsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsSnapshot")
            .field("fingerprint", &self.fingerprint)
            .field("tools", &self.versions.len())
            .finish()
    }
}

/// The latest [`ToolsSnapshot`], rebuilt when the tools change.
pub(crate) type ValidatorCache = std::sync::Mutex<Option<Arc<ToolsSnapshot>>>;

/// The workflow JSON schema with a step schema for every tool version
/// (`name` meaning the latest, and `name@version`).
pub async fn workflow_schema(store: &Store) -> Result<Value> {
    let mut schema: Value = serde_json::from_str(schema::WORKFLOW_SCHEMA)
        .map_err(|e| Error::internal(format!("embedded workflow schema is not JSON: {e}")))?;
    let tools = store.all_tools().await?;
    let mut one_of = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in store.latest_tools().await? {
        seen.insert(t.name.clone());
    }
    // Creation order, as the original lists them: `name` (latest) then `name@version`.
    let mut named = std::collections::HashSet::new();
    for t in &tools {
        if seen.contains(&t.name)
            && named.insert(t.name.clone())
            && let Some(latest) = store.tool_by_ref(&t.name).await?
        {
            one_of.push(schema::tool_step_schema(
                &t.name,
                latest.description.as_deref().unwrap_or(""),
                &latest.fields.0,
            ));
        }
        if let Some(v) = &t.version {
            one_of.push(schema::tool_step_schema(
                &format!("{}@{}", t.name, v),
                t.description.as_deref().unwrap_or(""),
                &t.fields.0,
            ));
        }
    }
    if let Some(steps) = schema.pointer_mut("/properties/jobs/items/properties/steps/items") {
        steps["oneOf"] = Value::Array(one_of);
    }
    Ok(schema)
}

/// What a stage's schema code is prepared for.
#[derive(Debug, Clone)]
pub(crate) enum Prepare {
    /// [`Pipeline::Preview`].
    Preview,
    /// [`Pipeline::Run`].
    Run,
    /// [`Pipeline::Store`] with the branch's environment.
    Store(SchemaEnv),
}

impl Engine {
    /// The current tools and their workflow validator (rebuilt when they change).
    pub(crate) async fn tools(&self) -> Result<Arc<ToolsSnapshot>> {
        // One row, not every tool with its fields: this runs for every run.
        let fingerprint = self.store.tools_fingerprint().await?;
        if let Ok(cache) = self.validator.lock()
            && let Some(t) = cache.as_ref()
            && t.fingerprint == fingerprint
        {
            return Ok(t.clone());
        }
        let full = workflow_schema(&self.store).await?;
        let validator = WorkflowValidator::new(&full).map_err(Error::internal)?;
        let mut versions: HashMap<String, Vec<ToolRow>> = HashMap::new();
        for t in self.store.all_tools().await? {
            versions.entry(t.name.clone()).or_default().push(t);
        }
        for v in versions.values_mut() {
            v.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        }
        let snapshot = Arc::new(ToolsSnapshot {
            fingerprint,
            validator,
            versions,
        });
        if let Ok(mut cache) = self.validator.lock() {
            *cache = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Run [`schema::prepare_stage_schema`] on a blocking thread. A schema
    /// error is [`Error::BadRequest`] with the original's message.
    pub(crate) async fn prepare_stage_schema(
        &self,
        code: &str,
        ctx: Value,
        what: Prepare,
    ) -> Result<(String, Value)> {
        let tools = self.tools().await?;
        self.prepare_stage_schema_with(&tools, code, ctx, what)
            .await
    }

    /// [`Engine::prepare_stage_schema`] validated against `tools`.
    pub(crate) async fn prepare_stage_schema_with(
        &self,
        tools: &Arc<ToolsSnapshot>,
        code: &str,
        mut ctx: Value,
        what: Prepare,
    ) -> Result<(String, Value)> {
        // Schema code never sees a raw secret: whatever it does with one
        // (a job name, a label, str(ctx.secrets)) stores a placeholder,
        // which only step fields turn into the value, for the agent alone.
        if let Some(secrets) = ctx.get_mut("secrets") {
            *secrets = secret_placeholders(secrets);
        }
        let tools = tools.clone();
        let code = code.to_string();
        tokio::task::spawn_blocking(move || {
            let pipeline = match &what {
                Prepare::Preview => Pipeline::Preview,
                Prepare::Run => Pipeline::Run,
                Prepare::Store(env) => Pipeline::Store(env),
            };
            schema::prepare_stage_schema(
                &code,
                &ctx,
                &Limits::default(),
                &tools.validator,
                pipeline,
            )
        })
        .await
        .map_err(|e| Error::internal(format!("schema evaluation crashed: {e}")))?
        .map_err(Error::BadRequest)
    }
}

/// `ctx.secrets` as schema code sees it: each value replaced by the
/// `#{KK_SECRET_...}` argument that yields it where substitution happens
/// (step fields, for the agent); everywhere else it stays this text.
pub(crate) fn secret_placeholders(secrets: &Value) -> Value {
    let Some(map) = secrets.as_object() else {
        return Value::Object(serde_json::Map::new());
    };
    let mut out = serde_json::Map::new();
    for (name, v) in map {
        let placeholder = if v.is_object() {
            serde_json::json!({
                "user": format!("#{{KK_SECRET_USER_{name}}}"),
                "key": format!("#{{KK_SECRET_KEY_{name}}}"),
                "password": format!("#{{KK_SECRET_KEY_{name}}}"),
            })
        } else {
            Value::String(format!("#{{KK_SECRET_SIMPLE_{name}}}"))
        };
        out.insert(name.clone(), placeholder);
    }
    Value::Object(out)
}
