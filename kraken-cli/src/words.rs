//! Words next to the original's numbers in the CLI's JSON, so scripts read
//! `"state_name": "completed", "conclusion": "failed"` instead of looking
//! up what `5` and `2` mean. The API's own fields are left as they are; the
//! words are added beside them:
//!
//! * flows, runs and jobs: `conclusion` — the one verdict vocabulary of the
//!   CLI's exit codes and the dashboard: `running`, `manual`, `passed`,
//!   `failed`, `cancelled` (and `conclusion_reason` when failed or
//!   cancelled);
//! * jobs: `state_name` and `completion_status_name`;
//! * steps: `status_name`;
//! * test case results: `result_name` and `change_name`.

use kraken_core::model::{
    Flow, Job, Outcome, Run, completion, job_state, step_status, tc_change, tc_result,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Add the words to every flow, run, job, step and test case result in `v`.
pub fn add(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(add),
        Value::Object(obj) => {
            for child in obj.values_mut() {
                add(child);
            }
            annotate(obj);
        }
        _ => {}
    }
}

fn has(obj: &Map<String, Value>, keys: &[&str]) -> bool {
    keys.iter().all(|k| obj.contains_key(*k))
}

fn parse<T: DeserializeOwned>(obj: &Map<String, Value>) -> Option<T> {
    serde_json::from_value(Value::Object(obj.clone())).ok()
}

fn conclusion(obj: &mut Map<String, Value>, outcome: &Outcome) {
    obj.insert("conclusion".into(), outcome.word().into());
    if let Some(why) = outcome.reason() {
        obj.insert("conclusion_reason".into(), why.into());
    }
}

fn annotate(obj: &mut Map<String, Value>) {
    let int = |obj: &Map<String, Value>, k: &str| obj.get(k).and_then(Value::as_i64);
    if has(obj, &["completion_status", "state", "steps"]) {
        if let Some(state) = int(obj, "state") {
            obj.insert("state_name".into(), job_state::name(state).into());
        }
        let status = int(obj, "completion_status");
        obj.insert(
            "completion_status_name".into(),
            status.map(completion::describe).into(),
        );
        if let Some(job) = parse::<Job>(obj) {
            conclusion(obj, &job.outcome());
        }
    } else if has(obj, &["tool", "status", "job_id", "index"]) {
        let status = int(obj, "status");
        obj.insert("status_name".into(), status.map(step_status::name).into());
    } else if has(obj, &["test_case_name", "result", "change"]) {
        if let Some(r) = int(obj, "result") {
            obj.insert(
                "result_name".into(),
                tc_result::name(r).to_ascii_lowercase().into(),
            );
        }
        if let Some(c) = int(obj, "change") {
            obj.insert("change_name".into(), tc_change::name(c).into());
        }
    } else if has(obj, &["runs", "kind", "state", "branch_id"]) {
        if let Some(flow) = parse::<Flow>(obj) {
            conclusion(obj, &flow.outcome());
        }
    } else if has(obj, &["stage_name", "state", "flow_id"])
        && let Some(run) = parse::<Run>(obj)
    {
        conclusion(obj, &run.outcome());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_and_test_results_get_words() {
        let mut v = json!({"items": [
            {"id": 1, "index": 0, "tool": "shell", "status": 3, "job_id": 4},
            {"id": 2, "test_case_name": "t", "result": 2, "change": 2},
        ]});
        add(&mut v);
        assert_eq!(v["items"][0]["status_name"], "error");
        assert_eq!(v["items"][1]["result_name"], "failed");
        assert_eq!(v["items"][1]["change_name"], "regr");
        // The original's numbers stay.
        assert_eq!(v["items"][0]["status"], 3);
    }

    #[test]
    fn unrelated_objects_are_left_alone() {
        let mut v = json!({"state": 1, "name": "x", "items": [1, 2]});
        let before = v.clone();
        add(&mut v);
        assert_eq!(v, before);
    }
}
