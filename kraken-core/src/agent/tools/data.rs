//! The `data` tool: reports a JSON value; the server stores it as user
//! data, applying the step's `operation`, `json_pointer` and `scope`.
//!
//! Fields: `value` (given in the step: a JSON text — as the schema has it a
//! string — or any JSON value) or `file` (a file relative to `cwd` with the
//! JSON), and `cwd`. With `operation: jq` the file or the string value is a
//! jq expression and is reported as a JSON string; with `operation:
//! jsonpatch` it is an RFC 6902 patch (a JSON list of operations). The server
//! applies either to the stored data at `json_pointer`. `value` wins over
//! `file`, as in the original. Invalid JSON is an error naming its origin.

use serde_json::Value;

use super::{Fields, StepOutcome, StepRun, log, step_cwd};

/// Turn the text of a `file` or `value` into the reported value.
fn parse(text: &str, jq: bool, origin: &str) -> Result<Value, String> {
    if jq {
        Ok(Value::String(text.to_string()))
    } else {
        serde_json::from_str(text).map_err(|e| format!("{origin} is not valid JSON: {e}"))
    }
}

/// Run a `data` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let jq = f.str("operation")? == Some("jq");
    let data = match f.get("value") {
        Some(Value::String(s)) if !s.is_empty() => parse(s, jq, "field 'value'")?,
        Some(Value::String(_)) | None => {
            let file = f
                .str("file")?
                .filter(|p| !p.is_empty())
                .ok_or("a data step needs 'value' or 'file'")?;
            let cwd = step_cwd(run)?;
            let path = cwd.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read data file {}: {e}", path.display()))?;
            let v = parse(&text, jq, &format!("data file {}", path.display()))?;
            log(run, format!("read data from {file} ({} bytes)", text.len())).await;
            v
        }
        Some(v) => v.clone(),
    };
    Ok(StepOutcome {
        data: Some(data),
        ..StepOutcome::done()
    })
}
