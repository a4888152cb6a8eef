//! `kraken groups`: agents groups.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::GroupsCmd;
use crate::out::{Out, opt};
use crate::resolve::{group_id, project_id};

/// Runs one `kraken groups` verb.
pub async fn run(k: &Kraken, out: &Out, c: &GroupsCmd) -> anyhow::Result<()> {
    match c {
        GroupsCmd::List => {
            let l = k.get_groups(&Paging::default()).await?;
            if out.json {
                return out.json(&l);
            }
            out.table(
                &["ID", "NAME", "PROJECT", "AGENTS"],
                l.items
                    .iter()
                    .map(|g| {
                        vec![
                            g.id.to_string(),
                            g.name.clone(),
                            opt(&g.project_name),
                            g.agents_count.to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        GroupsCmd::Create { name, project } => {
            let pid = match project {
                Some(p) => Some(project_id(k, p).await?),
                None => None,
            };
            let g = k
                .create_group(&GroupInput {
                    name: Some(name.clone()),
                    project_id: pid,
                    deployment: None,
                })
                .await?;
            if out.json {
                out.json(&g)
            } else {
                out.line(g.id)
            }
        }
        GroupsCmd::Update { group, name } => {
            let g = k
                .update_group(
                    group_id(k, group).await?,
                    &GroupInput {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                )
                .await?;
            if out.json { out.json(&g) } else { Ok(()) }
        }
        GroupsCmd::Delete { group } => {
            k.delete_group(group_id(k, group).await?).await?;
            Ok(())
        }
    }
}
