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
pub use subst::{ERROR_TEXT, MASK, normalize_when, render, substitute, when_decision};
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
