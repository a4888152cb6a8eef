//! Tools that are not built in: `local_tool` (a Python module on the
//! agent's machine: `tool_location`, a directory, and `tool_entry`, the
//! module) and custom tools registered with `POST /tools` or uploaded with
//! `POST /tools/{name}/zip`, whose package the agent fetches from the server
//! once per tool version (kept under `<work dir>/tools/<id>-<version>/`).
//!
//! The module has the original agent's tool interface (functions `run`,
//! `collect_tests`, `run_tests`, `run_analysis`, `run_artifacts`,
//! `run_data`, each given the step and returning `(retcode, msg)`); a small
//! runner (`kktool_runner.py`, embedded here) calls them with `python3` in
//! the original's order and writes what they report — test results,
//! issues, artifacts, data — as JSON lines, which become the step's result
//! like a built-in tool's. The tool's prints and logging go to the step's
//! log. Fields: those of the tool, plus `timeout` (seconds; by default the
//! job's deadline only).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::process::{Cmd, Exit, TempFile};
use super::{
    Fields, StepOutcome, StepRun, exit_outcome, log, run_cmd, scratch_dir, step_cwd, step_env,
    step_limits,
};

/// The runner, written next to the step's other scratch files.
const RUNNER: &str = include_str!("../../../assets/kktool_runner.py");

/// Where the tool's module is: (directory for `sys.path`, module name).
async fn module_of(run: &StepRun<'_>) -> Result<(PathBuf, String), String> {
    let f = Fields(run.fields);
    let location = f.str("tool_location")?.unwrap_or("");
    let entry = f.str("tool_entry")?.unwrap_or("");
    if entry.is_empty() {
        return Err(format!(
            "tool '{}' has no entry (its Python module): set 'entry' in its tool.json{}",
            run.tool,
            if run.tool == "local_tool" {
                " or 'tool_entry' in the step"
            } else {
                ""
            }
        ));
    }
    if let Some(_blob) = location.strip_prefix("blob:") {
        let tool_id = f
            .get("tool_id")
            .and_then(Value::as_i64)
            .ok_or("the step has no tool_id")?;
        let version = f.str("tool_version")?.unwrap_or("0");
        let dir = tool_cache(run)?.join(format!(
            "{tool_id}-{}",
            version.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                "_"
            )
        ));
        if !dir.join(".complete").is_file() {
            fetch(run, tool_id, &dir).await?;
        }
        return Ok((dir, entry.to_string()));
    }
    if location.is_empty() {
        return Err(format!(
            "tool '{}' has no location: upload its package (POST /tools/{}/zip){}",
            run.tool,
            run.tool,
            if run.tool == "local_tool" {
                ", or set 'tool_location' (a directory on the agent) in the step"
            } else {
                ""
            }
        ));
    }
    let dir = Path::new(location);
    if !dir.is_dir() {
        return Err(format!(
            "tool '{}': its location {location} is not a directory on this agent",
            run.tool
        ));
    }
    Ok((dir.to_path_buf(), entry.to_string()))
}

/// `<agent work dir>/tools`, next to its `jobs`.
fn tool_cache(run: &StepRun<'_>) -> Result<PathBuf, String> {
    let abs = std::path::absolute(run.job_dir).map_err(|e| e.to_string())?;
    let work = abs
        .parent()
        .and_then(Path::parent)
        .ok_or("the job directory has no agent work directory above it")?;
    Ok(work.join("tools"))
}

/// Fetch the tool's package from the server and unpack it into `dir`.
async fn fetch(run: &StepRun<'_>, tool_id: i64, dir: &Path) -> Result<(), String> {
    log(
        run,
        format!(
            "fetching the package of tool '{}' from the server",
            run.tool
        ),
    )
    .await;
    let bytes = run.artifacts.tool_package(tool_id).await?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let zip = dir.join("tool.zip");
    std::fs::write(&zip, &bytes).map_err(|e| format!("cannot write {}: {e}", zip.display()))?;
    // Unpacked by the Python that runs the tool (no zip library here).
    let out = tokio::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(dir)
        .output()
        .await
        .map_err(|e| format!("cannot run python3 to unpack the tool: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the package of tool '{}' does not unpack: {}",
            run.tool,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::write(dir.join(".complete"), b"").map_err(|e| e.to_string())?;
    Ok(())
}

/// Fold the runner's JSON lines into an outcome.
pub(crate) fn outcome_of(lines: &str) -> StepOutcome {
    let mut o = StepOutcome::done();
    let mut status: Option<Map<String, Value>> = None;
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let list = |k: &str| {
            m.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        o.test_results.extend(list("test-results"));
        o.issues.extend(list("issues"));
        o.artifacts.extend(list("artifacts"));
        if let Some(d) = m.get("data") {
            o.data = Some(d.clone());
        }
        if m.contains_key("status") {
            status = Some(m);
        }
    }
    match status {
        Some(s) if s.get("status") == Some(&json!("done")) => o,
        Some(s) => StepOutcome {
            ok: false,
            reason: s.get("reason").and_then(Value::as_str).map(str::to_string),
            retcode: s.get("retcode").and_then(Value::as_i64),
            msg: s.get("msg").and_then(Value::as_str).map(str::to_string),
            ..o
        },
        None => StepOutcome {
            ok: false,
            reason: Some("exception".into()),
            msg: Some("the tool ended without reporting a status".into()),
            ..o
        },
    }
}

/// Run a step of a custom tool or `local_tool`.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let cwd = step_cwd(run)?;
    let (dir, module) = module_of(run).await?;
    let scratch = scratch_dir(run)?;
    let runner = TempFile::create(&scratch, "kktool-runner-", ".py", RUNNER.as_bytes())?;
    let mut step = run.fields.clone();
    // What the tool gets is the step; secrets stay with the agent.
    step.remove("secrets");
    let step_file = TempFile::create(
        &scratch,
        "kk-step-",
        ".json",
        serde_json::to_string(&step)
            .map_err(|e| e.to_string())?
            .as_bytes(),
    )?;
    let results = TempFile::reserve(&scratch, "kk-tool-results-", ".jsonl");
    let cmd = Cmd {
        env: step_env(run, vec![("PYTHONUNBUFFERED".into(), "1".into())]),
        ..Cmd::new("python3", &cwd)
            .arg(runner.path().to_string_lossy())
            .arg(dir.to_string_lossy())
            .arg(module.clone())
            .arg(step_file.path().to_string_lossy())
            .arg(results.path().to_string_lossy())
    };
    let limits = step_limits(run, None)?;
    log(
        run,
        format!("tool {} ({module} in {})", run.tool, dir.display()),
    )
    .await;
    let exit = run_cmd(run, &cmd, &limits).await?;
    let lines = std::fs::read_to_string(results.path()).unwrap_or_default();
    Ok(match exit {
        Exit::Code(0) => outcome_of(&lines),
        other => {
            let partial = outcome_of(&lines);
            StepOutcome {
                test_results: partial.test_results,
                issues: partial.issues,
                ..exit_outcome(other, &format!("tool {}", run.tool), &limits)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn runner_lines_make_the_outcome() {
        let o = super::outcome_of(
            "{\"test-results\": [{\"test\": \"a\", \"status\": 1}]}\n{\"issues\": [{\"path\": \"x\"}]}\n{\"data\": {\"k\": 1}}\n{\"status\": \"done\"}\n",
        );
        assert!(o.ok);
        assert_eq!(o.test_results.len(), 1);
        assert_eq!(o.issues.len(), 1);
        assert_eq!(o.data, Some(serde_json::json!({"k": 1})));
        let o = super::outcome_of(
            "{\"status\": \"error\", \"reason\": \"retcode\", \"retcode\": 3, \"msg\": \"bad\"}\n",
        );
        assert!(!o.ok);
        assert_eq!(o.retcode, Some(3));
        let o = super::outcome_of("");
        assert_eq!(o.reason.as_deref(), Some("exception"));
    }
}
