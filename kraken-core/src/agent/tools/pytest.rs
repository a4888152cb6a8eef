//! The `pytest` tool: runs Python tests and reports one result per test.
//!
//! Simpler than the original, which first collected the tests and then ran
//! each one separately (`pytest -vv -r ap --junit-xml=result.xml <params>
//! <test>`): here pytest runs once, as
//! `<pytest> -vv -r ap --junit-xml=<temporary file> <params>` through
//! `/bin/sh -c` (so `params` is split and quoted like a shell does), and the
//! per-test results come from the JUnit XML with the mapping of
//! `junit_collect` (test `classname::name`, e.g. `tests.test_x::test_a`;
//! error 3, failure 2, skipped 4, else passed 1).
//!
//! Fields: `pytest_exe` (default `pytest-3`; when that default is not in
//! `PATH`, `pytest` is used, and when that is missing too,
//! `python3 -m pytest`; an explicit `pytest_exe` is used as given),
//! `params`, `pythonpath` (put before `cwd` in `PYTHONPATH`; the original,
//! too, put the working directory there), `cwd`, and `timeout` (seconds;
//! by default only the job's deadline limits the run, as the schema has no
//! timeout for pytest).
//!
//! The step is done when pytest exits with 0 or 1 (tests ran; failed tests
//! are results, not a failed step). Other exit codes (interrupted,
//! internal or usage error, no tests collected) fail the step with reason
//! `retcode`, with the results of the XML when there is one.

use std::ffi::OsString;

use super::junit::{parse_file, summary};
use super::process::{Cmd, Exit, TempFile};
use super::{
    Fields, StepOutcome, StepRun, exit_outcome, log, run_cmd, step_cwd, step_env, step_limits,
};

/// The pytest to run: `(shell words, note for the log)`.
fn pick_pytest(explicit: Option<&str>, path: Option<&OsString>) -> (String, Option<String>) {
    if let Some(exe) = explicit.filter(|e| !e.trim().is_empty()) {
        return (exe.to_string(), None);
    }
    let found =
        |name: &str| super::process::find_in_path(name, path.map(OsString::as_os_str)).is_some();
    if found("pytest-3") {
        ("pytest-3".into(), None)
    } else if found("pytest") {
        (
            "pytest".into(),
            Some("pytest-3 not found in PATH: using pytest".into()),
        )
    } else {
        (
            "python3 -m pytest".into(),
            Some("pytest-3 and pytest not found in PATH: using python3 -m pytest".into()),
        )
    }
}

/// Run a `pytest` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let params = f.str("params")?.unwrap_or("");
    let path = run
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"));
    let (pytest, note) = pick_pytest(f.str("pytest_exe")?, path.as_ref());
    if let Some(note) = note {
        log(run, note).await;
    }

    let mut pythonpath: Vec<String> = Vec::new();
    if let Some(p) = f.str("pythonpath")?.filter(|p| !p.is_empty()) {
        pythonpath.push(p.to_string());
    }
    let abs_cwd = std::path::absolute(&cwd).unwrap_or_else(|_| cwd.clone());
    pythonpath.push(abs_cwd.to_string_lossy().into_owned());
    if let Some(old) = run
        .env
        .get("PYTHONPATH")
        .cloned()
        .or_else(|| std::env::var("PYTHONPATH").ok())
        .filter(|p| !p.is_empty())
    {
        pythonpath.push(old);
    }

    let xml = TempFile::reserve(&super::scratch_dir(run)?, "kk-pytest-", ".xml");
    let shown = format!("{pytest} -vv -r ap --junit-xml=result.xml {params}");
    let script = format!("{pytest} -vv -r ap --junit-xml=\"$KK_PYTEST_JUNIT_XML\" {params}");
    let cmd = Cmd {
        env: step_env(
            run,
            vec![
                ("PYTHONPATH".into(), pythonpath.join(":")),
                (
                    "KK_PYTEST_JUNIT_XML".into(),
                    xml.path().to_string_lossy().into_owned(),
                ),
            ],
        ),
        ..Cmd::new("/bin/sh", &cwd).arg("-c").arg(script)
    };
    let limits = step_limits(run, None)?;
    log(run, format!("$ {}", shown.trim_end())).await;
    let exit = run_cmd(run, &cmd, &limits).await?;
    let code = match exit {
        Exit::Code(c) => c,
        stop @ Exit::Stopped(_) => return Ok(exit_outcome(stop, "pytest", &limits)),
    };
    if !xml.path().exists() {
        return Ok(if code == 0 {
            StepOutcome::error("exception", "pytest wrote no JUnit XML report")
        } else {
            exit_outcome(exit, "pytest (no JUnit XML report)", &limits)
        });
    }
    let cases = parse_file(xml.path())?;
    log(run, summary(&cases)).await;
    let results = cases
        .iter()
        .map(|c| c.to_result(shown.trim_end()))
        .collect();
    let outcome = if code == 0 || code == 1 {
        StepOutcome::done()
    } else {
        exit_outcome(exit, "pytest", &limits)
    };
    Ok(StepOutcome {
        test_results: results,
        ..outcome
    })
}
