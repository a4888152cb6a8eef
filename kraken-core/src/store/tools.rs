//! Tools: the step types a workflow can use, with versions.

use serde_json::Value;
use sqlx::types::Json;

use super::{Store, now_ms, on_read, on_write};
use crate::error::{Error, Result};
use crate::model::Tool;

/// A `tools` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ToolRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Parameters schema.
    pub fields: Json<Value>,
    /// Location (`''` for built-ins).
    pub location: Option<String>,
    /// Entry.
    pub entry: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Remote repository.
    pub url: Option<String>,
    /// Remote tag.
    pub tag: Option<String>,
    /// Remote tool file.
    pub tool_file: Option<String>,
    /// Created (ms).
    pub created: i64,
}

impl ToolRow {
    /// The API form.
    pub fn to_model(&self) -> Tool {
        Tool {
            id: self.id,
            name: self.name.clone(),
            description: self.description.clone(),
            location: self.location.clone(),
            entry: self.entry.clone(),
            version: self.version.clone(),
            fields: self.fields.0.clone(),
            url: self.url.clone(),
            tag: self.tag.clone(),
            tool_file: self.tool_file.clone(),
        }
    }

    /// Built-in tools have neither location nor entry.
    pub fn is_builtin(&self) -> bool {
        self.location.as_deref() == Some("")
            && self.entry.as_deref() == Some("")
            && self.url.is_none()
    }
}

const TOOL_COLS: &str =
    "id, name, description, fields, location, entry, version, url, tag, tool_file, created";

/// The columns of a new tool version.
#[derive(Debug, Clone, Default)]
pub struct NewToolRow {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Parameters schema.
    pub fields: Value,
    /// Location.
    pub location: Option<String>,
    /// Entry.
    pub entry: Option<String>,
    /// Version.
    pub version: String,
    /// Remote repository.
    pub url: Option<String>,
    /// Remote tag.
    pub tag: Option<String>,
    /// Remote tool file.
    pub tool_file: Option<String>,
}

impl Store {
    /// Insert a tool version.
    pub async fn insert_tool(&self, t: &NewToolRow) -> Result<ToolRow> {
        let now = now_ms();
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO tools (name, description, fields, location, entry, version, url, tag, tool_file, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id")
            .bind(&t.name).bind(&t.description).bind(Json(&t.fields)).bind(&t.location).bind(&t.entry)
            .bind(&t.version).bind(&t.url).bind(&t.tag).bind(&t.tool_file).bind(now)
            .fetch_one(p).await?);
        self.tool(id)
            .await?
            .ok_or_else(|| Error::internal("tool vanished after insert"))
    }

    /// Overwrite an existing tool version.
    pub async fn overwrite_tool(&self, id: i64, t: &NewToolRow) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE tools SET description = $1, fields = $2, location = $3, entry = $4, url = $5, tag = $6, \
             tool_file = $7, updated = $8 WHERE id = $9")
            .bind(&t.description).bind(Json(&t.fields)).bind(&t.location).bind(&t.entry).bind(&t.url)
            .bind(&t.tag).bind(&t.tool_file).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Set where an uploaded tool's package lives.
    pub async fn set_tool_location(&self, id: i64, location: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE tools SET location = $1, updated = $2 WHERE id = $3")
            .bind(location).bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// A non-deleted tool version.
    pub async fn tool(&self, id: i64) -> Result<Option<ToolRow>> {
        let q = format!("SELECT {TOOL_COLS} FROM tools WHERE id = $1 AND deleted IS NULL");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, ToolRow>(sqlx::AssertSqlSafe(q))
            .bind(id).fetch_optional(p).await?),
        )
    }

    /// Non-deleted versions of a tool, newest first.
    pub async fn tool_versions(&self, name: &str) -> Result<Vec<ToolRow>> {
        let q = format!(
            "SELECT {TOOL_COLS} FROM tools WHERE name = $1 AND deleted IS NULL ORDER BY created DESC, id DESC"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, ToolRow>(sqlx::AssertSqlSafe(q))
            .bind(name).fetch_all(p).await?),
        )
    }

    /// A tool by `name` (latest version) or `name@version`.
    pub async fn tool_by_ref(&self, tool_ref: &str) -> Result<Option<ToolRow>> {
        let (name, version) = split_tool_ref(tool_ref);
        let versions = self.tool_versions(name).await?;
        Ok(pick_tool_version(&versions, version).cloned())
    }

    /// The latest version of every tool.
    pub async fn latest_tools(&self) -> Result<Vec<ToolRow>> {
        let q = format!(
            "SELECT {TOOL_COLS} FROM tools t WHERE deleted IS NULL AND id = \
             (SELECT t2.id FROM tools t2 WHERE t2.name = t.name AND t2.deleted IS NULL \
              ORDER BY t2.created DESC, t2.id DESC LIMIT 1) ORDER BY name"
        );
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, ToolRow>(sqlx::AssertSqlSafe(q))
            .fetch_all(p).await?),
        )
    }

    /// Every non-deleted tool version, oldest first (for the workflow schema).
    pub async fn all_tools(&self) -> Result<Vec<ToolRow>> {
        let q = format!("SELECT {TOOL_COLS} FROM tools WHERE deleted IS NULL ORDER BY id");
        Ok(
            on_read!(&self.db, p => sqlx::query_as::<_, ToolRow>(sqlx::AssertSqlSafe(q))
            .fetch_all(p).await?),
        )
    }

    /// What tells whether the tools changed: their number, and the
    /// highest id, creation and update time (a new version has a new id; a
    /// deleted one lowers the number; an overwritten one is updated).
    pub async fn tools_fingerprint(&self) -> Result<(i64, i64, i64, i64)> {
        Ok(on_read!(&self.db, p => sqlx::query_as(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(MAX(created), 0), COALESCE(MAX(updated), 0) \
             FROM tools WHERE deleted IS NULL")
            .fetch_one(p).await?))
    }

    /// Soft-delete a tool version.
    pub async fn delete_tool(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query("UPDATE tools SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }
}

/// A tool reference's name and version: `name` (the latest) or `name@version`.
pub(crate) fn split_tool_ref(tool_ref: &str) -> (&str, Option<&str>) {
    match tool_ref.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (tool_ref, None),
    }
}

/// Among one tool's versions, newest first, `version` or else the latest.
pub(crate) fn pick_tool_version<'a>(
    versions: &'a [ToolRow],
    version: Option<&str>,
) -> Option<&'a ToolRow> {
    match version {
        Some(v) => versions.iter().find(|t| t.version.as_deref() == Some(v)),
        None => versions.first(),
    }
}
