//! `kraken projects`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::ProjectsCmd;
use crate::out::{Out, opt, usage};
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
        ProjectsCmd::Webhook {
            project,
            provider,
            secret,
            disable,
        } => {
            let id = project_id(k, project).await?;
            if !["github", "gitea", "gitlab", "radicle"].contains(&provider.as_str()) {
                return Err(usage(format!(
                    "unknown webhook provider '{provider}': use github, gitea, gitlab or radicle"
                )));
            }
            if !disable && secret.is_none() && matches!(provider.as_str(), "gitea" | "gitlab") {
                return Err(usage(format!(
                    "{provider} webhooks need a shared secret: add --secret SECRET"
                )));
            }
            let mut hooks = Webhooks::default();
            let on = Some(!*disable);
            match provider.as_str() {
                "github" => (hooks.github_enabled, hooks.github_secret) = (on, secret.clone()),
                "gitea" => (hooks.gitea_enabled, hooks.gitea_secret) = (on, secret.clone()),
                "gitlab" => (hooks.gitlab_enabled, hooks.gitlab_secret) = (on, secret.clone()),
                _ => (hooks.radicle_enabled, hooks.radicle_secret) = (on, secret.clone()),
            }
            let p = k
                .update_project(
                    id,
                    &ProjectChanges {
                        webhooks: Some(hooks),
                        ..Default::default()
                    },
                )
                .await?;
            let path = format!("/webhooks/{}/{provider}", p.id);
            let url = match k.base_url() {
                Some(base) => format!("{}{path}", base.trim_end_matches('/')),
                None => format!("<server URL>{path}"),
            };
            out.show(&p, || {
                if *disable {
                    out.line(format!("{provider} webhooks of project {} are off", p.name))
                } else {
                    let signed = p
                        .webhooks
                        .get(format!("{provider}_secret"))
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|s| !s.is_empty());
                    let note = match (signed, secret.is_some()) {
                        (true, false) => " (signed with the secret set before)",
                        (false, _) => " (unsigned: anyone can start builds, set --secret)",
                        (true, true) => "",
                    };
                    out.line(format!(
                        "{provider} webhooks of project {} are on: deliver them (JSON) to {url}{note}",
                        p.name
                    ))
                }
            })
        }
    }
}
