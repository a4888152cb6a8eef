//! Agents, agents groups and systems.

use std::collections::HashSet;

use serde_json::Value;

use super::{Local, required};
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    Agent, AgentAuthorization, AgentChanges, Deployment, Empty, Group, GroupInput, List, Paging,
    System,
};
use crate::store::agents::{AgentRow, GroupRow};
use crate::store::users::{ots, ts};
use crate::store::{page, sort_dir};

const ADMIN_ONLY: &str = "only superadmin can manage agents";

/// Cloud deployments (AWS, Azure, Kubernetes) spawn agents on demand in the
/// original; this server has only agents that register themselves.
fn check_deployment(d: Option<&Deployment>) -> Result<()> {
    match d.and_then(|d| d.method) {
        None | Some(0) => Ok(()),
        Some(m) => Err(Error::bad_request(format!(
            "deployment method {m} (cloud agents) is not supported by this server: use method 0 and start agents with `kraken agent`"
        ))),
    }
}

/// The deployment settings given, as the JSON object stored.
fn deployment_map(d: &Deployment) -> serde_json::Map<String, Value> {
    match serde_json::to_value(d) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

impl Local {
    pub(crate) async fn agent_row(&self, id: i64) -> Result<AgentRow> {
        self.store()
            .agent(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Cannot find agent with id {id}")))
    }

    pub(crate) async fn agents_json(&self, rows: &[AgentRow]) -> Result<Vec<Agent>> {
        let ids: Vec<i64> = rows.iter().map(|a| a.id).collect();
        let mut groups = self.store().agents_groups_of(&ids).await?;
        let mut out = Vec::with_capacity(rows.len());
        for a in rows {
            let job = match a.job_id {
                Some(jid) => match self.store().job(jid).await? {
                    Some(j) => Some(Box::new(
                        crate::view::jobs_json(self.store(), std::slice::from_ref(&j), true)
                            .await?
                            .remove(0),
                    )),
                    None => None,
                },
                None => None,
            };
            out.push(Agent {
                id: a.id,
                created: ts(a.created),
                deleted: ots(a.deleted),
                last_seen: ots(a.last_seen),
                name: a.name.clone(),
                address: a.address.clone(),
                authorized: a.authorized,
                ip_address: a.ip_address.clone(),
                state: a.state,
                disabled: a.disabled,
                comment: a.comment.clone(),
                status_line: a.status_line.clone(),
                host_info: a.host_info.as_ref().map(|j| j.0.clone()),
                user_attrs: a.user_attrs.as_ref().map(|j| j.0.clone()),
                extra_attrs: a.extra_attrs.as_ref().map(|j| j.0.clone()),
                groups: groups.remove(&a.id).unwrap_or_default(),
                job,
            });
        }
        Ok(out)
    }

    /// `GET /agents`: authorized agents, or with `unauthorized` the ones waiting (superadmins).
    pub async fn get_agents(&self, unauthorized: bool, paging: &Paging) -> Result<List<Agent>> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        let (start, limit) = page(paging.start, paging.limit, 10, 1000);
        let field = match paging.sort_field.as_deref() {
            None | Some("") | Some("id") => "id",
            Some(
                f @ ("name" | "address" | "ip_address" | "last_seen" | "created" | "state"
                | "disabled"),
            ) => f,
            Some(f) => {
                return Err(Error::bad_request(format!(
                    "incorrect sort_field '{f}': use id, name, address, ip_address, last_seen, created, state or disabled"
                )));
            }
        };
        let dir = sort_dir(paging.sort_dir.as_deref())?;
        let (rows, total) = self
            .store()
            .list_agents(unauthorized, start, limit, field, dir)
            .await?;
        Ok(List {
            items: self.agents_json(&rows).await?,
            total,
        })
    }

    /// `PATCH /agents`: authorize (or revoke) several agents; authorized ones
    /// join group `all`. Authorizing a keyed agent (again) issues it a new
    /// key at its next call; its old key stops working then.
    pub async fn update_agents(&self, items: &[AgentAuthorization]) -> Result<Empty> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        let mut agents = Vec::new();
        for it in items {
            let id = it
                .id
                .ok_or_else(|| Error::bad_request("Missing id in agent"))?;
            let agent = self
                .store()
                .agent(id)
                .await?
                .ok_or_else(|| Error::not_found(format!("Cannot find agent {id}")))?;
            agents.push((agent, it.authorized));
        }
        let all = self.store().group_by_name("all", None).await?;
        for (agent, authorized) in agents {
            let Some(authorized) = authorized else {
                continue;
            };
            self.store()
                .update_agent(
                    agent.id,
                    authorized,
                    agent.disabled,
                    agent.comment.as_deref(),
                )
                .await?;
            if authorized {
                self.store().request_agent_key(agent.id).await?;
            }
            if let (true, Some(all)) = (authorized, &all) {
                self.store().add_agent_to_group(agent.id, all.id).await?;
            }
        }
        self.core.notify_agents_changed();
        Ok(Empty {})
    }

    /// `GET /agents/{id}` (superadmins).
    pub async fn get_agent(&self, id: i64) -> Result<Agent> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        let row = self.agent_row(id).await?;
        Ok(self
            .agents_json(std::slice::from_ref(&row))
            .await?
            .remove(0))
    }

    /// `PUT /agents/{id}`: groups, disabled, authorized, comment (superadmins).
    pub async fn update_agent(&self, id: i64, input: &AgentChanges) -> Result<Agent> {
        input.check_limits()?;
        self.who.require_superadmin(ADMIN_ONLY)?;
        let row = self.agent_row(id).await?;
        if let Some(groups) = &input.groups {
            let mut ids = Vec::new();
            let mut seen = HashSet::new();
            for g in groups {
                if self.store().group(g.id).await?.is_none() {
                    return Err(Error::bad_request(format!(
                        "Cannot find agent group with id {}",
                        g.id
                    )));
                }
                if seen.insert(g.id) {
                    ids.push(g.id);
                }
            }
            self.store().set_agent_groups(id, &ids).await?;
        }
        if input.authorized == Some(true) && !row.authorized {
            self.store().request_agent_key(id).await?;
        }
        self.store()
            .update_agent(
                id,
                input.authorized.unwrap_or(row.authorized),
                input.disabled.unwrap_or(row.disabled),
                input.comment.as_deref().or(row.comment.as_deref()),
            )
            .await?;
        self.core.notify_agents_changed();
        self.get_agent(id).await
    }

    /// `DELETE /agents/{id}` (superadmins).
    pub async fn delete_agent(&self, id: i64) -> Result<Empty> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        self.agent_row(id).await?;
        self.store().delete_agent(id).await?;
        Ok(Empty {})
    }

    // ------------------------------------------------------------ groups

    async fn group_row(&self, id: i64) -> Result<GroupRow> {
        self.store()
            .group(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Cannot find agent group with id {id}")))
    }

    /// `GET /groups` (superadmins).
    pub async fn get_groups(&self, paging: &Paging) -> Result<List<Group>> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        let (start, limit) = page(paging.start, paging.limit, 1000, 10_000);
        let (rows, total) = self.store().list_groups(start, limit).await?;
        Ok(List {
            items: rows.iter().map(GroupRow::to_model).collect(),
            total,
        })
    }

    /// `POST /groups` (superadmins).
    pub async fn create_group(&self, input: &GroupInput) -> Result<Group> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        input.check_limits()?;
        let name = required(&input.name, "Missing name in group")?;
        if let Some(pid) = input.project_id
            && self.store().project(pid).await?.is_none()
        {
            return Err(Error::bad_request(format!(
                "Project with id {pid} does not exist"
            )));
        }
        if self
            .store()
            .group_by_name(name, input.project_id)
            .await?
            .is_some_and(|g| g.project_id == input.project_id)
        {
            return Err(Error::bad_request(format!(
                "Group with name {name} already exists"
            )));
        }
        check_deployment(input.deployment.as_ref())?;
        let deployment = input
            .deployment
            .as_ref()
            .map(|d| Value::Object(deployment_map(d)));
        Ok(self
            .store()
            .create_group(name, input.project_id, deployment.as_ref())
            .await?
            .to_model())
    }

    /// `GET /groups/{id}` (superadmins).
    pub async fn get_group(&self, id: i64) -> Result<Group> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        Ok(self.group_row(id).await?.to_model())
    }

    /// `PUT /groups/{id}`: name and deployment (superadmins).
    pub async fn update_group(&self, id: i64, input: &GroupInput) -> Result<Group> {
        input.check_limits()?;
        self.who.require_superadmin(ADMIN_ONLY)?;
        let row = self.group_row(id).await?;
        let name = match &input.name {
            Some(n) if n.trim().is_empty() => {
                return Err(Error::bad_request("group name cannot be empty"));
            }
            Some(n) if *n != row.name => {
                if row.name == "all" {
                    return Err(Error::bad_request("group 'all' cannot be renamed"));
                }
                if self
                    .store()
                    .group_by_name(n, row.project_id)
                    .await?
                    .is_some_and(|g| g.project_id == row.project_id)
                {
                    return Err(Error::bad_request(format!(
                        "Group with name {n} already exists"
                    )));
                }
                n.clone()
            }
            _ => row.name.clone(),
        };
        check_deployment(input.deployment.as_ref())?;
        let deployment = match &input.deployment {
            Some(d) => {
                let mut current = row
                    .deployment
                    .as_ref()
                    .map(|j| j.0.clone())
                    .unwrap_or_else(|| Value::Object(Default::default()));
                if let Some(obj) = current.as_object_mut() {
                    for (k, v) in deployment_map(d) {
                        obj.insert(k, v);
                    }
                }
                Some(current)
            }
            None => row.deployment.as_ref().map(|j| j.0.clone()),
        };
        self.store()
            .update_group(id, &name, deployment.as_ref())
            .await?;
        Ok(self.group_row(id).await?.to_model())
    }

    /// `DELETE /groups/{id}` (superadmins); group `all` stays.
    pub async fn delete_group(&self, id: i64) -> Result<Empty> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        let row = self.group_row(id).await?;
        if row.name == "all" && row.project_id.is_none() {
            return Err(Error::bad_request("group 'all' cannot be deleted"));
        }
        self.store().delete_group(id).await?;
        Ok(Empty {})
    }

    /// `GET /systems`.
    pub async fn get_systems(&self) -> Result<List<System>> {
        Ok(List::all(self.store().list_systems().await?))
    }
}

impl super::Core {
    /// Make sure the built-in agent with generated id `uid` exists,
    /// authorized and in group `all`, named `label`; returns its id.
    pub async fn ensure_builtin_agent(&self, label: &str, uid: &str) -> Result<i64> {
        let store = self.store();
        let agent = store.register_builtin_agent(label, uid).await?;
        store
            .update_agent(agent.id, true, agent.disabled, agent.comment.as_deref())
            .await?;
        if let Some(all) = store.group_by_name("all", None).await? {
            store.add_agent_to_group(agent.id, all.id).await?;
        }
        store.touch_agent(agent.id, None).await?;
        Ok(agent.id)
    }
}
