//! The `junit_collect` tool: reports the test results of JUnit XML files.
//!
//! Fields: `file_glob` (default `**/*.xml`, relative to `cwd`) and `cwd`.
//! Each `<testcase>` of the files (under `<testsuites>`, a bare
//! `<testsuite>` or anywhere else) is one result: test `classname::name`
//! (just `name` without a classname), status error (3) when it has an
//! `<error>`, failure (2) with a `<failure>`, disabled (4) with a
//! `<skipped>`, else passed (1), and `cmd` empty, as in the original.
//! No matching file, or a file that is not well-formed XML, is an error
//! that names the file.

use std::path::Path;

use serde_json::{Value, json};

use super::artifacts::glob_files;
use super::{Fields, StepOutcome, StepRun, log, step_cwd};
use crate::model::tc_result;

/// One test case of a JUnit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TestCase {
    /// `classname::name`, or `name`.
    pub test: String,
    /// A [`tc_result`] value.
    pub status: i64,
}

impl TestCase {
    /// The `test-results` entry.
    pub fn to_result(&self, cmd: &str) -> Value {
        json!({"cmd": cmd, "test": self.test, "status": self.status})
    }
}

/// Parse the text of a JUnit XML file.
pub(crate) fn parse(text: &str) -> Result<Vec<TestCase>, String> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for tc in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let name = tc.attribute("name").unwrap_or("");
        let test = match tc.attribute("classname") {
            Some(c) if !c.is_empty() => format!("{c}::{name}"),
            _ => name.to_string(),
        };
        let has = |tag: &str| tc.children().any(|c| c.has_tag_name(tag));
        let status = if has("error") {
            tc_result::ERROR
        } else if has("failure") {
            tc_result::FAILED
        } else if has("skipped") {
            tc_result::DISABLED
        } else {
            tc_result::PASSED
        };
        out.push(TestCase { test, status });
    }
    Ok(out)
}

/// Read and parse a JUnit XML file; errors name the file.
pub(crate) fn parse_file(path: &Path) -> Result<Vec<TestCase>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("malformed JUnit XML in {}: not UTF-8", path.display()))?;
    parse(&text).map_err(|e| format!("malformed JUnit XML in {}: {e}", path.display()))
}

/// `passed N, failed N, error N, skipped N` of some results.
pub(crate) fn summary(cases: &[TestCase]) -> String {
    let n = |s: i64| cases.iter().filter(|c| c.status == s).count();
    format!(
        "{} tests: passed {}, failed {}, error {}, skipped {}",
        cases.len(),
        n(tc_result::PASSED),
        n(tc_result::FAILED),
        n(tc_result::ERROR),
        n(tc_result::DISABLED)
    )
}

/// Run a `junit_collect` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let pattern = f.str("file_glob")?.unwrap_or("**/*.xml");
    let files = glob_files(&cwd, pattern)?;
    if files.is_empty() {
        return Err(format!(
            "no JUnit files match '{pattern}' in {}",
            cwd.display()
        ));
    }
    let mut all = Vec::new();
    for file in &files {
        let cases = parse_file(file)?;
        let shown = file.strip_prefix(&cwd).unwrap_or(file);
        log(run, format!("{}: {}", shown.display(), summary(&cases))).await;
        all.extend(cases);
    }
    log(run, format!("total: {}", summary(&all))).await;
    Ok(StepOutcome {
        test_results: all.iter().map(|c| c.to_result("")).collect(),
        ..StepOutcome::done()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_testsuite_and_missing_classname() {
        let cases = parse(
            r#"<?xml version="1.0"?>
<testsuite name="s"><testcase name="lonely"/><testcase classname="" name="e"><error/></testcase></testsuite>"#,
        )
        .unwrap();
        assert_eq!(
            cases,
            vec![
                TestCase {
                    test: "lonely".into(),
                    status: tc_result::PASSED
                },
                TestCase {
                    test: "e".into(),
                    status: tc_result::ERROR
                },
            ]
        );
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(parse("<testsuite><testcase></testsuite>").is_err());
    }
}
