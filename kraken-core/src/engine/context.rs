//! The `ctx` of workflow schemas and `#{...}` expressions (§4.7 of the
//! original's behaviour): what a stage's code and a step's fields can read.

use serde_json::{Map, Value, json};

use super::Engine;
use crate::error::Result;
use crate::model::{flow_kind, secret_kind, step_status};
use crate::store::branches::BranchRow;
use crate::store::flows::{FlowRow, RunRow};
use crate::store::jobs::JobRow;
use crate::store::stages::StageRow;

/// Where a context is prepared for.
pub(crate) enum CtxFor<'a> {
    /// A branch (stage creation, preview).
    Branch(&'a BranchRow),
    /// A stage (stage update).
    Stage(&'a StageRow, &'a BranchRow),
    /// A run (job creation, labels).
    Run(&'a RunRow, &'a FlowRow, &'a StageRow, &'a BranchRow),
    /// A step of a job (field evaluation at fetch time).
    Step {
        run: &'a RunRow,
        flow: &'a FlowRow,
        stage: &'a StageRow,
        branch: &'a BranchRow,
        job: &'a JobRow,
        step_idx: i64,
    },
}

/// Secret values as the `#{KK_SECRET_*}` arguments of the original.
pub(crate) fn secret_args(secrets: &[crate::store::projects::SecretRow]) -> Map<String, Value> {
    let mut out = Map::new();
    for s in secrets {
        let d = &s.data.0;
        let get = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if s.kind == secret_kind::SIMPLE {
            out.insert(format!("KK_SECRET_SIMPLE_{}", s.name), json!(get("secret")));
        } else {
            out.insert(format!("KK_SECRET_USER_{}", s.name), json!(get("username")));
            out.insert(format!("KK_SECRET_KEY_{}", s.name), json!(get("key")));
        }
    }
    out
}

/// What `stage`, `flow`, `run`, `job` and `step` are where there is none
/// (a schema evaluated when its stage is created or previewed): an empty
/// object, which is falsy and whose fields are empty too, as the missing
/// keys of the original's `addict` ctx. So a dynamic schema such as
/// `for ts in (ctx.flow.data.tests or ["default"])` evaluates before any
/// flow exists instead of failing on `None.data`.
fn absent() -> Value {
    Value::Object(Map::new())
}

impl Engine {
    /// Build the context for `at` with run arguments `args`.
    pub(crate) async fn prepare_context(
        &self,
        at: CtxFor<'_>,
        args: &Map<String, Value>,
    ) -> Result<Value> {
        Ok(self.prepare_context_and_secrets(at, args).await?.0)
    }

    /// [`Engine::prepare_context`], and the project's secrets read for it
    /// (which the `#{KK_SECRET_*}` arguments of the same step need).
    pub(crate) async fn prepare_context_and_secrets(
        &self,
        at: CtxFor<'_>,
        args: &Map<String, Value>,
    ) -> Result<(Value, Vec<crate::store::projects::SecretRow>)> {
        let branch = match &at {
            CtxFor::Branch(b) | CtxFor::Stage(_, b) | CtxFor::Run(_, _, _, b) => *b,
            CtxFor::Step { branch, .. } => *branch,
        };
        let (stage, flow, run) = match &at {
            CtxFor::Branch(_) => (None, None, None),
            CtxFor::Stage(s, _) => (Some(*s), None, None),
            CtxFor::Run(r, f, s, _) => (Some(*s), Some(*f), Some(*r)),
            CtxFor::Step {
                run, flow, stage, ..
            } => (Some(*stage), Some(*flow), Some(*run)),
        };
        // The project, its secrets and the flow's runs with their job
        // counters (the run's among them; none yet for a run being
        // planned) are read at once: three reads, one wait.
        let (project, secrets, flow_view) = tokio::try_join!(
            self.store.require_project(branch.project_id),
            self.store.project_secrets(branch.project_id),
            async {
                match (flow, run) {
                    (Some(f), Some(_)) => Ok(Some(
                        crate::view::flows_json_parts(
                            self.store(),
                            std::slice::from_ref(f),
                            Vec::new(),
                            None,
                            true,
                        )
                        .await?,
                    )),
                    _ => Ok(None),
                }
            }
        )?;

        let mut project_json =
            serde_json::to_value(crate::view::project_alone(&project, &secrets))?;
        if let Some(o) = project_json.as_object_mut() {
            o.remove("branches");
            o.insert("data".into(), project.user_data.0.clone());
        }
        let mut branch_json = serde_json::to_value(branch.to_model())?;
        if let Some(o) = branch_json.as_object_mut() {
            o.insert("data".into(), branch.user_data.0.clone());
            o.insert("data_ci".into(), branch.user_data_ci.0.clone());
            o.insert("data_dev".into(), branch.user_data_dev.0.clone());
        }
        let mut secrets_json = Map::new();
        for s in &secrets {
            let d = &s.data.0;
            let get = |k: &str| d.get(k).cloned().unwrap_or(Value::String(String::new()));
            if s.kind == secret_kind::SIMPLE {
                secrets_json.insert(s.name.clone(), get("secret"));
            } else {
                secrets_json.insert(
                    s.name.clone(),
                    json!({"user": get("username"), "key": get("key"), "password": get("key")}),
                );
            }
        }

        let mut ctx = Map::new();
        ctx.insert("args".into(), Value::Object(args.clone()));
        ctx.insert("project".into(), project_json);
        ctx.insert("branch".into(), branch_json);
        ctx.insert("branch_name".into(), json!(branch.name));
        ctx.insert("env".into(), serde_json::to_value(branch.env())?);
        ctx.insert("secrets".into(), Value::Object(secrets_json));

        ctx.insert(
            "stage".into(),
            match stage {
                Some(s) => serde_json::to_value(s.to_model(false))?,
                None => absent(),
            },
        );
        match (flow, run, flow_view) {
            (Some(f), Some(r), Some((mut flows, counts))) => {
                let mut fj = serde_json::to_value(flows.pop())?;
                if let Some(o) = fj.as_object_mut() {
                    o.remove("stages");
                    o.insert("data".into(), f.user_data.0.clone());
                    o.insert("seq".into(), f.seq.0.clone());
                }
                let rj =
                    serde_json::to_value(crate::view::run_json(r, f, counts.get(&r.id), None))?;
                let is_ci = f.kind == flow_kind::CI;
                ctx.insert("flow".into(), fj);
                ctx.insert("run".into(), rj);
                ctx.insert("is_ci".into(), json!(is_ci));
                ctx.insert("is_dev".into(), json!(!is_ci));
                ctx.insert(
                    "run_label".into(),
                    r.label.clone().map_or(Value::Null, Value::String),
                );
                ctx.insert(
                    "flow_label".into(),
                    f.label.clone().map_or(Value::Null, Value::String),
                );
            }
            _ => {
                ctx.insert("flow".into(), absent());
                ctx.insert("run".into(), absent());
                ctx.insert("is_ci".into(), json!(true));
                ctx.insert("is_dev".into(), json!(false));
                ctx.insert("run_label".into(), Value::Null);
                ctx.insert("flow_label".into(), Value::Null);
            }
        }

        let (mut prev_ok, mut any_error) = (true, false);
        match &at {
            CtxFor::Step { job, step_idx, .. } => {
                let job_json =
                    crate::view::jobs_json(self.store(), std::slice::from_ref(*job), true)
                        .await?
                        .remove(0);
                let step = job_json
                    .steps
                    .iter()
                    .find(|s| s.index == *step_idx)
                    .cloned();
                for s in job_json.steps.iter().filter(|s| s.index < *step_idx) {
                    if s.status == Some(step_status::ERROR) {
                        any_error = true;
                    }
                }
                if *step_idx > 0 {
                    let prev = job_json.steps.iter().find(|s| s.index == step_idx - 1);
                    prev_ok = prev.is_some_and(|p| {
                        matches!(
                            p.status,
                            Some(step_status::DONE) | Some(step_status::SKIPPED)
                        )
                    });
                }
                let mut step_json = serde_json::to_value(step)?;
                if let Some(o) = step_json.as_object_mut() {
                    // The step's own fields are not part of `step` (they are being evaluated).
                    let keep = [
                        "id", "index", "tool", "tool_id", "job_id", "status", "result", "name",
                    ];
                    o.retain(|k, _| keep.contains(&k.as_str()));
                }
                ctx.insert("job".into(), serde_json::to_value(job_json)?);
                ctx.insert("step".into(), step_json);
            }
            _ => {
                ctx.insert("job".into(), absent());
                ctx.insert("step".into(), absent());
            }
        }
        ctx.insert("prev_ok".into(), json!(prev_ok));
        ctx.insert("was_any_error".into(), json!(any_error));
        ctx.insert("was_no_error".into(), json!(!any_error));
        ctx.insert("always".into(), json!(true));
        ctx.insert("never".into(), json!(false));
        Ok((Value::Object(ctx), secrets))
    }
}
