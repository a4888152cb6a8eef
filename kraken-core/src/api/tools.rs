//! Tools: list, register (with version bumping), versions, delete, zip upload,
//! and the workflow JSON schema built from them.

use serde_json::Value;

use super::{Local, required};
use crate::error::{Error, Result};
use crate::model::limits::Bounded;
use crate::model::{Empty, List, Paging, Tool, ToolInput};
use crate::store::tools::{NewToolRow, ToolRow};
use crate::store::{page, sort_dir};

const ADMIN_ONLY: &str = "only superadmin can manage tools";

/// The next version after `v`: its trailing number plus one (`"1"` → `"2"`,
/// `"1.4"` → `"1.5"`), or `v.1` when it does not end in a number.
fn bump_version(v: &str) -> String {
    let digits = v.chars().rev().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return format!("{v}.1");
    }
    let (head, num) = v.split_at(v.len() - digits);
    match num.parse::<u64>() {
        Ok(n) => format!("{head}{}", n + 1),
        Err(_) => format!("{v}.1"),
    }
}

fn validate_parameters(p: &Value) -> Result<()> {
    if !p.is_object() {
        return Err(Error::bad_request(
            "parameters of a tool must be a JSON schema object",
        ));
    }
    if let Some(props) = p.get("properties")
        && !props.is_object()
    {
        return Err(Error::bad_request(
            "parameters.properties of a tool must be an object",
        ));
    }
    jsonschema::validator_for(p).map(|_| ()).map_err(|e| {
        Error::bad_request(format!(
            "parameters of the tool are not a valid JSON schema: {e}"
        ))
    })
}

impl Local {
    /// `GET /tools`: the latest version of each tool.
    pub async fn get_tools(&self, paging: &Paging) -> Result<List<Tool>> {
        let mut rows = self.store().latest_tools().await?;
        let dir = sort_dir(paging.sort_dir.as_deref())?;
        match paging.sort_field.as_deref() {
            None | Some("") | Some("name") => rows.sort_by(|a, b| a.name.cmp(&b.name)),
            Some("id") => rows.sort_by_key(|t| t.id),
            Some("created") => rows.sort_by_key(|t| t.created),
            Some("version") => rows.sort_by(|a, b| a.version.cmp(&b.version)),
            Some(f) => {
                return Err(Error::bad_request(format!(
                    "incorrect sort_field '{f}': use name, id, created or version"
                )));
            }
        }
        if dir == "DESC" {
            rows.reverse();
        }
        let total = rows.len() as i64;
        let (start, limit) = page(paging.start, paging.limit, 1000, 10_000);
        let items = rows
            .iter()
            .skip(start as usize)
            .take(limit as usize)
            .map(ToolRow::to_model)
            .collect();
        Ok(List { items, total })
    }

    /// `GET /tools/{name}`: every version of a tool, newest first.
    pub async fn get_tool_versions(&self, name: &str, paging: &Paging) -> Result<List<Tool>> {
        let rows = self.store().tool_versions(name).await?;
        if rows.is_empty() {
            return Err(Error::not_found(format!("Tool {name} not found")));
        }
        let total = rows.len() as i64;
        let (start, limit) = page(paging.start, paging.limit, 1000, 10_000);
        let items = rows
            .iter()
            .skip(start as usize)
            .take(limit as usize)
            .map(ToolRow::to_model)
            .collect();
        Ok(List { items, total })
    }

    /// `POST /tools`: register a tool from its `tool.json` (a new version, or
    /// an overwrite of the version given); superadmins.
    pub async fn create_or_update_tool(&self, input: &ToolInput) -> Result<Tool> {
        input.check_limits()?;
        self.who.require_superadmin(ADMIN_ONLY)?;
        Ok(self.register_tool(input).await?.to_model())
    }

    async fn register_tool(&self, input: &ToolInput) -> Result<ToolRow> {
        if input.url.is_some() && input.name.is_none() {
            return Err(Error::bad_request(
                "remote tools (url, tag, tool_file) cannot be loaded by this server: register the \
                 tool's tool.json with POST /tools, or upload its package with POST /tools/{name}/zip",
            ));
        }
        let name = required(&input.name, "Missing name in tool")?;
        if name.contains('@') || name.contains('/') {
            return Err(Error::bad_request(format!(
                "incorrect tool name '{name}': '@' and '/' are not allowed"
            )));
        }
        let parameters = input
            .parameters
            .clone()
            .ok_or_else(|| Error::bad_request("Missing parameters in tool"))?;
        validate_parameters(&parameters)?;
        let versions = self.store().tool_versions(name).await?;
        if versions.first().is_some_and(ToolRow::is_builtin) {
            return Err(Error::bad_request(format!(
                "tool '{name}' is built in and cannot be changed"
            )));
        }
        let mut row = NewToolRow {
            name: name.to_string(),
            description: input.description.clone(),
            fields: parameters,
            location: input.location.clone(),
            entry: input.entry.clone(),
            version: String::new(),
            url: input.url.clone(),
            tag: input.tag.clone(),
            tool_file: input.tool_file.clone(),
        };
        if let Some(v) = input.version.as_deref().filter(|v| !v.is_empty()) {
            row.version = v.to_string();
            if let Some(existing) = versions.iter().find(|t| t.version.as_deref() == Some(v)) {
                self.store().overwrite_tool(existing.id, &row).await?;
                return self
                    .store()
                    .tool(existing.id)
                    .await?
                    .ok_or_else(|| Error::internal("tool vanished"));
            }
        } else {
            row.version = match versions.first().and_then(|t| t.version.as_deref()) {
                Some(latest) => bump_version(latest),
                None => "1".to_string(),
            };
        }
        self.store().insert_tool(&row).await
    }

    /// `POST /tools/{name}/zip`: register a tool version and store its package.
    pub async fn upload_tool(&self, name: &str, meta: &ToolInput, zip: &[u8]) -> Result<Tool> {
        meta.check_limits()?;
        self.who.require_superadmin(ADMIN_ONLY)?;
        if meta.name.as_deref().is_some_and(|n| n != name) {
            return Err(Error::bad_request(format!(
                "tool name in meta ({}) differs from the one in the URL ({name})",
                meta.name.as_deref().unwrap_or_default()
            )));
        }
        if !zip.starts_with(b"PK\x03\x04") && !zip.starts_with(b"PK\x05\x06") {
            return Err(Error::bad_request(
                "the tool package (file) must be a zip archive",
            ));
        }
        let mut meta = meta.clone();
        meta.name = Some(name.to_string());
        let row = self.register_tool(&meta).await?;
        let rel = format!("tools/tool-{}/tool.zip", row.id);
        self.core
            .storage()
            .put_bytes(&rel, bytes::Bytes::copy_from_slice(zip))
            .await?;
        self.store()
            .set_tool_location(row.id, &format!("blob:{rel}"))
            .await?;
        Ok(self
            .store()
            .tool(row.id)
            .await?
            .ok_or_else(|| Error::internal("tool vanished"))?
            .to_model())
    }

    /// `DELETE /tools/{id}`: not the built-ins (superadmins).
    pub async fn delete_tool(&self, id: i64) -> Result<Empty> {
        self.who.require_superadmin(ADMIN_ONLY)?;
        let row = self
            .store()
            .tool(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Tool with id {id} not found")))?;
        if row.is_builtin() {
            return Err(Error::bad_request(format!(
                "tool '{}' is built in and cannot be deleted",
                row.name
            )));
        }
        self.store().delete_tool(id).await?;
        Ok(Empty {})
    }

    /// `GET /workflow-schema`.
    pub async fn get_workflow_schema(&self) -> Result<Value> {
        crate::engine::workflow_schema(self.store()).await
    }
}

#[cfg(test)]
mod tests {
    use super::bump_version;

    #[test]
    fn versions_bump_their_trailing_number() {
        assert_eq!(bump_version("1"), "2");
        assert_eq!(bump_version("9"), "10");
        assert_eq!(bump_version("1.4"), "1.5");
        assert_eq!(bump_version("main"), "main.1");
    }
}
