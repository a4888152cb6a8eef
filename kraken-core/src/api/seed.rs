//! What a fresh database starts with: the built-in tools, group `all`,
//! system `any`, the settings and the `admin` user. Seeding runs on every
//! start and only adds what is missing.

use serde_json::{Map, Value};

use super::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::tools::NewToolRow;

/// The settings of the original (`initdb.py::INITIAL_SETTINGS`): group, name, type, default.
const SETTINGS: &[(&str, &str, &str, &str)] = &[
    ("general", "server_url", "text", ""),
    ("general", "minio_addr", "text", ""),
    ("general", "clickhouse_addr", "text", ""),
    ("general", "clickhouse_log_ttl", "integer", "6"),
    // Not in the original: lets its agents in, known by their IP address alone.
    ("general", "allow_address_only_agents", "boolean", "false"),
    ("notification", "smtp_server", "text", ""),
    ("notification", "smtp_tls", "boolean", "false"),
    ("notification", "smtp_from", "text", ""),
    ("notification", "smtp_user", "text", ""),
    ("notification", "smtp_password", "password", ""),
    ("notification", "slack_token", "password", ""),
    // Not in the original: where the notifications go (GitHub Enterprise,
    // self-hosted GitLab / Gitea / Radicle; empty: the repository's host)
    // and how long a failed one is retried.
    (
        "notification",
        "github_api_url",
        "text",
        "https://api.github.com",
    ),
    ("notification", "gitlab_api_url", "text", ""),
    ("notification", "gitea_api_url", "text", ""),
    ("notification", "radicle_api_url", "text", ""),
    (
        "notification",
        "slack_api_url",
        "text",
        "https://slack.com/api",
    ),
    ("notification", "retry_delay_ms", "integer", "10000"),
    ("notification", "retry_for_ms", "integer", "3600000"),
    ("monitoring", "sentry_dsn", "password", ""),
    ("cloud", "aws_access_key", "text", ""),
    ("cloud", "aws_secret_access_key", "password", ""),
    ("cloud", "azure_subscription_id", "text", ""),
    ("cloud", "azure_tenant_id", "text", ""),
    ("cloud", "azure_client_id", "text", ""),
    ("cloud", "azure_client_secret", "password", ""),
    ("cloud", "k8s_api_server_url", "text", ""),
    ("cloud", "k8s_namespace", "text", "kraken"),
    ("cloud", "k8s_token", "password", ""),
    ("idp", "ldap_enabled", "boolean", "false"),
    ("idp", "ldap_server", "text", ""),
    ("idp", "bind_dn", "text", ""),
    ("idp", "bind_password", "password", ""),
    ("idp", "base_dn", "text", ""),
    ("idp", "search_filter", "text", ""),
    ("idp", "google_enabled", "boolean", "false"),
    ("idp", "google_client_id", "text", ""),
    ("idp", "google_client_secret", "password", ""),
    ("idp", "microsoft_enabled", "boolean", "false"),
    ("idp", "microsoft_client_id", "text", ""),
    ("idp", "microsoft_client_secret", "password", ""),
    ("idp", "github_enabled", "boolean", "false"),
    ("idp", "github_client_id", "text", ""),
    ("idp", "github_client_secret", "password", ""),
    ("idp", "auth0_enabled", "boolean", "false"),
    ("idp", "auth0_client_id", "text", ""),
    ("idp", "auth0_client_secret", "password", ""),
    ("idp", "auth0_openid_config_url", "text", ""),
];

/// The 14 built-in tools (name, description, parameter schema) in the
/// original's creation order, taken from the workflow schema: each tool's
/// step schema minus the common (`"base": true`) properties.
pub fn builtin_tools() -> Vec<(String, String, Value)> {
    let schema: Value = match serde_json::from_str(crate::schema::WORKFLOW_SCHEMA) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    let one_of = schema
        .pointer("/properties/jobs/items/properties/steps/items/oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for entry in one_of {
        let Some(name) = entry
            .pointer("/if/properties/tool/const")
            .and_then(Value::as_str)
        else {
            continue;
        };
        if name.contains('@') {
            continue;
        }
        let then = &entry["then"];
        let description = then
            .pointer("/properties/tool/description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut props = Map::new();
        if let Some(p) = then.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                if v.get("base").and_then(Value::as_bool) != Some(true) {
                    props.insert(k.clone(), v.clone());
                }
            }
        }
        let mut fields = Map::new();
        fields.insert("properties".into(), Value::Object(props));
        let required: Vec<Value> = then
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter(|x| x.as_str() != Some("tool"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !required.is_empty() {
            fields.insert("required".into(), Value::Array(required));
        }
        if let Some(ap) = then.get("additionalProperties")
            && ap != &Value::Bool(false)
        {
            fields.insert("additionalProperties".into(), ap.clone());
        }
        out.push((name.to_string(), description, Value::Object(fields)));
    }
    out
}

/// Seed what is missing; returns the id of the `admin` user.
pub(super) async fn seed(store: &Store, config: &Config) -> Result<i64> {
    for (name, description, fields) in builtin_tools() {
        if store.tool_versions(&name).await?.is_empty() {
            store
                .insert_tool(&NewToolRow {
                    name,
                    description: Some(description),
                    fields,
                    location: Some(String::new()),
                    entry: Some(String::new()),
                    version: "1".into(),
                    ..Default::default()
                })
                .await?;
        }
    }
    if store.group_by_name("all", None).await?.is_none() {
        store.create_group("all", None, None).await?;
    }
    store.ensure_system("any", "local").await?;
    for (group, name, val_type, value) in SETTINGS {
        store.seed_setting(group, name, val_type, value).await?;
    }
    let admin = match store.user_by_name("admin").await? {
        Some(u) => u,
        None => {
            let password = match &config.admin_password {
                Some(p) if !p.is_empty() => p.clone(),
                _ => {
                    tracing::warn!(
                        "created user 'admin' with the default password 'admin': set \
                         KRAKEN_ADMIN_PASSWORD before the first start, or change it now"
                    );
                    "admin".to_string()
                }
            };
            let hash = crate::auth::hash_password(&password)?;
            store.create_user("admin", &hash, true).await?
        }
    };
    if !admin.superadmin {
        return Err(Error::internal(
            "user 'admin' exists but is not a superadmin",
        ));
    }
    Ok(admin.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fourteen_builtin_tools_in_creation_order() {
        let tools = builtin_tools();
        let names: Vec<&str> = tools.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "local_tool",
                "git",
                "shell",
                "pytest",
                "rndtest",
                "artifacts",
                "pylint",
                "cloc",
                "nglint",
                "cache",
                "gotest",
                "junit_collect",
                "values_collect",
                "data"
            ]
        );
        let shell = &tools[2].2;
        assert_eq!(shell["properties"]["timeout"]["minimum"], 30);
        assert!(
            shell["properties"].get("when").is_none(),
            "common fields are not tool fields"
        );
        let git = &tools[1].2;
        assert_eq!(git["required"], json!(["checkout"]));
        assert_eq!(tools[0].2["additionalProperties"], json!(true));
    }
}
