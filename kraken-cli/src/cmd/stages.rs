//! `kraken stages`.

use kraken_core::Kraken;
use kraken_core::model::*;
use serde_json::Value;

use crate::args::StagesCmd;
use crate::cmd::read_file;
use crate::out::{Out, opt, usage};
use crate::resolve::{branch_id, stage_id};

/// Runs one `kraken stages` verb.
pub async fn run(k: &Kraken, out: &Out, c: &StagesCmd) -> anyhow::Result<()> {
    match c {
        StagesCmd::List { branch } => {
            let b = k.get_branch(branch_id(k, branch).await?).await?;
            let stages = List::all(b.stages.unwrap_or_default());
            out.list(&stages, &["ID", "NAME", "PARENT", "ENABLED", "JOBS"], |s| {
                let sc = s.schema.clone().unwrap_or(Value::Null);
                vec![
                    s.id.to_string(),
                    s.name.clone(),
                    sc.get("parent")
                        .and_then(Value::as_str)
                        .unwrap_or("root")
                        .to_string(),
                    s.enabled.to_string(),
                    sc.get("jobs")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                        .to_string(),
                ]
            })
        }
        StagesCmd::Show { stage } => {
            let s = k.get_stage(stage_id(k, stage).await?).await?;
            out.show(&s, || {
                out.fields(&[
                    ("id", s.id.to_string()),
                    ("name", s.name.clone()),
                    ("enabled", s.enabled.to_string()),
                ])?;
                out.line("schema:")?;
                out.line(serde_json::to_string_pretty(
                    s.schema.as_ref().unwrap_or(&Value::Null),
                )?)
            })
        }
        StagesCmd::Create { branch, name, file } => {
            let code = match file {
                Some(f) => Some(read_file(f)?),
                None => None,
            };
            let s = k
                .create_stage(
                    branch_id(k, branch).await?,
                    &StageInput {
                        name: Some(name.clone()),
                        schema_code: code,
                        ..Default::default()
                    },
                )
                .await?;
            out.value(&s, s.id)
        }
        StagesCmd::Update {
            stage,
            file,
            name,
            enable,
            disable,
        } => {
            let id = stage_id(k, stage).await?;
            let current = k.get_stage(id).await?;
            let input = StageInput {
                name: Some(name.clone().unwrap_or(current.name)),
                schema_code: match file {
                    Some(f) => Some(read_file(f)?),
                    None => None,
                },
                enabled: if *enable {
                    Some(true)
                } else if *disable {
                    Some(false)
                } else {
                    None
                },
                ..Default::default()
            };
            let s = k.update_stage(id, &input).await?;
            out.value(&s, s.id)
        }
        StagesCmd::Delete { stage } => {
            k.delete_stage(stage_id(k, stage).await?).await?;
            Ok(())
        }
        StagesCmd::Preview { stage, file } => {
            let p = k
                .get_stage_schema_as_json(
                    stage_id(k, stage).await?,
                    &StageSchemaCode {
                        schema_code: Some(read_file(file)?),
                    },
                )
                .await?;
            out.show(&p, || match (&p.schema, &p.error) {
                (Some(s), _) => out.line(s),
                (None, Some(e)) => Err(usage(e.clone())),
                (None, None) => Ok(()),
            })
        }
        StagesCmd::Schedule { stage } => {
            let s = k.get_stage_schedule(stage_id(k, stage).await?).await?;
            out.show(&s, || {
                out.table(
                    &["TRIGGER", "NEXT RUN"],
                    s.schedules
                        .iter()
                        .map(|x| vec![x.name.clone(), opt(&x.next_run_time)])
                        .collect(),
                )
            })
        }
    }
}
