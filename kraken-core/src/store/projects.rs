//! Projects and their secrets.

use serde_json::{Value, json};
use sqlx::types::Json;

use super::users::{ots, ts};
use super::{Store, now_ms, on_read, on_write};
use crate::error::{Error, Result};
use crate::model::{Secret, secret_kind};

/// A `projects` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Webhook settings.
    pub webhooks: Option<Json<Value>>,
    /// Data of the `data` tool.
    pub user_data: Json<Value>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

/// A `secrets` row with its project's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Project.
    pub project_id: i64,
    /// Project name.
    pub project_name: String,
    /// Kind.
    pub kind: i64,
    /// `{username, key}` or `{secret}`.
    pub data: Json<Value>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

impl SecretRow {
    /// The API form: `key` and `secret` masked.
    pub fn to_model(&self) -> Secret {
        let d = &self.data.0;
        let masked = |k: &str| d.get(k).map(|_| "******".to_string());
        Secret {
            id: self.id,
            created: ts(self.created),
            deleted: ots(self.deleted),
            name: self.name.clone(),
            project_id: self.project_id,
            project_name: self.project_name.clone(),
            kind: secret_kind::name(self.kind).to_string(),
            username: if self.kind == secret_kind::SSH_KEY {
                Some(
                    d.get("username")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )
            } else {
                None
            },
            key: if self.kind == secret_kind::SSH_KEY {
                masked("key")
            } else {
                None
            },
            secret: if self.kind == secret_kind::SIMPLE {
                masked("secret")
            } else {
                None
            },
        }
    }
}

const SECRET_SELECT: &str = "SELECT s.id, s.name, s.project_id, p.name AS project_name, s.kind, \
     s.data, s.created, s.deleted FROM secrets s JOIN projects p ON p.id = s.project_id";

impl Store {
    /// Create a project; 400 when the name is taken.
    pub async fn create_project(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<ProjectRow> {
        if self.project_by_name(name).await?.is_some() {
            return Err(Error::bad_request(format!(
                "Project with name {name} already exists"
            )));
        }
        let now = now_ms();
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO projects (name, description, webhooks, user_data, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
            .bind(name).bind(description).bind(Json(json!({}))).bind(Json(json!({}))).bind(now)
            .fetch_one(p).await?);
        self.project(id)
            .await?
            .ok_or_else(|| Error::internal("project vanished after insert"))
    }

    /// A non-deleted project.
    pub async fn project(&self, id: i64) -> Result<Option<ProjectRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, ProjectRow>(
            "SELECT id, name, description, webhooks, user_data, created, deleted FROM projects \
             WHERE id = $1 AND deleted IS NULL")
            .bind(id).fetch_optional(p).await?))
    }

    /// A non-deleted project by name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<ProjectRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, ProjectRow>(
            "SELECT id, name, description, webhooks, user_data, created, deleted FROM projects \
             WHERE name = $1 AND deleted IS NULL")
            .bind(name).fetch_optional(p).await?))
    }

    /// Every non-deleted project by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, ProjectRow>(
            "SELECT id, name, description, webhooks, user_data, created, deleted FROM projects \
             WHERE deleted IS NULL ORDER BY name, id")
            .fetch_all(p).await?))
    }

    /// Change name, description and webhooks.
    pub async fn update_project(
        &self,
        id: i64,
        name: &str,
        description: Option<&str>,
        webhooks: &Value,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE projects SET name = $1, description = $2, webhooks = $3, updated = $4 WHERE id = $5")
            .bind(name).bind(description).bind(Json(webhooks)).bind(now_ms()).bind(id)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Soft-delete a project.
    pub async fn delete_project(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE projects SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Replace a project's user data.
    pub async fn set_project_data(&self, id: i64, data: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE projects SET user_data = $1 WHERE id = $2")
            .bind(Json(data)).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Create a secret.
    pub async fn create_secret(
        &self,
        project_id: i64,
        name: &str,
        kind: i64,
        data: &Value,
    ) -> Result<SecretRow> {
        let now = now_ms();
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO secrets (name, project_id, kind, data, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
            .bind(name).bind(project_id).bind(kind).bind(Json(data)).bind(now)
            .fetch_one(p).await?);
        self.secret(id)
            .await?
            .ok_or_else(|| Error::internal("secret vanished after insert"))
    }

    /// A non-deleted secret.
    pub async fn secret(&self, id: i64) -> Result<Option<SecretRow>> {
        let q = format!("{SECRET_SELECT} WHERE s.id = $1 AND s.deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// The secrets of several projects (one query), ordered as [`Store::project_secrets`].
    pub async fn secrets_of_projects(&self, project_ids: &[i64]) -> Result<Vec<SecretRow>> {
        if project_ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "{SECRET_SELECT} WHERE {} AND s.deleted IS NULL ORDER BY s.name, s.id",
            super::in_ids(&self.db, "s.project_id", 1)
        );
        super::fetch_all_by_ids(&self.db, q, project_ids).await
    }

    /// Non-deleted secrets of a project, by name.
    pub async fn project_secrets(&self, project_id: i64) -> Result<Vec<SecretRow>> {
        let q = format!(
            "{SECRET_SELECT} WHERE s.project_id = $1 AND s.deleted IS NULL ORDER BY s.name, s.id"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(q))
            .bind(project_id).fetch_all(p).await?),
        )
    }

    /// Change a secret's name and data.
    pub async fn update_secret(&self, id: i64, name: &str, data: &Value) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE secrets SET name = $1, data = $2, updated = $3 WHERE id = $4")
            .bind(name).bind(Json(data)).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Soft-delete a secret.
    pub async fn delete_secret(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE secrets SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }
}

impl Store {
    /// A project, or "Project with id N does not exist".
    pub async fn require_project(&self, id: i64) -> Result<ProjectRow> {
        self.project(id).await?.ok_or_else(|| {
            crate::error::Error::not_found(format!("Project with id {id} does not exist"))
        })
    }
}
