//! Test results and issues: ingestion from agents and the results-history
//! analysis of the original (§5.7).
//!
//! For every test case result of a CI run the analysis looks at the same
//! test case's results in the branch's earlier CI flows, on the same agents
//! group and system (covered jobs ignored, at most 10):
//! * *change*: `new` (no history), `no-change`, `fix` (passed after not
//!   passing) or `regr` (not passing after passing). Like the original, a
//!   non-passed result after another non-passed one (FAILED → ERROR) keeps
//!   change `no-change` although it differs.
//! * *age*: how many flows in a row it has had this result.
//! * *instability*: how often it flipped within that history.
//! * *relevancy*: a score (0–6) that puts what needs attention first.
//!
//! DEV results are compared with the latest CI result instead. Issues are
//! matched with the previous successful job's by path, type, symbol and a
//! line within ±5.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::Result;
use crate::model::{flow_kind, tc_change, tc_result};
use crate::store::Store;
use crate::store::flows::{FlowRow, HistoryCounters, RunRow};
use crate::store::jobs::{JobRow, StepRow};
use crate::store::results::{
    HistPoint, HistRow, NewIssue, NewTcr, TcrAnalysis, TcrRow, TestDetails,
};

/// Issue types by name (unknown names are errors, as in the original).
pub fn issue_type(name: &str) -> i64 {
    match name {
        "warning" => 1,
        "convention" => 2,
        "refactor" => 3,
        _ => 0,
    }
}

/// Store test results reported by a step. Results pre-created by
/// `dispatch-tests` are updated; the others are added.
pub(crate) async fn store_test_results(
    store: &Store,
    job: &JobRow,
    step: &StepRow,
    tests: &Value,
) -> Result<()> {
    let Some(list) = tests.as_array() else {
        return Ok(());
    };
    if list.is_empty() {
        return Ok(());
    }
    let existing: HashMap<String, TcrRow> = store
        .job_tcrs(job.id)
        .await?
        .into_iter()
        .map(|t| (t.test_case_name.clone(), t))
        .collect();
    let mut fresh: Vec<(String, i64, String, Option<Value>, TestDetails)> = Vec::new();
    for t in list {
        let Some(name) = t.get("test").and_then(Value::as_str) else {
            continue;
        };
        let result = t
            .get("status")
            .and_then(Value::as_i64)
            .unwrap_or(tc_result::ERROR);
        let cmd = t
            .get("cmd")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let vals = t.get("values").cloned();
        let details = test_details(t);
        match existing.get(name) {
            Some(row) => {
                store
                    .update_tcr_result(row.id, result, &cmd, vals.as_ref(), &details)
                    .await?;
            }
            None => fresh.push((name.to_string(), result, cmd, vals, details)),
        }
    }
    if fresh.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = fresh.iter().map(|f| f.0.clone()).collect();
    let ids = store.upsert_test_cases(step.tool_id, &names).await?;
    let rows: Vec<NewTcr> = fresh
        .into_iter()
        .filter_map(|(name, result, cmd_line, vals, details)| {
            ids.get(&name).map(|id| NewTcr {
                test_case_id: *id,
                result,
                cmd_line,
                vals,
                details,
            })
        })
        .collect();
    store.insert_tcrs(job.id, &rows).await
}

/// Longest text kept of a test's message or output.
const MAX_TEST_TEXT: usize = 64 * 1024;

/// The details a reported test may carry (this project's agent sends them;
/// the original's agent does not): `message`, `type`, `output` (texts, cut
/// to 64 KiB) and `duration` (seconds).
fn test_details(t: &Value) -> TestDetails {
    let text = |k: &str| {
        t.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                if s.len() <= MAX_TEST_TEXT {
                    s.to_string()
                } else {
                    let mut end = MAX_TEST_TEXT;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    format!("{}\n[... cut at 64 KiB]", &s[..end])
                }
            })
    };
    TestDetails {
        // The original's `values_collect` says why in `msg`.
        message: text("message").or_else(|| text("msg")),
        failure_type: text("type"),
        output: text("output"),
        duration_ms: t
            .get("duration")
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * 1000.0).round() as i64),
    }
}

/// Pre-create results (not run) for tests an agent is about to run.
pub(crate) async fn precreate_test_results(
    store: &Store,
    job: &JobRow,
    step: &StepRow,
    tests: &[String],
) -> Result<()> {
    let existing: std::collections::HashSet<String> = store
        .job_tcrs(job.id)
        .await?
        .into_iter()
        .map(|t| t.test_case_name)
        .collect();
    let names: Vec<String> = tests
        .iter()
        .filter(|t| !existing.contains(*t))
        .cloned()
        .collect();
    let ids = store.upsert_test_cases(step.tool_id, &names).await?;
    let rows: Vec<NewTcr> = names
        .iter()
        .filter_map(|n| {
            ids.get(n).map(|id| NewTcr {
                test_case_id: *id,
                result: tc_result::NOT_RUN,
                cmd_line: String::new(),
                vals: None,
                details: TestDetails::default(),
            })
        })
        .collect();
    store.insert_tcrs(job.id, &rows).await
}

/// Store issues (pylint-like dicts) reported by a step.
pub(crate) async fn store_issues(store: &Store, job: &JobRow, issues: &Value) -> Result<()> {
    let Some(list) = issues.as_array() else {
        return Ok(());
    };
    let mut rows = Vec::new();
    for i in list {
        let Some(o) = i.as_object() else { continue };
        let s = |key: &str| o.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let mut extra = o.clone();
        for key in ["type", "line", "column", "path", "symbol", "message"] {
            extra.remove(key);
        }
        if let Some(t) = o.get("type") {
            extra.insert("type".into(), t.clone());
        }
        let mut message = s("message");
        if message.chars().count() > 511 {
            message = message.chars().take(511).collect();
        }
        rows.push(NewIssue {
            issue_type: issue_type(&s("type")),
            line: o.get("line").and_then(Value::as_i64),
            col: o.get("column").and_then(Value::as_i64),
            path: s("path"),
            symbol: s("symbol"),
            message,
            extra: Value::Object(extra),
        });
    }
    store.insert_issues(job.id, &rows).await
}

/// Relevancy of a result (the original's score).
pub fn relevancy(
    result: i64,
    comment_state: Option<i64>,
    instability: i64,
    age: i64,
    change: i64,
) -> i64 {
    let not_passed = result != tc_result::PASSED;
    let mut r = 0;
    if not_passed {
        r += 1;
        if !matches!(comment_state, Some(2) | Some(3)) {
            r += 1;
        }
    }
    if result == tc_result::FAILED {
        r += 1;
    }
    if instability <= 3 {
        r += 1;
    }
    if age < 5 {
        r += 1;
    }
    if change == tc_change::REGR {
        r += 1;
    }
    r
}

/// Analyse a CI result against its history (oldest first).
pub fn analyze_ci(result: i64, history: &[(i64, i64)]) -> (i64, i64, i64) {
    // history: (result, age) oldest → newest
    let mut instability = 0;
    for w in history.windows(2) {
        if w[0].0 != w[1].0 {
            instability += 1;
        }
    }
    let Some(&(prev_result, prev_age)) = history.last() else {
        return (tc_change::NEW, 0, 0);
    };
    if prev_result == result {
        return (tc_change::NO, prev_age + 1, instability);
    }
    instability += 1;
    let change = if result == tc_result::PASSED {
        tc_change::FIX
    } else if prev_result == tc_result::PASSED {
        tc_change::REGR
    } else {
        // FAILED → ERROR and the like: the original leaves `change` unset.
        tc_change::NO
    };
    (change, 0, instability)
}

/// Analyse a DEV result against the latest CI result (result, age, instability).
pub fn analyze_dev(result: i64, reference: Option<(i64, i64, i64)>) -> (i64, i64, i64) {
    let Some((ref_result, ref_age, ref_instability)) = reference else {
        return (tc_change::NEW, 0, 0);
    };
    let change = if ref_result == result {
        tc_change::NO
    } else if result == tc_result::PASSED {
        tc_change::FIX
    } else if ref_result == tc_result::PASSED {
        tc_change::REGR
    } else {
        tc_change::NO
    };
    (change, ref_age, ref_instability)
}

/// Run the results-history analysis of a run; returns its counters.
pub(crate) async fn analyze_run_history(
    store: &Store,
    run: &RunRow,
    flow: &FlowRow,
) -> Result<HistoryCounters> {
    let mut counters = HistoryCounters::default();
    // Counted when the run completed (over the same non-covered jobs): a
    // run without results or issues has nothing to compare.
    if run.tests_total == 0 && run.issues_total == 0 {
        return Ok(counters);
    }
    let tcrs = store.run_tcrs(run.id).await?;
    let comments: HashMap<i64, crate::store::results::CommentRow> = store
        .branch_comments(flow.branch_id)
        .await?
        .into_iter()
        .map(|c| (c.test_case_id, c))
        .collect();
    let states: HashMap<i64, i64> = comments.values().map(|c| (c.id, c.state)).collect();
    let comment_state = |id: Option<i64>| id.and_then(|cid| states.get(&cid).copied());

    let mut outcomes = Vec::with_capacity(tcrs.len());
    let keys: Vec<(i64, i64, i64)> = tcrs
        .iter()
        .map(|t| (t.test_case_id, t.agents_group_id, t.system_id))
        .collect();
    if flow.kind == flow_kind::CI {
        let hist = store
            .ci_history(flow.branch_id, (flow.created, flow.id), 10, &keys)
            .await?;
        let by_key: HashMap<(i64, i64, i64), &[HistPoint]> = hist
            .iter()
            .map(|h| {
                (
                    (h.test_case_id, h.agents_group_id, h.system_id),
                    h.results.as_slice(),
                )
            })
            .collect();
        for t in &tcrs {
            // Oldest first.
            let h: &[HistPoint] = by_key
                .get(&(t.test_case_id, t.agents_group_id, t.system_id))
                .copied()
                .unwrap_or_default();
            let series: Vec<(i64, i64)> = h.iter().map(|r| (r.result, r.age)).collect();
            let (change, age, instability) = analyze_ci(t.result, &series);
            // Comments follow failures: the latest in history, else the branch's.
            let mut comment_id = t.comment_id;
            if t.result != tc_result::PASSED && comment_id.is_none() {
                comment_id = h
                    .iter()
                    .rev()
                    .find_map(|r| r.comment_id)
                    .or_else(|| comments.get(&t.test_case_id).map(|c| c.id));
            }
            outcomes.push(TcrAnalysis {
                id: t.id,
                instability,
                age,
                change,
                relevancy: relevancy(
                    t.result,
                    comment_state(comment_id),
                    instability,
                    age,
                    change,
                ),
                comment_id,
            });
        }
    } else {
        let latest = store.latest_ci_results(flow.branch_id, &keys).await?;
        let refs: HashMap<(i64, i64, i64), &HistRow> = latest
            .iter()
            .map(|r| ((r.test_case_id, r.agents_group_id, r.system_id), r))
            .collect();
        for t in &tcrs {
            let reference = refs
                .get(&(t.test_case_id, t.agents_group_id, t.system_id))
                .map(|r| (r.result, r.age, r.instability));
            let (change, age, instability) = analyze_dev(t.result, reference);
            let comment_id = t.comment_id;
            outcomes.push(TcrAnalysis {
                id: t.id,
                instability,
                age,
                change,
                relevancy: relevancy(
                    t.result,
                    comment_state(comment_id),
                    instability,
                    age,
                    change,
                ),
                comment_id,
            });
        }
    }
    for o in &outcomes {
        match o.change {
            tc_change::NEW => counters.new_cnt += 1,
            tc_change::FIX => counters.fix_cnt += 1,
            tc_change::REGR => counters.regr_cnt += 1,
            _ => counters.no_change_cnt += 1,
        }
    }
    store.update_tcr_analysis(&outcomes).await?;
    // Carried comments reset to "new" and remember the flow they reached.
    let mut carried: HashMap<i64, Vec<i64>> = HashMap::new();
    for (o, t) in outcomes.iter().zip(&tcrs) {
        if let (Some(cid), None) = (o.comment_id, t.comment_id) {
            carried.entry(cid).or_default().push(t.id);
        }
    }
    for cid in carried.keys() {
        if let Some(c) = store.comment(*cid).await? {
            store.update_comment(c.id, flow.id, 0, &c.data.0).await?;
        }
    }

    counters.issues_new = analyze_issues(store, run, flow).await?;
    Ok(counters)
}

/// Age issues against the previous successful job; returns how many are new.
async fn analyze_issues(store: &Store, run: &RunRow, flow: &FlowRow) -> Result<i64> {
    let mut new = 0;
    for job in store.run_jobs(run.id, false).await? {
        let issues = store.job_issues(job.id).await?;
        if issues.is_empty() {
            continue;
        }
        let Some(prev_job) = store
            .previous_ok_job(&job, run.stage_id, flow.created, flow.id)
            .await?
        else {
            continue; // first issues are not counted as new
        };
        let prev = store.job_issues(prev_job).await?;
        for i in issues {
            let best = prev
                .iter()
                .filter(|p| {
                    p.path == i.path && p.issue_type == i.issue_type && p.symbol == i.symbol
                })
                .filter_map(|p| {
                    let d = (p.line.unwrap_or(0) - i.line.unwrap_or(0)).abs();
                    (d <= 5).then_some((d, p))
                })
                .min_by_key(|(d, _)| *d);
            match best {
                Some((_, p)) => store.set_issue_age(i.id, p.age + 1).await?,
                None => new += 1,
            }
        }
    }
    Ok(new)
}

/// A JSON summary of a test case result for APIs.
pub fn change_name(change: i64) -> Value {
    json!(tc_change::name(change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tc_result::{ERROR, FAILED, PASSED};

    #[test]
    fn first_result_is_new() {
        assert_eq!(analyze_ci(PASSED, &[]), (tc_change::NEW, 0, 0));
    }

    #[test]
    fn same_result_ages() {
        assert_eq!(analyze_ci(PASSED, &[(PASSED, 0)]), (tc_change::NO, 1, 0));
        assert_eq!(
            analyze_ci(PASSED, &[(PASSED, 0), (PASSED, 1)]),
            (tc_change::NO, 2, 0)
        );
    }

    #[test]
    fn regression_fix_and_stable_again() {
        // §8.2 rows 3-5: PASSED→FAILED regr (inst 1), →PASSED fix (inst 2), →PASSED no change (age 1, inst 2).
        assert_eq!(analyze_ci(FAILED, &[(PASSED, 0)]), (tc_change::REGR, 0, 1));
        assert_eq!(
            analyze_ci(PASSED, &[(PASSED, 0), (FAILED, 0)]),
            (tc_change::FIX, 0, 2)
        );
        assert_eq!(
            analyze_ci(PASSED, &[(PASSED, 0), (FAILED, 0), (PASSED, 0)]),
            (tc_change::NO, 1, 2)
        );
    }

    #[test]
    fn failed_to_error_is_no_change_but_flips() {
        // §8.2 row 10.
        assert_eq!(analyze_ci(ERROR, &[(PASSED, 3)]), (tc_change::REGR, 0, 1));
        assert_eq!(analyze_ci(ERROR, &[(FAILED, 2)]), (tc_change::NO, 0, 1));
        assert_eq!(analyze_ci(FAILED, &[(ERROR, 0)]), (tc_change::NO, 0, 1));
    }

    #[test]
    fn dev_compares_with_ci() {
        // §8.2 rows 8-9.
        assert_eq!(analyze_dev(PASSED, None), (tc_change::NEW, 0, 0));
        assert_eq!(
            analyze_dev(PASSED, Some((PASSED, 8, 3))),
            (tc_change::NO, 8, 3)
        );
        assert_eq!(
            analyze_dev(PASSED, Some((FAILED, 1, 2))),
            (tc_change::FIX, 1, 2)
        );
        assert_eq!(
            analyze_dev(FAILED, Some((PASSED, 1, 2))),
            (tc_change::REGR, 1, 2)
        );
    }

    #[test]
    fn relevancy_scores() {
        // A fresh regression with no comment: 1 + 1 + 1 (failed) + 1 (stable) + 1 (young) + 1 (regr).
        assert_eq!(relevancy(FAILED, None, 1, 0, tc_change::REGR), 6);
        // Root-caused by a comment: one less.
        assert_eq!(relevancy(FAILED, Some(2), 1, 0, tc_change::REGR), 5);
        // An old stable pass.
        assert_eq!(relevancy(PASSED, None, 0, 10, tc_change::NO), 1);
        assert_eq!(relevancy(PASSED, None, 5, 10, tc_change::NO), 0);
    }
}
