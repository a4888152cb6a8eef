//! Builds started by repositories: flows for webhook deliveries (the
//! original's `bg.trigger_flow`) and for commits found by polling a
//! repository (`triggers.repo`).

use serde_json::{Value, json};
use sha2::Digest;

use super::Engine;
use crate::error::Result;
use crate::model::flow_kind;
use crate::store::flows::FlowRow;
use crate::store::stages::StageRow;
use crate::webhooks::same_repo;

/// The repository URLs a stage's jobs clone with `git` steps.
pub fn stage_git_repos(stage: &StageRow) -> Vec<String> {
    let mut out = Vec::new();
    for job in stage
        .schema
        .0
        .get("jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for step in job
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if step.get("tool").and_then(Value::as_str) == Some("git")
                && let Some(url) = step.get("checkout").and_then(Value::as_str)
            {
                out.push(url.to_string());
            }
        }
    }
    out
}

impl Engine {
    /// Start what a webhook's trigger record asks for in a project: a push
    /// builds a CI flow on the branch whose `branch_name` is the pushed
    /// branch, a pull/merge request or patch a DEV flow on the branch of its
    /// base. As the original: root stages that clone the triggering
    /// repository and have no run yet in the branch's latest flow of that
    /// kind join it; when none does, a new flow starts. Returns the flow
    /// started or joined, `None` when the trigger names no branch of the
    /// project (logged in the services log).
    pub async fn trigger_flow(&self, project_id: i64, trigger: &Value) -> Result<Option<FlowRow>> {
        let name = trigger.get("trigger").and_then(Value::as_str).unwrap_or("");
        let (kind_name, branch_name) = match crate::webhooks::target(trigger) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(project = project_id, "{e}");
                return Ok(None);
            }
        };
        let kind = flow_kind::parse(kind_name);
        let branches = self.store.project_branches(project_id).await?;
        let Some(branch) = branches
            .into_iter()
            .find(|b| b.branch_name.as_deref() == Some(branch_name.as_str()))
        else {
            tracing::warn!(
                project = project_id,
                "{name}: no branch of project {project_id} has branch_name '{branch_name}', nothing started"
            );
            return Ok(None);
        };
        let reason = crate::webhooks::reason(trigger);
        let repo = trigger.get("repo").and_then(Value::as_str).unwrap_or("");
        // Schemas read from the pushed repository are read again first.
        self.refresh_schemas_of_repo(branch.id, repo).await?;
        let rc_id = self.store.insert_repo_changes(&json!([trigger])).await?;

        let latest = self
            .store
            .branch_flows(branch.id, kind, 0, 1)
            .await?
            .0
            .into_iter()
            .next();
        if let Some(flow) = latest {
            let mut joined = false;
            for stage in self.store.branch_stages(branch.id).await? {
                if stage.parent() != "root" || !stage.enabled {
                    continue;
                }
                if !stage_git_repos(&stage).iter().any(|u| same_repo(u, repo)) {
                    continue;
                }
                if self
                    .store
                    .run_of_stage_in_flow(flow.id, stage.id)
                    .await?
                    .is_some()
                {
                    continue;
                }
                self.start_run(
                    &stage,
                    &flow,
                    json!({"reason": reason}),
                    &Default::default(),
                    Some(rc_id),
                )
                .await?;
                joined = true;
            }
            if joined {
                self.store.set_flow_trigger_data(flow.id, rc_id).await?;
                tracing::info!(
                    flow = flow.id,
                    branch = branch.id,
                    "{reason}: stages of {repo} joined flow {}",
                    flow.id
                );
                return Ok(Some(self.store.require_flow(flow.id).await?));
            }
        }
        let flow = self
            .start_flow(
                &branch,
                kind,
                &Default::default(),
                &reason,
                None,
                Some(rc_id),
            )
            .await?;
        let after = trigger.get("after").and_then(Value::as_str).unwrap_or("?");
        tracing::info!(
            flow = flow.id,
            branch = branch.id,
            "{reason}: flow {} started for {after} of {repo}",
            flow.id,
        );
        Ok(Some(flow))
    }
}

/// Whether `url` names a git repository the way `git clone` takes it: a
/// URL of a git transport (https, http, ssh, git, file), `user@host:path`,
/// or an absolute path; never an option or a `transport::` helper.
pub fn is_git_url(url: &str) -> bool {
    let url = url.trim();
    if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control) {
        return false;
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        return matches!(scheme, "https" | "http" | "ssh" | "git" | "file") && !rest.is_empty();
    }
    if url.starts_with('/') {
        return true;
    }
    // scp-like: [user@]host:path, no slash before the colon.
    matches!(url.split_once(':'), Some((host, path)) if !host.is_empty() && !host.contains('/') && !path.is_empty())
        && url.contains('@')
}

/// Whether a stage may set the git config `key` for the server's own git
/// commands (polling, schemas from repositories): HTTP transfer settings
/// only (`http.<setting>` or `http.<url>.<setting>`), none that names a
/// program or a file.
pub fn server_git_key_allowed(key: &str) -> bool {
    const SETTINGS: &[&str] = &[
        "lowspeedlimit",
        "lowspeedtime",
        "postbuffer",
        "sslverify",
        "version",
        "proxy",
        "extraheader",
        "followredirects",
        "useragent",
    ];
    let k = key.trim().to_ascii_lowercase();
    k.starts_with("http.") && k.rsplit('.').next().is_some_and(|s| SETTINGS.contains(&s))
}

/// How long one git command against a remote may take.
const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The most commits recorded per repository and poll (as the original).
const MAX_COMMITS: usize = 20;

/// A bare clone of a remote repository kept under the engine's git cache.
pub(crate) struct CachedRepo {
    dir: std::path::PathBuf,
    /// The URL fetched from (with the access token, when one is used).
    fetch_url: String,
    /// Secrets to hide in messages (the token).
    mask: Vec<String>,
    git_cfg: Vec<(String, String)>,
    /// Extra options of `git fetch` (from a stage's `git_clone_params`).
    fetch_args: Vec<String>,
}

impl CachedRepo {
    /// The cache of `url` under `cache` (created on first fetch).
    pub(crate) fn new(
        cache: &std::path::Path,
        url: &str,
        token: Option<&str>,
        git_cfg: &[(String, String)],
    ) -> CachedRepo {
        // Readable, and unique per URL (`a/b` and `a_b` are two clones).
        let readable: String = url
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        let digest = sha2::Sha256::digest(url.as_bytes());
        let name = format!("{readable}-{}", hex::encode(&digest[..6]));
        let fetch_url = token
            .filter(|t| !t.is_empty())
            .and_then(|t| crate::agent::tools::url_with_token(url, t))
            .unwrap_or_else(|| url.to_string());
        CachedRepo {
            dir: cache.join(format!("{name}.git")),
            fetch_url,
            mask: token.map(|t| vec![t.to_string()]).unwrap_or_default(),
            git_cfg: git_cfg.to_vec(),
            fetch_args: Vec::new(),
        }
    }

    /// Pass `args` to every fetch.
    pub(crate) fn with_fetch_args(mut self, args: Vec<String>) -> CachedRepo {
        self.fetch_args = args;
        self
    }

    async fn git(&self, args: &[&str]) -> std::result::Result<String, String> {
        let mut cmd = tokio::process::Command::new("git");
        for (k, v) in self
            .git_cfg
            .iter()
            .filter(|(k, _)| server_git_key_allowed(k))
        {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        // Never a transport that runs a program, whatever the URL says.
        cmd.args(["-c", "protocol.ext.allow=never"]);
        cmd.arg("--git-dir")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
            Err(_) => return Err(format!("git {} took over {GIT_TIMEOUT:?}", args[0])),
            Ok(Err(e)) => return Err(format!("cannot run git: {e} (is git installed?)")),
            Ok(Ok(o)) => o,
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim().lines().last().unwrap_or("").to_string();
            return Err(crate::mask::mask_secrets(
                &format!("git {} failed: {err}", args[0]),
                &self.mask,
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Fetch `branch` from the remote; returns its head commit.
    pub(crate) async fn fetch(&self, branch: &str) -> std::result::Result<String, String> {
        if !is_git_url(&self.fetch_url) {
            return Err("not a git repository URL (https, http, ssh, git, file, user@host:path or an absolute path)".into());
        }
        if branch.starts_with('-')
            || branch
                .chars()
                .any(|c| c.is_control() || c == ' ' || c == ':')
        {
            return Err(format!("'{branch}' is not a branch name"));
        }
        if !self.dir.join("HEAD").exists() {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
            self.git(&["init", "--quiet", "--bare"]).await?;
        }
        // One fetch at a time into a clone (two stages may poll one URL).
        let lock = {
            static LOCKS: std::sync::LazyLock<
                std::sync::Mutex<
                    std::collections::HashMap<
                        std::path::PathBuf,
                        std::sync::Arc<tokio::sync::Mutex<()>>,
                    >,
                >,
            > = std::sync::LazyLock::new(Default::default);
            let mut locks = LOCKS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(self.dir.clone()).or_default().clone()
        };
        let _held = lock.lock().await;
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        let mut args = vec!["fetch", "--quiet", "--no-tags"];
        args.extend(self.fetch_args.iter().map(String::as_str));
        args.push(&self.fetch_url);
        args.push(&refspec);
        self.git(&args).await.map_err(|e| {
            crate::mask::mask_secrets(&format!("cannot fetch branch '{branch}': {e}"), &self.mask)
        })?;
        Ok(self
            .git(&["rev-parse", &format!("refs/heads/{branch}")])
            .await?
            .trim()
            .to_string())
    }

    /// A file's content at a commit.
    pub(crate) async fn read_file(
        &self,
        commit: &str,
        path: &str,
    ) -> std::result::Result<String, String> {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        self.git(&["show", &format!("{commit}:{path}")])
            .await
            .map_err(|_| format!("no file '{path}' in commit {commit}"))
    }

    /// The commits (no merges, newest first, at most [`MAX_COMMITS`]) after
    /// `since` up to `head`; without `since` (or when it is not an
    /// ancestor, after a force push) those of the last two weeks.
    async fn commits(
        &self,
        since: Option<&str>,
        head: &str,
    ) -> std::result::Result<Vec<Value>, String> {
        let max = format!("-n{MAX_COMMITS}");
        let format = "--format=%x1e%H%x1f%an%x1f%ae%x1f%aI%x1f%B%x1f";
        let ancestor = match since {
            Some(s) => self
                .git(&["merge-base", "--is-ancestor", s, head])
                .await
                .is_ok(),
            None => false,
        };
        let range = match since {
            Some(s) if ancestor => format!("{s}..{head}"),
            _ => head.to_string(),
        };
        let mut args = vec!["log", "--no-merges", &max, format, "--name-status"];
        if !ancestor {
            args.push("--since=2 weeks ago");
        }
        args.push(&range);
        let out = self.git(&args).await?;
        Ok(parse_log(&out))
    }
}

/// Parse `git log --format=%x1e%H%x1f%an%x1f%ae%x1f%aI%x1f%B%x1f --name-status`
/// into the original's commit records.
fn parse_log(out: &str) -> Vec<Value> {
    let mut commits = Vec::new();
    for rec in out.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
        let f: Vec<&str> = rec.splitn(6, '\u{1f}').collect();
        if f.len() < 6 {
            continue;
        }
        let (mut added, mut modified, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for line in f[5].lines().filter(|l| !l.trim().is_empty()) {
            let parts: Vec<&str> = line.split('\t').collect();
            match (
                parts.first().and_then(|s| s.chars().next()),
                parts.as_slice(),
            ) {
                (Some('A' | 'C'), [_, p, ..]) => added.push(p.to_string()),
                (Some('D'), [_, p, ..]) => removed.push(p.to_string()),
                (Some('R'), [_, old, new, ..]) => {
                    removed.push(old.to_string());
                    added.push(new.to_string());
                }
                (Some(_), [_, p, ..]) => modified.push(p.to_string()),
                _ => {}
            }
        }
        commits.push(json!({
            "id": f[0].trim(),
            "author": {"name": f[1], "email": f[2]},
            "timestamp": f[3],
            "message": f[4].trim_end(),
            "added": added,
            "modified": modified,
            "removed": removed,
        }));
    }
    commits
}

impl Engine {
    /// The value of a project secret of kind `simple` named `name`.
    pub(crate) async fn simple_secret(
        &self,
        project_id: i64,
        name: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .store
            .project_secrets(project_id)
            .await?
            .into_iter()
            .find(|s| s.name == name && s.kind == crate::model::secret_kind::SIMPLE)
            .and_then(|s| {
                s.data
                    .0
                    .get("secret")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }))
    }

    /// Poll the repositories of a stage's `triggers.repo` (fired by its
    /// timer, once per interval across servers): new commits start the
    /// stage (a CI flow for a root stage) with the commits as its repository
    /// changes; none start nothing. A repository that cannot be fetched
    /// puts the reason on the stage (`repo_error`) and in the services log,
    /// and is tried again at the next interval.
    pub(crate) async fn poll_repo_trigger(
        &self,
        timer: &crate::store::stages::TimerRow,
        stage: &StageRow,
        branch: &crate::store::branches::BranchRow,
    ) -> Result<()> {
        let spec: Value = serde_json::from_str(&timer.spec)?;
        let Some(trigger) = crate::triggers::repo_trigger_of(Some(&json!({ "repo": spec })))
            .map_err(crate::error::Error::BadRequest)?
        else {
            return Ok(());
        };
        let token = match &trigger.access_token {
            Some(name) => match self.simple_secret(branch.project_id, name).await? {
                Some(t) => Some(t),
                None => {
                    let msg = format!(
                        "repository trigger: no secret '{name}' in the project for the access token"
                    );
                    tracing::warn!(stage = stage.id, "{msg}");
                    self.store
                        .set_stage_repo_error(stage.id, Some(&msg))
                        .await?;
                    return Ok(());
                }
            },
            None => None,
        };
        let mut state: serde_json::Map<String, Value> = timer
            .state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for (url, branch_name) in &trigger.repos {
            let repo = CachedRepo::new(&self.git_cache, url, token.as_deref(), &trigger.git_cfg);
            let key = format!("{url}#{branch_name}");
            let last = state.get(&key).and_then(Value::as_str).map(str::to_string);
            let outcome = async {
                let head = repo.fetch(branch_name).await?;
                if last.as_deref() == Some(head.as_str()) {
                    return Ok::<_, String>((head, Vec::new()));
                }
                let commits = repo.commits(last.as_deref(), &head).await?;
                Ok((head, commits))
            }
            .await;
            match outcome {
                Ok((head, commits)) => {
                    if !commits.is_empty() {
                        changes.push(json!({
                            "trigger": "git-push",
                            "repo": url,
                            "ref": format!("refs/heads/{branch_name}"),
                            "before": last.clone().unwrap_or_default(),
                            "after": head,
                            "commits": commits,
                        }));
                    }
                    state.insert(key, json!(head));
                }
                Err(e) => errors.push(format!("{url} ({branch_name}): {e}")),
            }
        }
        // Recorded only if no other server recorded a poll meanwhile (a fetch
        // slower than the interval): then that server starts the flow.
        let recorded = self
            .store
            .swap_timer_state(
                timer.id,
                timer.state.as_deref(),
                &Value::Object(state).to_string(),
            )
            .await?;
        if !recorded {
            return Ok(());
        }
        if errors.is_empty() {
            if stage
                .repo_error
                .as_deref()
                .is_some_and(|e| e.starts_with("repository trigger"))
            {
                self.store.set_stage_repo_error(stage.id, None).await?;
            }
        } else {
            let msg = format!("repository trigger: {}", errors.join("; "));
            tracing::warn!(
                stage = stage.id,
                branch = branch.id,
                "stage {}: {msg}",
                stage.name
            );
            self.store
                .set_stage_repo_error(stage.id, Some(&msg))
                .await?;
        }
        if changes.is_empty() {
            return Ok(());
        }
        for c in &changes {
            if let Some(url) = c.get("repo").and_then(Value::as_str) {
                self.refresh_schemas_of_repo(branch.id, url).await?;
            }
        }
        // The stage as it is now (its schema may have been read again).
        let stage = &self.store.require_stage(stage.id).await?;
        let rc_id = self
            .store
            .insert_repo_changes(&Value::Array(changes))
            .await?;
        let reason = "commit to repo";
        if stage.parent() == "root" {
            let flow = self
                .start_flow(
                    branch,
                    flow_kind::CI,
                    &Default::default(),
                    reason,
                    Some(stage),
                    Some(rc_id),
                )
                .await?;
            tracing::info!(
                flow = flow.id,
                branch = branch.id,
                "stage {}: new commits, flow {} started",
                stage.name,
                flow.id
            );
        } else {
            self.trigger_child(stage, reason, Some(rc_id)).await?;
        }
        Ok(())
    }
}
