//! Results endpoints: test case results, their history and comments, issues,
//! flow analysis and history, artifact downloads, background tasks.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::Local;
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    CommentInput, Issue, List, Paging, ResultPlace, TestCaseComment, TestCaseResult, Timestamp,
    flow_kind, tc_result,
};
use crate::model::{IssueFilter, TcrFilter};
use crate::storage::Blob;
use crate::store::results::TcrFull;

/// `GET /flows/{id}/history` item.
pub type HistoryItem = Value;

fn comment_json(c: &crate::store::results::CommentRow) -> TestCaseComment {
    let mut data: Vec<Value> = c.data.0.as_array().cloned().unwrap_or_default();
    data.reverse();
    TestCaseComment {
        state: c.state,
        data,
    }
}

impl Local {
    async fn tcr_json(&self, t: &TcrFull, with_place: bool) -> Result<TestCaseResult> {
        self.tcrs_json(std::slice::from_ref(t), with_place)
            .await?
            .pop()
            .ok_or_else(|| Error::internal("result disappeared"))
    }

    /// Results as the API shows them: their comments in one query, and
    /// with `with_place` the branch and stage of each read once per id.
    async fn tcrs_json(&self, rows: &[TcrFull], with_place: bool) -> Result<Vec<TestCaseResult>> {
        let comment_ids: Vec<i64> = rows.iter().filter_map(|t| t.comment_id).collect();
        let comments = self.store().comments_by_ids(&comment_ids).await?;
        let mut branches: HashMap<i64, crate::store::branches::BranchRow> = HashMap::new();
        let mut stages: HashMap<i64, String> = HashMap::new();
        if with_place {
            for t in rows {
                if let std::collections::hash_map::Entry::Vacant(e) = branches.entry(t.branch_id) {
                    e.insert(
                        self.store()
                            .branch_any(t.branch_id)
                            .await?
                            .ok_or_else(|| Error::not_found("Branch not found"))?,
                    );
                }
                if let std::collections::hash_map::Entry::Vacant(e) = stages.entry(t.stage_id) {
                    e.insert(
                        self.store()
                            .stage_any(t.stage_id)
                            .await?
                            .ok_or_else(|| Error::not_found("Stage not found"))?
                            .name,
                    );
                }
            }
        }
        Ok(rows
            .iter()
            .map(|t| {
                let comment = t
                    .comment_id
                    .and_then(|id| comments.get(&id))
                    .map(comment_json);
                let place = with_place.then(|| {
                    let b = &branches[&t.branch_id];
                    ResultPlace {
                        project_id: b.project_id,
                        project_name: b.project_name.clone(),
                        branch_id: b.id,
                        branch_name: b.name.clone(),
                        flow_id: t.flow_id,
                        flow_kind: flow_kind::name(t.flow_kind).to_string(),
                        flow_label: t
                            .flow_label
                            .clone()
                            .unwrap_or_else(|| format!("{}.", t.flow_id)),
                        flow_created_at: Timestamp(t.flow_created),
                        run_id: t.run_id,
                        stage_id: t.stage_id,
                        stage_name: stages[&t.stage_id].clone(),
                    }
                });
                tcr_model(t, comment, place)
            })
            .collect())
    }
}

/// A result's API form.
fn tcr_model(
    t: &TcrFull,
    comment: Option<TestCaseComment>,
    place: Option<ResultPlace>,
) -> TestCaseResult {
    TestCaseResult {
        id: t.id,
        test_case_id: t.test_case_id,
        test_case_name: t.test_case_name.clone(),
        result: t.result,
        values: t.vals.as_ref().map(|v| v.0.clone()),
        cmd_line: t.cmd_line.clone(),
        message: t.message.clone(),
        failure_type: t.failure_type.clone(),
        output: t.output.clone(),
        duration: t.duration_ms.map(|ms| ms as f64 / 1000.0),
        instability: t.instability,
        age: t.age,
        change: t.change,
        relevancy: t.relevancy,
        job_id: t.job_id,
        job_name: t.job_name.clone(),
        agents_group_id: t.agents_group_id,
        agents_group_name: t.agents_group_name.clone(),
        system_id: t.system_id,
        system_name: t.system_name.clone(),
        agent_id: t.agent_id.unwrap_or(0),
        agent_name: t.agent_name.clone().unwrap_or_default(),
        comment,
        place,
    }
}

impl Local {
    async fn viewable_run(&self, run_id: i64) -> Result<crate::store::flows::RunRow> {
        let run = self.store().require_run(run_id).await?;
        let flow = self.store().require_flow(run.flow_id).await?;
        self.who
            .require_view(self.branch_project(flow.branch_id).await?)?;
        Ok(run)
    }

    /// `GET /runs/{id}/results`: filtered and sorted test case results.
    pub async fn get_run_results(
        &self,
        run_id: i64,
        filter: &TcrFilter,
        paging: &Paging,
    ) -> Result<List<TestCaseResult>> {
        self.viewable_run(run_id).await?;
        let dir = crate::store::sort_dir(paging.sort_dir.as_deref())?;
        let col = match paging.sort_field.as_deref() {
            Some("result") => "t.result",
            Some("change") => "t.change",
            Some("age") => "t.age",
            Some("instability") => "t.instability",
            // The original sorts `group` by relevancy too.
            Some("relevancy") | Some("group") => "t.relevancy",
            Some("system") => "s.name",
            None | Some("") | Some("name") | Some("test_case_name") => "c.name",
            Some(f) => {
                return Err(Error::bad_request(format!(
                    "incorrect sort_field '{f}': use result, change, age, instability, relevancy, system, group or name"
                )));
            }
        };
        let order = format!("{col} {dir}, t.id {dir}");
        let (start, limit) = crate::store::page(paging.start, paging.limit, 1000, 100_000);
        let (rows, total) = self
            .store()
            .query_tcrs(run_id, filter, &order, start, limit)
            .await?;
        Ok(List {
            items: self.tcrs_json(&rows, false).await?,
            total,
        })
    }

    async fn viewable_tcr(&self, id: i64) -> Result<TcrFull> {
        let t = self
            .store()
            .tcr_full(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Test case result {id} not found")))?;
        self.who
            .require_view(self.branch_project(t.branch_id).await?)?;
        Ok(t)
    }

    /// `GET /test_case_results/{id}`.
    pub async fn get_result(&self, id: i64) -> Result<TestCaseResult> {
        let t = self.viewable_tcr(id).await?;
        self.tcr_json(&t, true).await
    }

    /// `GET /test_case_results/{id}/history`: the same test case on the same
    /// group and system in the branch's CI flows, newest first (a DEV result
    /// comes first, before its CI history).
    pub async fn get_result_history(
        &self,
        id: i64,
        paging: &Paging,
    ) -> Result<List<TestCaseResult>> {
        let t = self.viewable_tcr(id).await?;
        let (start, limit) = crate::store::page(paging.start, paging.limit, 10, 1000);
        let (rows, mut total) = self.store().tcr_history(&t, start, limit).await?;
        let mut items = Vec::with_capacity(rows.len() + 1);
        if t.flow_kind == flow_kind::DEV {
            items.push(self.tcr_json(&t, true).await?);
            total += 1;
        }
        items.extend(self.tcrs_json(&rows, true).await?);
        Ok(List { items, total })
    }

    /// `POST /test_case_results/{id}/comment`: add to (or start) the comment
    /// thread of the test case on the branch; it is shared by the test case's
    /// results in this flow and carried to its next failures (pwrusr).
    pub async fn create_or_update_test_case_comment(
        &self,
        id: i64,
        input: &CommentInput,
    ) -> Result<TestCaseResult> {
        input.check_limits()?;
        let t = self.viewable_tcr(id).await?;
        self.who
            .require_pwrusr(self.branch_project(t.branch_id).await?)?;
        let text = input
            .text
            .as_deref()
            .ok_or_else(|| Error::bad_request("Missing text in request"))?;
        let author = input
            .author
            .as_deref()
            .ok_or_else(|| Error::bad_request("Missing author in request"))?;
        let state = input
            .state
            .ok_or_else(|| Error::bad_request("Missing state in request"))?;
        if !(0..=3).contains(&state) {
            return Err(Error::bad_request(
                "incorrect state: use 0 (new), 1 (investigating), 2 (bug in product) or 3 (bug in test)",
            ));
        }
        let entry = json!({"author": author, "date": Timestamp::now(), "text": text, "state": state, "tcr": id});
        let existing = match t.comment_id {
            Some(cid) => self.store().comment(cid).await?,
            None => self
                .store()
                .branch_comments(t.branch_id)
                .await?
                .into_iter()
                .find(|c| c.test_case_id == t.test_case_id),
        };
        let comment_id = match existing {
            Some(c) => {
                let mut data = c.data.0.as_array().cloned().unwrap_or_default();
                data.push(entry);
                self.store()
                    .update_comment(c.id, t.flow_id, state, &Value::Array(data))
                    .await?;
                c.id
            }
            None => {
                self.store()
                    .insert_comment(
                        t.test_case_id,
                        t.branch_id,
                        t.flow_id,
                        state,
                        &json!([entry]),
                    )
                    .await?
            }
        };
        let ids = self.store().flow_tcr_ids(t.flow_id, t.test_case_id).await?;
        self.store().set_tcrs_comment(&ids, comment_id).await?;
        if matches!(state, 2 | 3) && t.result != tc_result::PASSED {
            self.store().decrement_relevancy(&ids).await?;
        }
        self.get_result(id).await
    }

    /// `GET /runs/{id}/issues`.
    pub async fn get_run_issues(
        &self,
        run_id: i64,
        filter: &IssueFilter,
        paging: &Paging,
    ) -> Result<List<Issue>> {
        self.viewable_run(run_id).await?;
        let (start, limit) = crate::store::page(paging.start, paging.limit, 1000, 100_000);
        let (rows, total) = self
            .store()
            .query_issues(run_id, filter, start, limit)
            .await?;
        let items = rows
            .into_iter()
            .map(|i| Issue {
                id: i.id,
                issue_type: i.issue_type,
                line: i.line,
                column: i.col,
                path: i.path,
                symbol: i.symbol,
                message: i.message,
                age: i.age,
                job_id: i.job_id,
                job_name: i.job_name,
                agents_group_id: i.agents_group_id,
                agents_group_name: i.agents_group_name,
                agent_id: i.agent_id.unwrap_or(0),
                agent_name: i.agent_name.unwrap_or_default(),
                extra: i
                    .extra
                    .and_then(|e| e.0.as_object().cloned())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(List { items, total })
    }

    /// `GET /flows/{id}/analysis`: test results per stage, group and system.
    pub async fn get_flow_analysis(&self, flow_id: i64) -> Result<Value> {
        let flow = self.store().require_flow(flow_id).await?;
        self.who
            .require_view(self.branch_project(flow.branch_id).await?)?;
        let mut systems = Map::new();
        let mut groups = Map::new();
        let mut stats: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for run in self.store().flow_runs(flow_id).await? {
            stats
                .entry(run.stage_name.clone())
                .or_default()
                .insert("run_id".into(), json!(run.id));
        }
        let mut total = 0;
        for (stage, run_id, gid, gname, sid, sname, result, count) in
            self.store().flow_result_counts(flow_id).await?
        {
            groups.insert(gname.clone(), json!(gid));
            systems.insert(sname.clone(), json!(sid));
            total += count;
            let st = stats.entry(stage).or_default();
            st.insert("run_id".into(), json!(run_id));
            let g = st.entry(gname).or_insert_with(|| json!({}));
            let s = g
                .as_object_mut()
                .map(|g| g.entry(sname).or_insert_with(|| json!({"total": 0})));
            if let Some(Value::Object(s)) = s {
                let t = s.get("total").and_then(Value::as_i64).unwrap_or(0);
                s.insert("total".into(), json!(t + count));
                s.insert(tc_result::name(result).to_string(), json!(count));
            }
        }
        Ok(json!({
            "recs_map": {"systems": systems, "groups": groups},
            "stats": stats,
            "total_tests": total,
        }))
    }

    /// `GET /flows/{id}/history?limit`: summaries of the branch's CI flows up
    /// to this one, oldest first (CI flows only; `limit` ≤ 100).
    pub async fn get_branch_history(
        &self,
        flow_id: i64,
        limit: Option<i64>,
    ) -> Result<List<HistoryItem>> {
        let flow = self.store().require_flow(flow_id).await?;
        self.who
            .require_view(self.branch_project(flow.branch_id).await?)?;
        if flow.kind != flow_kind::CI {
            return Err(Error::bad_request("history is kept for CI flows only"));
        }
        let limit = limit.unwrap_or(10);
        if !(0..=100).contains(&limit) {
            return Err(Error::bad_request(
                "incorrect limit: it must be between 0 and 100",
            ));
        }
        let flows = self
            .store()
            .all_branch_flows(flow.branch_id, flow_kind::CI)
            .await?;
        let upto: Vec<_> = flows
            .into_iter()
            .filter(|f| (f.created, f.id) <= (flow.created, flow.id))
            .collect();
        let skip = upto.len().saturating_sub(limit as usize);
        let mut items = Vec::new();
        for f in upto.into_iter().skip(skip) {
            let mut item = match f.summary.as_ref().map(|s| s.0.clone()) {
                Some(Value::Object(o)) => Value::Object(o),
                _ => json!({"id": f.id, "label": f.label()}),
            };
            item["created"] = json!(Timestamp(f.created));
            item["finished"] = json!(f.finished.map(Timestamp));
            items.push(item);
        }
        Ok(List::all(items))
    }

    /// A public (or report) artifact of a flow (`f`) or run (`r`), read
    /// whole: its bytes and name (see [`Local::open_artifact`] to stream it).
    pub async fn read_artifact(
        &self,
        scope: &str,
        id: i64,
        path: &str,
    ) -> Result<(Vec<u8>, String)> {
        let (blob, name) = self.open_artifact(scope, id, path).await?;
        let bytes = blob.into_bytes().await.map_err(|e| {
            Error::internal(format!(
                "artifact {path} could not be read from {}: {e}",
                self.core.storage()
            ))
        })?;
        Ok((bytes, name))
    }

    /// A public (or report) artifact of a flow (`f`) or run (`r`), opened
    /// for streaming from the blob storage: its blob and name.
    pub async fn open_artifact(&self, scope: &str, id: i64, path: &str) -> Result<(Blob, String)> {
        let path = super::backend::safe_rel_path(path)?;
        let (flow_id, runs) = match scope {
            "f" => {
                let flow = self.store().require_flow(id).await?;
                self.who
                    .require_view(self.branch_project(flow.branch_id).await?)?;
                (id, self.store().flow_artifacts(id).await?)
            }
            "r" => {
                let run = self.viewable_run(id).await?;
                (run.flow_id, self.store().run_artifacts(id).await?)
            }
            other => {
                return Err(Error::bad_request(format!(
                    "incorrect artifact scope '{other}': use f or r"
                )));
            }
        };
        let Some(a) = runs.into_iter().find(|a| a.path == path) else {
            return Err(Error::not_found(format!("artifact {path} not found")));
        };
        if a.section != 1 {
            return Err(Error::not_found(format!(
                "artifact {path} is private: only later stages of its flow get it, with an \
                 `artifacts` step (`action: download`); upload it with `public: True` to share it"
            )));
        }
        let flow = self.store().require_flow(flow_id).await?;
        let place = crate::store::results::JobPlace {
            job_id: 0,
            run_id: a.run_id,
            flow_id,
            flow_kind: flow.kind,
            branch_id: flow.branch_id,
            stage_id: 0,
            project_id: 0,
        };
        let key = super::backend::artifact_key(&place, a.run_id, &a.path);
        let blob = self
            .core
            .read_blob(&key)
            .await?
            .ok_or_else(|| Error::not_found(format!("artifact {path} is gone from storage")))?;
        let name = a.path.rsplit('/').next().unwrap_or(&a.path).to_string();
        Ok((blob, name))
    }

    /// `POST /rq/queue`: queue a background task by name (superadmin):
    /// `analyze_results_history` or `analyze_run` with a run id.
    pub async fn create_rq_entry(&self, func_name: &str, args: &str) -> Result<Value> {
        self.who
            .require_superadmin("only superadmin can queue background tasks")?;
        let func = func_name.rsplit('.').next().unwrap_or(func_name);
        let parsed: Vec<Value> = args
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(a.to_string()))
            })
            .collect();
        match (func, parsed.as_slice()) {
            (
                crate::engine::tasks::ANALYZE_RESULTS_HISTORY | crate::engine::tasks::ANALYZE_RUN,
                [Value::Number(n)],
            ) => {
                let run_id = n.as_i64().unwrap_or(0);
                self.store().require_run(run_id).await?;
                self.engine().enqueue_task(func, json!([run_id])).await?;
                Ok(json!({"func_name": func, "args": parsed}))
            }
            (
                crate::engine::tasks::ANALYZE_RESULTS_HISTORY | crate::engine::tasks::ANALYZE_RUN,
                _,
            ) => Err(Error::bad_request(format!(
                "{func} takes one argument: a run id"
            ))),
            _ => Err(Error::bad_request(format!(
                "unknown background task '{func_name}': use analyze_results_history or analyze_run"
            ))),
        }
    }

    /// `GET /last-rq-jobs`: this server's latest background tasks (superadmin).
    pub async fn get_last_rq_jobs(&self) -> Result<Value> {
        self.who
            .require_superadmin("only superadmin can see background tasks")?;
        let tasks = self.store().recent_tasks(100).await?;
        let items: Vec<Value> = tasks
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "func_name": t.func,
                    "args": t.args.0,
                    "status": t.state,
                    "error": t.error,
                    "created_at": Timestamp(t.created),
                    "started_at": t.started.map(Timestamp),
                    "ended_at": t.ended.map(Timestamp),
                })
            })
            .collect();
        Ok(json!({"items": items, "total": items.len()}))
    }
}
