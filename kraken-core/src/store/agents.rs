//! Agents, agents groups and systems.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::types::Json;

use super::users::{ots, ts};
use super::{Paged, Store, now_ms, on_read, on_write, page_and_total};
use crate::error::{Error, Result};
use crate::model::{Group, GroupRef, System, agent_state};

/// An `agents` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Address (identity).
    pub address: String,
    /// IP address.
    pub ip_address: Option<String>,
    /// State.
    pub state: i64,
    /// Disabled.
    pub disabled: bool,
    /// Comment.
    pub comment: Option<String>,
    /// Status line.
    pub status_line: Option<String>,
    /// Current job.
    pub job_id: Option<i64>,
    /// Authorized.
    pub authorized: bool,
    /// Last contact (ms).
    pub last_seen: Option<i64>,
    /// Host info.
    pub host_info: Option<Json<Value>>,
    /// User attributes.
    pub user_attrs: Option<Json<Value>>,
    /// Extra attributes.
    pub extra_attrs: Option<Json<Value>>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
    /// How it proves who it is ([`agent_kind`]).
    pub kind: i64,
    /// A new key is due at its next call (it was (re-)authorized).
    pub key_issue: bool,
}

/// How an agent proves who it is (`agents.kind`).
pub mod agent_kind {
    /// The original's agent: its address, which must be its IP address.
    pub const ADDRESS: i64 = 0;
    /// This project's `kraken agent`: a key, sent as a bearer token.
    pub const KEY: i64 = 1;
    /// A built-in agent: in the server's process, with a generated id.
    pub const BUILTIN: i64 = 2;
}

impl AgentRow {
    /// The system name the agent reported (`host_info.system`).
    pub fn system(&self) -> Option<&str> {
        self.host_info
            .as_ref()
            .and_then(|h| h.0.get("system"))
            .and_then(Value::as_str)
    }
}

const AGENT_COLS: &str = "id, name, address, ip_address, state, disabled, comment, status_line, job_id, \
    authorized, last_seen, host_info, user_attrs, extra_attrs, created, deleted, kind, key_issue";

/// An `agents_groups` row with its project name and agent count.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Project scope.
    pub project_id: Option<i64>,
    /// Project name.
    pub project_name: Option<String>,
    /// Deployment settings.
    pub deployment: Option<Json<Value>>,
    /// Non-deleted agents in the group.
    pub agents_count: i64,
    /// Agents in the group that can take a job now (authorized, active, enabled).
    pub usable_agents: i64,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

impl GroupRow {
    /// The API form with the deployment defaults filled in.
    pub fn to_model(&self) -> Group {
        Group {
            id: self.id,
            created: ts(self.created),
            deleted: ots(self.deleted),
            name: self.name.clone(),
            project_id: self.project_id,
            project_name: self.project_name.clone(),
            agents_count: self.agents_count,
            deployment: deployment_with_defaults(self.deployment.as_ref().map(|j| &j.0)),
        }
    }

    /// The deployment method (0 = manual agents, > 0 = cloud).
    pub fn deployment_method(&self) -> i64 {
        self.deployment
            .as_ref()
            .and_then(|d| d.0.get("method"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

/// Deployment settings with the original's defaults filled in.
pub fn deployment_with_defaults(d: Option<&Value>) -> Value {
    let mut out = json!({
        "method": 0,
        "aws": {"region": "", "instances_limit": 5, "default_image": "", "instance_type": "",
                "disk_size": 0, "destruction_after_jobs": 1, "destruction_after_time": 30},
        "aws_ecs_fargate": {"region": "", "instances_limit": 5, "cluster": "", "subnets": "",
                            "security_groups": ""},
        "azure_vm": {"location": "", "instances_limit": 5, "default_image": "", "vm_size": "",
                     "destruction_after_jobs": 1, "destruction_after_time": 30},
        "kubernetes": {"instances_limit": 5},
    });
    if let (Some(Value::Object(given)), Some(base)) = (d, out.as_object_mut()) {
        for (k, v) in given {
            match (base.get_mut(k), v) {
                (Some(Value::Object(b)), Value::Object(g)) => {
                    for (gk, gv) in g {
                        b.insert(gk.clone(), gv.clone());
                    }
                }
                _ => {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// `SELECT` of [`GroupRow`]s, with `$extra` columns after the row's.
macro_rules! group_select {
    ($($extra:literal)?) => {
        concat!(
            "SELECT g.id, g.name, g.project_id, p.name AS project_name, g.deployment, \
            (SELECT COUNT(*) FROM agent_assignments aa JOIN agents a ON a.id = aa.agent_id \
             WHERE aa.agents_group_id = g.id AND a.deleted IS NULL) AS agents_count, \
            (SELECT COUNT(*) FROM agent_assignments aa JOIN agents a ON a.id = aa.agent_id \
             WHERE aa.agents_group_id = g.id AND a.authorized = TRUE AND a.state = 0 AND a.disabled = FALSE \
             AND a.deleted IS NULL) AS usable_agents, g.created, g.deleted",
            $($extra,)?
            " FROM agents_groups g LEFT JOIN projects p ON p.id = g.project_id"
        )
    };
}
const GROUP_SELECT: &str = group_select!();
const GROUP_SELECT_COUNTED: &str = group_select!(", COUNT(*) OVER () AS total");

impl Store {
    // ------------------------------------------------------------ groups

    /// Create a group.
    pub async fn create_group(
        &self,
        name: &str,
        project_id: Option<i64>,
        deployment: Option<&Value>,
    ) -> Result<GroupRow> {
        let now = now_ms();
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO agents_groups (name, project_id, deployment, created, updated) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id")
            .bind(name).bind(project_id).bind(deployment.map(Json)).bind(now)
            .fetch_one(p).await?);
        self.group(id)
            .await?
            .ok_or_else(|| Error::internal("group vanished after insert"))
    }

    /// A non-deleted group.
    pub async fn group(&self, id: i64) -> Result<Option<GroupRow>> {
        let q = format!("{GROUP_SELECT} WHERE g.id = $1 AND g.deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, GroupRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// A non-deleted group by name: the project's own group first, then a global one.
    pub async fn group_by_name(
        &self,
        name: &str,
        project_id: Option<i64>,
    ) -> Result<Option<GroupRow>> {
        // The project's own group first, then a global one, then another
        // project's: one statement.
        let q = format!(
            "{GROUP_SELECT} WHERE g.name = $1 AND g.deleted IS NULL ORDER BY \
             CASE WHEN g.project_id = $2 THEN 0 WHEN g.project_id IS NULL THEN 1 ELSE 2 END, g.id LIMIT 1"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, GroupRow>(sqlx::AssertSqlSafe(q))
            .bind(name).bind(project_id).fetch_optional(p).await?),
        )
    }

    /// A page of non-deleted groups and their total.
    pub async fn list_groups(&self, start: i64, limit: i64) -> Result<(Vec<GroupRow>, i64)> {
        let q = format!(
            "{GROUP_SELECT_COUNTED} WHERE g.deleted IS NULL ORDER BY g.id LIMIT $1 OFFSET $2"
        );
        let rows = on_read!(&self.db, p => sqlx::query_as::<_, Paged<GroupRow>>(sqlx::AssertSqlSafe(q))
            .bind(limit).bind(start).fetch_all(p).await?);
        page_and_total(rows, start, async {
            Ok(on_read!(&self.db, p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM agents_groups WHERE deleted IS NULL").fetch_one(p).await?))
        })
        .await
    }

    /// Change a group's name and deployment.
    pub async fn update_group(
        &self,
        id: i64,
        name: &str,
        deployment: Option<&Value>,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents_groups SET name = $1, deployment = $2, updated = $3 WHERE id = $4")
            .bind(name).bind(deployment.map(Json)).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Soft-delete a group and drop its agent assignments.
    pub async fn delete_group(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query("UPDATE agents_groups SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        on_write!(&self.db, p => sqlx::query("DELETE FROM agent_assignments WHERE agents_group_id = $1")
            .bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    // ------------------------------------------------------------ systems

    /// All systems by id.
    pub async fn list_systems(&self) -> Result<Vec<System>> {
        let rows: Vec<(i64, String, String)> = on_read!(&self.db, p => sqlx::query_as(
            "SELECT id, name, executor FROM systems ORDER BY id").fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(id, name, executor)| System { id, name, executor })
            .collect())
    }

    /// A system by id.
    pub async fn system(&self, id: i64) -> Result<Option<System>> {
        let row: Option<(i64, String, String)> = on_read!(&self.db, p => sqlx::query_as(
            "SELECT id, name, executor FROM systems WHERE id = $1").bind(id).fetch_optional(p).await?);
        Ok(row.map(|(id, name, executor)| System { id, name, executor }))
    }

    /// The system with this name and executor, created when missing.
    pub async fn ensure_system(&self, name: &str, executor: &str) -> Result<System> {
        let key = (name.to_string(), executor.to_string());
        let known = self.systems.lock().ok().and_then(|m| m.get(&key).copied());
        if let Some(id) = known {
            return Ok(System {
                id,
                name: key.0,
                executor: key.1,
            });
        }
        let system = self.find_or_insert_system(name, executor).await?;
        if let Ok(mut m) = self.systems.lock() {
            // System names can come from flow arguments: keep the map bounded.
            if m.len() >= 4096 {
                m.clear();
            }
            m.insert(key, system.id);
        }
        Ok(system)
    }

    async fn find_or_insert_system(&self, name: &str, executor: &str) -> Result<System> {
        let find = || async {
            let row: Option<(i64, String, String)> = on_read!(&self.db, p => sqlx::query_as(
                "SELECT id, name, executor FROM systems WHERE name = $1 AND executor = $2")
                .bind(name).bind(executor).fetch_optional(p).await?);
            Ok::<_, Error>(row.map(|(id, name, executor)| System { id, name, executor }))
        };
        if let Some(s) = find().await? {
            return Ok(s);
        }
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO systems (name, executor) VALUES ($1, $2) ON CONFLICT (name, executor) DO NOTHING")
            .bind(name).bind(executor).execute(p).await?.rows_affected());
        find()
            .await?
            .ok_or_else(|| Error::internal("system vanished after insert"))
    }

    // ------------------------------------------------------------ agents

    /// A page of non-deleted agents (authorized ones, or the unauthorized ones) and the total.
    pub async fn list_agents(
        &self,
        unauthorized: bool,
        start: i64,
        limit: i64,
        sort_field: &str,
        dir: &str,
    ) -> Result<(Vec<AgentRow>, i64)> {
        let q = format!(
            "SELECT {AGENT_COLS}, COUNT(*) OVER () AS total FROM agents \
             WHERE deleted IS NULL AND authorized = $1 \
             ORDER BY {sort_field} {dir}, id {dir} LIMIT $2 OFFSET $3"
        );
        let rows = on_read!(&self.db, p => sqlx::query_as::<_, Paged<AgentRow>>(sqlx::AssertSqlSafe(q))
            .bind(!unauthorized).bind(limit).bind(start).fetch_all(p).await?);
        page_and_total(rows, start, async {
            Ok(on_read!(&self.db, p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM agents WHERE deleted IS NULL AND authorized = $1")
                .bind(!unauthorized).fetch_one(p).await?))
        })
        .await
    }

    /// A non-deleted agent.
    pub async fn agent(&self, id: i64) -> Result<Option<AgentRow>> {
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1 AND deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// The original's agent (address-only) with this address, deleted or not.
    pub async fn agent_by_address(&self, address: &str) -> Result<Option<AgentRow>> {
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE address = $1 AND kind = 0");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(q))
            .bind(address).fetch_optional(p).await?),
        )
    }

    /// The non-deleted agent holding the key with this hash.
    pub async fn agent_by_key_hash(&self, key_hash: &str) -> Result<Option<AgentRow>> {
        let q = format!(
            "SELECT {AGENT_COLS} FROM agents WHERE key_hash = $1 AND kind = 1 AND deleted IS NULL"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(q))
            .bind(key_hash).fetch_optional(p).await?),
        )
    }

    /// The built-in agent with this generated id, deleted or not.
    pub async fn agent_by_uid(&self, uid: &str) -> Result<Option<AgentRow>> {
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE uid = $1");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(q))
            .bind(uid).fetch_optional(p).await?),
        )
    }

    /// Register an original's agent seen for the first time (or again after
    /// deletion): unauthorized, known by its address.
    pub async fn register_agent(&self, address: &str, ip: Option<&str>) -> Result<AgentRow> {
        let now = now_ms();
        match self.agent_by_address(address).await? {
            Some(a) => {
                on_write!(&self.db, p => sqlx::query(
                    "UPDATE agents SET deleted = NULL, created = $1, updated = $1, authorized = FALSE, \
                     ip_address = $2, last_seen = $1, state = 0, job_id = NULL WHERE id = $3")
                    .bind(now).bind(ip).bind(a.id).execute(p).await?.rows_affected());
            }
            None => {
                on_write!(&self.db, p => sqlx::query(
                    "INSERT INTO agents (name, address, ip_address, state, disabled, authorized, last_seen, created, updated, kind) \
                     VALUES ($1, $1, $2, 0, FALSE, FALSE, $3, $3, $3, 0) ON CONFLICT (address) WHERE kind = 0 DO NOTHING")
                    .bind(address).bind(ip).bind(now).execute(p).await?.rows_affected());
            }
        }
        self.agent_by_address(address)
            .await?
            .ok_or_else(|| Error::internal("agent vanished after insert"))
    }

    /// Register a keyed agent (`kraken agent`) seen for the first time:
    /// unauthorized, `label` is only its name.
    pub async fn register_keyed_agent(
        &self,
        label: &str,
        ip: Option<&str>,
        key_hash: &str,
    ) -> Result<AgentRow> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO agents (name, address, ip_address, state, disabled, authorized, last_seen, created, updated, kind, key_hash) \
             VALUES ($1, $1, $2, 0, FALSE, FALSE, $3, $3, $3, 1, $4) ON CONFLICT (key_hash) WHERE key_hash IS NOT NULL DO NOTHING")
            .bind(label).bind(ip).bind(now).bind(key_hash).execute(p).await?.rows_affected());
        self.agent_by_key_hash(key_hash)
            .await?
            .ok_or_else(|| Error::internal("agent vanished after insert"))
    }

    /// The built-in agent with generated id `uid`, created (or undeleted)
    /// as needed, named `label`.
    pub async fn register_builtin_agent(&self, label: &str, uid: &str) -> Result<AgentRow> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO agents (name, address, state, disabled, authorized, last_seen, created, updated, kind, uid) \
             VALUES ($1, $1, 0, FALSE, FALSE, $2, $2, $2, 2, $3) ON CONFLICT (uid) WHERE uid IS NOT NULL DO NOTHING")
            .bind(label).bind(now).bind(uid).execute(p).await?.rows_affected());
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET name = $1, address = $1, deleted = NULL, updated = $2 WHERE uid = $3")
            .bind(label).bind(now).bind(uid).execute(p).await?.rows_affected());
        self.agent_by_uid(uid)
            .await?
            .ok_or_else(|| Error::internal("agent vanished after insert"))
    }

    /// Replace a keyed agent's key when one is due (`key_issue`); false when
    /// it is not due or `old_hash` is no longer its key (someone was faster).
    pub async fn issue_agent_key(&self, id: i64, old_hash: &str, new_hash: &str) -> Result<bool> {
        let n = on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET key_hash = $1, key_issue = FALSE, updated = $2 \
             WHERE id = $3 AND key_hash = $4 AND key_issue = TRUE AND authorized = TRUE AND deleted IS NULL")
            .bind(new_hash).bind(now_ms()).bind(id).bind(old_hash).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Ask for a new key for a keyed agent at its next call.
    pub async fn request_agent_key(&self, id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET key_issue = TRUE WHERE id = $1 AND kind = 1")
            .bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Agents waiting for authorization that never were in a group nor ran
    /// a job: registrations.
    pub async fn count_registrations(&self) -> Result<i64> {
        Ok(on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM agents a WHERE a.deleted IS NULL AND a.authorized = FALSE AND a.kind <> 2 \
             AND NOT EXISTS (SELECT 1 FROM agent_assignments aa WHERE aa.agent_id = a.id)")
            .fetch_one(p).await?))
    }

    /// Forget registrations (see [`Store::count_registrations`]) not heard
    /// from since `before` (ms); returns how many.
    pub async fn expire_registrations(&self, before: i64) -> Result<u64> {
        Ok(on_write!(&self.db, p => sqlx::query(
            "DELETE FROM agents WHERE authorized = FALSE AND kind <> 2 AND COALESCE(last_seen, created) < $1 \
             AND NOT EXISTS (SELECT 1 FROM agent_assignments aa WHERE aa.agent_id = agents.id) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.agent_used_id = agents.id) \
             AND job_id IS NULL")
            .bind(before).execute(p).await?.rows_affected()))
    }

    /// Record contact with an agent: `last_seen = now`, state active.
    pub async fn touch_agent(&self, id: i64, ip: Option<&str>) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET last_seen = $1, state = 0, ip_address = COALESCE($2, ip_address) WHERE id = $3")
            .bind(now_ms()).bind(ip).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store the host info an agent reported.
    pub async fn set_agent_host_info(&self, id: i64, info: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE agents SET host_info = $1, updated = $2 WHERE id = $3")
            .bind(Json(info)).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Change admin-controlled fields of an agent.
    pub async fn update_agent(
        &self,
        id: i64,
        authorized: bool,
        disabled: bool,
        comment: Option<&str>,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET authorized = $1, disabled = $2, comment = $3, updated = $4 WHERE id = $5")
            .bind(authorized).bind(disabled).bind(comment).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Mark an agent inactive with a status line.
    pub async fn deactivate_agent(&self, id: i64, status_line: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET state = $1, status_line = $2, job_id = NULL WHERE id = $3")
            .bind(agent_state::INACTIVE).bind(status_line).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Soft-delete an agent; a keyed agent's key is forgotten.
    pub async fn delete_agent(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE agents SET deleted = $1, updated = $1, authorized = FALSE, job_id = NULL, key_hash = NULL, \
             key_issue = FALSE WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Groups of the given agents.
    pub async fn agents_groups_of(&self, agent_ids: &[i64]) -> Result<HashMap<i64, Vec<GroupRef>>> {
        let mut out: HashMap<i64, Vec<GroupRef>> = HashMap::new();
        if agent_ids.is_empty() {
            return Ok(out);
        }
        let ids = agent_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let q = format!(
            "SELECT aa.agent_id, g.id, g.name FROM agent_assignments aa \
             JOIN agents_groups g ON g.id = aa.agents_group_id \
             WHERE g.deleted IS NULL AND aa.agent_id IN ({ids}) ORDER BY g.id"
        );
        let rows: Vec<(i64, i64, String)> = on_read!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(q))
            .fetch_all(p).await?);
        for (agent_id, id, name) in rows {
            out.entry(agent_id).or_default().push(GroupRef { id, name });
        }
        Ok(out)
    }

    /// Put an agent in a group (no-op when it is already there).
    pub async fn add_agent_to_group(&self, agent_id: i64, group_id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO agent_assignments (agent_id, agents_group_id) VALUES ($1, $2) \
             ON CONFLICT (agent_id, agents_group_id) DO NOTHING")
            .bind(agent_id).bind(group_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Replace an agent's groups.
    pub async fn set_agent_groups(&self, agent_id: i64, group_ids: &[i64]) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("DELETE FROM agent_assignments WHERE agent_id = $1")
            .bind(agent_id).execute(p).await?.rows_affected());
        for g in group_ids {
            self.add_agent_to_group(agent_id, *g).await?;
        }
        Ok(())
    }

    /// Active agents not seen since `before` (ms).
    pub async fn silent_agents(&self, before: i64) -> Result<Vec<AgentRow>> {
        let q = format!(
            "SELECT {AGENT_COLS} FROM agents WHERE deleted IS NULL AND state = 0 AND last_seen IS NOT NULL AND last_seen < $1"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(q))
            .bind(before).fetch_all(p).await?),
        )
    }

    /// Number of non-deleted agents by authorization: (authorized, unauthorized).
    pub async fn count_agents(&self) -> Result<(i64, i64)> {
        let rows: Vec<(bool, i64)> = on_read!(&self.db, p => sqlx::query_as(
            "SELECT authorized, COUNT(*) FROM agents WHERE deleted IS NULL GROUP BY authorized")
            .fetch_all(p).await?);
        let get = |a: bool| rows.iter().find(|(x, _)| *x == a).map_or(0, |(_, n)| *n);
        Ok((get(true), get(false)))
    }
}
