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
                if s.schema_from_repo_enabled {
                    out.fields(&[
                        ("repository", opt(&s.repo_url)),
                        ("repo branch", opt(&s.repo_branch)),
                        ("schema file", opt(&s.schema_file)),
                        ("repo version", opt(&s.repo_version)),
                        (
                            "repo state",
                            match s.repo_state {
                                0 => "ok",
                                1 => "reading",
                                _ => "error",
                            }
                            .to_string(),
                        ),
                        ("repo error", opt(&s.repo_error)),
                        (
                            "last read",
                            s.last_repo_refresh.map(|t| out.when(t)).unwrap_or_default(),
                        ),
                    ])?;
                } else if let Some(e) = &s.repo_error {
                    out.fields(&[("repo error", e.clone())])?;
                }
                out.line("schema:")?;
                out.line(serde_json::to_string_pretty(
                    s.schema.as_ref().unwrap_or(&Value::Null),
                )?)
            })
        }
        StagesCmd::Create {
            branch,
            name,
            file,
            repo,
        } => {
            let code = match file {
                Some(f) => Some(read_file(f)?),
                None => None,
            };
            let mut input = StageInput {
                name: Some(name.clone()),
                schema_code: code,
                ..Default::default()
            };
            repo_fields(&mut input, repo);
            let s = k.create_stage(branch_id(k, branch).await?, &input).await?;
            repo_warning(&s);
            out.value(&s, s.id)
        }
        StagesCmd::Update {
            stage,
            file,
            name,
            enable,
            disable,
            repo,
            no_repo,
        } => {
            let id = stage_id(k, stage).await?;
            let current = k.get_stage(id).await?;
            let mut input = StageInput {
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
            repo_fields(&mut input, repo);
            if *no_repo {
                input.schema_from_repo_enabled = Some(false);
            }
            let s = k.update_stage(id, &input).await?;
            repo_warning(&s);
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

/// The repository fields of `--from-repo` and its companions.
fn repo_fields(input: &mut StageInput, repo: &crate::args::RepoSchemaArgs) {
    if let Some(url) = &repo.from_repo {
        input.schema_from_repo_enabled = Some(true);
        input.repo_url = Some(url.clone());
        input.schema_file = repo.schema_file.clone();
        input.repo_branch = repo.repo_branch.clone();
        input.repo_access_token = repo.repo_token.clone();
        input.repo_refresh_interval = repo.refresh.clone();
    }
}

/// Say on stderr when a schema could not be read from its repository.
fn repo_warning(s: &Stage) {
    if s.schema_from_repo_enabled
        && let Some(e) = &s.repo_error
    {
        eprintln!("kraken: the schema could not be read from the repository: {e}");
    }
}
