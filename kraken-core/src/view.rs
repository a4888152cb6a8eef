//! The JSON answers built from stored rows: projects, flows, runs, jobs and
//! steps as the REST API shows them. Shared by the API (which checks who may
//! see them) and the engine (which hands them to stage schemas as `ctx`);
//! depends only on the store and the model.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::model::{
    Flow, FlowBrief, Job, Outcome, Project, ReportEntry, Run, Step, duration_to_txt, flow_kind,
    flow_state, run_state,
};
use crate::store::Store;
use crate::store::flows::{FlowRow, JobCounts, RunRow};
use crate::store::jobs::{JobRow, StepRow};
use crate::store::now_ms;
use crate::store::projects::ProjectRow;
use crate::store::users::{ots, ts};

/// Project and branch a flow belongs to.
#[derive(Debug, Clone)]
pub struct FlowPlace {
    pub project_id: i64,
    pub project_name: String,
    pub branch_id: i64,
    pub branch_name: String,
}

pub fn report_entries(artifacts: &Value, prefix: &str, id: i64) -> Vec<ReportEntry> {
    artifacts
        .pointer("/public/entries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(Value::as_str)
                .map(|e| {
                    let base = e.rsplit('/').next().unwrap_or(e);
                    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
                    let mut name: Vec<char> = stem.chars().collect();
                    if let Some(c) = name.first_mut() {
                        *c = c.to_ascii_uppercase();
                    }
                    ReportEntry {
                        name: name.into_iter().collect(),
                        url: format!("/bk/artifacts/public/{prefix}/{id}/{e}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What `GET /projects/{id}` answers include per branch (the list,
/// [`projects_with_last_results`], has each branch's latest flows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchDetail {
    /// `ci_flows` / `dev_flows` (10 latest each).
    Results,
    /// Nothing more.
    Plain,
}

/// The display name of a step: its `name`, else for shell the first line of
/// the script (with `...`) or the command, for git `checkout: <url>`, else
/// the tool name.
pub fn step_display_name(tool: &str, fields: &Map<String, Value>) -> String {
    let get = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(n) = get("name") {
        return n.to_string();
    }
    match tool {
        "shell" => {
            if let Some(script) = get("script") {
                let first = script.trim_start().lines().next().unwrap_or("").trim();
                return format!("{first}...");
            }
            get("cmd")
                .map(str::to_string)
                .unwrap_or_else(|| tool.to_string())
        }
        "git" => get("checkout")
            .map(|u| format!("checkout: {u}"))
            .unwrap_or_else(|| tool.to_string()),
        _ => tool.to_string(),
    }
}

/// The place (project, branch) of a branch id.
pub async fn flow_place(store: &Store, branch_id: i64) -> Result<FlowPlace> {
    let b = store
        .branch_any(branch_id)
        .await?
        .ok_or_else(|| Error::not_found("Branch not found"))?;
    Ok(FlowPlace::of(&b))
}

impl FlowPlace {
    /// The place of a branch read already.
    pub fn of(b: &crate::store::branches::BranchRow) -> FlowPlace {
        FlowPlace {
            project_id: b.project_id,
            project_name: b.project_name.clone(),
            branch_id: b.id,
            branch_name: b.name.clone(),
        }
    }
}

/// Run JSON. `place` adds project/branch/artifact fields (single-run answers).
pub fn run_json(
    r: &RunRow,
    flow: &FlowRow,
    counts: Option<&JobCounts>,
    place: Option<&FlowPlace>,
) -> Run {
    let processed = r.state == run_state::PROCESSED;
    let c = counts.copied().unwrap_or_default();
    let start = r.started.unwrap_or(r.created);
    let end = r.finished.unwrap_or_else(now_ms);
    let reason = r
        .reason
        .0
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // Repository changes (webhook digests, polled commits) as the original shows them.
    let repo_data = r.repo_data.as_ref().map(|d| d.0.clone());
    Run {
        id: r.id,
        label: r.label.clone(),
        created: ts(r.created),
        deleted: ots(r.deleted),
        started: ots(r.started),
        finished: ots(r.finished),
        processed_at: ots(r.processed_at),
        duration: duration_to_txt((end - start) / 1000),
        state: run_state::name(r.state).to_string(),
        stage_name: r.stage_name.clone(),
        stage_id: r.stage_id,
        flow_id: r.flow_id,
        flow_kind: flow_kind::name(flow.kind).to_string(),
        flow_label: flow.label(),
        args: r.args.0.as_object().cloned().unwrap_or_default(),
        jobs_total: if processed { r.jobs_total } else { c.total },
        jobs_waiting: if processed { 0 } else { c.waiting },
        jobs_executing: if processed { 0 } else { c.executing },
        jobs_processing: if processed { 0 } else { c.processing },
        jobs_error: if processed { r.jobs_error } else { c.error },
        tests_total: r.tests_total,
        tests_passed: r.tests_passed,
        tests_not_run: r.tests_not_run,
        issues_total: r.issues_total,
        issues_new: r.issues_new,
        new_cnt: r.new_cnt,
        no_change_cnt: r.no_change_cnt,
        regr_cnt: r.regr_cnt,
        fix_cnt: r.fix_cnt,
        repo_data,
        reason,
        note: r.note.clone(),
        seq: r.seq.0.clone(),
        project_id: place.map(|p| p.project_id),
        project_name: place.map(|p| p.project_name.clone()),
        branch_id: place.map(|p| p.branch_id),
        branch_name: place.map(|p| p.branch_name.clone()),
        artifacts_total: place.map(|_| {
            r.artifacts
                .0
                .pointer("/public/count")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + r.artifacts
                    .0
                    .pointer("/private/count")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
        }),
        report_entries: place.map(|_| report_entries(&r.artifacts.0, "r", r.id)),
    }
}

/// The live job counters of the runs not processed yet, by run id: one
/// query, none when every run is processed (a processed run shows the
/// counters it keeps, see [`run_json`]).
pub(crate) async fn job_counts_by_run(
    store: &Store,
    runs: &[RunRow],
) -> Result<HashMap<i64, JobCounts>> {
    let ids: Vec<i64> = runs
        .iter()
        .filter(|r| r.state != run_state::PROCESSED)
        .map(|r| r.id)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(store
        .job_counts(&ids)
        .await?
        .into_iter()
        .map(|c| (c.run_id, c))
        .collect())
}

/// Flow JSON for several flows of one branch, with their runs and the branch's stages.
///
/// A fixed number of queries whatever the number of flows: the stages, the
/// runs, the job counters of unprocessed runs and the triggers' repository
/// changes, each one query (and the place with `full`).
pub async fn flows_json(store: &Store, flows: &[FlowRow], full: bool) -> Result<Vec<Flow>> {
    flows_json_with(store, flows, full, true).await
}

/// [`flows_json`], with the branch's stages or not (`stages` left empty).
pub(crate) async fn flows_json_with(
    store: &Store,
    flows: &[FlowRow],
    full: bool,
    with_stages: bool,
) -> Result<Vec<Flow>> {
    let Some(first) = flows.first() else {
        return Ok(Vec::new());
    };
    let stages: Vec<crate::model::Stage> = if with_stages {
        store
            .branch_stages(first.branch_id)
            .await?
            .iter()
            .map(|s| s.to_model(full))
            .collect()
    } else {
        Vec::new()
    };
    let place = if full {
        Some(flow_place(store, first.branch_id).await?)
    } else {
        None
    };
    Ok(flows_json_parts(store, flows, stages, place, false)
        .await?
        .0)
}

/// The full JSON of a flow just created on `branch`, whose stages
/// (`stages`) were read to start it: its runs and their live counters are
/// the only read.
pub(crate) async fn created_flow_json(
    store: &Store,
    flow: &FlowRow,
    branch: &crate::store::branches::BranchRow,
    stages: &[crate::store::stages::StageRow],
) -> Result<Flow> {
    let stages = stages.iter().map(|s| s.to_model(true)).collect();
    flows_json_parts(
        store,
        std::slice::from_ref(flow),
        stages,
        Some(FlowPlace::of(branch)),
        true,
    )
    .await?
    .0
    .pop()
    .ok_or_else(|| Error::internal("flow disappeared"))
}

/// Flow JSON for several flows of one branch with the branch's stages
/// (`stages`, as they show, or none) and, for the full form, its place
/// known, and the live job counters of the flows' runs that are not
/// processed (as [`job_counts_by_run`]). `live`: the flows are likely still
/// running (one being created or planned), so the runs and their counters
/// are read in one statement; a list of mostly finished flows reads the
/// runs alone and counts only when one is not processed (the joined
/// statement costs twice as much when there is nothing to count).
pub(crate) async fn flows_json_parts(
    store: &Store,
    flows: &[FlowRow],
    stages: Vec<crate::model::Stage>,
    place: Option<FlowPlace>,
    live: bool,
) -> Result<(Vec<Flow>, HashMap<i64, JobCounts>)> {
    let ids: Vec<i64> = flows.iter().map(|f| f.id).collect();
    let (runs, counts) = if live {
        store.runs_of_flows_counted(&ids).await?
    } else {
        let runs = store.runs_of_flows(&ids).await?;
        let counts = job_counts_by_run(store, &runs).await?;
        (runs, counts)
    };
    let mut runs_by_flow: HashMap<i64, Vec<&RunRow>> = HashMap::new();
    for r in &runs {
        runs_by_flow.entry(r.flow_id).or_default().push(r);
    }
    let trigger_ids: Vec<i64> = flows.iter().filter_map(|f| f.trigger_data_id).collect();
    let triggers = store.repo_changes_of(&trigger_ids).await?;
    let mut out = Vec::with_capacity(flows.len());
    for f in flows {
        let trigger = f
            .trigger_data_id
            .and_then(|id| triggers.get(&id))
            .and_then(|d| d.as_array().and_then(|a| a.first().cloned()));
        let end = f.finished.unwrap_or_else(now_ms);
        out.push(Flow {
            id: f.id,
            label: f.label(),
            created: ts(f.created),
            finished: ots(f.finished),
            deleted: ots(f.deleted),
            state: flow_state::name(f.state).to_string(),
            kind: flow_kind::name(f.kind).to_string(),
            duration: duration_to_txt((end - f.created) / 1000),
            branch_name: f.branch_name.clone(),
            args: f.args.0.as_object().cloned().unwrap_or_default(),
            trigger,
            artifacts: f.artifacts.0.clone(),
            seq: f.seq.0.clone(),
            report_entries: report_entries(&f.artifacts.0, "f", f.id),
            stages: stages.clone(),
            runs: runs_by_flow
                .get(&f.id)
                .map(|rs| {
                    rs.iter()
                        .map(|r| run_json(r, f, counts.get(&r.id), None))
                        .collect()
                })
                .unwrap_or_default(),
            project_id: place.as_ref().map(|p| p.project_id),
            project_name: place.as_ref().map(|p| p.project_name.clone()),
            branch_id: place.as_ref().map(|p| p.branch_id),
            base_branch_name: place.as_ref().map(|p| p.branch_name.clone()),
            summary: f
                .summary
                .as_ref()
                .map(|s| s.0.clone())
                .filter(|s| !s.is_null()),
        });
    }
    Ok((out, counts))
}

/// The `n` latest flows of a kind on a branch (list form).
pub async fn latest_flows(store: &Store, branch_id: i64, kind: i64, n: i64) -> Result<Vec<Flow>> {
    let (rows, _) = store.branch_flows(branch_id, kind, 0, n).await?;
    flows_json(store, &rows, false).await
}

pub async fn project_json(
    store: &Store,
    row: &ProjectRow,
    detail: BranchDetail,
) -> Result<Project> {
    let secrets = store.project_secrets(row.id).await?;
    let mut project = project_alone(row, &secrets);
    let mut branches = Vec::new();
    for b in store.project_branches(row.id).await? {
        let mut bj = b.to_model();
        match detail {
            BranchDetail::Results => {
                bj.ci_flows =
                    Some(latest_flows(store, b.id, crate::model::flow_kind::CI, 10).await?);
                bj.dev_flows =
                    Some(latest_flows(store, b.id, crate::model::flow_kind::DEV, 10).await?);
            }
            BranchDetail::Plain => {}
        }
        branches.push(bj);
    }
    project.branches = branches;
    Ok(project)
}

/// Projects with their branches' latest completed and incomplete CI flows
/// (`GET /projects`): secrets, branches and flows of all of them in three
/// queries, whatever the number of projects and branches.
pub async fn projects_with_last_results(
    store: &Store,
    rows: &[ProjectRow],
) -> Result<Vec<Project>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut secrets: HashMap<i64, Vec<crate::store::projects::SecretRow>> = HashMap::new();
    for s in store.secrets_of_projects(&ids).await? {
        secrets.entry(s.project_id).or_default().push(s);
    }
    let mut branches: HashMap<i64, Vec<crate::store::branches::BranchRow>> = HashMap::new();
    for b in store.branches_of_projects(&ids).await? {
        branches.entry(b.project_id).or_default().push(b);
    }
    let flow_ids: Vec<i64> = branches
        .values()
        .flatten()
        .flat_map(|b| [b.ci_last_completed_flow_id, b.ci_last_incomplete_flow_id])
        .flatten()
        .collect();
    let flows: HashMap<i64, FlowRow> = store
        .flows_by_ids(&flow_ids)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut project = project_alone(row, secrets.get(&row.id).map_or(&[][..], Vec::as_slice));
        for b in branches.get(&row.id).map_or(&[][..], Vec::as_slice) {
            let mut bj = b.to_model();
            let flow = |id: Option<i64>| id.and_then(|id| flows.get(&id));
            bj.last_completed_flow =
                Some(flow_brief_of(store, flow(b.ci_last_completed_flow_id), true).await?);
            bj.last_incomplete_flow =
                Some(flow_brief_of(store, flow(b.ci_last_incomplete_flow_id), false).await?);
            project.branches.push(bj);
        }
        out.push(project);
    }
    Ok(out)
}

/// A project without its branches, its secrets given (no query).
pub(crate) fn project_alone(
    row: &ProjectRow,
    secrets: &[crate::store::projects::SecretRow],
) -> Project {
    Project {
        id: row.id,
        created: ts(row.created),
        deleted: ots(row.deleted),
        name: row.name.clone(),
        description: row.description.clone(),
        secrets: secrets.iter().map(|s| s.to_model()).collect(),
        webhooks: row
            .webhooks
            .as_ref()
            .map(|w| w.0.clone())
            .unwrap_or_else(|| json!({})),
        branches: Vec::new(),
        data: None,
    }
}

/// The brief of a flow read already (`None`: there is none). Queries only
/// for a flow whose summary does not say whether it has errors.
async fn flow_brief_of(
    store: &Store,
    flow: Option<&FlowRow>,
    completed: bool,
) -> Result<Option<FlowBrief>> {
    let Some(flow) = flow else {
        return Ok(None);
    };
    let id = flow.id;
    let stored = flow
        .summary
        .as_ref()
        .and_then(|s| s.0.get("errors"))
        .and_then(Value::as_bool);
    let errors = match stored {
        Some(e) => e,
        None => flow_errors(store, flow, None).await?,
    };
    Ok(Some(FlowBrief {
        id,
        label: flow.label(),
        finished: if completed { ots(flow.finished) } else { None },
        created: if completed {
            None
        } else {
            Some(ts(flow.created))
        },
        errors,
    }))
}

/// Whether a flow has gone wrong so far: one of its runs failed or was
/// cancelled ([`Run::outcome`](crate::model::Run::outcome)), what a flow
/// summary's `errors` says. `processed` stands for a run about to be marked
/// processed with these history counters.
pub async fn flow_errors(
    store: &Store,
    flow: &FlowRow,
    processed: Option<(i64, &crate::store::flows::HistoryCounters)>,
) -> Result<bool> {
    Ok(flow_runs_json(store, flow, processed)
        .await?
        .iter()
        .any(|r| matches!(r.outcome(), Outcome::Failed(_) | Outcome::Cancelled(_))))
}

/// The runs of a flow as the API shows them (list form); `processed` as in
/// [`flow_errors`].
pub async fn flow_runs_json(
    store: &Store,
    flow: &FlowRow,
    processed: Option<(i64, &crate::store::flows::HistoryCounters)>,
) -> Result<Vec<Run>> {
    let mut runs = store.flow_runs(flow.id).await?;
    if let Some((run_id, h)) = processed
        && let Some(r) = runs.iter_mut().find(|r| r.id == run_id)
    {
        r.regr_cnt = h.regr_cnt;
        r.fix_cnt = h.fix_cnt;
        r.issues_new = h.issues_new;
        r.state = run_state::PROCESSED;
    }
    let counts = job_counts_by_run(store, &runs).await?;
    Ok(runs
        .iter()
        .map(|r| run_json(r, flow, counts.get(&r.id), None))
        .collect())
}

/// Step JSON; `masked` shows the copy with secrets hidden.
pub fn step_json(s: &StepRow, masked: bool) -> Step {
    let source = if masked {
        s.fields_masked.as_ref().map(|m| &m.0)
    } else {
        None
    };
    let mut fields = source
        .or(Some(&s.fields.0))
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .or_else(|| s.fields_raw.0.as_object())
        .cloned()
        .unwrap_or_default();
    fields.remove("tool");
    // `local_tool` names its module in the step itself.
    let own = |k: &str| {
        (s.tool_name == "local_tool")
            .then(|| fields.get(k).and_then(Value::as_str).map(str::to_string))
            .flatten()
    };
    let (own_location, own_entry) = (own("tool_location"), own("tool_entry"));
    for k in [
        "id",
        "index",
        "tool_id",
        "tool_location",
        "tool_entry",
        "tool_version",
        "job_id",
        "status",
        "result",
        "attempts",
    ] {
        fields.remove(k);
    }
    let name = step_display_name(&s.tool_name, &fields);
    fields.remove("name");
    let mut result = s.result.as_ref().map(|r| r.0.clone());
    if let Some(Value::Object(r)) = result.as_mut()
        && let Some(d) = r.get("duration").and_then(Value::as_i64)
    {
        r.insert("duration".into(), Value::String(duration_to_txt(d)));
    }
    Step {
        id: s.id,
        index: s.idx,
        tool: s.tool_name.clone(),
        tool_id: s.tool_id,
        tool_location: own_location.unwrap_or_else(|| s.tool_location.clone().unwrap_or_default()),
        tool_entry: own_entry.unwrap_or_else(|| s.tool_entry.clone().unwrap_or_default()),
        tool_version: s.tool_version.clone().unwrap_or_default(),
        job_id: s.job_id,
        status: s.status,
        result,
        name,
        attempts: s.attempts,
        fields,
    }
}

/// Job JSON with its steps.
pub fn job_json(j: &JobRow, steps: &[StepRow], masked: bool) -> Job {
    let duration = match j.started {
        Some(start) => {
            duration_to_txt((j.finished.or(j.completed).unwrap_or_else(now_ms) - start) / 1000)
        }
        None => String::new(),
    };
    Job {
        id: j.id,
        created: ts(j.created),
        deleted: ots(j.deleted),
        started: ots(j.started),
        finished: ots(j.finished),
        completed: ots(j.completed),
        duration,
        name: j.name.clone(),
        state: j.state,
        completion_status: j.completion_status,
        timeout: j.timeout,
        covered: j.covered,
        notes: j.notes.clone(),
        system_id: j.system_id,
        system: j.system_name.clone(),
        executor: j.executor.clone(),
        run_id: j.run_id,
        agents_group_id: j.agents_group_id,
        agents_group_name: j.agents_group_name.clone(),
        agent_id: j.agent_used_id.unwrap_or(0),
        agent_name: j.agent_name.clone().unwrap_or_default(),
        steps: steps
            .iter()
            .filter(|s| s.job_id == j.id)
            .map(|s| step_json(s, masked))
            .collect(),
    }
}

pub async fn jobs_json(store: &Store, jobs: &[JobRow], masked: bool) -> Result<Vec<Job>> {
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let steps = store.steps_of(&ids).await?;
    Ok(jobs.iter().map(|j| job_json(j, &steps, masked)).collect())
}

#[cfg(test)]
mod tests {
    use super::step_display_name;
    use serde_json::json;

    #[test]
    fn display_names() {
        let f = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            step_display_name("shell", &f(json!({"cmd": "echo hi"}))),
            "echo hi"
        );
        assert_eq!(
            step_display_name("shell", &f(json!({"script": "\n  make\n  make test\n"}))),
            "make..."
        );
        assert_eq!(
            step_display_name("git", &f(json!({"checkout": "https://x/y.git"}))),
            "checkout: https://x/y.git"
        );
        assert_eq!(step_display_name("pytest", &f(json!({}))), "pytest");
        assert_eq!(
            step_display_name("shell", &f(json!({"name": "build", "cmd": "make"}))),
            "build"
        );
    }
}
