//! Global settings (`settings` table): typed values in groups.

use super::{Store, on_read, on_write};
use crate::error::Result;

/// A `settings` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingRow {
    /// Id.
    pub id: i64,
    /// Key.
    pub name: String,
    /// Value as text.
    pub value: Option<String>,
    /// `integer`, `text`, `boolean` or `password`.
    pub val_type: String,
    /// Group.
    pub grp: String,
}

impl Store {
    /// Every setting.
    pub async fn settings(&self) -> Result<Vec<SettingRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, SettingRow>(
            "SELECT id, name, value, val_type, grp FROM settings ORDER BY grp, name")
            .fetch_all(p).await?))
    }

    /// One setting's text value.
    pub async fn setting(&self, group: &str, name: &str) -> Result<Option<String>> {
        let v: Option<Option<String>> = on_read!(&self.db, p => sqlx::query_scalar(
            "SELECT value FROM settings WHERE grp = $1 AND name = $2")
            .bind(group).bind(name).fetch_optional(p).await?);
        Ok(v.flatten())
    }

    /// Add a setting if it is missing (seeding keeps existing values).
    pub async fn seed_setting(
        &self,
        group: &str,
        name: &str,
        val_type: &str,
        value: &str,
    ) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "INSERT INTO settings (name, value, val_type, grp) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (grp, name) DO NOTHING")
            .bind(name).bind(value).bind(val_type).bind(group).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a setting's text value.
    pub async fn set_setting(&self, group: &str, name: &str, value: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query("UPDATE settings SET value = $1 WHERE grp = $2 AND name = $3")
            .bind(value).bind(group).bind(name).execute(p).await?.rows_affected());
        Ok(())
    }
}
