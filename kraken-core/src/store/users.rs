//! Users, sessions and per-project roles.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::types::Json;

use super::{Paged, Store, in_tx, now_ms, on_read, on_write, page_and_total};
use crate::error::{Error, Result};
use crate::model::{Role, Timestamp, User};

/// A `users` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Password hash (`''` for none).
    pub password: String,
    /// Superadmin.
    pub superadmin: bool,
    /// `{enabled, email, ...}`.
    pub details: Json<Value>,
    /// Created (ms).
    pub created: i64,
    /// Deleted (ms).
    pub deleted: Option<i64>,
}

impl UserRow {
    /// Whether the account may log in.
    pub fn enabled(&self) -> bool {
        self.details
            .0
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }
    /// The API form.
    pub fn to_model(&self) -> User {
        User {
            id: self.id,
            name: self.name.clone(),
            enabled: self.enabled(),
            email: self
                .details
                .0
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            superadmin: self.superadmin,
            projects: None,
        }
    }
}

/// A `user_sessions` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// Id.
    pub id: i64,
    /// Token.
    pub token: String,
    /// User.
    pub user_id: i64,
    /// Last use (ms).
    pub last_used: i64,
    /// Created (ms).
    pub created: i64,
}

const USER_COLS: &str = "id, name, password, superadmin, details, created, deleted";

impl Store {
    /// Create a user; fails with 400 when the name is taken.
    pub async fn create_user(&self, name: &str, hash: &str, superadmin: bool) -> Result<UserRow> {
        if self.user_by_name(name).await?.is_some() {
            return Err(Error::bad_request(format!(
                "User with name {name} already exists"
            )));
        }
        let now = now_ms();
        let details = Json(json!({"enabled": true}));
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO users (name, password, superadmin, details, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
            .bind(name).bind(hash).bind(superadmin).bind(&details).bind(now)
            .fetch_one(p).await?);
        self.user(id)
            .await?
            .ok_or_else(|| Error::internal("user vanished after insert"))
    }

    /// A non-deleted user by id.
    pub async fn user(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, UserRow>(
            "SELECT id, name, password, superadmin, details, created, deleted FROM users \
             WHERE id = $1 AND deleted IS NULL")
            .bind(id).fetch_optional(p).await?))
    }

    /// A non-deleted user by name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, UserRow>(
            "SELECT id, name, password, superadmin, details, created, deleted FROM users \
             WHERE name = $1 AND deleted IS NULL")
            .bind(name).fetch_optional(p).await?))
    }

    /// A page of users and the total count.
    pub async fn list_users(
        &self,
        start: i64,
        limit: i64,
        sort_field: &str,
        dir: &str,
    ) -> Result<(Vec<UserRow>, i64)> {
        let q = format!(
            "SELECT {USER_COLS}, COUNT(*) OVER () AS total FROM users WHERE deleted IS NULL \
             ORDER BY {sort_field} {dir}, id {dir} LIMIT $1 OFFSET $2"
        );
        let rows = on_read!(&self.db, p => sqlx::query_as::<_, Paged<UserRow>>(sqlx::AssertSqlSafe(q))
            .bind(limit).bind(start).fetch_all(p).await?);
        page_and_total(rows, start, async {
            Ok(on_read!(&self.db, p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE deleted IS NULL").fetch_one(p).await?))
        })
        .await
    }

    /// Set `enabled` and/or `superadmin`.
    pub async fn update_user(
        &self,
        user: &UserRow,
        enabled: Option<bool>,
        superadmin: Option<bool>,
    ) -> Result<()> {
        let mut details = user.details.0.clone();
        if let (Some(e), Some(obj)) = (enabled, details.as_object_mut()) {
            obj.insert("enabled".into(), Value::Bool(e));
        }
        let superadmin = superadmin.unwrap_or(user.superadmin);
        on_write!(&self.db, p => sqlx::query(
            "UPDATE users SET details = $1, superadmin = $2, updated = $3 WHERE id = $4")
            .bind(Json(details)).bind(superadmin).bind(now_ms()).bind(user.id)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Store a new password hash.
    pub async fn set_password(&self, user_id: i64, hash: &str) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE users SET password = $1, updated = $2 WHERE id = $3")
            .bind(hash).bind(now_ms()).bind(user_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Roles of a user per project (deleted projects left out).
    pub async fn roles_of(&self, user_id: i64) -> Result<HashMap<i64, Role>> {
        let rows: Vec<(i64, String)> = on_read!(&self.db, p => sqlx::query_as(
            "SELECT r.project_id, r.role FROM user_roles r JOIN projects pr ON pr.id = r.project_id \
             WHERE r.user_id = $1 AND pr.deleted IS NULL")
            .bind(user_id).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .filter_map(|(pid, r)| Role::parse(&r).map(|r| (pid, r)))
            .collect())
    }

    /// Grant (`Some`) or revoke (`None`) a role.
    pub async fn set_role(&self, user_id: i64, project_id: i64, role: Option<Role>) -> Result<()> {
        // One transaction: a changed role never leaves the user without one.
        in_tx!(&self.db, tx => {
            sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND project_id = $2")
                .bind(user_id).bind(project_id).execute(&mut *tx).await?;
            if let Some(role) = role {
                sqlx::query("INSERT INTO user_roles (user_id, project_id, role) VALUES ($1, $2, $3)")
                    .bind(user_id).bind(project_id).bind(role.as_str()).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// Start a session.
    pub async fn create_session(&self, user_id: i64, token: &str) -> Result<SessionRow> {
        let now = now_ms();
        let id: i64 = on_write!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO user_sessions (token, user_id, details, last_used, created, updated) \
             VALUES ($1, $2, $3, $4, $4, $4) RETURNING id")
            .bind(token).bind(user_id).bind(Json(json!({}))).bind(now)
            .fetch_one(p).await?);
        Ok(SessionRow {
            id,
            token: token.to_string(),
            user_id,
            last_used: now,
            created: now,
        })
    }

    /// A live session by token (not logged out; expiry is checked by the caller).
    pub async fn session_by_token(&self, token: &str) -> Result<Option<SessionRow>> {
        Ok(on_read!(&self.db, p => sqlx::query_as::<_, SessionRow>(
            "SELECT id, token, user_id, last_used, created FROM user_sessions \
             WHERE token = $1 AND deleted IS NULL")
            .bind(token).fetch_optional(p).await?))
    }

    /// Record that a session was used now.
    pub async fn touch_session(&self, id: i64) -> Result<()> {
        on_write!(&self.db, p => sqlx::query(
            "UPDATE user_sessions SET last_used = $1 WHERE id = $2")
            .bind(now_ms()).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// End every live session of a user (disabled; password changed) but
    /// `keep` (the one that changed the password); the number ended.
    pub async fn end_user_sessions(&self, user_id: i64, keep: Option<i64>) -> Result<u64> {
        let now = now_ms();
        Ok(on_write!(&self.db, p => sqlx::query(
            "UPDATE user_sessions SET deleted = $1, updated = $1 \
             WHERE user_id = $2 AND deleted IS NULL AND id <> $3")
            .bind(now).bind(user_id).bind(keep.unwrap_or(-1))
            .execute(p).await?.rows_affected()))
    }

    /// End a session (logout or expiry).
    pub async fn end_session(&self, id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(&self.db, p => sqlx::query(
            "UPDATE user_sessions SET deleted = $1, updated = $1 WHERE id = $2")
            .bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(())
    }
}

/// Convert epoch ms to the API timestamp.
pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp(ms)
}

/// Convert optional epoch ms to the API timestamp.
pub(crate) fn ots(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp)
}
