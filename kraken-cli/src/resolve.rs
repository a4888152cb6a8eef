//! Names to ids: a project by id or name, a branch by id or PROJECT/BRANCH,
//! a stage by id or PROJECT/BRANCH/STAGE (or by name in a flow), an agents
//! group by id or name.

use kraken_core::model::*;
use kraken_core::{Error, Kraken};

use crate::out::usage;

/// A project by id or name.
pub(crate) async fn project_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    let all = k.get_projects().await?;
    all.items
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.id)
        .ok_or_else(|| Error::NotFound(format!("no project named '{name}'")).into())
}

/// A branch by id or `PROJECT/BRANCH`.
pub(crate) async fn branch_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    let (p, b) = name.split_once('/').ok_or_else(|| {
        usage(format!(
            "name a branch by id or PROJECT/BRANCH, not '{name}'"
        ))
    })?;
    let pid = project_id(k, p).await?;
    let project = k.get_project(pid, false).await?;
    project
        .branches
        .iter()
        .find(|x| x.name == b)
        .map(|x| x.id)
        .ok_or_else(|| Error::NotFound(format!("no branch named '{b}' in project '{p}'")).into())
}

/// A flow by id, or `PROJECT/BRANCH` (or a branch id with a `/`-less
/// name, never) for the branch's latest CI flow.
pub(crate) async fn flow_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    if !name.contains('/') {
        return Err(usage(format!(
            "name a flow by id or PROJECT/BRANCH (its latest CI flow), not '{name}'"
        )));
    }
    let bid = branch_id(k, name).await?;
    let flows = k.get_flows(bid, "ci", None, Some(1), None).await?;
    flows
        .items
        .first()
        .map(|f| f.id)
        .ok_or_else(|| Error::NotFound(format!("branch '{name}' has no CI flow yet")).into())
}

/// A stage by id or `PROJECT/BRANCH/STAGE`.
pub(crate) async fn stage_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    let (branch, stage) = name
        .rsplit_once('/')
        .filter(|(b, _)| b.contains('/'))
        .ok_or_else(|| {
            usage(format!(
                "name a stage by id or PROJECT/BRANCH/STAGE, not '{name}'"
            ))
        })?;
    let bid = branch_id(k, branch).await?;
    let b = k.get_branch(bid).await?;
    b.stages
        .unwrap_or_default()
        .iter()
        .find(|s| s.name == stage)
        .map(|s| s.id)
        .ok_or_else(|| {
            Error::NotFound(format!("no stage named '{stage}' in branch '{branch}'")).into()
        })
}

/// A stage of a flow's branch by id or name.
pub(crate) fn stage_in_flow(flow: &Flow, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    flow.stages
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.id)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no stage named '{name}' in the branch of flow {}",
                flow.id
            ))
            .into()
        })
}

/// An agents group by id or name.
pub(crate) async fn group_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    k.get_groups(&Paging::default())
        .await?
        .items
        .iter()
        .find(|g| g.name == name)
        .map(|g| g.id)
        .ok_or_else(|| Error::NotFound(format!("no agents group named '{name}'")).into())
}
