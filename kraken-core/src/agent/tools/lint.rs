//! The linters: `pylint` and `nglint` report issues (the original's
//! `kraken_pylint` and `kraken_nglint`), which the server's issues
//! analysis counts and compares with the previous run. Each issue carries
//! `url`, a link to its line in the repository's web view
//! (`https://host/org/repo/blob/<branch>/<path>#L<line>`) when `cwd` is a
//! git clone with an `origin`.
//!
//! `pylint` fields: `modules_or_packages` (required; split as a shell
//! does), `pylint_exe` (default `pylint`, else `python3 -m pylint` when
//! `pylint` is not in `PATH`), `rcfile`, `cwd`, `timeout` (seconds; default
//! 180). It runs `<pylint> --exit-zero -f json [--rcfile=F] <modules>`;
//! every message becomes an issue (`type` convention, refactor, warning,
//! error, fatal; `path`, `line`, `column`, `symbol`, `message`,
//! `message-id`).
//!
//! `nglint` fields: `cwd`, `timeout` (default 180). It runs `npx ng lint
//! --format json --force --silent` (Angular's linter, ESLint's JSON
//! format); every message becomes an issue of type `error` (severity 2),
//! `warning` (1) or `other`, its path relative to the repository's top.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::process::{Exit, shell_quote};
use super::{Fields, StepOutcome, StepRun, exit_outcome, log, run_captured, step_cwd, step_limits};

const DEFAULT_TIMEOUT: u64 = 180;

/// Run `git args` in `cwd`; its trimmed output when it succeeds.
async fn git(cwd: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The web address of a remote: `git@host:org/repo.git` and
/// `https://user:token@host/org/repo.git` give `https://host/org/repo`.
pub(crate) fn web_url(remote: &str) -> Option<String> {
    let r = remote.trim().trim_end_matches('/');
    let r = r.strip_suffix(".git").unwrap_or(r);
    let (host_path, scheme) = if let Some(rest) = r.split_once("://").map(|(_, rest)| rest) {
        let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
        (rest.to_string(), "https")
    } else if let Some((_, after)) = r.split_once('@') {
        // scp-like: git@host:org/repo
        (after.replacen(':', "/", 1), "https")
    } else {
        return None;
    };
    (!host_path.is_empty() && host_path.contains('/')).then(|| format!("{scheme}://{host_path}"))
}

/// `https://host/org/repo/blob/<branch>` for the clone in `cwd`, if any:
/// the branch is the first remote branch containing `HEAD` (`master`
/// otherwise), as the original finds it.
async fn blob_url(cwd: &Path) -> Option<String> {
    let remote = git(cwd, &["config", "--get", "remote.origin.url"]).await?;
    let base = web_url(&remote)?;
    let branch = git(cwd, &["branch", "-a", "-r", "--contains", "HEAD"])
        .await
        .and_then(|out| {
            out.lines()
                .map(str::trim)
                .find(|l| !l.contains("HEAD"))
                .and_then(|l| l.split_once('/').map(|(_, b)| b.to_string()))
        })
        .unwrap_or_else(|| "master".into());
    Some(format!("{base}/blob/{branch}"))
}

fn with_url(mut issue: Value, blob: Option<&str>) -> Value {
    if let (Some(b), Some(path), Some(line)) = (
        blob,
        issue
            .get("path")
            .and_then(Value::as_str)
            .map(str::to_string),
        issue.get("line").and_then(Value::as_i64),
    ) {
        issue["url"] = json!(format!("{b}/{path}#L{line}"));
    }
    issue
}

/// Issues of `pylint -f json` output.
pub(crate) fn pylint_issues(text: &str, blob: Option<&str>) -> Result<Vec<Value>, String> {
    let list: Vec<Value> =
        serde_json::from_str(text).map_err(|e| format!("pylint printed no JSON report: {e}"))?;
    Ok(list.into_iter().map(|i| with_url(i, blob)).collect())
}

/// Issues of ESLint's JSON format (`ng lint --format json`); paths made
/// relative to `top`.
pub(crate) fn eslint_issues(
    text: &str,
    top: &str,
    blob: Option<&str>,
) -> Result<Vec<Value>, String> {
    let files: Vec<Value> =
        serde_json::from_str(text).map_err(|e| format!("ng lint printed no JSON report: {e}"))?;
    let mut out = Vec::new();
    for f in files {
        let full = f.get("filePath").and_then(Value::as_str).unwrap_or("");
        let path = full
            .strip_prefix(top)
            .unwrap_or(full)
            .trim_start_matches('/');
        for m in f
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = match m.get("severity").and_then(Value::as_i64) {
                Some(2) => "error",
                Some(1) => "warning",
                _ => "other",
            };
            let symbol = m
                .get("messageId")
                .or_else(|| m.get("ruleId"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let issue = json!({
                "path": path,
                "line": m.get("line").cloned().unwrap_or(Value::Null),
                "column": m.get("column").cloned().unwrap_or(Value::Null),
                "message": m.get("message").and_then(Value::as_str).unwrap_or(""),
                "symbol": symbol,
                "type": kind,
            });
            out.push(with_url(issue, blob));
        }
    }
    Ok(out)
}

async fn report(run: &StepRun<'_>, issues: Vec<Value>) -> StepOutcome {
    for i in &issues {
        log(
            run,
            format!(
                "{}:{}  {}",
                i["path"].as_str().unwrap_or(""),
                i["line"],
                i["message"].as_str().unwrap_or("")
            ),
        )
        .await;
    }
    log(run, format!("{} issues", issues.len())).await;
    StepOutcome {
        issues,
        ..StepOutcome::done()
    }
}

/// Run a `pylint` step.
pub(crate) async fn pylint(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let modules = f.req_str("modules_or_packages")?;
    let exe = match f.str("pylint_exe")?.filter(|e| !e.trim().is_empty()) {
        Some(e) => e.to_string(),
        None => {
            let path = run
                .env
                .get("PATH")
                .map(std::ffi::OsString::from)
                .or_else(|| std::env::var_os("PATH"));
            if super::process::find_in_path("pylint", path.as_deref()).is_some() {
                "pylint".into()
            } else {
                log(run, "pylint not found in PATH: using python3 -m pylint").await;
                "python3 -m pylint".into()
            }
        }
    };
    let rcfile = match f.str("rcfile")?.filter(|r| !r.is_empty()) {
        Some(r) => format!(" --rcfile={}", shell_quote(r)),
        None => String::new(),
    };
    let cmd = format!("{exe} --exit-zero -f json{rcfile} {modules}");
    let limits = step_limits(run, Some(DEFAULT_TIMEOUT))?;
    let blob = blob_url(&cwd).await;
    let (exit, out) = run_captured(run, &cwd, &cmd, &cmd, &limits).await?;
    match exit {
        Exit::Code(0) => {}
        other => return Ok(exit_outcome(other, "pylint", &limits)),
    }
    let issues = pylint_issues(&out, blob.as_deref())?;
    Ok(report(run, issues).await)
}

/// Run an `nglint` step.
pub(crate) async fn nglint(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let cwd = step_cwd(run)?;
    let cmd = "npx ng lint --format json --force --silent";
    let limits = step_limits(run, Some(DEFAULT_TIMEOUT))?;
    let blob = blob_url(&cwd).await;
    let top = match git(&cwd, &["rev-parse", "--show-toplevel"]).await {
        Some(t) => t,
        None => std::path::absolute(&cwd)
            .unwrap_or_else(|_| cwd.clone())
            .to_string_lossy()
            .into_owned(),
    };
    let (exit, out) = run_captured(run, &cwd, cmd, cmd, &limits).await?;
    match exit {
        Exit::Code(0) => {}
        other => return Ok(exit_outcome(other, "ng lint", &limits)),
    }
    let issues = eslint_issues(&out, &top, blob.as_deref())?;
    Ok(report(run, issues).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_become_web_addresses() {
        assert_eq!(
            web_url("git@github.com:Kraken-CI/kraken.git").as_deref(),
            Some("https://github.com/Kraken-CI/kraken")
        );
        assert_eq!(
            web_url("https://user:tok@gitlab.example.com/a/b.git").as_deref(),
            Some("https://gitlab.example.com/a/b")
        );
        assert_eq!(
            web_url("http://127.0.0.1:3000/org/repo").as_deref(),
            Some("https://127.0.0.1:3000/org/repo")
        );
        assert_eq!(web_url("/srv/git/repo.git"), None);
    }

    #[test]
    fn eslint_messages_become_issues() {
        let issues = eslint_issues(
            r#"[{"filePath": "/w/app/src/a.ts", "messages": [{"severity": 2, "line": 3, "column": 7, "message": "no any", "ruleId": "no-explicit-any"}]}]"#,
            "/w/app",
            Some("https://h/o/r/blob/main"),
        )
        .unwrap();
        assert_eq!(issues[0]["path"], "src/a.ts");
        assert_eq!(issues[0]["type"], "error");
        assert_eq!(issues[0]["symbol"], "no-explicit-any");
        assert_eq!(issues[0]["url"], "https://h/o/r/blob/main/src/a.ts#L3");
    }
}
