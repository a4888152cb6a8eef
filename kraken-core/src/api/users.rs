//! Sessions and users.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Local, required};
use crate::auth::limiter::LoginLimiter;
use crate::auth::{DUMMY_HASH, hash_password, new_token, verify_password};
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    Empty, List, Login, NewUser, Paging, PasswordChange, Role, Roles, Session, User, UserChanges,
};
use crate::store::users::UserRow;
use crate::store::{Store, page, sort_dir};

async fn session_json(
    store: &Store,
    session_id: i64,
    token: &str,
    user_id: i64,
) -> Result<Session> {
    let user = store
        .user(user_id)
        .await?
        .ok_or_else(|| Error::not_found("User not found"))?;
    let roles = store.roles_of(user_id).await?;
    Ok(Session {
        id: session_id,
        token: token.to_string(),
        user: user.to_model(),
        roles: Roles {
            superadmin: user.superadmin,
            projects: roles.into_iter().map(|(p, r)| (p.to_string(), r)).collect(),
        },
    })
}

/// Log in with a user name and password: a new session (no principal needed).
///
/// Failed logins are throttled per user name and per source address
/// ([`LoginLimiter`]). A user name that does not exist is checked against
/// [`DUMMY_HASH`], so it takes as long as a wrong password and gets the same
/// answer. A disabled user is told so only with the right password (as the
/// original does), which costs the same as a wrong one.
pub(crate) async fn login(
    store: &Store,
    limiter: &LoginLimiter,
    input: &Login,
    source: Option<IpAddr>,
) -> Result<Session> {
    input.check_limits()?;
    let (Some(name), Some(password)) = (&input.user, &input.password) else {
        return Err(Error::bad_request("bad credentials"));
    };
    if let Some(method) = input.method.as_deref()
        && method != "local"
    {
        return Err(Error::bad_request(format!(
            "login method '{method}' is not supported by this server: use 'local'"
        )));
    }
    if let Err(wait) = limiter.check(name, source) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(Error::TooManyRequests {
            message: format!("too many failed logins: try again in {secs} s"),
            retry_after: secs.max(1),
        });
    }
    let user = store.user_by_name(name).await?;
    let hash = hash_to_verify(user.as_ref());
    let password_ok = verify_password(password, hash) && user.is_some();
    let imported_hash = !hash.starts_with("$argon2");
    let user = match user {
        Some(u) if password_ok => u,
        _ => {
            limiter.failed(name, source);
            return Err(Error::Unauthorized(
                "missing user or incorrect password".into(),
            ));
        }
    };
    if !user.enabled() {
        limiter.failed(name, source);
        return Err(Error::Unauthorized("user account is disabled".into()));
    }
    limiter.succeeded(name);
    if imported_hash {
        // An imported (passlib) hash: store an Argon2 one from now on, so
        // every login costs the same.
        store
            .set_password(user.id, &hash_password(password)?)
            .await?;
    }
    let token = new_token();
    let session = store.create_session(user.id, &token).await?;
    session_json(store, session.id, &token, user.id).await
}

/// The hash a login verifies the password against: the user's, or for a
/// user that does not exist [`DUMMY_HASH`], so that both cost one Argon2
/// verification.
fn hash_to_verify(user: Option<&UserRow>) -> &str {
    user.map_or(DUMMY_HASH, |u| u.password.as_str())
}

impl Local {
    /// `POST /sessions`.
    pub async fn login(&self, input: &Login) -> Result<Session> {
        self.core.login(input).await
    }

    /// `GET /sessions/{token}`: only the caller's own session.
    pub async fn get_session(&self, token: &str) -> Result<Session> {
        let s = self
            .own_session(token, "only user can get its session data")
            .await?;
        session_json(self.store(), s.0, token, s.1).await
    }

    /// `DELETE /sessions/{token}`: log out (only the caller's own session).
    pub async fn logout(&self, token: &str) -> Result<()> {
        let s = self
            .own_session(token, "only user can logout itself")
            .await?;
        self.store().end_session(s.0).await?;
        self.core.sessions.forget_token(token);
        Ok(())
    }

    async fn own_session(&self, token: &str, msg: &str) -> Result<(i64, i64)> {
        let Some(session) = self.store().session_by_token(token).await? else {
            return Err(Error::not_found("Session not found"));
        };
        if self.who.token.as_deref() != Some(token) && session.user_id != self.who.user_id {
            return Err(Error::forbidden(msg));
        }
        Ok((session.id, session.user_id))
    }

    /// `GET /users`: superadmins only.
    pub async fn get_users(&self, paging: &Paging) -> Result<List<User>> {
        self.who
            .require_superadmin("only superadmin can list users")?;
        let (start, limit) = page(paging.start, paging.limit, 1000, 10_000);
        let field = match paging.sort_field.as_deref() {
            None | Some("") | Some("id") => "id",
            Some("name") => "name",
            Some("created") => "created",
            Some(f) => {
                return Err(Error::bad_request(format!(
                    "incorrect sort_field '{f}': use id, name or created"
                )));
            }
        };
        let dir = sort_dir(paging.sort_dir.as_deref())?;
        let (rows, total) = self.store().list_users(start, limit, field, dir).await?;
        Ok(List {
            items: rows.iter().map(|u| u.to_model()).collect(),
            total,
        })
    }

    /// `POST /users`: superadmins only.
    pub async fn create_user(&self, input: &NewUser) -> Result<User> {
        input.check_limits()?;
        self.who
            .require_superadmin("only superadmin can create users")?;
        let name = required(&input.name, "Missing name in user")?;
        let password = required(&input.password, "Missing password in user")?;
        let hash = hash_password(password)?;
        Ok(self
            .store()
            .create_user(name, &hash, false)
            .await?
            .to_model())
    }

    /// `GET /users/{id}`: the user with their roles; superadmins (or the user).
    pub async fn get_user(&self, id: i64) -> Result<User> {
        if id != self.who.user_id {
            self.who
                .require_superadmin("only superadmin can see other users")?;
        }
        self.user_with_roles(id).await
    }

    async fn user_with_roles(&self, id: i64) -> Result<User> {
        let user = self
            .store()
            .user(id)
            .await?
            .ok_or_else(|| Error::not_found("User not found"))?;
        let roles = self.store().roles_of(id).await?;
        let mut out = user.to_model();
        out.projects = Some(
            roles
                .into_iter()
                .map(|(p, r)| (p.to_string(), r))
                .collect::<BTreeMap<_, _>>(),
        );
        Ok(out)
    }

    /// `PATCH /users/{id}`: enable/disable, superadmin, project roles.
    pub async fn change_user_details(&self, id: i64, input: &UserChanges) -> Result<User> {
        self.who
            .require_superadmin("only superadmin can change user details")?;
        let user = self
            .store()
            .user(id)
            .await?
            .ok_or_else(|| Error::not_found("User not found"))?;
        if let Some(projects) = &input.projects {
            let mut changes: Vec<(i64, Option<Role>)> = Vec::new();
            for (pid, role) in projects {
                let pid: i64 = pid.parse().map_err(|_| {
                    Error::bad_request(format!("incorrect project id '{pid}' in projects"))
                })?;
                if self.store().project(pid).await?.is_none() {
                    return Err(Error::bad_request(format!(
                        "Project with id {pid} does not exist"
                    )));
                }
                changes.push((pid, *role));
            }
            for (pid, role) in changes {
                self.store().set_role(id, pid, role).await?;
            }
            self.core.sessions.forget_user(id);
        }
        if input.enabled.is_some() || input.superadmin.is_some() {
            if user.name == "admin"
                && (input.superadmin == Some(false) || input.enabled == Some(false))
            {
                return Err(Error::bad_request(
                    "user 'admin' cannot lose superadmin rights or be disabled",
                ));
            }
            self.store()
                .update_user(&user, input.enabled, input.superadmin)
                .await?;
            if input.enabled == Some(false) {
                let ended = self.store().end_user_sessions(user.id, None).await?;
                tracing::info!(user = %user.name, sessions = ended, "user disabled: sessions ended");
            }
            self.core.sessions.forget_user(id);
        }
        self.user_with_roles(id).await
    }

    /// `PUT /users/{id}/password`: the user themself or a superadmin, with the old password.
    pub async fn change_password(&self, id: i64, input: &PasswordChange) -> Result<Empty> {
        input.check_limits()?;
        if id != self.who.user_id {
            self.who
                .require_superadmin("only the user or a superadmin can change a password")?;
        }
        let old = input.password_old.as_deref().unwrap_or("");
        let user = match self.store().user(id).await? {
            Some(u) if verify_password(old, &u.password) => u,
            _ => {
                return Err(Error::bad_request(
                    "user not found or old password is incorrect",
                ));
            }
        };
        let new = required(&input.password_new, "new password cannot be empty")?;
        self.store()
            .set_password(user.id, &hash_password(new)?)
            .await?;
        // Every other session of the user ends: whoever knew the old password
        // is logged out. The session that changed it, the user's own, stays.
        let keep = self.who.session_id.filter(|_| self.who.user_id == user.id);
        let ended = self.store().end_user_sessions(user.id, keep).await?;
        self.core.sessions.forget_user(user.id);
        tracing::info!(user = %user.name, sessions = ended, "password changed: other sessions ended");
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_user_is_verified_against_the_dummy_hash() {
        assert_eq!(hash_to_verify(None), DUMMY_HASH);
        assert!(DUMMY_HASH.starts_with("$argon2id$"));
    }
}
