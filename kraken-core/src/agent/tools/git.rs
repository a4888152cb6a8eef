//! The `git` tool: clones a repository with the `git` command line.
//!
//! Fields: `checkout` (the URL), `branch` (default `master`; a branch, a tag
//! or a commit), `destination` (default: the repository name from the URL,
//! like `git clone` picks it), `access-token` (the server puts the token
//! value here: `https://host/path` becomes `https://<token>@host/path`,
//! `git@host:path` becomes `https://<token>@host/path`; the token is masked
//! as `******` in the log), `ssh-key` (`{username, key}` from the server: the
//! key is written to a private temporary file used through
//! `GIT_SSH_COMMAND`), `git_cfg` (`-c k=v` options of the clone), `cwd`,
//! `timeout` (seconds for the whole step, default 60), and the
//! server-injected `trigger_data`/`http_url` (when the trigger's repository
//! is this one, its `after` commit is checked out, as in the original).
//!
//! The clone is a full one (`git clone <url> <dest>`), then the branch or
//! commit is checked out. When `branch` is not given and the repository has
//! no `master` branch, its default branch stays checked out.

use serde_json::Value;

use super::process::{Cmd, Exit, TempFile, shell_quote};
use super::{
    Fields, StepOutcome, StepRun, exit_outcome, log, run_cmd, step_cwd, step_env, step_limits,
};

/// Default step timeout of `git` (seconds), as in the original agent.
const DEFAULT_TIMEOUT: u64 = 60;

/// An SSH private key in a file only its owner can read, removed on drop.
pub(crate) struct SshKey {
    file: TempFile,
}

impl SshKey {
    /// Write the key of an `ssh-key` field (`{username, key}`) to a file.
    pub(crate) fn from_field(v: &Value, dir: &std::path::Path) -> Result<SshKey, String> {
        let key = v
            .as_object()
            .and_then(|m| m.get("key"))
            .and_then(Value::as_str)
            .filter(|k| !k.trim().is_empty())
            .ok_or("field 'ssh-key' must be an object with a 'key' (the server puts the secret's key there)")?;
        let mut key = key.to_string();
        if !key.ends_with('\n') {
            key.push('\n');
        }
        let file = TempFile::create(dir, "kk-ssh-key-", "", key.as_bytes())?;
        Ok(SshKey { file })
    }

    /// The `GIT_SSH_COMMAND` that uses the key.
    pub(crate) fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no",
            shell_quote(&self.file.path().to_string_lossy())
        )
    }

    /// The key file (removed when dropped).
    pub(crate) fn into_file(self) -> TempFile {
        self.file
    }
}

/// The directory `git clone <url>` would create.
pub(crate) fn repo_name(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let last = u.rsplit(['/', ':']).next().unwrap_or(u);
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() || name == "." || name == ".." {
        Err(format!(
            "cannot tell the repository name from '{url}'; set 'destination'"
        ))
    } else {
        Ok(name.to_string())
    }
}

/// `url` with `token` as its user, for HTTP(S) URLs and `git@host:path`.
pub(crate) fn url_with_token(url: &str, token: &str) -> Option<String> {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let host_end = rest.find('/').unwrap_or(rest.len());
            let rest = match rest[..host_end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            return Some(format!("{scheme}{token}@{rest}"));
        }
    }
    url.strip_prefix("git@")
        .map(|rest| format!("https://{token}@{}", rest.replacen(':', "/", 1)))
}

/// The commit of the trigger when it was a push to this very repository.
fn trigger_commit(f: Fields<'_>) -> Option<String> {
    // A list of trigger records (as the original sends it); its first one.
    let td = match f.get("trigger_data")? {
        Value::Array(a) => a.first()?.as_object()?,
        v => v.as_object()?,
    };
    let repo = td.get("repo")?.as_str()?;
    let http_url = f.get("http_url")?.as_str()?;
    let after = td.get("after")?.as_str()?;
    // A commit id only: never something `git checkout` takes as an option.
    let commit = !after.is_empty() && after.bytes().all(|b| b.is_ascii_hexdigit());
    (repo == http_url && commit).then(|| after.to_string())
}

/// Run a `git` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let url = f.req_str("checkout")?.trim();
    if url.is_empty() {
        return Err("field 'checkout' (the repository URL) is empty".into());
    }
    let branch = f.str("branch")?.filter(|b| !b.trim().is_empty());
    let dest = match f.str("destination")?.filter(|d| !d.trim().is_empty()) {
        Some(d) => d.to_string(),
        None => repo_name(url)?,
    };
    let git_cfg = f.str_map("git_cfg")?;
    let mut mask = Vec::new();
    let mut clone_url = url.to_string();
    if let Some(token) = f.str("access-token")?.filter(|t| !t.is_empty()) {
        mask.push(token.to_string());
        match url_with_token(url, token) {
            Some(u) => clone_url = u,
            None => {
                log(
                    run,
                    format!("access token not used: '{url}' is not an HTTP(S) URL"),
                )
                .await;
            }
        }
    }
    let mut extra_env = vec![("GIT_TERMINAL_PROMPT".to_string(), "0".to_string())];
    let key = match f.get("ssh-key") {
        Some(v) => Some(SshKey::from_field(v, &super::scratch_dir(run)?)?),
        None => None,
    };
    if let Some(k) = &key {
        extra_env.push(("GIT_SSH_COMMAND".into(), k.ssh_command()));
    }
    let env = step_env(run, extra_env);
    let limits = step_limits(run, Some(DEFAULT_TIMEOUT))?;
    let git = |dir: &std::path::Path| Cmd {
        env: env.clone(),
        mask: mask.clone(),
        ..Cmd::new("git", dir)
    };

    // Clone.
    let mut clone = git(&cwd);
    for (k, v) in &git_cfg {
        clone = clone.arg("-c").arg(format!("{k}={v}"));
    }
    let clone = clone.arg("clone").arg(&clone_url).arg(&dest);
    log(run, format!("$ {}", clone.display())).await;
    let exit = run_cmd(run, &clone, &limits).await?;
    if exit != Exit::Code(0) {
        return Ok(exit_outcome(exit, "git clone", &limits));
    }

    // Check out the trigger's commit, the branch, or master when it exists.
    let repo = cwd.join(&dest);
    let target = match (trigger_commit(f), branch) {
        (Some(commit), _) => Some(commit),
        (None, Some(b)) => Some(b.to_string()),
        (None, None) => {
            let probe = git(&repo)
                .arg("show-ref")
                .arg("--verify")
                .arg("--quiet")
                .arg("refs/remotes/origin/master");
            match run_cmd(run, &probe, &limits).await? {
                Exit::Code(0) => Some("master".to_string()),
                Exit::Code(_) => {
                    log(
                        run,
                        "no branch 'master' in the repository: staying on its default branch",
                    )
                    .await;
                    None
                }
                stop @ Exit::Stopped(_) => return Ok(exit_outcome(stop, "git", &limits)),
            }
        }
    };
    if let Some(target) = target {
        let checkout = git(&repo)
            .arg("-c")
            .arg("advice.detachedHead=false")
            .arg("checkout")
            .arg(&target);
        log(
            run,
            format!("$ cd {} && {}", shell_quote(&dest), checkout.display()),
        )
        .await;
        let exit = run_cmd(run, &checkout, &limits).await?;
        if exit != Exit::Code(0) {
            return Ok(exit_outcome(exit, "git checkout", &limits));
        }
    }
    drop(key);
    Ok(StepOutcome::done())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        assert_eq!(
            repo_name("https://github.com/a/kraken.git").unwrap(),
            "kraken"
        );
        assert_eq!(repo_name("https://github.com/a/kraken/").unwrap(), "kraken");
        assert_eq!(repo_name("git@github.com:a/b.git").unwrap(), "b");
        assert_eq!(repo_name("/tmp/x/repo.git").unwrap(), "repo");
        assert!(repo_name("https://h/.git").is_err());
    }

    #[test]
    fn tokens_go_into_urls() {
        assert_eq!(
            url_with_token("https://github.com/a/b.git", "T").unwrap(),
            "https://T@github.com/a/b.git"
        );
        assert_eq!(
            url_with_token("https://old@gitlab.com/a/b", "T").unwrap(),
            "https://T@gitlab.com/a/b"
        );
        assert_eq!(
            url_with_token("git@github.com:a/b.git", "T").unwrap(),
            "https://T@github.com/a/b.git"
        );
        assert_eq!(url_with_token("/srv/repo.git", "T"), None);
    }
}
