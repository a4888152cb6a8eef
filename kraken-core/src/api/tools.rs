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

/// A private temporary directory, removed on drop.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir> {
        let n: u64 = rand::random();
        let dir = std::env::temp_dir().join(format!("kraken-tool-{n:016x}"));
        std::fs::create_dir(&dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `git args` in `cwd` (no prompts, no `ext::` transports, at most 5
/// minutes); its trimmed standard output, or its last error line.
async fn git(cwd: &std::path::Path, args: &[&str]) -> std::result::Result<String, String> {
    let run = tokio::process::Command::new("git")
        .args(["-c", "protocol.ext.allow=never"])
        // A transfer that stalls for 30 s is given up.
        .args(["-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=30"])
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        // No prompt for ssh either, and no endless wait for a host.
        .env(
            "GIT_SSH_COMMAND",
            "ssh -o BatchMode=yes -o ConnectTimeout=20",
        )
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .map_err(|_| {
            format!(
                "git {} took more than 5 minutes",
                args.first().unwrap_or(&"")
            )
        })?
        .map_err(|e| format!("cannot run git (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .trim()
            .lines()
            .last()
            .unwrap_or("git failed")
            .trim_start_matches("fatal: ")
            .to_string())
    }
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
    /// an overwrite of the version given), or a remote tool from a git
    /// repository (`{url, tag, tool_file}`, see `load_remote_tool`); superadmins.
    pub async fn create_or_update_tool(&self, input: &ToolInput) -> Result<Tool> {
        input.check_limits()?;
        self.who.require_superadmin(ADMIN_ONLY)?;
        if input.name.is_none()
            && let Some(url) = input.url.as_deref()
        {
            return Ok(self.load_remote_tool(url, input).await?.to_model());
        }
        Ok(self.register_tool(input).await?.to_model())
    }

    async fn register_tool(&self, input: &ToolInput) -> Result<ToolRow> {
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

    /// `POST /tools {url, tag, tool_file}`: a remote tool. Its repository is
    /// cloned (`git clone --depth 1 --branch <tag>`; the default branch
    /// without a tag), its `tool_file` (default `tool.json`, a path in the
    /// repository) registered as the tool, with the commit's short SHA as
    /// its version unless the file names one, and the directory of that file
    /// at that commit stored as the tool's package, as an uploaded zip is.
    async fn load_remote_tool(&self, url: &str, input: &ToolInput) -> Result<ToolRow> {
        let tag = input.tag.as_deref().filter(|t| !t.trim().is_empty());
        let tool_file = input
            .tool_file
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .unwrap_or("tool.json");
        if !crate::engine::repo::is_git_url(url) {
            return Err(Error::bad_request(format!(
                "incorrect remote tool url '{url}': give a git repository URL (https://, \
                 http://, ssh://, git://, file://, user@host:path or an absolute path)"
            )));
        }
        if tag.is_some_and(|t| t.starts_with('-')) {
            return Err(Error::bad_request(format!(
                "incorrect remote tool tag '{}'",
                tag.unwrap_or_default()
            )));
        }
        let tool_file = super::backend::safe_rel_path(tool_file).map_err(|_| {
            Error::bad_request(format!(
                "incorrect tool_file '{tool_file}': give a path inside the repository"
            ))
        })?;
        let tmp = ScratchDir::new()?;
        let repo = tmp.0.join("repo");
        let mut clone = vec!["clone", "--quiet", "--depth", "1"];
        if let Some(t) = tag {
            clone.extend(["--branch", t]);
        }
        clone.push("--");
        clone.push(url);
        let repo_str = repo.to_string_lossy().into_owned();
        clone.push(&repo_str);
        git(&tmp.0, &clone).await.map_err(|e| {
            Error::bad_request(format!(
                "cannot fetch remote tool from {url}{}: {e}",
                tag.map(|t| format!(" at {t}")).unwrap_or_default()
            ))
        })?;
        let sha = git(&repo, &["rev-parse", "--short", "HEAD"])
            .await
            .map_err(Error::internal)?;
        let text = std::fs::read_to_string(repo.join(&tool_file)).map_err(|e| {
            Error::bad_request(format!(
                "the repository {url} has no tool file {tool_file}: {e}"
            ))
        })?;
        let mut meta: ToolInput = serde_json::from_str(&text).map_err(|e| {
            Error::bad_request(format!("{tool_file} in {url} is not a tool.json: {e}"))
        })?;
        if meta.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(Error::bad_request(format!(
                "{tool_file} in {url} has no name"
            )));
        }
        meta.check_limits()?;
        if meta.version.as_deref().is_none_or(str::is_empty) {
            meta.version = Some(sha.clone());
        }
        meta.url = Some(url.to_string());
        meta.tag = tag.map(str::to_string);
        meta.tool_file = Some(tool_file.clone());
        // The tool's directory at that commit, as a zip (git's own archive:
        // committed files only, no .git).
        let dir = match tool_file.rsplit_once('/') {
            Some((d, _)) => format!("HEAD:{d}"),
            None => "HEAD".to_string(),
        };
        let zip = tmp.0.join("tool.zip");
        let zip_str = zip.to_string_lossy().into_owned();
        git(&repo, &["archive", "--format=zip", "-o", &zip_str, &dir])
            .await
            .map_err(Error::internal)?;
        let row = self.register_tool(&meta).await?;
        let rel = format!("tools/tool-{}/tool.zip", row.id);
        let file = tokio::fs::File::open(&zip)
            .await
            .map_err(|e| Error::internal(format!("cannot read {}: {e}", zip.display())))?;
        self.core
            .storage()
            .put_stream(
                &rel,
                crate::storage::file_stream(file),
                crate::model::limits::UPLOAD_BODY as u64,
            )
            .await?;
        self.store()
            .set_tool_location(row.id, &format!("blob:{rel}"))
            .await?;
        tracing::info!(tool = %row.name, version = ?row.version, url, "remote tool loaded");
        self.store()
            .tool(row.id)
            .await?
            .ok_or_else(|| Error::internal("tool vanished"))
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
    fn remote_tool_urls_are_git_urls() {
        for ok in [
            "https://github.com/me/tools.git",
            "file:///srv/repo",
            "git@github.com:me/tools.git",
            "/srv/repo",
            "ssh://git@host/x",
        ] {
            assert!(crate::engine::repo::is_git_url(ok), "{ok}");
        }
        for bad in [
            "",
            "-upload-pack=x",
            "ext::sh -c x",
            "tools",
            "ftp://x/y",
            "a/b:c",
            "http://",
        ] {
            assert!(!crate::engine::repo::is_git_url(bad), "{bad}");
        }
    }

    #[test]
    fn versions_bump_their_trailing_number() {
        assert_eq!(bump_version("1"), "2");
        assert_eq!(bump_version("9"), "10");
        assert_eq!(bump_version("1.4"), "1.5");
        assert_eq!(bump_version("main"), "main.1");
    }
}
