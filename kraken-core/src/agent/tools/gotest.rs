//! The `gotest` tool: Go tests, one result per test (the original's
//! `kraken_gotest`): `<go_exe> test -json <params>` in `cwd`; every test
//! that passes, fails or is skipped becomes a result named
//! `<package>::<test>` (passed 1, failed 2, skipped 4), a failed one with
//! its output. The test output goes to the step's log.
//!
//! Fields: `go_exe` (default `go`), `params` (e.g. `-p 1 ./...`; split as
//! a shell does), `cwd`, `timeout` (seconds; default 600 — the original's
//! 60 s is too short for a first build).
//!
//! The step is done when the tests ran (exit code 0, or 1 with failed
//! tests: failures are results, as for `pytest`); when `go test` fails
//! without a failed test (a build error), the step fails with its exit
//! code.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::process::Exit;
use super::{Fields, StepOutcome, StepRun, exit_outcome, log, run_captured, step_cwd, step_limits};
use crate::model::tc_result;

const DEFAULT_TIMEOUT: u64 = 600;

/// What `go test -json` reported: the log lines and the test results.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub lines: Vec<String>,
    pub results: Vec<Value>,
    pub failed: usize,
}

/// Read the events of `go test -json`.
pub(crate) fn parse(events: &str) -> Report {
    let mut r = Report::default();
    let mut output: HashMap<String, String> = HashMap::new();
    for line in events.lines() {
        let Ok(ev) = serde_json::from_str::<Value>(line) else {
            // Not an event (a build message): show it.
            if !line.trim().is_empty() {
                r.lines.push(line.to_string());
            }
            continue;
        };
        let s = |k: &str| ev.get(k).and_then(Value::as_str);
        let name = match (s("Package"), s("Test")) {
            (Some(p), Some(t)) => Some(format!("{p}::{t}")),
            (None, Some(t)) => Some(t.to_string()),
            _ => None,
        };
        if let Some(o) = s("Output") {
            r.lines.push(o.trim_end_matches('\n').to_string());
            if let Some(n) = &name {
                output.entry(n.clone()).or_default().push_str(o);
            }
        }
        let status = match s("Action") {
            Some("pass") => tc_result::PASSED,
            Some("fail") => tc_result::FAILED,
            Some("skip") => tc_result::DISABLED,
            _ => continue,
        };
        let Some(test) = name else { continue };
        let mut res = json!({"cmd": "", "test": test, "status": status});
        if let Some(secs) = ev.get("Elapsed").and_then(Value::as_f64) {
            res["duration"] = json!(secs);
        }
        if status == tc_result::FAILED {
            r.failed += 1;
            if let Some(o) = output.get(&test) {
                res["output"] = json!(o);
            }
        }
        r.results.push(res);
    }
    r
}

/// Run a `gotest` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let go = f.str("go_exe")?.filter(|g| !g.is_empty()).unwrap_or("go");
    let params = f.str("params")?.unwrap_or("");
    let cmd = format!("{go} test -json {params}");
    let limits = step_limits(run, Some(DEFAULT_TIMEOUT))?;
    let (exit, out) = run_captured(run, &cwd, cmd.trim_end(), &cmd, &limits).await?;
    let report = parse(&out);
    for l in &report.lines {
        log(run, l.clone()).await;
    }
    log(
        run,
        format!("{} tests, {} failed", report.results.len(), report.failed),
    )
    .await;
    let outcome = match exit {
        Exit::Code(0) => StepOutcome::done(),
        Exit::Code(1) if report.failed > 0 => StepOutcome::done(),
        other => exit_outcome(other, "go test", &limits),
    };
    Ok(StepOutcome {
        test_results: report.results,
        ..outcome
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_become_results() {
        let r = super::parse(concat!(
            r#"{"Action":"run","Package":"ex/m","Test":"TestA"}"#,
            "\n",
            r#"{"Action":"output","Package":"ex/m","Test":"TestA","Output":"    m_test.go:9: boom\n"}"#,
            "\n",
            r#"{"Action":"fail","Package":"ex/m","Test":"TestA","Elapsed":0.01}"#,
            "\n",
            r#"{"Action":"pass","Package":"ex/m","Test":"TestB"}"#,
            "\n",
            r#"{"Action":"skip","Package":"ex/m","Test":"TestC"}"#,
            "\n",
            r#"{"Action":"fail","Package":"ex/m","Elapsed":0.02}"#,
            "\n",
            "# a build message\n",
        ));
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0]["test"], "ex/m::TestA");
        assert_eq!(r.results[0]["status"], 2);
        assert_eq!(r.results[0]["output"], "    m_test.go:9: boom\n");
        assert_eq!(r.results[1]["status"], 1);
        assert_eq!(r.results[2]["status"], 4);
        assert_eq!(r.failed, 1);
        assert!(r.lines.contains(&"# a build message".to_string()));
    }
}
