//! Workflow stage schemas: evaluation, validation and variable substitution.
//!
//! A stage is defined by `schema_code`, a function `stage(ctx)` returning a
//! dict (the original runs it as restricted Python; here it runs in a
//! Starlark interpreter inside a worker process with operating-system
//! limits, see [`evaluate`] and [`sandbox`]). The result is checked
//! against the workflow JSON schema ([`WorkflowValidator`]), completed with
//! defaults ([`apply_defaults`]) and checked against the branch
//! ([`check_stage`]); [`prepare_stage_schema`] does all of it in the
//! original's order. When jobs are created, `#{...}` in step fields, labels
//! and notifications is replaced by [`substitute`] / [`render`].
//!
//! # Differences from the original's Python
//!
//! * Starlark is a Python subset: `while`, `import`, `class`, `try`/`except`,
//!   `is` / `is None`, `**`, `global` and `%` with width or precision
//!   (`%5.2f`) are syntax or runtime errors. All the original's example
//!   schemas run unchanged.
//! * Tabs outside string literals are turned into spaces before parsing
//!   (Python accepts them, the Starlark lexer does not).
//! * `ctx` follows `addict.Dict`: `ctx.x` and `ctx["x"]`, `missing field X`
//!   for a missing top-level key, an empty falsy dict for a missing nested
//!   key. Its dicts are immutable, and a list read out of it is a fresh
//!   copy (appending to it does not change `ctx`). Reading an attribute
//!   that is both a key and a dict method without calling it
//!   (`ctx.env.items`) gives the key.

mod eval;
mod nesting;
pub mod pyrepr;
mod rewrite;
pub mod sandbox;
mod subst;
mod validate;
mod workflow;

pub use eval::{Limits, SchemaError, SchemaErrorKind, evaluate_in_process};
pub use nesting::MAX_NESTING;
pub use sandbox::evaluate;
pub use subst::{
    ERROR_TEXT, MASK, Unresolved, normalize_when, render, substitute, substitute_checked,
    when_decision,
};
pub use validate::{SchemaEnv, WorkflowValidator, apply_defaults, check_stage, ordinal};
pub use workflow::{WORKFLOW_SCHEMA, tool_step_schema};

use serde_json::Value;

/// The schema code of a stage created without one: a `hello world` shell
/// job on system `any`, group `all` (verbatim from the original).
pub const DEFAULT_STAGE_CODE: &str = r#"def stage(ctx):
    return {
        "parent": "root",
        "triggers": {
            "parent": True,
        },
        "parameters": [],
        "configs": [],
        "jobs": [{
            "name": "hello world",
            "steps": [{
                "tool": "shell",
                "cmd": "echo 'hello world'"
            }],
            "environments": [{
                "system": "any",
                "agents_group": "all",
                "config": "default"
            }]
        }]
    }"#;

/// How far [`prepare_stage_schema`] goes.
#[derive(Debug, Clone, Copy)]
pub enum Pipeline<'a> {
    /// Evaluate and validate (the schema preview: shows what the code returns).
    Preview,
    /// Evaluate, validate and fill in defaults (a run's re-evaluation).
    Run,
    /// All of that and the branch-level checks (stage create and update).
    Store(&'a SchemaEnv),
}

/// Turn a stage's `schema_code` into its schema, as the original does when
/// a stage is created or updated, previewed, and before jobs are triggered:
/// blank code becomes [`DEFAULT_STAGE_CODE`], the code is evaluated with
/// `ctx` (failure: `compilation error: ...`), the result is validated, and
/// (per `pipeline`) defaults are filled in and the branch-level checks run.
/// Returns the code actually used and the schema; the error is the HTTP 400
/// message. The only place the stage-schema pipeline is written.
pub fn prepare_stage_schema(
    code: &str,
    ctx: &Value,
    limits: &Limits,
    validator: &WorkflowValidator,
    pipeline: Pipeline<'_>,
) -> Result<(String, Value), String> {
    let code = if code.trim().is_empty() {
        DEFAULT_STAGE_CODE
    } else {
        code
    };
    let mut schema = evaluate(code, ctx, limits).map_err(|e| e.to_string())?;
    validator.validate(&schema)?;
    match pipeline {
        Pipeline::Preview => {}
        Pipeline::Run => apply_defaults(&mut schema),
        Pipeline::Store(env) => {
            apply_defaults(&mut schema);
            check_stage(&schema, env)?;
        }
    }
    Ok((code.to_string(), schema))
}

#[cfg(test)]
mod tests;

/// Default values of a stage's parameters.
pub fn stage_default_args(schema: &Value) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    if let Some(params) = schema.get("parameters").and_then(Value::as_array) {
        for p in params {
            if let Some(name) = p.get("name").and_then(Value::as_str) {
                let default = p
                    .get("default")
                    .cloned()
                    .unwrap_or(Value::String(String::new()));
                let default = match default {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.insert(name.to_string(), Value::String(default));
            }
        }
    }
    out
}

/// The run arguments every run has (`KK_FLOW_SEQ`, `KK_BRANCH`, ...) with
/// example values, for checking a schema before any flow exists.
pub fn example_run_args(branch_name: &str, ci: bool) -> serde_json::Map<String, Value> {
    let mut a = serde_json::Map::new();
    for seq in [
        "KK_FLOW_SEQ",
        "KK_CI_DEV_FLOW_SEQ",
        "KK_RUN_SEQ",
        "KK_CI_DEV_RUN_SEQ",
    ] {
        a.insert(seq.into(), Value::String("1".into()));
    }
    a.insert(
        "KK_FLOW_TYPE".into(),
        Value::String(if ci { "CI" } else { "DEV" }.into()),
    );
    a.insert("KK_BRANCH".into(), Value::String(branch_name.into()));
    a
}

/// A `#{...}` of a checked schema that would render `<ERROR>`.
#[derive(Debug, Clone)]
pub struct SubstitutionWarning {
    /// Job name.
    pub job: String,
    /// Step index in the job.
    pub step: usize,
    /// What and why.
    pub unresolved: Unresolved,
}

impl std::fmt::Display for SubstitutionWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job '{}' step {}: {}",
            self.job, self.step, self.unresolved
        )
    }
}

/// Substitute the steps of an evaluated stage schema as a run would (the
/// stage's parameter defaults, `args` and `ctx`) and list every `#{...}`
/// that would render `<ERROR>`. Secrets (`KK_SECRET_*`, `secrets.*`) are
/// known only when a flow runs and are not reported.
pub fn check_substitutions(
    schema: &Value,
    args: &serde_json::Map<String, Value>,
    ctx: &Value,
) -> Vec<SubstitutionWarning> {
    let mut all = stage_default_args(schema);
    all.extend(args.clone());
    let mut out = Vec::new();
    for job in schema
        .get("jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = job
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for (idx, step) in job
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut fields = step.as_object().cloned().unwrap_or_default();
            fields.remove("tool");
            let when = normalize_when(fields.get("when").and_then(Value::as_str));
            fields.insert("when".into(), Value::String(when));
            let (_, _, unresolved) = substitute_checked(&Value::Object(fields), &all, ctx);
            for u in unresolved {
                if u.expr.starts_with("KK_SECRET_") || u.expr.starts_with("secrets.") {
                    continue;
                }
                out.push(SubstitutionWarning {
                    job: name.clone(),
                    step: idx,
                    unresolved: u,
                });
            }
        }
    }
    out
}
