//! Planner: flows start runs, runs create jobs (§5.1, §5.2 of the original).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Engine;
use super::context::{CtxFor, secret_args};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{completion, flow_kind, run_state, seq_kind};
use crate::schema;
use crate::store::branches::BranchRow;
use crate::store::flows::{FlowRow, NewFlowRow, NewFlowWithRuns, NewRunRow, RunRow};
use crate::store::jobs::{NewJobRow, NewStepRow, PlannedJob};
use crate::store::now_ms;

use super::recovery::PLAN_LEASE_MS;
use crate::store::stages::StageRow;

/// Stringify argument values the way they reach `#{NAME}`: strings stay,
/// other scalars become their JSON text.
pub fn string_args(args: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in args {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => {
                if *b {
                    "True".into()
                } else {
                    "False".into()
                }
            }
            other => {
                return Err(Error::bad_request(format!(
                    "argument '{k}' must be a string, a number or a boolean, got {other}"
                )));
            }
        };
        out.insert(k.clone(), Value::String(s));
    }
    Ok(out)
}

/// The stages of a branch that a new flow starts (see [`starts_with_flow`]).
pub(crate) fn flow_roots(stages: &[StageRow]) -> Vec<&StageRow> {
    stages.iter().filter(|s| starts_with_flow(s)).collect()
}

/// Whether a stage starts with a flow: a root stage whose triggers do not say `parent: false`.
fn starts_with_flow(stage: &StageRow) -> bool {
    stage.parent() == "root"
        && stage.enabled
        && stage
            .triggers()
            .and_then(|t| t.get("parent"))
            .and_then(Value::as_bool)
            != Some(false)
}

/// A started run's arguments, sequences and state: the stage's default
/// parameters overridden by the flow's arguments and then the run's own,
/// with its sequence numbers (`seq`: the shared one and the flow kind's);
/// a stage triggered by hand starts manual.
fn started_run_values(
    stage: &StageRow,
    flow_args: &Value,
    own_args: &Map<String, Value>,
    seq: [i64; 2],
) -> (Map<String, Value>, Value, i64) {
    let mut run_args = schema::stage_default_args(&stage.schema.0);
    if let Some(fa) = flow_args.as_object() {
        for (k, v) in fa {
            run_args.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in own_args {
        run_args.insert(k.clone(), v.clone());
    }
    let [shared, own] = seq;
    run_args.insert("KK_RUN_SEQ".into(), json!(shared.to_string()));
    run_args.insert("KK_CI_DEV_RUN_SEQ".into(), json!(own.to_string()));
    let manual = stage
        .triggers()
        .and_then(|t| t.get("manual"))
        .and_then(Value::as_bool)
        == Some(true);
    let state = if manual {
        run_state::MANUAL
    } else {
        run_state::IN_PROGRESS
    };
    (run_args, json!({"shared": shared, "own": own}), state)
}

impl Engine {
    /// Create a flow of `kind` on a branch and start its root stages (or only
    /// `only_stage`, for timed triggers), with the repository changes that
    /// triggered it (`repo_data_id`, a `repo_changes` record) attached to the
    /// flow and its runs. Returns the flow as it is after its runs started
    /// (with the label one of them gave it). Internal: no permission check.
    pub async fn start_flow(
        &self,
        branch: &BranchRow,
        kind: i64,
        args: &Map<String, Value>,
        reason: &str,
        only_stage: Option<&StageRow>,
        repo_data_id: Option<i64>,
    ) -> Result<FlowRow> {
        let all;
        let roots = match only_stage {
            Some(s) => vec![s],
            None => {
                all = self.store().branch_stages(branch.id).await?;
                flow_roots(&all)
            }
        };
        self.start_flow_with(branch, kind, args, reason, &roots, repo_data_id)
            .await
    }

    /// [`Engine::start_flow`] with the stages to start known (`stages`, for
    /// example the [`flow_roots`] of the branch's stages read by the caller).
    pub async fn start_flow_with(
        &self,
        branch: &BranchRow,
        kind: i64,
        args: &Map<String, Value>,
        reason: &str,
        stages: &[&StageRow],
        repo_data_id: Option<i64>,
    ) -> Result<FlowRow> {
        let mut per_stage: HashMap<String, Map<String, Value>> = HashMap::new();
        let mut common = Map::new();
        for (k, v) in args {
            let Some(obj) = v.as_object() else {
                return Err(Error::bad_request(format!(
                    "args.{k} must be an object of arguments (args: {{\"Common\": {{...}}, \"<stage name>\": {{...}}}})"
                )));
            };
            let obj = string_args(obj)?;
            if k == "Common" {
                common = obj;
            } else {
                per_stage.insert(k.clone(), obj);
            }
        }
        let branch_name = match common.remove("BRANCH") {
            Some(Value::String(b)) if !b.is_empty() => b,
            _ => branch.branch_name.clone().unwrap_or_default(),
        };
        // The flow's sequences and those of each run it starts, at once.
        let (own_kind, run_kind) = if kind == flow_kind::DEV {
            (seq_kind::DEV_FLOW, seq_kind::DEV_RUN)
        } else {
            (seq_kind::CI_FLOW, seq_kind::CI_RUN)
        };
        let mut slots = vec![(None, seq_kind::FLOW), (None, own_kind)];
        for stage in stages {
            slots.push((Some(stage.id), seq_kind::RUN));
            slots.push((Some(stage.id), run_kind));
        }
        let lease = now_ms() + PLAN_LEASE_MS;
        // The sequences are drawn in the flow's transaction: the flow, its
        // runs and their numbers are stored together or not at all.
        let build = |seqs: &[i64]| {
            crate::fault::point("before-flow-insert");
            let (shared, own) = (seqs[0], seqs[1]);
            let mut flow_args = common;
            flow_args.insert("KK_FLOW_SEQ".into(), json!(shared.to_string()));
            flow_args.insert("KK_CI_DEV_FLOW_SEQ".into(), json!(own.to_string()));
            flow_args.insert(
                "KK_FLOW_TYPE".into(),
                json!(if kind == flow_kind::DEV { "DEV" } else { "CI" }),
            );
            let kk_branch = if branch_name.is_empty() {
                "master".to_string()
            } else {
                branch_name.clone()
            };
            flow_args.insert("KK_BRANCH".into(), json!(kk_branch));
            flow_args.insert("branch".into(), json!(kk_branch));
            let flow_args = Value::Object(flow_args);
            // Each run started (its arguments, sequences and state written
            // once) and held for planning.
            let runs: Vec<NewRunRow> = stages
                .iter()
                .zip(seqs[2..].chunks(2))
                .map(|(stage, seq)| {
                    let own_args = per_stage.remove(&stage.name).unwrap_or_default();
                    let (args, seq, state) =
                        started_run_values(stage, &flow_args, &own_args, [seq[0], seq[1]]);
                    NewRunRow {
                        stage_id: stage.id,
                        flow_id: 0,
                        args: Value::Object(args),
                        reason: json!({"reason": reason}),
                        repo_data_id,
                        state,
                        // A manual run waits for a user, not for a planner.
                        planning_until: (state != run_state::MANUAL).then_some(lease),
                        seq,
                    }
                })
                .collect();
            let ci_incomplete =
                kind == flow_kind::CI && runs.iter().any(|r| r.state != run_state::MANUAL);
            Ok(NewFlowWithRuns {
                flow: NewFlowRow {
                    branch_id: branch.id,
                    kind,
                    branch_name: Some(branch_name),
                    args: flow_args,
                    seq: json!({"shared": shared, "own": own}),
                    trigger_data_id: repo_data_id,
                },
                runs,
                ci_incomplete,
            })
        };
        let (flow, runs) = self
            .store()
            .insert_flow_with_runs(branch.id, &slots, build)
            .await?;
        crate::fault::point("after-flow-insert");
        self.events.publish(Event::Flow {
            flow_id: flow.id,
            branch_id: branch.id,
        });
        tracing::info!(
            flow = flow.id,
            branch = branch.id,
            kind = crate::model::flow_kind::name(kind),
            reason,
            "flow created"
        );
        let mut current = flow;
        for (stage, mut run) in stages.iter().zip(runs) {
            let (run_label, relabeled) = self.label_run(&run, stage, &current, branch).await?;
            if run_label.is_some() {
                self.store
                    .start_run_row(
                        run.id,
                        &run.args.0,
                        &run.seq.0,
                        run_label.as_deref(),
                        run.state,
                    )
                    .await?;
                run.label = run_label;
            }
            if let Some(relabeled) = relabeled {
                current = relabeled;
            }
            // The branch's newest incomplete CI flow moved with the insert.
            self.go_on_with_started_run(run, stage, &current, branch, lease, false)
                .await?;
        }
        if stages.is_empty() {
            // Nothing to run: the flow is done at once.
            self.check_flow_completion(&current).await?;
            return self.store.require_flow(current.id).await;
        }
        Ok(current)
    }

    /// Start a stage in a flow: a new run, or a replay of the existing one;
    /// `repo_data_id` is the repository changes that triggered it.
    pub(crate) async fn start_run(
        &self,
        stage: &StageRow,
        flow: &FlowRow,
        reason: Value,
        args: &Map<String, Value>,
        repo_data_id: Option<i64>,
    ) -> Result<RunRow> {
        if let Some(run) = self.store.run_of_stage_in_flow(flow.id, stage.id).await? {
            self.restart_run(&run, true).await?;
            return self.store.require_run(run.id).await;
        }
        let lease = now_ms() + PLAN_LEASE_MS;
        let run = self
            .store()
            .insert_run(&NewRunRow {
                stage_id: stage.id,
                flow_id: flow.id,
                args: Value::Object(args.clone()),
                reason,
                repo_data_id,
                state: run_state::CREATING,
                planning_until: Some(lease),
                seq: json!({}),
            })
            .await?;
        self.complete_starting_run(run, stage, flow, lease).await
    }

    /// Start an existing run again: replay its jobs (`replay`), or start a
    /// manual run. The run is held for planning before its state changes,
    /// so the recovery never takes it for a finished one.
    pub async fn restart_run(&self, run: &RunRow, replay: bool) -> Result<()> {
        let lease = now_ms() + PLAN_LEASE_MS;
        self.store.set_planning_lease(run.id, Some(lease)).await?;
        let state = if replay {
            run_state::REPLAY
        } else {
            run_state::IN_PROGRESS
        };
        self.store.set_run_state(run.id, state).await?;
        self.store.reopen_flow(run.flow_id).await?;
        let run = self.store.require_run(run.id).await?;
        // A new start of the run: commit statuses go back to pending.
        self.queue_notifications(run.id, crate::notify::Event::Start, lease)
            .await;
        self.trigger_jobs_leased(&run, replay, lease).await
    }

    /// Give a fresh run its arguments, sequences and labels, then start its jobs
    /// (or leave it waiting when its stage is manual).
    pub(crate) async fn complete_starting_run(
        &self,
        run: RunRow,
        stage: &StageRow,
        flow: &FlowRow,
        lease: i64,
    ) -> Result<RunRow> {
        let branch = self
            .store()
            .branch_any(flow.branch_id)
            .await?
            .ok_or_else(|| Error::not_found("Branch not found"))?;
        let id = run.id;
        self.start_created_run(run, stage, flow, &branch, lease)
            .await?;
        self.store.require_run(id).await
    }

    /// [`Engine::complete_starting_run`] with the run's branch known. The run
    /// row is brought up to date in memory, so it is written once (arguments,
    /// sequences, label and state together) and never read back. Returns the
    /// flow read again when this run gave it its label.
    async fn start_created_run(
        &self,
        mut run: RunRow,
        stage: &StageRow,
        flow: &FlowRow,
        branch: &BranchRow,
        lease: i64,
    ) -> Result<Option<FlowRow>> {
        let own_kind = if flow.kind == flow_kind::DEV {
            seq_kind::DEV_RUN
        } else {
            seq_kind::CI_RUN
        };
        let seq = self
            .store()
            .next_sequences(branch.id, Some(stage.id), [seq_kind::RUN, own_kind])
            .await?;
        let own_args = run.args.0.as_object().cloned().unwrap_or_default();
        let (run_args, seq, state) = started_run_values(stage, &flow.args.0, &own_args, seq);
        run.args = sqlx::types::Json(Value::Object(run_args));
        run.seq = sqlx::types::Json(seq);
        run.state = state;
        let (run_label, relabeled) = self.label_run(&run, stage, flow, branch).await?;
        self.store
            .start_run_row(run.id, &run.args.0, &run.seq.0, run_label.as_deref(), state)
            .await?;
        run.label = run_label;
        self.go_on_with_started_run(
            run,
            stage,
            relabeled.as_ref().unwrap_or(flow),
            branch,
            lease,
            true,
        )
        .await?;
        Ok(relabeled)
    }

    /// A started run's labels, rendered with its context (sequences known):
    /// its own, and the flow's when the flow has none yet (then the flow is
    /// returned with it). A stage without labels needs no context.
    async fn label_run(
        &self,
        run: &RunRow,
        stage: &StageRow,
        flow: &FlowRow,
        branch: &BranchRow,
    ) -> Result<(Option<String>, Option<FlowRow>)> {
        let label_of = |key: &str| stage.schema.0.get(key).and_then(Value::as_str);
        if label_of("flow_label").is_none() && label_of("run_label").is_none() {
            return Ok((None, None));
        }
        let run_args = run.args.0.as_object().cloned().unwrap_or_default();
        let (ctx, secrets) = self
            .prepare_context_and_secrets(CtxFor::Run(run, flow, stage, branch), &run_args)
            .await?;
        let mut label_args = run_args;
        label_args.extend(secret_args(&secrets));
        // The masked text: a label is shown to every viewer.
        let render = |key: &str| label_of(key).map(|t| schema::render(t, &label_args, &ctx).1);
        let mut relabeled = None;
        if let Some(fl) = render("flow_label") {
            self.store.set_flow_label_if_unset(flow.id, &fl).await?;
            // The jobs' context shows the flow with its label.
            relabeled = Some(self.store.require_flow(flow.id).await?);
        }
        Ok((render("run_label"), relabeled))
    }

    /// What follows a run's start: a manual run waits (its planning lease,
    /// if any, let go); any other has its commit statuses queued, moves its
    /// branch's newest incomplete CI flow (`advance_ci`) and is planned.
    async fn go_on_with_started_run(
        &self,
        run: RunRow,
        stage: &StageRow,
        flow: &FlowRow,
        branch: &BranchRow,
        lease: i64,
        advance_ci: bool,
    ) -> Result<()> {
        self.events.publish(Event::Run {
            run_id: run.id,
            flow_id: flow.id,
        });
        if run.state == run_state::MANUAL {
            if run.planning_until.is_some() {
                self.store
                    .move_planning_lease(run.id, Some(lease), None)
                    .await?;
            }
            return Ok(());
        }
        // Commit statuses become pending (queued, sent by the notification
        // worker); a stage without a `notification` section has none.
        if super::notify::has_notifications(stage) {
            self.queue_notifications(run.id, crate::notify::Event::Start, 0)
                .await;
        }
        if advance_ci && flow.kind == flow_kind::CI {
            self.store
                .advance_branch_ci_incomplete(branch.id, flow.id)
                .await?;
        }
        self.plan_jobs_leased(&run, stage, flow, branch, false, lease)
            .await
    }

    /// Create the jobs of a run from its stage's schema, re-evaluated with the
    /// run's context. A failure completes the run with a note.
    /// (The run's planning lease is `lease`: the jobs are stored only while it holds.)
    pub(crate) async fn trigger_jobs_leased(
        &self,
        run: &RunRow,
        replay: bool,
        lease: i64,
    ) -> Result<()> {
        let known = async {
            let stage = self
                .store()
                .stage_any(run.stage_id)
                .await?
                .ok_or_else(|| Error::not_found("Stage not found"))?;
            let flow = self.store.require_flow(run.flow_id).await?;
            let branch = self
                .store()
                .branch_any(flow.branch_id)
                .await?
                .ok_or_else(|| Error::not_found("Branch not found"))?;
            Ok::<_, Error>((stage, flow, branch))
        }
        .await;
        let outcome = match known {
            Ok((stage, flow, branch)) => {
                self.try_trigger_jobs(run, &stage, &flow, &branch, replay, lease)
                    .await
            }
            Err(e) => Err(e),
        };
        self.after_planning(run, outcome).await
    }

    /// [`Engine::trigger_jobs_leased`] with the run's stage, flow and branch known.
    async fn plan_jobs_leased(
        &self,
        run: &RunRow,
        stage: &StageRow,
        flow: &FlowRow,
        branch: &BranchRow,
        replay: bool,
        lease: i64,
    ) -> Result<()> {
        let outcome = self
            .try_trigger_jobs(run, stage, flow, branch, replay, lease)
            .await;
        self.after_planning(run, outcome).await
    }

    async fn after_planning(&self, run: &RunRow, outcome: Result<()>) -> Result<()> {
        if let Err(e) = outcome {
            let note = format!("Triggering run's jobs failed: {e}");
            tracing::warn!(run = run.id, %note);
            self.complete_run(run.id, Some(&note)).await?;
        }
        Ok(())
    }

    /// `flow` is the run's flow as it is now (with a label set just now).
    async fn try_trigger_jobs(
        &self,
        run: &RunRow,
        stage: &StageRow,
        flow: &FlowRow,
        branch: &BranchRow,
        replay: bool,
        lease: i64,
    ) -> Result<()> {
        let args = run.args.0.as_object().cloned().unwrap_or_default();
        // The tools' fingerprint is checked while the context is read.
        let ((ctx, secrets), tools) = tokio::try_join!(
            self.prepare_context_and_secrets(CtxFor::Run(run, flow, stage, branch), &args),
            self.tools()
        )?;

        // Renew the planning lease unless most of it is left (taken just
        // now, as by a flow's creation): the evaluation below is bounded
        // (2 s), and the jobs are stored only while the lease holds.
        let lease = if lease - now_ms() >= PLAN_LEASE_MS / 2 {
            lease
        } else {
            let renewed = now_ms() + PLAN_LEASE_MS;
            if !self
                .store
                .move_planning_lease(run.id, Some(lease), Some(renewed))
                .await?
            {
                tracing::info!(run = run.id, "run planned by another server meanwhile");
                return Ok(());
            }
            renewed
        };
        // Re-evaluate the schema for this run and keep it in the stage.
        let code = stage.schema_code.clone().unwrap_or_default();
        let (_, evaluated) = self
            .prepare_stage_schema_with(
                &tools,
                &code,
                ctx.clone(),
                super::stage_schema::Prepare::Run,
            )
            .await?;
        if evaluated != stage.schema.0 {
            self.store.set_stage_schema(stage.id, &evaluated).await?;
        }

        let mut arg_values = args.clone();
        arg_values.extend(secret_args(&secrets));

        let mut old_jobs: HashMap<String, Vec<i64>> = HashMap::new();
        if replay {
            for j in self.store.run_jobs(run.id, false).await? {
                old_jobs
                    .entry(format!("{}-{}", j.name, j.agents_group_id))
                    .or_default()
                    .push(j.id);
            }
        }
        let timeouts = stage
            .timeouts
            .as_ref()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| json!({}));
        let mut created = 0usize;
        let mut erred = 0usize;
        let mut planned: Vec<PlannedJob> = Vec::new();
        let jobs = evaluated
            .get("jobs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for job in &jobs {
            let job_name = job
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            // Resolve tools of the steps.
            let steps = job
                .get("steps")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut step_tools = Vec::new();
            let mut missing_tool = None;
            for step in &steps {
                let tool_ref = step.get("tool").and_then(Value::as_str).unwrap_or("");
                let tool = tools.tool_by_ref(tool_ref);
                if tool.is_none() {
                    missing_tool.get_or_insert_with(|| tool_ref.to_string());
                }
                step_tools.push(tool);
            }
            let envs = job
                .get("environments")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for env in &envs {
                let group_name = env
                    .get("agents_group")
                    .and_then(Value::as_str)
                    .map(|g| schema::render(g, &arg_values, &ctx).0)
                    .unwrap_or_default();
                let executor = env
                    .get("executor")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "local".to_string());
                // Validated by the schema (a plain name, docker jobs only).
                let network = env
                    .get("network")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let systems: Vec<String> = match env.get("system") {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => vec!["any".to_string()],
                };
                let group = self
                    .store()
                    .group_by_name(&group_name, Some(branch.project_id))
                    .await?;
                for system_name in systems {
                    let system_name = schema::render(&system_name, &arg_values, &ctx).0;
                    let system = self.store.ensure_system(&system_name, &executor).await?;
                    let (group_id, completed_with) = match &group {
                        None => {
                            let missing = match self.store.group_by_name("missing", None).await? {
                                Some(g) => g,
                                None => self.store.create_group("missing", None, None).await?,
                            };
                            (
                                missing.id,
                                Some((
                                    completion::MISSING_AGENTS_GROUP,
                                    format!("cannot find agents group '{group_name}' in database"),
                                )),
                            )
                        }
                        Some(g) => {
                            if let Some(t) = &missing_tool {
                                (
                                    g.id,
                                    Some((
                                        completion::MISSING_TOOL_IN_DB,
                                        format!("cannot find tool '{t}' in database"),
                                    )),
                                )
                            } else if g.deployment_method() == 0 && g.usable_agents == 0 {
                                (
                                    g.id,
                                    Some((
                                        completion::NO_AGENTS,
                                        format!(
                                            "there are no agents in group '{}' - add some agents",
                                            g.name
                                        ),
                                    )),
                                )
                            } else {
                                (g.id, None)
                            }
                        }
                    };
                    let key = format!("{job_name}-{}-{group_id}", system.id);
                    let timeout = timeouts
                        .get(&key)
                        .and_then(Value::as_i64)
                        .unwrap_or_else(|| {
                            job.get("timeout")
                                .and_then(Value::as_i64)
                                .unwrap_or(300)
                                .max(60)
                        });
                    let erred_now = completed_with.is_some();
                    let mut new_steps = Vec::new();
                    created += 1;
                    if erred_now {
                        erred += 1;
                    } else {
                        for (idx, (step, tool)) in steps.iter().zip(&step_tools).enumerate() {
                            let Some(tool) = tool else { continue };
                            let mut raw = step.as_object().cloned().unwrap_or_default();
                            let when =
                                schema::normalize_when(raw.get("when").and_then(Value::as_str));
                            raw.insert("when".into(), json!(when));
                            let mut fields = raw.clone();
                            fields.remove("tool");
                            let (value, masked) =
                                schema::substitute(&Value::Object(fields), &arg_values, &ctx);
                            new_steps.push(NewStepRow {
                                idx: idx as i64,
                                tool_id: tool.id,
                                fields: value,
                                masked,
                                raw: Value::Object(raw),
                            });
                        }
                    }
                    planned.push(PlannedJob {
                        job: NewJobRow {
                            run_id: run.id,
                            name: job_name.clone(),
                            agents_group_id: group_id,
                            system_id: system.id,
                            timeout,
                            completed_with,
                            network: network.clone(),
                        },
                        steps: new_steps,
                        covers: old_jobs
                            .remove(&format!("{job_name}-{group_id}"))
                            .unwrap_or_default(),
                    });
                }
            }
        }
        crate::fault::point("before-jobs-insert");
        // All jobs at once, with the run marked started, or none.
        let Some(job_ids) = self
            .store
            .insert_planned_jobs(run.id, flow.id, lease, &planned)
            .await?
        else {
            tracing::info!(run = run.id, "run planned by another server meanwhile");
            return Ok(());
        };
        for job_id in job_ids {
            self.events.publish(Event::Job {
                job_id,
                run_id: run.id,
            });
        }
        self.events.publish(Event::Run {
            run_id: run.id,
            flow_id: flow.id,
        });
        tracing::info!(run = run.id, flow = flow.id, stage = %stage.name, jobs = created, "run started");
        if created == erred {
            // No job can run: the run is over (completed off the caller's path).
            self.complete_run_soon(run.id);
        } else {
            self.events.wake_scheduler();
        }
        Ok(())
    }
}
