//! `kraken agents`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::AgentsCmd;
use crate::out::{Out, opt, usage};
use crate::resolve::group_id;

/// Runs one `kraken agents` verb.
pub async fn run(k: &Kraken, out: &Out, c: &AgentsCmd) -> anyhow::Result<()> {
    match c {
        AgentsCmd::List { unauthorized } => {
            let l = k
                .get_agents(
                    *unauthorized,
                    &Paging {
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .await?;
            out.list(
                &l,
                &[
                    "ID",
                    "NAME",
                    "ADDRESS",
                    "AUTHORIZED",
                    "STATE",
                    "GROUPS",
                    "JOB",
                    "LAST SEEN",
                ],
                |a| {
                    vec![
                        a.id.to_string(),
                        a.name.clone(),
                        a.address.clone(),
                        a.authorized.to_string(),
                        if a.disabled {
                            "disabled".into()
                        } else if a.state == agent_state::ACTIVE {
                            "active".into()
                        } else {
                            "inactive".into()
                        },
                        a.groups
                            .iter()
                            .map(|g| g.name.clone())
                            .collect::<Vec<_>>()
                            .join(","),
                        a.job.as_ref().map(|j| j.id.to_string()).unwrap_or_default(),
                        opt(&a.last_seen),
                    ]
                },
            )
        }
        AgentsCmd::Show { agent } => {
            let a = k.get_agent(*agent).await?;
            out.json(&a)
        }
        AgentsCmd::Authorize { agents } | AgentsCmd::Deauthorize { agents } => {
            if agents.is_empty() {
                return Err(usage("name at least one agent id"));
            }
            let authorized = matches!(c, AgentsCmd::Authorize { .. });
            let items: Vec<AgentAuthorization> = agents
                .iter()
                .map(|id| AgentAuthorization {
                    id: Some(*id),
                    authorized: Some(authorized),
                })
                .collect();
            k.update_agents(&items).await?;
            Ok(())
        }
        AgentsCmd::Update {
            agent,
            groups,
            disable,
            enable,
        } => {
            let mut ids = Vec::new();
            for g in groups {
                ids.push(GroupId {
                    id: group_id(k, g).await?,
                });
            }
            let input = AgentChanges {
                groups: (!groups.is_empty()).then_some(ids),
                disabled: if *disable {
                    Some(true)
                } else if *enable {
                    Some(false)
                } else {
                    None
                },
                ..Default::default()
            };
            let a = k.update_agent(*agent, &input).await?;
            out.json_only(&a)
        }
        AgentsCmd::Delete { agent } => {
            k.delete_agent(*agent).await?;
            Ok(())
        }
    }
}
