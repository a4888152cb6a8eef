//! Projects and secrets.

use serde_json::{Value, json};

use super::{Local, required};
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{
    Empty, List, NewProject, Project, ProjectChanges, Secret, SecretInput, secret_kind,
};

fn secret_name_ok(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Local {
    /// `GET /projects`: the projects the caller has a role in (all for superadmins).
    pub async fn get_projects(&self) -> Result<List<Project>> {
        let rows: Vec<_> = self
            .store()
            .list_projects()
            .await?
            .into_iter()
            .filter(|row| self.who.can(row.id, crate::model::Role::Viewer))
            .collect();
        Ok(List::all(
            crate::view::projects_with_last_results(self.store(), &rows).await?,
        ))
    }

    /// `POST /projects`: superadmins only.
    pub async fn create_project(&self, input: &NewProject) -> Result<Project> {
        input.check_limits()?;
        self.who
            .require_superadmin("only superadmin role can create projects")?;
        let name = required(&input.name, "Missing name in project")?;
        let row = self
            .store()
            .create_project(name, input.description.as_deref())
            .await?;
        crate::view::project_json(self.store(), &row, crate::view::BranchDetail::Plain).await
    }

    /// `GET /projects/{id}` (`with_results` adds each branch's latest flows).
    pub async fn get_project(&self, id: i64, with_results: bool) -> Result<Project> {
        let row = self.store().require_project(id).await?;
        self.who.require_view(id)?;
        let detail = if with_results {
            crate::view::BranchDetail::Results
        } else {
            crate::view::BranchDetail::Plain
        };
        crate::view::project_json(self.store(), &row, detail).await
    }

    /// `PUT /projects/{id}`: name, description, webhooks (pwrusr).
    pub async fn update_project(&self, id: i64, input: &ProjectChanges) -> Result<Project> {
        input.check_limits()?;
        let row = self.store().require_project(id).await?;
        self.who.require_pwrusr(id)?;
        let name = match &input.name {
            Some(n) if n.trim().is_empty() => {
                return Err(Error::bad_request("project name cannot be empty"));
            }
            Some(n) if *n != row.name => {
                if self.store().project_by_name(n).await?.is_some() {
                    return Err(Error::bad_request(format!(
                        "Project with name {n} already exists"
                    )));
                }
                n.clone()
            }
            _ => row.name.clone(),
        };
        let description = input
            .description
            .clone()
            .or_else(|| row.description.clone());
        let mut webhooks = row
            .webhooks
            .as_ref()
            .map(|w| w.0.clone())
            .unwrap_or_else(|| json!({}));
        if let (Some(changes), Some(obj)) = (&input.webhooks, webhooks.as_object_mut())
            && let Value::Object(changes) = serde_json::to_value(changes)?
        {
            for (k, v) in changes {
                obj.insert(k, v);
            }
        }
        self.store()
            .update_project(id, &name, description.as_deref(), &webhooks)
            .await?;
        let row = self.store().require_project(id).await?;
        crate::view::project_json(self.store(), &row, crate::view::BranchDetail::Plain).await
    }

    /// `DELETE /projects/{id}`: soft delete (admin).
    pub async fn delete_project(&self, id: i64) -> Result<Empty> {
        self.store().require_project(id).await?;
        self.who.require_admin(id)?;
        for b in self.store().project_branches(id).await? {
            self.stop_branch_work(b.id, "canceled: the project was deleted")
                .await?;
        }
        self.store().delete_project(id).await?;
        // Roles in a deleted project go with it (`roles_of`).
        self.core.sessions.forget_all();
        Ok(Empty {})
    }

    /// `POST /projects/{id}/secrets` (admin).
    pub async fn create_secret(&self, project_id: i64, input: &SecretInput) -> Result<Secret> {
        input.check_limits()?;
        self.store().require_project(project_id).await?;
        self.who.require_admin(project_id)?;
        let name = required(&input.name, "Missing name in secret")?;
        if !secret_name_ok(name) {
            return Err(Error::bad_request(format!(
                "incorrect secret name '{name}': use only letters, digits and '_'"
            )));
        }
        if self
            .store()
            .project_secrets(project_id)
            .await?
            .iter()
            .any(|s| s.name == name)
        {
            return Err(Error::bad_request(format!(
                "Secret with name {name} already exists"
            )));
        }
        let (kind, data) = match input.kind.as_deref() {
            Some("ssh-key") => (
                secret_kind::SSH_KEY,
                json!({"username": input.username.clone().unwrap_or_default(),
                       "key": required(&input.key, "Missing key in ssh-key secret")?}),
            ),
            Some("simple") => (
                secret_kind::SIMPLE,
                json!({"secret": input.secret.clone().ok_or_else(|| Error::bad_request("Missing secret in simple secret"))?}),
            ),
            Some(k) => {
                return Err(Error::bad_request(format!(
                    "incorrect secret kind '{k}': use 'ssh-key' or 'simple'"
                )));
            }
            None => return Err(Error::bad_request("Missing kind in secret")),
        };
        Ok(self
            .store()
            .create_secret(project_id, name, kind, &data)
            .await?
            .to_model())
    }

    /// `PUT /secrets/{id}` (admin); `******` leaves a value unchanged.
    pub async fn update_secret(&self, id: i64, input: &SecretInput) -> Result<Secret> {
        input.check_limits()?;
        let row = self
            .store()
            .secret(id)
            .await?
            .ok_or_else(|| Error::not_found("Secret not found"))?;
        self.who.require_admin(row.project_id)?;
        let name = match &input.name {
            Some(n) if !secret_name_ok(n) => {
                return Err(Error::bad_request(format!(
                    "incorrect secret name '{n}': use only letters, digits and '_'"
                )));
            }
            Some(n) => n.clone(),
            None => row.name.clone(),
        };
        let mut data = row.data.0.clone();
        if let Some(obj) = data.as_object_mut() {
            let mut set = |k: &str, v: &Option<String>| {
                if let Some(v) = v
                    && v != "******"
                {
                    obj.insert(k.to_string(), Value::String(v.clone()));
                }
            };
            if row.kind == secret_kind::SSH_KEY {
                set("username", &input.username);
                set("key", &input.key);
            } else {
                set("secret", &input.secret);
            }
        }
        self.store().update_secret(id, &name, &data).await?;
        Ok(self
            .store()
            .secret(id)
            .await?
            .ok_or_else(|| Error::not_found("Secret not found"))?
            .to_model())
    }

    /// `DELETE /secrets/{id}` (admin).
    pub async fn delete_secret(&self, id: i64) -> Result<Empty> {
        let row = self
            .store()
            .secret(id)
            .await?
            .ok_or_else(|| Error::not_found("Secret not found"))?;
        self.who.require_admin(row.project_id)?;
        self.store().delete_secret(id).await?;
        Ok(Empty {})
    }
}
