//! `kraken schema`: workflow schemas offline.

use serde_json::{Value, json};

use crate::args::SchemaCmd;
use crate::cmd::read_file;
use crate::out::{Out, usage};

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// A context with every top-level key of the server's, neutral values.
fn default_ctx() -> Value {
    json!({
        "args": {}, "project": {"id": 1, "name": "project", "data": {}},
        "branch": {"id": 1, "name": "master", "branch_name": "master", "data": {}, "data_ci": {}, "data_dev": {}},
        "branch_name": "master", "env": {}, "secrets": {},
        "stage": {"id": 1, "name": "stage"},
        "flow": {"id": 1, "kind": "ci", "label": "1.", "seq": {"shared": 1, "own": 1}, "data": {}, "args": {}},
        "run": {"id": 1, "label": null, "seq": {"shared": 1, "own": 1}},
        "is_ci": true, "is_dev": false, "run_label": null, "flow_label": null, "job": null, "step": null,
        "prev_ok": true, "was_any_error": false, "was_no_error": true, "always": true, "never": false
    })
}

/// Runs one `kraken schema` verb.
pub fn run(out: &Out, c: &SchemaCmd) -> anyhow::Result<()> {
    use kraken_core::schema;
    match c {
        SchemaCmd::Dump => {
            let v: Value = serde_json::from_str(kraken_core::schema::WORKFLOW_SCHEMA)?;
            out.json(&v)?;
        }
        SchemaCmd::Check { file, ctx } => {
            let code = read_file(file)?;
            let mut context = default_ctx();
            if let Some(c) = ctx {
                let over: Value = serde_json::from_str(c)
                    .map_err(|e| usage(format!("--ctx is not JSON: {e}")))?;
                merge(&mut context, over);
            }
            let validator = schema::WorkflowValidator::builtin().map_err(usage)?;
            let (_, s) = schema::prepare_stage_schema(
                &code,
                &context,
                &schema::Limits::default(),
                &validator,
                schema::Pipeline::Run,
            )
            .map_err(|e| usage(format!("{}: {e}", file.display())))?;
            // What would render <ERROR> when a run substitutes the steps.
            let branch = context
                .get("branch_name")
                .and_then(Value::as_str)
                .unwrap_or("master");
            let is_ci = context.get("is_ci").and_then(Value::as_bool) != Some(false);
            let mut args = schema::example_run_args(branch, is_ci);
            if let Some(a) = context.get("args").and_then(Value::as_object) {
                args.extend(a.clone());
            }
            for w in schema::check_substitutions(&s, &args, &context) {
                eprintln!(
                    "warning: {w} (pass it as a flow argument, or declare it in the stage's parameters)"
                );
            }
            out.show(&s, || {
                let mut rows = Vec::new();
                for job in s
                    .get("jobs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let envs: Vec<String> = job
                        .get("environments")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            format!(
                                "{}@{}",
                                e.get("system")
                                    .map(|v| v
                                        .as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| v.to_string()))
                                    .unwrap_or_default(),
                                e.get("agents_group").and_then(Value::as_str).unwrap_or("")
                            )
                        })
                        .collect();
                    let steps: Vec<String> = job
                        .get("steps")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|st| {
                            let tool = st.get("tool").and_then(Value::as_str).unwrap_or("?");
                            let what = st
                                .get("cmd")
                                .or_else(|| st.get("checkout"))
                                .or_else(|| st.get("source"))
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            if what.is_empty() {
                                tool.to_string()
                            } else {
                                format!("{tool}: {what}")
                            }
                        })
                        .collect();
                    rows.push(vec![
                        job.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        envs.join(", "),
                        steps.join("\n"),
                    ]);
                }
                out.line(format!(
                    "parent: {}",
                    s.get("parent").and_then(Value::as_str).unwrap_or("root")
                ))?;
                out.table(&["JOB", "ENVIRONMENTS", "STEPS"], rows)
            })?;
        }
    }
    Ok(())
}
