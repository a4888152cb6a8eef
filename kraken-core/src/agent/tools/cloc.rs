//! The `cloc` tool: lines of code per language as performance values (the
//! original's `kraken_cloc`): `cloc . --json` in `cwd`, one passed test per
//! language (`Rust`, `Python`, `SUM`) whose values are `blank`, `comment`,
//! `code`, `total` and `files`, so their history shows how the code grows.
//!
//! Fields: `not-match-f` (a regex of file names to skip), `exclude-dir`
//! (comma-separated directory names), `cwd`, `timeout` (seconds; default
//! 600).

use serde_json::{Map, Value, json};

use super::process::{Exit, shell_quote};
use super::{Fields, StepOutcome, StepRun, exit_outcome, log, run_captured, step_cwd, step_limits};
use crate::model::tc_result;

const DEFAULT_TIMEOUT: u64 = 600;

/// Test results from `cloc --json` output.
pub(crate) fn results(json_text: &str) -> Result<Vec<Value>, String> {
    let data: Map<String, Value> =
        serde_json::from_str(json_text).map_err(|e| format!("cloc printed no JSON report: {e}"))?;
    let mut out = Vec::new();
    for (lang, v) in data {
        if lang == "header" {
            continue;
        }
        let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        let fig = |x: i64| json!({"value": x, "iterations": 1});
        out.push(json!({
            "cmd": "",
            "test": lang,
            "status": tc_result::PASSED,
            "values": {
                "blank": fig(n("blank")),
                "comment": fig(n("comment")),
                "code": fig(n("code")),
                "total": fig(n("blank") + n("comment") + n("code")),
                "files": fig(n("nFiles")),
            },
        }));
    }
    Ok(out)
}

/// Run a `cloc` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let mut cmd = "cloc . --json".to_string();
    if let Some(p) = f.str("not-match-f")?.filter(|p| !p.is_empty()) {
        cmd.push_str(&format!(" --not-match-f {}", shell_quote(p)));
    }
    if let Some(d) = f.str("exclude-dir")?.filter(|d| !d.is_empty()) {
        cmd.push_str(&format!(" --exclude-dir {}", shell_quote(d)));
    }
    let limits = step_limits(run, Some(DEFAULT_TIMEOUT))?;
    let (exit, out) = run_captured(run, &cwd, &cmd, &cmd, &limits).await?;
    match exit {
        Exit::Code(0) => {}
        other => return Ok(exit_outcome(other, "cloc", &limits)),
    }
    // An empty directory: cloc prints nothing.
    let results = if out.trim().is_empty() {
        Vec::new()
    } else {
        results(&out)?
    };
    for r in &results {
        log(
            run,
            format!(
                "{}: {} lines of code in {} files",
                r["test"].as_str().unwrap_or(""),
                r["values"]["code"]["value"],
                r["values"]["files"]["value"]
            ),
        )
        .await;
    }
    Ok(StepOutcome {
        test_results: results,
        ..StepOutcome::done()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn languages_become_tests_with_values() {
        let r = super::results(
            r#"{"header": {"cloc_version": "1.96"}, "Rust": {"nFiles": 2, "blank": 3, "comment": 4, "code": 50}, "SUM": {"nFiles": 2, "blank": 3, "comment": 4, "code": 50}}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["test"], "Rust");
        assert_eq!(r[0]["values"]["total"]["value"], 57);
        assert_eq!(r[0]["values"]["files"]["value"], 2);
        assert!(super::results("not json").is_err());
    }
}
