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
            out.list(&l, &["ID", "NAME", "PROJECT", "AGENTS"], |g| {
                vec![
                    g.id.to_string(),
                    g.name.clone(),
                    opt(&g.project_name),
                    g.agents_count.to_string(),
                ]
            })
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
            out.value(&g, g.id)
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
            out.json_only(&g)
        }
        GroupsCmd::Delete { group } => {
            k.delete_group(group_id(k, group).await?).await?;
            Ok(())
        }
    }
}
