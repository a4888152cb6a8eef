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
//!
//! `operation: get` (this server's; the original's agent and server had
//! none) reads instead: the server sends the value at `json_pointer` of the
//! `scope`'s data with the step (`data_value`), and the step writes it as
//! JSON to `file` (relative to `cwd`, directories created) when given, and
//! shows it in its log; nothing is stored. A place with no data is `null`.

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

/// Longest value shown whole in the log of a `get` step.
const SHOWN: usize = 2000;

/// A `get` step: write the value the server sent to `file`, show it.
async fn get(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    if let Some(e) = f.str("data_error")? {
        return Err(format!("cannot read the data: {e}"));
    }
    let value = f
        .0
        .get("data_value")
        .ok_or("the server sent no data with this get step (it needs a Kraken in Rust server)")?;
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let scope = f.str("scope")?.unwrap_or("flow");
    let pointer = f.str("json_pointer")?.unwrap_or("/");
    let shown = if text.len() > SHOWN {
        let cut = (0..=SHOWN)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}... ({} bytes)", &text[..cut], text.len())
    } else {
        text.clone()
    };
    log(run, format!("{scope} data at {pointer}: {shown}")).await;
    if let Some(file) = f.str("file")?.filter(|p| !p.is_empty()) {
        let path = step_cwd(run)?.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, format!("{text}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        log(run, format!("wrote it to {file}")).await;
    }
    Ok(StepOutcome::done())
}

/// Run a `data` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    if f.str("operation")? == Some("get") {
        return get(run).await;
    }
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
