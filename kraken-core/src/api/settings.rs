//! Settings, user data, version and live data.

use serde_json::{Map, Value};

use super::Local;
use crate::error::{Error, Result};
use crate::model::{LiveData, ServerVersion, UserData};
use crate::store::Store;
use crate::store::branches::BranchData;
use crate::store::settings::SettingRow;

fn typed_value(row: &SettingRow, blank_passwords: bool) -> Value {
    let raw = row.value.clone().unwrap_or_default();
    match row.val_type.as_str() {
        "integer" => raw.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
        "boolean" => Value::Bool(raw == "true" || raw == "True" || raw == "1"),
        "password" if blank_passwords => Value::String(String::new()),
        _ => Value::String(raw),
    }
}

/// Settings for callers without a session or without superadmin rights:
/// only whether each identity provider is enabled.
pub async fn public_settings(store: &Store) -> Result<Value> {
    let mut idp = Map::new();
    for row in store.settings().await? {
        if row.grp == "idp" && row.name.ends_with("_enabled") {
            idp.insert(row.name.clone(), typed_value(&row, true));
        }
    }
    let mut out = Map::new();
    out.insert("idp".into(), Value::Object(idp));
    Ok(Value::Object(out))
}

/// Pretty JSON with 4-space indents, as Python's `json.dumps(indent=4)`.
pub(crate) fn json_indent4(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_else(|_| v.to_string())
}

impl Local {
    /// `GET /version`.
    pub async fn get_server_version(&self) -> Result<ServerVersion> {
        Ok(ServerVersion {
            version: crate::VERSION.to_string(),
        })
    }

    /// `GET /settings`: every group for superadmins (password values blank),
    /// only the identity-provider switches for others.
    pub async fn get_settings(&self) -> Result<Value> {
        if !self.who.superadmin || !self.who.enabled {
            return public_settings(self.store()).await;
        }
        let mut out: Map<String, Value> = Map::new();
        for row in self.store().settings().await? {
            let group = out
                .entry(row.grp.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(g) = group.as_object_mut() {
                g.insert(row.name.clone(), typed_value(&row, true));
            }
        }
        Ok(Value::Object(out))
    }

    /// `PUT /settings`: `{group: {name: value}}` (superadmins). A password is
    /// only overwritten by a non-empty value. Unknown names and wrong types are refused.
    pub async fn update_settings(&self, changes: &Value) -> Result<Value> {
        self.who
            .require_superadmin("only superadmin can change settings")?;
        let Some(groups) = changes.as_object() else {
            return Err(Error::bad_request("settings must be an object of groups"));
        };
        let rows = self.store().settings().await?;
        let mut updates = Vec::new();
        for (group, values) in groups {
            let Some(values) = values.as_object() else {
                return Err(Error::bad_request(format!(
                    "settings group '{group}' must be an object"
                )));
            };
            for (name, value) in values {
                let Some(row) = rows.iter().find(|r| r.grp == *group && r.name == *name) else {
                    return Err(Error::bad_request(format!(
                        "unknown setting {group}.{name}"
                    )));
                };
                let text = match (row.val_type.as_str(), value) {
                    ("integer", Value::Number(n)) if n.is_i64() => n.to_string(),
                    ("integer", Value::String(s)) if s.parse::<i64>().is_ok() => s.clone(),
                    ("boolean", Value::Bool(b)) => b.to_string(),
                    ("password", Value::String(s)) if s.is_empty() => continue,
                    ("text" | "password", Value::String(s)) => s.clone(),
                    (t, v) => {
                        return Err(Error::bad_request(format!(
                            "setting {group}.{name} must be of type {t}, got {v}"
                        )));
                    }
                };
                updates.push((group.clone(), name.clone(), text));
            }
        }
        for (group, name, text) in updates {
            self.store().set_setting(&group, &name, &text).await?;
        }
        self.get_settings().await
    }

    /// `GET /user_data?scope&entity_id`: data stored by the `data` tool.
    pub async fn get_user_data(&self, scope: &str, entity_id: i64) -> Result<UserData> {
        let data = match scope {
            "project" => {
                let p = self.store().require_project(entity_id).await?;
                self.who.require_view(p.id)?;
                p.user_data.0
            }
            "branch" | "branch-ci" | "branch-dev" => {
                let b = self.branch_row(entity_id).await?;
                self.who.require_view(b.project_id)?;
                match scope {
                    "branch" => b.user_data.0,
                    "branch-ci" => b.user_data_ci.0,
                    _ => b.user_data_dev.0,
                }
            }
            "flow" => {
                let f = self.store().require_flow(entity_id).await?;
                self.who
                    .require_view(self.branch_project(f.branch_id).await?)?;
                f.user_data.0
            }
            other => {
                return Err(Error::bad_request(format!(
                    "incorrect scope '{other}': use flow, branch, branch-ci, branch-dev or project"
                )));
            }
        };
        Ok(UserData {
            data: json_indent4(&data),
        })
    }

    /// Store data for a scope (the server side of the `data` tool).
    pub(crate) async fn set_user_data(
        &self,
        scope: &str,
        entity_id: i64,
        data: &Value,
    ) -> Result<()> {
        match scope {
            "project" => self.store().set_project_data(entity_id, data).await,
            "branch" => {
                self.store()
                    .set_branch_data(entity_id, BranchData::Any, data)
                    .await
            }
            "branch-ci" => {
                self.store()
                    .set_branch_data(entity_id, BranchData::Ci, data)
                    .await
            }
            "branch-dev" => {
                self.store()
                    .set_branch_data(entity_id, BranchData::Dev, data)
                    .await
            }
            "flow" | "" => self.store().set_flow_data(entity_id, data).await,
            other => Err(Error::bad_request(format!(
                "incorrect data scope '{other}'"
            ))),
        }
    }

    /// `GET /live-data`.
    pub async fn get_live_data(&self) -> Result<LiveData> {
        let (authorized, unauthorized) = self.store().count_agents().await?;
        let since = crate::store::now_ms() - 3_600_000;
        Ok(LiveData {
            error_logs_count: self.store().count_error_logs(since).await?,
            authorized_agents: authorized,
            non_authorized_agents: unauthorized,
        })
    }
}
