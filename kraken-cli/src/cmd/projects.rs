//! `kraken projects`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::ProjectsCmd;
use crate::out::{Out, opt};
use crate::resolve::project_id;

/// Runs one `kraken projects` verb.
pub async fn run(k: &Kraken, out: &Out, c: &ProjectsCmd) -> anyhow::Result<()> {
    match c {
        ProjectsCmd::List => {
            let l = k.get_projects().await?;
            out.list(&l, &["ID", "NAME", "BRANCHES", "DESCRIPTION"], |p| {
                vec![
                    p.id.to_string(),
                    p.name.clone(),
                    p.branches
                        .iter()
                        .map(|b| b.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    opt(&p.description),
                ]
            })
        }
        ProjectsCmd::Show { project } => {
            let p = k.get_project(project_id(k, project).await?, false).await?;
            out.show(&p, || {
                out.fields(&[
                    ("id", p.id.to_string()),
                    ("name", p.name.clone()),
                    ("description", opt(&p.description)),
                    ("created", out.when(p.created)),
                    (
                        "branches",
                        p.branches
                            .iter()
                            .map(|b| format!("{} ({})", b.name, b.id))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    (
                        "secrets",
                        p.secrets
                            .iter()
                            .map(|s| s.name.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                ])
            })
        }
        ProjectsCmd::Create { name, description } => {
            let p = k
                .create_project(&NewProject {
                    name: Some(name.clone()),
                    description: description.clone(),
                })
                .await?;
            out.value(&p, p.id)
        }
        ProjectsCmd::Update {
            project,
            name,
            description,
        } => {
            let id = project_id(k, project).await?;
            let p = k
                .update_project(
                    id,
                    &ProjectChanges {
                        name: name.clone(),
                        description: description.clone(),
                        webhooks: None,
                    },
                )
                .await?;
            out.value(&p, p.id)
        }
        ProjectsCmd::Delete { project } => {
            k.delete_project(project_id(k, project).await?).await?;
            Ok(())
        }
    }
}
