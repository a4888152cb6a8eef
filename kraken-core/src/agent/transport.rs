//! How an agent reaches its server: in the same process (built-in agents),
//! or over HTTP (`kraken agent --server URL`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::api::Core;
use crate::error::{Error, Result};
use crate::model::AgentLogs;

/// The agent side of the protocol.
pub trait Transport: Send + Sync {
    /// Send a `/backend` message and get the answer.
    fn call(&self, msg: Value) -> BoxFuture<'_, Result<Value>>;
    /// Ship log lines; the answer says whether the job was canceled.
    fn send_logs(&self, logs: AgentLogs) -> BoxFuture<'_, Result<Value>>;
    /// Store an artifact of the agent's job; returns its size.
    fn upload(
        &self,
        address: String,
        job_id: i64,
        path: String,
        public: bool,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<i64>>;
    /// Artifacts of the job's flow matching a glob: `[{path, run_id, size}]`.
    fn list_artifacts(
        &self,
        address: String,
        job_id: i64,
        pattern: String,
    ) -> BoxFuture<'_, Result<Value>>;
    /// Read an artifact of a run of the job's flow.
    fn read_artifact(
        &self,
        address: String,
        job_id: i64,
        run_id: i64,
        path: String,
    ) -> BoxFuture<'_, Result<Vec<u8>>>;
}

/// A built-in agent: calls the core directly.
pub struct InProcess {
    core: Arc<Core>,
}

impl InProcess {
    /// A transport to `core`.
    pub fn new(core: Arc<Core>) -> InProcess {
        InProcess { core }
    }
}

impl Transport for InProcess {
    fn call(&self, msg: Value) -> BoxFuture<'_, Result<Value>> {
        async move { self.core.backend(&msg, None).await }.boxed()
    }
    fn send_logs(&self, logs: AgentLogs) -> BoxFuture<'_, Result<Value>> {
        async move { self.core.agent_logs(&logs).await }.boxed()
    }
    fn upload(
        &self,
        address: String,
        job_id: i64,
        path: String,
        public: bool,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<i64>> {
        async move {
            self.core
                .agent_upload_artifact(&address, job_id, &path, public, &bytes)
                .await
        }
        .boxed()
    }
    fn list_artifacts(
        &self,
        address: String,
        job_id: i64,
        pattern: String,
    ) -> BoxFuture<'_, Result<Value>> {
        async move {
            self.core
                .agent_list_artifacts(&address, job_id, &pattern)
                .await
        }
        .boxed()
    }
    fn read_artifact(
        &self,
        address: String,
        job_id: i64,
        run_id: i64,
        path: String,
    ) -> BoxFuture<'_, Result<Vec<u8>>> {
        async move {
            self.core
                .agent_read_artifact(&address, job_id, run_id, &path)
                .await
        }
        .boxed()
    }
}

/// A remote agent: HTTP to the server's `/backend` endpoints.
pub struct Http {
    base: String,
    client: reqwest::Client,
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
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::Transport(format!("cannot build an HTTP client: {e}")))?;
        Ok(Http { base, client })
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
    async fn send_json(req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let text = Self::send(req, what)
            .await?
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
        Self::send_json(req, "backend call").boxed()
    }
    fn send_logs(&self, logs: AgentLogs) -> BoxFuture<'_, Result<Value>> {
        let req = self
            .client
            .post(format!("{}/backend/logs", self.base))
            .json(&logs);
        Self::send_json(req, "sending logs").boxed()
    }
    fn upload(
        &self,
        address: String,
        job_id: i64,
        path: String,
        public: bool,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<i64>> {
        let req = self
            .client
            .put(format!("{}/backend/artifacts/{job_id}", self.base))
            .query(&[
                ("address", address.as_str()),
                ("path", path.as_str()),
                ("public", if public { "true" } else { "false" }),
            ])
            .body(bytes);
        async move {
            let v = Self::send_json(req, "uploading an artifact").await?;
            Ok(v.get("size").and_then(Value::as_i64).unwrap_or(0))
        }
        .boxed()
    }
    fn list_artifacts(
        &self,
        address: String,
        job_id: i64,
        pattern: String,
    ) -> BoxFuture<'_, Result<Value>> {
        let req = self
            .client
            .get(format!("{}/backend/artifacts/{job_id}/list", self.base))
            .query(&[("address", address.as_str()), ("pattern", pattern.as_str())]);
        Self::send_json(req, "listing artifacts").boxed()
    }
    fn read_artifact(
        &self,
        address: String,
        job_id: i64,
        run_id: i64,
        path: String,
    ) -> BoxFuture<'_, Result<Vec<u8>>> {
        let req = self
            .client
            .get(format!("{}/backend/artifacts/{job_id}/file", self.base))
            .query(&[
                ("address", address.as_str()),
                ("run_id", &run_id.to_string()),
                ("path", path.as_str()),
            ]);
        async move {
            let bytes = Self::send(req, "downloading an artifact")
                .await?
                .bytes()
                .await
                .map_err(|e| Error::Transport(format!("downloading an artifact: {e}")))?;
            Ok(bytes.to_vec())
        }
        .boxed()
    }
}
