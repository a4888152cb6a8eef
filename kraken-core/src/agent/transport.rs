//! How an agent reaches its server: in the same process (built-in agents),
//! or over HTTP (`kraken agent --server URL`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde_json::Value;

use crate::api::Core;
use crate::api::backend::{AgentAuth, new_agent_key};
use crate::error::{Error, Result};
use crate::model::AgentLogs;
use crate::storage::{ByteStream, file_stream, stream_to_file};

/// The agent side of the protocol.
pub trait Transport: Send + Sync {
    /// Send a `/backend` message and get the answer.
    fn call(&self, msg: Value) -> BoxFuture<'_, Result<Value>>;
    /// Ship log lines; the answer says whether the job was canceled.
    fn send_logs(&self, logs: AgentLogs) -> BoxFuture<'_, Result<Value>>;
    /// Store the file `local` as artifact `path` of the agent's job,
    /// streamed (never read whole into memory); returns its size.
    fn upload(
        &self,
        job_id: i64,
        path: String,
        public: bool,
        local: PathBuf,
    ) -> BoxFuture<'_, Result<i64>>;
    /// Artifacts of the job's flow matching a glob: `[{path, run_id, size}]`.
    fn list_artifacts(&self, job_id: i64, pattern: String) -> BoxFuture<'_, Result<Value>>;
    /// Write an artifact of a run of the job's flow to the file `dest`
    /// (streamed); returns its size.
    fn read_artifact(
        &self,
        job_id: i64,
        run_id: i64,
        path: String,
        dest: PathBuf,
    ) -> BoxFuture<'_, Result<u64>>;
    /// The package (`tool.zip`) of a custom tool a step of the job uses.
    fn read_tool(&self, job_id: i64, tool_id: i64) -> BoxFuture<'_, Result<Vec<u8>>>;
    /// Store the file `local` as file `name` of the job's cache entry
    /// under `key` (streamed); `meta.json`, sent last, completes the entry.
    fn cache_put(
        &self,
        job_id: i64,
        key: String,
        name: String,
        local: PathBuf,
    ) -> BoxFuture<'_, Result<u64>>;
    /// The cache entry a restore of `key` takes for the job:
    /// `{"entry": <id> | null, "files": {"<name>": "<path>"}}`.
    fn cache_entry(&self, job_id: i64, key: String) -> BoxFuture<'_, Result<Value>>;
    /// Write file `name` of cache entry `entry` of `key` to `dest`
    /// (streamed); returns its size.
    fn cache_read(
        &self,
        job_id: i64,
        key: String,
        entry: i64,
        name: String,
        dest: PathBuf,
    ) -> BoxFuture<'_, Result<u64>>;
}

/// Open a file to upload.
async fn open_upload(local: &Path) -> Result<ByteStream> {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| Error::internal(format!("cannot read {}: {e}", local.display())))?;
    Ok(file_stream(file))
}

/// Write a downloaded artifact to `dest`.
async fn save_download(body: ByteStream, dest: &Path) -> Result<u64> {
    stream_to_file(body, dest)
        .await
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", dest.display())))
}

/// A built-in agent: calls the core directly, as the agent with that id
/// (no network path, no key).
pub struct InProcess {
    core: Arc<Core>,
    auth: AgentAuth,
}

impl InProcess {
    /// A transport to `core` for the built-in agent `agent_id`
    /// (see [`Core::ensure_builtin_agent`]).
    pub fn new(core: Arc<Core>, agent_id: i64) -> InProcess {
        InProcess {
            core,
            auth: AgentAuth::Builtin(agent_id),
        }
    }
}

impl Transport for InProcess {
    fn call(&self, msg: Value) -> BoxFuture<'_, Result<Value>> {
        async move { self.core.backend(&msg, &self.auth).await }.boxed()
    }
    fn send_logs(&self, logs: AgentLogs) -> BoxFuture<'_, Result<Value>> {
        async move { self.core.agent_logs(&self.auth, &logs).await }.boxed()
    }
    fn upload(
        &self,
        job_id: i64,
        path: String,
        public: bool,
        local: PathBuf,
    ) -> BoxFuture<'_, Result<i64>> {
        async move {
            let body = open_upload(&local).await?;
            self.core
                .agent_upload_artifact(&self.auth, job_id, &path, public, body)
                .await
        }
        .boxed()
    }
    fn list_artifacts(&self, job_id: i64, pattern: String) -> BoxFuture<'_, Result<Value>> {
        async move {
            self.core
                .agent_list_artifacts(&self.auth, job_id, &pattern)
                .await
        }
        .boxed()
    }
    fn read_artifact(
        &self,
        job_id: i64,
        run_id: i64,
        path: String,
        dest: PathBuf,
    ) -> BoxFuture<'_, Result<u64>> {
        async move {
            let blob = self
                .core
                .agent_read_artifact(&self.auth, job_id, run_id, &path)
                .await?;
            save_download(blob.body, &dest).await
        }
        .boxed()
    }
    fn read_tool(&self, job_id: i64, tool_id: i64) -> BoxFuture<'_, Result<Vec<u8>>> {
        async move { self.core.agent_read_tool(&self.auth, job_id, tool_id).await }.boxed()
    }
    fn cache_put(
        &self,
        job_id: i64,
        key: String,
        name: String,
        local: PathBuf,
    ) -> BoxFuture<'_, Result<u64>> {
        async move {
            let body = open_upload(&local).await?;
            self.core
                .agent_cache_put(&self.auth, job_id, &key, &name, body)
                .await
        }
        .boxed()
    }
    fn cache_entry(&self, job_id: i64, key: String) -> BoxFuture<'_, Result<Value>> {
        async move { self.core.agent_cache_entry(&self.auth, job_id, &key).await }.boxed()
    }
    fn cache_read(
        &self,
        job_id: i64,
        key: String,
        entry: i64,
        name: String,
        dest: PathBuf,
    ) -> BoxFuture<'_, Result<u64>> {
        async move {
            let blob = self
                .core
                .agent_cache_read(&self.auth, job_id, &key, entry, &name)
                .await?;
            save_download(blob.body, &dest).await
        }
        .boxed()
    }
}

/// A remote agent: HTTP to the server's `/backend` endpoints, with the
/// agent's key as a bearer token on every request.
pub struct Http {
    base: String,
    client: reqwest::Client,
    key: Mutex<Option<String>>,
    key_file: Option<PathBuf>,
}

/// The file in an agent's work dir that holds its key.
pub const KEY_FILE: &str = "agent.key";

/// Write `text` to `path` readable by the owner only, replacing it at once.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let io = |e: std::io::Error| Error::internal(format!("cannot write {}: {e}", path.display()));
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Http {
    /// A transport to the server at `base` (e.g. `http://ci.example.com:8080`).
    pub fn new(base: &str) -> Result<Http> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::bad_request(format!(
                "server URL '{base}' must start with http:// or https://"
            )));
        }
        crate::tls::install_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::Transport(format!("cannot build an HTTP client: {e}")))?;
        Ok(Http {
            base,
            client,
            key: Mutex::new(None),
            key_file: None,
        })
    }

    /// A transport for the agent working in `work_dir`: its key is kept in
    /// `work_dir/agent.key`, made up (random, 256 bits) on first use; the
    /// server replaces it when an administrator authorizes the agent.
    pub fn for_agent(base: &str, work_dir: &Path) -> Result<Http> {
        let mut http = Http::new(base)?;
        std::fs::create_dir_all(work_dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", work_dir.display())))?;
        let file = work_dir.join(KEY_FILE);
        let key = match std::fs::read_to_string(&file) {
            Ok(k) if !k.trim().is_empty() => k.trim().to_string(),
            _ => {
                let k = new_agent_key();
                write_private(&file, &k)?;
                k
            }
        };
        http.key = Mutex::new(Some(key));
        http.key_file = Some(file);
        Ok(http)
    }

    fn current_key(&self) -> Option<String> {
        self.key.lock().ok().and_then(|k| k.clone())
    }

    /// Keep a key the server issued: in the work dir first, then in use.
    fn keep_key(&self, new: &str) -> Result<()> {
        if let Some(file) = &self.key_file {
            write_private(file, new)?;
        }
        if let Ok(mut k) = self.key.lock() {
            *k = Some(new.to_string());
        }
        tracing::info!("the server issued this agent a new key");
        Ok(())
    }

    /// `req` with the agent's key; a request refused (401) because the key
    /// changed while it was on its way is sent again with the new one.
    async fn authed(&self, req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let used = self.current_key();
        let retry = req.try_clone();
        let with_key = |r: reqwest::RequestBuilder, k: &Option<String>| match k {
            Some(k) => r.bearer_auth(k),
            None => r,
        };
        match Self::send(with_key(req, &used), what).await {
            Err(Error::Unauthorized(m)) => {
                let now = self.current_key();
                match retry {
                    Some(r) if now != used => Self::send(with_key(r, &now), what).await,
                    _ => Err(Error::Unauthorized(m)),
                }
            }
            other => other,
        }
    }

    async fn authed_json(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        Self::json_of(self.authed(req, what).await?, what).await
    }

    /// PUT the file `local` to `url`, streamed, and parse the JSON answer.
    async fn put_file(
        &self,
        url: &str,
        query: &[(&str, &str)],
        local: &Path,
        what: &str,
    ) -> Result<Value> {
        // A streamed body cannot be sent twice: when the key changed under
        // the request (authorization), the file is opened again.
        let mut first = true;
        loop {
            let key = self.current_key();
            let mut req = self
                .client
                .put(url)
                .query(query)
                .body(reqwest::Body::wrap_stream(open_upload(local).await?));
            if let Some(k) = &key {
                req = req.bearer_auth(k);
            }
            match Self::send(req, what).await {
                Err(Error::Unauthorized(_)) if first && self.current_key() != key => {
                    first = false;
                }
                resp => return Self::json_of(resp?, what).await,
            }
        }
    }

    /// GET `req` and write its body to `dest`, streamed.
    async fn get_to_file(
        &self,
        req: reqwest::RequestBuilder,
        dest: &Path,
        what: &str,
    ) -> Result<u64> {
        let body = self
            .authed(req, what)
            .await?
            .bytes_stream()
            .map_err(std::io::Error::other)
            .boxed();
        save_download(body, dest).await
    }

    /// Send `req`; a non-2xx answer becomes an error with the server's message.
    async fn send(req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Transport(format!("{what}: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        Err(Error::from_status(
            status.as_u16(),
            format!("{what}: {msg}"),
        ))
    }

    /// Send `req` and parse its JSON answer. The body is parsed as text
    /// whatever its content type: the original answers JSON as text/html.
    async fn json_of(resp: reqwest::Response, what: &str) -> Result<Value> {
        let text = resp
            .text()
            .await
            .map_err(|e| Error::Transport(format!("{what}: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Transport(format!("{what}: the answer is not JSON: {e}")))
    }
}

impl Transport for Http {
    fn call(&self, msg: Value) -> BoxFuture<'_, Result<Value>> {
        let req = self
            .client
            .post(format!("{}/backend", self.base))
            .json(&msg);
        async move {
            let mut answer = self.authed_json(req, "backend call").await?;
            if let Some(key) = answer
                .as_object_mut()
                .and_then(|o| o.remove("agent_key"))
                .and_then(|k| k.as_str().map(str::to_string))
            {
                self.keep_key(&key)?;
            }
            Ok(answer)
        }
        .boxed()
    }
    fn send_logs(&self, logs: AgentLogs) -> BoxFuture<'_, Result<Value>> {
        let req = self
            .client
            .post(format!("{}/backend/logs", self.base))
            .json(&logs);
        async move { self.authed_json(req, "sending logs").await }.boxed()
    }
    fn upload(
        &self,
        job_id: i64,
        path: String,
        public: bool,
        local: PathBuf,
    ) -> BoxFuture<'_, Result<i64>> {
        async move {
            let query = [
                ("path", path.as_str()),
                ("public", if public { "true" } else { "false" }),
            ];
            let url = format!("{}/backend/artifacts/{job_id}", self.base);
            let v = self
                .put_file(&url, &query, &local, "uploading an artifact")
                .await?;
            Ok(v.get("size").and_then(Value::as_i64).unwrap_or(0))
        }
        .boxed()
    }
    fn list_artifacts(&self, job_id: i64, pattern: String) -> BoxFuture<'_, Result<Value>> {
        let req = self
            .client
            .get(format!("{}/backend/artifacts/{job_id}/list", self.base))
            .query(&[("pattern", pattern.as_str())]);
        async move { self.authed_json(req, "listing artifacts").await }.boxed()
    }
    fn read_artifact(
        &self,
        job_id: i64,
        run_id: i64,
        path: String,
        dest: PathBuf,
    ) -> BoxFuture<'_, Result<u64>> {
        let req = self
            .client
            .get(format!("{}/backend/artifacts/{job_id}/file", self.base))
            .query(&[
                ("run_id", run_id.to_string().as_str()),
                ("path", path.as_str()),
            ]);
        async move {
            self.get_to_file(req, &dest, "downloading an artifact")
                .await
        }
        .boxed()
    }
    fn read_tool(&self, job_id: i64, tool_id: i64) -> BoxFuture<'_, Result<Vec<u8>>> {
        let req = self
            .client
            .get(format!("{}/backend/tools/{tool_id}/package", self.base))
            .query(&[("job", job_id.to_string().as_str())]);
        async move {
            let bytes = self
                .authed(req, "downloading a tool package")
                .await?
                .bytes()
                .await
                .map_err(|e| Error::Transport(format!("downloading a tool package: {e}")))?;
            Ok(bytes.to_vec())
        }
        .boxed()
    }
    fn cache_put(
        &self,
        job_id: i64,
        key: String,
        name: String,
        local: PathBuf,
    ) -> BoxFuture<'_, Result<u64>> {
        async move {
            let url = format!("{}/backend/cache/{job_id}", self.base);
            let query = [("key", key.as_str()), ("name", name.as_str())];
            let v = self
                .put_file(&url, &query, &local, "saving to the cache")
                .await?;
            Ok(v.get("size").and_then(Value::as_u64).unwrap_or(0))
        }
        .boxed()
    }
    fn cache_entry(&self, job_id: i64, key: String) -> BoxFuture<'_, Result<Value>> {
        let req = self
            .client
            .get(format!("{}/backend/cache/{job_id}", self.base))
            .query(&[("key", key.as_str())]);
        async move { self.authed_json(req, "looking up the cache").await }.boxed()
    }
    fn cache_read(
        &self,
        job_id: i64,
        key: String,
        entry: i64,
        name: String,
        dest: PathBuf,
    ) -> BoxFuture<'_, Result<u64>> {
        let req = self
            .client
            .get(format!("{}/backend/cache/{job_id}/file", self.base))
            .query(&[
                ("key", key.as_str()),
                ("entry", entry.to_string().as_str()),
                ("name", name.as_str()),
            ]);
        async move {
            self.get_to_file(req, &dest, "restoring from the cache")
                .await
        }
        .boxed()
    }
}
