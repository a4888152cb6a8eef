//! The `junit_collect` tool: reports the test results of JUnit XML files.
//!
//! Fields: `file_glob` (default `**/*.xml`, relative to `cwd`) and `cwd`.
//! Each `<testcase>` of the files (under `<testsuites>`, a bare
//! `<testsuite>` or anywhere else) is one result: test `classname::name`
//! (just `name` without a classname), status error (3) when it has an
//! `<error>`, failure (2) with a `<failure>`, disabled (4) with a
//! `<skipped>`, else passed (1), and `cmd` empty, as in the original.
//! Beyond the original, a result carries what the test said: the
//! failure's (or error's, or skip's) `message` and `type`, its text and the
//! test's `<system-out>`/`<system-err>` as `output`, and `time` as `duration`.
//! No matching file, or a file that is not well-formed XML, is an error
//! that names the file.

use std::path::Path;

use serde_json::{Value, json};

use super::artifacts::glob_files;
use super::{Fields, StepOutcome, StepRun, log, step_cwd};
use crate::model::tc_result;

/// One test case of a JUnit file.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TestCase {
    /// `classname::name`, or `name`.
    pub test: String,
    /// A [`tc_result`] value.
    pub status: i64,
    /// The failure's, error's or skip's `message`.
    pub message: Option<String>,
    /// Its `type`.
    pub failure_type: Option<String>,
    /// Its text, then the test's captured output.
    pub output: Option<String>,
    /// `time`, in seconds.
    pub duration: Option<f64>,
}

impl TestCase {
    /// The `test-results` entry.
    pub fn to_result(&self, cmd: &str) -> Value {
        let mut v = json!({"cmd": cmd, "test": self.test, "status": self.status});
        if let Some(o) = v.as_object_mut() {
            for (k, val) in [
                ("message", &self.message),
                ("type", &self.failure_type),
                ("output", &self.output),
            ] {
                if let Some(t) = val {
                    o.insert(k.into(), json!(t));
                }
            }
            if let Some(d) = self.duration {
                o.insert("duration".into(), json!(d));
            }
        }
        v
    }
}

/// The trimmed text of the children of `node` (CDATA included), if any.
fn text_of(node: roxmltree::Node<'_, '_>) -> Option<String> {
    let t: String = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
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
        let child = |tag: &str| tc.children().find(|c| c.has_tag_name(tag));
        let (status, why) = if let Some(e) = child("error") {
            (tc_result::ERROR, Some(e))
        } else if let Some(f) = child("failure") {
            (tc_result::FAILED, Some(f))
        } else if let Some(s) = child("skipped") {
            (tc_result::DISABLED, Some(s))
        } else {
            (tc_result::PASSED, None)
        };
        let mut output: Vec<String> = Vec::new();
        if let Some(t) = why.and_then(text_of) {
            output.push(t);
        }
        for tag in ["system-out", "system-err"] {
            if let Some(t) = child(tag).and_then(text_of) {
                output.push(t);
            }
        }
        out.push(TestCase {
            test,
            status,
            message: why
                .and_then(|w| w.attribute("message"))
                .filter(|m| !m.trim().is_empty())
                .map(str::to_string),
            failure_type: why
                .and_then(|w| w.attribute("type"))
                .filter(|m| !m.trim().is_empty())
                .map(str::to_string),
            output: (!output.is_empty()).then(|| output.join("\n")),
            duration: tc
                .attribute("time")
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|d| d.is_finite() && *d >= 0.0),
        });
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
    fn failures_keep_their_message_type_output_and_time() {
        let cases = parse(
            r#"<testsuite><testcase classname="t" name="f" time="0.25"><failure message="assert 1 == 2" type="AssertionError"><![CDATA[def test_f():
>   assert 1 == 2]]></failure><system-out>printed</system-out></testcase></testsuite>"#,
        )
        .unwrap();
        assert_eq!(cases[0].status, tc_result::FAILED);
        assert_eq!(cases[0].message.as_deref(), Some("assert 1 == 2"));
        assert_eq!(cases[0].failure_type.as_deref(), Some("AssertionError"));
        assert_eq!(
            cases[0].output.as_deref(),
            Some("def test_f():\n>   assert 1 == 2\nprinted")
        );
        assert_eq!(cases[0].duration, Some(0.25));
        let r = cases[0].to_result("");
        assert_eq!(r["message"], "assert 1 == 2");
        assert_eq!(r["type"], "AssertionError");
        assert_eq!(r["duration"], 0.25);
    }

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
                    status: tc_result::PASSED,
                    ..TestCase::default()
                },
                TestCase {
                    test: "e".into(),
                    status: tc_result::ERROR,
                    ..TestCase::default()
                },
            ]
        );
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(parse("<testsuite><testcase></testsuite>").is_err());
    }
}
