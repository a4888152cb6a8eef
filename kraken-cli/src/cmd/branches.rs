//! `kraken branches`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::BranchesCmd;
use crate::out::{Out, opt};
use crate::resolve::{branch_id, project_id};

fn branch_row(b: &Branch) -> Vec<String> {
    vec![
        b.id.to_string(),
        b.name.clone(),
        opt(&b.branch_name),
        b.project_name.clone(),
    ]
}

/// Runs one `kraken branches` verb.
pub async fn run(k: &Kraken, out: &Out, c: &BranchesCmd) -> anyhow::Result<()> {
    match c {
        BranchesCmd::List { project } => {
            let p = k.get_project(project_id(k, project).await?, false).await?;
            out.list(
                &List::all(p.branches),
                &["ID", "NAME", "GIT BRANCH", "PROJECT"],
                branch_row,
            )
        }
        BranchesCmd::Show { branch } => {
            let b = k.get_branch(branch_id(k, branch).await?).await?;
            out.show(&b, || {
                out.fields(&[
                    ("id", b.id.to_string()),
                    ("name", b.name.clone()),
                    ("git branch", opt(&b.branch_name)),
                    ("project", format!("{} ({})", b.project_name, b.project_id)),
                    (
                        "env",
                        b.env_vars
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    (
                        "stages",
                        b.stages
                            .iter()
                            .flatten()
                            .map(|s| format!("{} ({})", s.name, s.id))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                ])
            })
        }
        BranchesCmd::Create {
            project,
            name,
            branch_name,
            fork,
            continue_numbering,
        } => {
            let pid = project_id(k, project).await?;
            let source = match fork {
                Some(f) => Some(branch_id(k, f).await?),
                None => None,
            };
            let b = k
                .create_branch(
                    pid,
                    &NewBranch {
                        name: Some(name.clone()),
                        branch_name: branch_name.clone(),
                        id: source,
                        forking_model: continue_numbering.then(|| "model-1".to_string()),
                    },
                )
                .await?;
            out.value(&b, b.id)
        }
        BranchesCmd::Update {
            branch,
            name,
            branch_name,
        } => {
            let b = k
                .update_branch(
                    branch_id(k, branch).await?,
                    &BranchChanges {
                        name: name.clone(),
                        branch_name: branch_name.clone(),
                    },
                )
                .await?;
            out.value(&b, b.id)
        }
        BranchesCmd::Delete { branch } => {
            k.delete_branch(branch_id(k, branch).await?).await?;
            Ok(())
        }
        BranchesCmd::Sequences { branch } => {
            let l = k.get_branch_sequences(branch_id(k, branch).await?).await?;
            let kind = |x: i64| {
                ["flow", "ci flow", "dev flow", "run", "ci run", "dev run"]
                    .get(x as usize)
                    .copied()
                    .unwrap_or("?")
            };
            out.list(&l, &["ID", "KIND", "STAGE", "VALUE"], |s| {
                vec![
                    s.id.to_string(),
                    kind(s.kind).into(),
                    opt(&s.stage_name),
                    s.value.to_string(),
                ]
            })
        }
        BranchesCmd::SetEnv {
            branch,
            name,
            value,
        } => {
            k.create_branch_env_var(
                branch_id(k, branch).await?,
                &EnvVar {
                    name: Some(name.clone()),
                    value: Some(value.clone()),
                },
            )
            .await?;
            Ok(())
        }
        BranchesCmd::UnsetEnv { branch, name } => {
            k.delete_branch_env_var(branch_id(k, branch).await?, name)
                .await?;
            Ok(())
        }
        BranchesCmd::Stats { branch } => {
            let s = k.get_branch_stats(branch_id(k, branch).await?).await?;
            let row = |kind: &str, x: &BranchStatsByKind| {
                vec![
                    kind.to_string(),
                    x.flows_total.to_string(),
                    x.flows_last_month.to_string(),
                    x.flows_last_week.to_string(),
                    opt(&x.avg_duration_last_month),
                    opt(&x.avg_duration_last_week),
                ]
            };
            out.show(&s, || {
                out.table(
                    &[
                        "KIND",
                        "FLOWS",
                        "LAST MONTH",
                        "LAST WEEK",
                        "AVG MONTH",
                        "AVG WEEK",
                    ],
                    vec![row("ci", &s.ci), row("dev", &s.dev)],
                )
            })
        }
    }
}
