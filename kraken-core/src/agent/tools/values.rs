//! The `values_collect` tool: performance figures from JSON files, one test
//! result per file (the original's `kraken_values_collect`).
//!
//! Fields: `files`, a list of `{name, namespace}` (`name`: a JSON file
//! relative to `cwd` holding an object of figures, `{"fps": 59.8, ...}`;
//! `namespace`: the test's name, the file name when absent), and `cwd`.
//! Each file gives a passed test whose `values` are `{"fps": {"value":
//! 59.8}, ...}`; a missing or unreadable file gives a test with result
//! error and a message saying why.

use serde_json::{Map, Value, json};

use super::{Fields, StepOutcome, StepRun, log, step_cwd};
use crate::model::tc_result;

/// The result of one `files` entry.
fn collect(cwd: &std::path::Path, name: &str, namespace: Option<&str>) -> Value {
    let test = namespace.filter(|n| !n.is_empty()).unwrap_or(name);
    let path = cwd.join(name);
    let error = |msg: String| json!({"test": test, "cmd": "", "status": tc_result::ERROR, "message": msg, "values": {}});
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return error(format!("missing {} file: {e}", path.display())),
    };
    let data: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return error(format!(
                "cannot parse {} file (a JSON object of figures is expected): {e}",
                path.display()
            ));
        }
    };
    let values: Map<String, Value> = data
        .into_iter()
        .map(|(k, v)| (k, json!({"value": v})))
        .collect();
    json!({"test": test, "cmd": "", "status": tc_result::PASSED, "values": values})
}

/// Run a `values_collect` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let files = match f.get("files") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(format!(
                "field 'files' must be a list of {{name, namespace}}, not {v}"
            ));
        }
        None => return Err("field 'files' is missing in the step".into()),
    };
    let mut results = Vec::new();
    for entry in files {
        let e = entry
            .as_object()
            .ok_or_else(|| format!("each of 'files' must be {{name, namespace}}, not {entry}"))?;
        let e = Fields(e);
        let r = collect(&cwd, e.req_str("name")?, e.str("namespace")?);
        log(
            run,
            format!(
                "{}: {}",
                r["test"].as_str().unwrap_or(""),
                r.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!(
                        "{} values",
                        r["values"].as_object().map_or(0, Map::len)
                    ))
            ),
        )
        .await;
        results.push(r);
    }
    Ok(StepOutcome {
        test_results: results,
        ..StepOutcome::done()
    })
}
