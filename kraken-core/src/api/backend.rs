//! The agent protocol (`POST /backend`): the original's messages, so its
//! Python agent runs jobs against this server unchanged, plus log lines and
//! artifacts over HTTP for this project's agents.
//!
//! Who calls is an [`AgentAuth`], never the `address` in the message, which
//! is only a label: a built-in agent by its id (in process, no network
//! path), `kraken agent` by its key (a bearer token), the original's agent
//! by its source IP, only when the setting `general/allow_address_only_agents`
//! allows it and its address is that IP. An unknown key (or address)
//! registers an unauthorized agent; an administrator authorizes it
//! (`PATCH /agents`), and its next call gets a new key, issued once; only
//! its sha256 is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Core, Local};
use crate::engine::context::{CtxFor, secret_args};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::limits;
use crate::model::{job_state, secret_kind, step_status};
use crate::schema;
use crate::storage::{Blob, ByteStream, StorageError};
use crate::store::agents::{AgentRow, agent_kind};
use crate::store::jobs::JobRow;
use crate::store::logs::NewLog;
use crate::store::now_ms;
use crate::store::results::JobPlace;

/// Longest a `get-job` may wait for a job (our agents ask with `wait`).
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How long a `get-job` of the original's agent is held open.
const ORIGINAL_AGENT_WAIT: Duration = Duration::from_secs(20);
/// Largest `host-info` `info` object accepted, in bytes of JSON.
pub const MAX_HOST_INFO: usize = 8 * 1024;
/// Most agents waiting for authorization at once.
pub const MAX_REGISTRATIONS: i64 = 256;
/// Registrations not heard from for this long are forgotten.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(3600);
/// The setting that lets the original's agents in (by source address).
pub const ADDRESS_ONLY_SETTING: (&str, &str) = ("general", "allow_address_only_agents");

pub use crate::model::{AgentLogLine, AgentLogs};

/// Who calls the agent backend.
#[derive(Debug, Clone)]
pub enum AgentAuth {
    /// A built-in agent of this process, by its agent id.
    Builtin(i64),
    /// `kraken agent`: its key (`Authorization: Bearer`) and the source IP.
    Key {
        /// The key as sent.
        key: String,
        /// The request's source IP.
        ip: Option<String>,
    },
    /// The original's agent: nothing but the request's source IP.
    Address {
        /// The request's source IP.
        ip: String,
    },
}

impl AgentAuth {
    fn ip(&self) -> Option<&str> {
        match self {
            AgentAuth::Builtin(_) => None,
            AgentAuth::Key { ip, .. } => ip.as_deref(),
            AgentAuth::Address { ip } => Some(ip),
        }
    }
}

/// The sha256 of an agent key, in hex: what the database keeps.
pub fn agent_key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random agent key: 256 bits in hex.
pub fn new_agent_key() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_key(key: &str) -> Result<()> {
    let ok = (32..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "an agent key is 32 to 128 letters, digits, '-' or '_'".into(),
        ))
    }
}

/// Refuse oversized agent labels and host info (400).
fn check_sizes(msg: &Value) -> Result<()> {
    if let Some(a) = msg.get("address").and_then(Value::as_str) {
        crate::model::limits::check("address", a, crate::model::limits::ADDRESS)?;
    }
    if let Some(info) = msg.get("info") {
        let n = serde_json::to_vec(info).map(|v| v.len()).unwrap_or(0);
        if n > MAX_HOST_INFO {
            return Err(Error::bad_request(format!(
                "agent host info is {n} bytes of JSON: at most {MAX_HOST_INFO} are accepted"
            )));
        }
    }
    Ok(())
}

fn left_secs(job: &JobRow) -> i64 {
    let used = job.assigned.map_or(0, |a| (now_ms() - a) / 1000);
    ((job.timeout - used) as f64 * 0.9) as i64
}

/// Normalize a relative storage path: `/`-separated, no `..`, no root.
pub fn safe_rel_path(p: &str) -> Result<String> {
    let mut parts = Vec::new();
    let normalized = p.replace('\\', "/");
    for seg in normalized.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                return Err(Error::bad_request(format!(
                    "artifact path '{p}' may not contain '..'"
                )));
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(Error::bad_request("artifact path is empty"));
    }
    Ok(parts.join("/"))
}

/// Where an artifact of a run is stored: `artifacts/<branch>/<flow>/<run>/<path>`
/// (under the data dir, where earlier versions kept it, by default).
pub(crate) fn artifact_key(place: &JobPlace, run_id: i64, path: &str) -> String {
    format!(
        "artifacts/{:08}/{}/{run_id}/{path}",
        place.branch_id, place.flow_id
    )
}

/// The caller of a backend message: a known agent (with a key issued by
/// this call), or an answer already (a registration).
enum Caller {
    Known(Box<AgentRow>, Option<String>),
    Answer(Value),
}

impl Core {
    /// Answer one agent message from `auth`.
    pub async fn backend(self: &Arc<Self>, msg: &Value, auth: &AgentAuth) -> Result<Value> {
        let k = self.local_admin();
        let kind = msg
            .get("msg")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("missing 'msg' in agent request"))?;
        check_sizes(msg)?;
        let (agent, issued) = match self.backend_caller(kind, msg, auth).await? {
            Caller::Known(agent, issued) => (*agent, issued),
            Caller::Answer(v) => return Ok(v),
        };
        let remote_ip = auth.ip();
        // One write per agent every few seconds is enough to know it is alive.
        let stale = agent.last_seen.is_none_or(|t| now_ms() - t > 5_000);
        if stale
            || agent.state != crate::model::agent_state::ACTIVE
            || (remote_ip.is_some() && agent.ip_address.as_deref() != remote_ip)
        {
            self.store().touch_agent(agent.id, remote_ip).await?;
        }
        if !agent.authorized {
            return Ok(json!({"unauthorized": true}));
        }
        let cfg = json!({"clickhouse_addr": self.udp_log_addr()});
        let mut out = match kind {
            "host-info" => k.host_info(&agent, msg).await?,
            "get-job" | "get-job2" => {
                let wait = msg
                    .get("wait")
                    .and_then(Value::as_f64)
                    .filter(|w| w.is_finite() && *w >= 0.0)
                    .map(|w| Duration::from_secs_f64(w.min(MAX_WAIT.as_secs_f64())))
                    // The original's agent polls every 5 s and never asks to
                    // wait: hold its poll open (well under its 120 s HTTP
                    // timeout) so a job starts as soon as it is assigned.
                    .or((agent.kind == agent_kind::ADDRESS).then_some(ORIGINAL_AGENT_WAIT));
                k.get_job_for_agent(&agent, kind == "get-job", wait).await?
            }
            "get-job-step" => k.get_job_step(&agent).await?,
            "step-result" | "step-result2" => {
                k.step_result(&agent, msg, kind == "step-result").await?
            }
            "dispatch-tests" => k.dispatch_tests(&agent, msg).await?,
            "keep-alive" => k.keep_alive(&agent, msg).await?,
            _ => json!({}),
        };
        if let Some(o) = out.as_object_mut() {
            if matches!(kind, "host-info" | "get-job" | "get-job2" | "get-job-step") {
                o.insert("cfg".into(), cfg);
                // The original's agent updates itself from /install/agent
                // whenever `version` differs from its own; there is no
                // package of it here, so it is not told one.
                if agent.kind != agent_kind::ADDRESS {
                    o.insert("version".into(), json!(crate::VERSION));
                }
            }
            if let Some(key) = issued {
                o.insert("agent_key".into(), json!(key));
            }
        }
        Ok(out)
    }

    /// Who sends `msg`: a known agent, or a registration answered already.
    async fn backend_caller(&self, kind: &str, msg: &Value, auth: &AgentAuth) -> Result<Caller> {
        match auth {
            AgentAuth::Builtin(_) => Ok(Caller::Known(
                Box::new(self.authenticated_agent(auth).await?),
                None,
            )),
            AgentAuth::Key { key, ip } => {
                check_key(key)?;
                let hash = agent_key_hash(key);
                if let Some(agent) = self.store().agent_by_key_hash(&hash).await? {
                    let mut issued = None;
                    if agent.authorized && agent.key_issue {
                        let new = new_agent_key();
                        if self
                            .store()
                            .issue_agent_key(agent.id, &hash, &agent_key_hash(&new))
                            .await?
                        {
                            tracing::info!(agent = agent.id, "new key issued to the agent");
                            issued = Some(new);
                        }
                    }
                    return Ok(Caller::Known(Box::new(agent), issued));
                }
                if kind != "host-info" {
                    return Err(Error::Unauthorized(
                        "unknown agent key: the agent registers with host-info".into(),
                    ));
                }
                let label = msg
                    .get("address")
                    .and_then(Value::as_str)
                    .filter(|a| !a.trim().is_empty())
                    .or(ip.as_deref())
                    .unwrap_or("agent")
                    .to_string();
                self.check_registrations().await?;
                let agent = self
                    .store()
                    .register_keyed_agent(&label, ip.as_deref(), &hash)
                    .await?;
                if let Some(info) = msg.get("info").filter(|i| i.is_object()) {
                    self.store().set_agent_host_info(agent.id, info).await?;
                }
                tracing::info!(agent = agent.id, %label, "new agent: waiting for authorization");
                Ok(Caller::Answer(
                    json!({"unauthorized": true, "agent_id": agent.id}),
                ))
            }
            AgentAuth::Address { ip } => {
                let address = self.address_only_agent_address(msg, ip).await?;
                match self.store().agent_by_address(&address).await? {
                    Some(a) if a.deleted.is_none() => Ok(Caller::Known(Box::new(a), None)),
                    _ => {
                        self.check_registrations().await?;
                        self.store().register_agent(&address, Some(ip)).await?;
                        tracing::info!(%address, "new agent: waiting for authorization");
                        Ok(Caller::Answer(json!({"unauthorized": true})))
                    }
                }
            }
        }
    }

    /// The address of an original's agent: allowed by the setting, and its
    /// source IP (which it also is when the message names none).
    async fn address_only_agent_address(&self, msg: &Value, ip: &str) -> Result<String> {
        if !self.address_only_agents_allowed().await? {
            return Err(Error::Unauthorized(format!(
                "agents without a key are refused: run `kraken agent`, or an administrator sets {}/{} to true",
                ADDRESS_ONLY_SETTING.0, ADDRESS_ONLY_SETTING.1
            )));
        }
        match msg.get("address").and_then(Value::as_str) {
            None | Some("") => Ok(ip.to_string()),
            Some(a) if a == ip => Ok(a.to_string()),
            Some(a) => Err(Error::forbidden(format!(
                "an agent without a key is known by its IP address: it calls from {ip}, not '{a}'"
            ))),
        }
    }

    /// Whether the original's agents (address only) are let in.
    pub async fn address_only_agents_allowed(&self) -> Result<bool> {
        let v = self
            .store()
            .setting(ADDRESS_ONLY_SETTING.0, ADDRESS_ONLY_SETTING.1)
            .await?;
        Ok(matches!(v.as_deref(), Some("true" | "True" | "1")))
    }

    /// The address-only agent at `ip` and where job `job_id` lives, if that
    /// agent runs that job now.
    async fn udp_holder(&self, ip: &str, job_id: i64) -> Result<Option<(i64, JobPlace)>> {
        let Some(agent) = self.store().agent_by_address(ip).await? else {
            return Ok(None);
        };
        if !agent.authorized || agent.deleted.is_some() || job_id == 0 {
            return Ok(None);
        }
        match self.running_job(&agent, job_id).await {
            Ok((_, place)) => Ok(Some((agent.id, place))),
            Err(Error::Forbidden(_) | Error::Conflict(_) | Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Forget stale registrations; refuse a new one when too many wait.
    async fn check_registrations(&self) -> Result<()> {
        let ttl = REGISTRATION_TTL.as_millis() as i64;
        self.store().expire_registrations(now_ms() - ttl).await?;
        let waiting = self.store().count_registrations().await?;
        if waiting >= MAX_REGISTRATIONS {
            return Err(Error::forbidden(format!(
                "{waiting} agents wait for authorization already: authorize or delete some first"
            )));
        }
        Ok(())
    }

    /// Forget agents that registered but were not heard from since
    /// `before` (ms) and never were authorized; returns how many.
    pub async fn expire_agent_registrations(&self, before: i64) -> Result<u64> {
        self.store().expire_registrations(before).await
    }

    /// The authorized agent behind `auth` (no registration, no new key).
    pub async fn authenticated_agent(&self, auth: &AgentAuth) -> Result<AgentRow> {
        let agent = match auth {
            AgentAuth::Builtin(id) => self
                .store()
                .agent(*id)
                .await?
                .filter(|a| a.kind == agent_kind::BUILTIN),
            AgentAuth::Key { key, .. } => {
                check_key(key)?;
                self.store().agent_by_key_hash(&agent_key_hash(key)).await?
            }
            AgentAuth::Address { ip } => {
                let address = self.address_only_agent_address(&Value::Null, ip).await?;
                self.store()
                    .agent_by_address(&address)
                    .await?
                    .filter(|a| a.deleted.is_none())
            }
        };
        match agent {
            Some(a) if a.authorized && a.deleted.is_none() => Ok(a),
            Some(_) => Err(Error::forbidden("the agent is not authorized")),
            None => Err(Error::Unauthorized("unknown agent".into())),
        }
    }

    /// The job `job_id` if `agent` runs it now: its claim is the agent's,
    /// and the job is neither finished nor canceled.
    pub(crate) async fn running_job(
        &self,
        agent: &AgentRow,
        job_id: i64,
    ) -> Result<(JobRow, JobPlace)> {
        let job = self.store().require_job(job_id).await?;
        if job.agent_used_id != Some(agent.id) {
            return Err(Error::forbidden(format!(
                "job {job_id} is not a job of this agent"
            )));
        }
        if agent.job_id != Some(job_id)
            || !matches!(job.state, job_state::QUEUED | job_state::ASSIGNED)
        {
            return Err(Error::Conflict(format!(
                "job {job_id} does not run any more (finished or canceled)"
            )));
        }
        let place = self
            .store()
            .job_place(job_id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
        Ok((job, place))
    }

    /// The UDP address announced to agents for log datagrams (`cfg.clickhouse_addr`).
    pub fn udp_log_addr(&self) -> String {
        self.udp_addr.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Set the UDP log address (the server calls this once its socket is bound).
    pub fn set_udp_log_addr(&self, addr: String) {
        if let Ok(mut a) = self.udp_addr.lock() {
            *a = addr;
        }
    }

    /// `POST /backend/logs`: store log lines of the job the agent runs; a
    /// job that no longer runs is refused (409), which tells the agent to stop.
    pub async fn agent_logs(self: &Arc<Self>, auth: &AgentAuth, logs: &AgentLogs) -> Result<Value> {
        let agent = self.authenticated_agent(auth).await?;
        let (job, place) = self.running_job(&agent, logs.job_id).await?;
        let now = now_ms();
        let mut rows: Vec<NewLog> = logs
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| NewLog {
                time: l.time.unwrap_or(now),
                seq: i as i64,
                message: l.message.clone(),
                service: "agent".into(),
                host: agent.address.clone(),
                level: l.level.clone().unwrap_or_else(|| "INFO".into()),
                branch_id: place.branch_id,
                flow_kind: place.flow_kind,
                flow_id: place.flow_id,
                run_id: place.run_id,
                job_id: job.id,
                step: logs.step_idx,
                tool: l.tool.clone().unwrap_or_default(),
                agent_id: agent.id,
                ..NewLog::default()
            })
            .collect();
        self.mask_project_logs(place.project_id, &mut rows).await?;
        if let Some(last_id) = self.store().insert_logs(&rows).await? {
            self.engine().events().publish(Event::Logs {
                job_id: job.id,
                last_id,
            });
        }
        Ok(json!({"cancel": false}))
    }

    /// Store an artifact uploaded by an agent for its job, streamed into the
    /// blob storage (at most [`limits::UPLOAD_BODY`] bytes); returns its size.
    pub async fn agent_upload_artifact(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        path: &str,
        public: bool,
        body: ByteStream,
    ) -> Result<i64> {
        let agent = self.authenticated_agent(auth).await?;
        let (_, place) = self.running_job(&agent, job_id).await?;
        let path = safe_rel_path(path)?;
        let key = artifact_key(&place, place.run_id, &path);
        let size = self
            .blobs
            .put_stream(&key, body, limits::UPLOAD_BODY as u64)
            .await
            .map_err(|e| match e {
                StorageError::TooLarge { .. } => Error::bad_request(format!(
                    "artifact {path} is larger than {} MiB: store a smaller file",
                    limits::UPLOAD_BODY / (1024 * 1024)
                )),
                e => e.into(),
            })? as i64;
        self.store()
            .insert_artifact(&place, &path, size, public)
            .await?;
        self.local_admin().update_artifact_counters(&place).await?;
        Ok(size)
    }

    /// The artifacts of the job's flow matching a glob, from other runs of
    /// the flow (newest run first; each path once).
    pub async fn agent_list_artifacts(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        pattern: &str,
    ) -> Result<Value> {
        let agent = self.authenticated_agent(auth).await?;
        let (_, place) = self.running_job(&agent, job_id).await?;
        let pat = glob::Pattern::new(pattern.trim_start_matches("./")).map_err(|e| {
            Error::bad_request(format!("invalid artifact pattern '{pattern}': {e}"))
        })?;
        let opts = glob::MatchOptions {
            require_literal_separator: false,
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for a in self.store().flow_artifacts(place.flow_id).await? {
            if a.run_id == place.run_id {
                continue;
            }
            let matches = pat.matches_with(&a.path, opts)
                || a.path
                    .starts_with(&format!("{}/", pattern.trim_end_matches('/')));
            if matches && seen.insert(a.path.clone()) {
                out.push(json!({"path": a.path, "run_id": a.run_id, "size": a.size}));
            }
        }
        Ok(Value::Array(out))
    }

    /// The package (`tool.zip`) of custom tool `tool_id`, for the agent
    /// running job `job_id`, a step of which uses that tool.
    pub async fn agent_read_tool(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        tool_id: i64,
    ) -> Result<Vec<u8>> {
        let agent = self.authenticated_agent(auth).await?;
        let (_, _) = self.running_job(&agent, job_id).await?;
        let steps = self.store().steps_of(&[job_id]).await?;
        if !steps.iter().any(|s| s.tool_id == tool_id) {
            return Err(Error::forbidden(format!(
                "no step of job {job_id} uses tool {tool_id}"
            )));
        }
        let tool = self
            .store()
            .tool(tool_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Tool with id {tool_id} not found")))?;
        let rel = tool
            .location
            .as_deref()
            .and_then(|l| l.strip_prefix("blob:"))
            .ok_or_else(|| {
                Error::not_found(format!(
                    "tool '{}' has no package on the server (upload one with POST /tools/{}/zip)",
                    tool.name, tool.name
                ))
            })?;
        let rel = safe_rel_path(rel)?;
        let gone = || {
            Error::not_found(format!(
                "the package of tool '{}' is gone from storage ({rel} in {}): upload it again \
                 with POST /tools/{}/zip",
                tool.name, self.blobs, tool.name
            ))
        };
        // A package is bounded by the upload limit; the agent keeps it whole.
        let blob = self.read_blob(&rel).await?.ok_or_else(gone)?;
        blob.into_bytes().await.map_err(|e| {
            Error::internal(format!(
                "cannot read the package of tool '{}' from {}: {e}",
                tool.name, self.blobs
            ))
        })
    }

    /// Read an artifact of a run of the job's flow.
    pub async fn agent_read_artifact(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        run_id: i64,
        path: &str,
    ) -> Result<Blob> {
        let agent = self.authenticated_agent(auth).await?;
        let (_, place) = self.running_job(&agent, job_id).await?;
        let run = self
            .store()
            .run(run_id)
            .await?
            .ok_or_else(|| Error::not_found("Run not found"))?;
        if run.flow_id != place.flow_id {
            return Err(Error::forbidden(
                "artifacts come from runs of the same flow only",
            ));
        }
        let path = safe_rel_path(path)?;
        self.read_blob(&artifact_key(&place, run_id, &path))
            .await?
            .ok_or_else(|| Error::not_found(format!("artifact {path} not found")))
    }

    /// Open a stored blob; `None` when the storage has none under `key`.
    pub(crate) async fn read_blob(&self, key: &str) -> Result<Option<Blob>> {
        match self.blobs.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Store log records sent as UDP datagrams by the original's agents
    /// (one JSON object per datagram, as its ClickHouse proxy receives them),
    /// each with its sender's IP address. A datagram is taken only from an
    /// authorized address-only agent (allowed by the setting) whose address
    /// is the sender's IP, for the job it runs now; where the line belongs
    /// comes from that job, not from the datagram. Other datagrams are
    /// skipped; returns how many lines were stored.
    pub async fn ingest_udp_logs(&self, datagrams: &[(Vec<u8>, String)]) -> Result<usize> {
        let mut rows = Vec::new();
        if !self.address_only_agents_allowed().await? {
            return Ok(0);
        }
        let mut holders: HashMap<(String, i64), Option<(i64, JobPlace)>> = HashMap::new();
        // The tools of a job's steps, by index: a datagram says its step,
        // and its line belongs to that step's tool (the job's log is the
        // tools' output).
        let mut step_tools: HashMap<i64, HashMap<i64, String>> = HashMap::new();
        for (d, sender) in datagrams {
            let Ok(v) = serde_json::from_slice::<Value>(d) else {
                continue;
            };
            let job_id = v
                .get("job")
                .and_then(|x| {
                    x.as_i64()
                        .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(0);
            let key = (sender.clone(), job_id);
            if !holders.contains_key(&key) {
                let holder = self.udp_holder(sender, job_id).await?;
                holders.insert(key.clone(), holder);
            }
            let Some(Some((agent_id, place))) = holders.get(&key) else {
                continue;
            };
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let i = |k: &str| {
                v.get(k)
                    .and_then(|x| {
                        x.as_i64()
                            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                    })
                    .unwrap_or(0)
            };
            let time = v
                .get("@timestamp")
                .and_then(Value::as_str)
                .and_then(|t| {
                    crate::model::parse_timestamp(t).or_else(|| {
                        chrono::NaiveDateTime::parse_from_str(
                            t.trim_end_matches('Z'),
                            "%Y-%m-%dT%H:%M:%S%.f",
                        )
                        .ok()
                        .map(|n| n.and_utc())
                    })
                })
                .map_or_else(now_ms, |t| t.timestamp_millis());
            let step = v
                .get("step")
                .and_then(|x| {
                    x.as_i64()
                        .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(-1);
            let mut tool = s("tool");
            if tool.is_empty() && step >= 0 {
                if let std::collections::hash_map::Entry::Vacant(e) = step_tools.entry(job_id) {
                    let tools = self
                        .store()
                        .steps_of(&[job_id])
                        .await?
                        .into_iter()
                        .map(|st| (st.idx, st.tool_name))
                        .collect();
                    e.insert(tools);
                }
                if let Some(t) = step_tools.get(&job_id).and_then(|m| m.get(&step)) {
                    tool = t.clone();
                }
            }
            for (seq, line) in s("message").lines().enumerate() {
                rows.push(NewLog {
                    time,
                    seq: seq as i64,
                    message: line.to_string(),
                    service: s("service"),
                    host: s("host"),
                    path: s("path"),
                    lineno: i("lineno"),
                    level: if s("level").is_empty() {
                        "INFO".into()
                    } else {
                        s("level")
                    },
                    branch_id: place.branch_id,
                    flow_kind: place.flow_kind,
                    flow_id: place.flow_id,
                    run_id: place.run_id,
                    job_id,
                    step,
                    tool: tool.clone(),
                    agent_id: *agent_id,
                });
            }
        }
        let n = rows.len();
        self.mask_job_logs(&mut rows).await?;
        if let Some(last_id) = self.store().insert_logs(&rows).await? {
            let mut jobs: Vec<i64> = rows.iter().map(|r| r.job_id).filter(|j| *j != 0).collect();
            jobs.dedup();
            for job_id in jobs {
                self.engine()
                    .events()
                    .publish(Event::Logs { job_id, last_id });
            }
        }
        Ok(n)
    }
}

impl Local {
    async fn host_info(&self, agent: &AgentRow, msg: &Value) -> Result<Value> {
        let mut info = msg.get("info").cloned().unwrap_or_else(|| json!({}));
        let system = match info.get("system") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        if system.is_empty() {
            return Ok(json!({"error": "empty system in host info"}));
        }
        let name = if system.chars().all(|c| c.is_ascii_digit()) {
            let id: i64 = system.parse().unwrap_or(0);
            match self.store().system(id).await? {
                Some(s) => s.name,
                None => return Ok(json!({"error": format!("cannot find system with id {id}")})),
            }
        } else {
            self.store().ensure_system(&system, "local").await?;
            system
        };
        if let Some(o) = info.as_object_mut() {
            o.insert("system".into(), json!(name));
        }
        self.store().set_agent_host_info(agent.id, &info).await?;
        self.events().wake_scheduler();
        Ok(json!({"agent_id": agent.id}))
    }

    async fn get_job_for_agent(
        &self,
        agent: &AgentRow,
        with_steps: bool,
        wait: Option<Duration>,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
        loop {
            let waker = self.events().agent_waker(agent.id);
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let fresh = self
                .store()
                .agent(agent.id)
                .await?
                .ok_or_else(|| Error::not_found("agent deleted"))?;
            if let Some(job_id) = fresh.job_id
                && let Some(job) = self.store().job(job_id).await?
            {
                if job.state == job_state::COMPLETED {
                    // Canceled (or finished) while it waited: let the agent go.
                    self.store().unassign_agent(agent.id, job_id).await?;
                    self.events().wake_scheduler();
                } else {
                    self.store().mark_job_started(job_id).await?;
                    let job = self.store().require_job(job_id).await?;
                    self.events().publish(Event::Job {
                        job_id,
                        run_id: job.run_id,
                    });
                    return Ok(json!({"job": self.job_for_agent(&job, with_steps).await?}));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(json!({"job": {}}));
            }
            tokio::select! {
                _ = &mut notified => {}
                // Re-check now and then: another server sharing the database may have given us a job.
                _ = tokio::time::sleep((deadline - now).min(Duration::from_secs(2))) => {}
            }
        }
    }

    async fn job_for_agent(&self, job: &JobRow, with_steps: bool) -> Result<Value> {
        let place = self
            .store()
            .job_place(job.id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
        let secrets = self.secret_values(place.project_id).await?;
        let mut j = serde_json::to_value(
            crate::view::jobs_json(self.store(), std::slice::from_ref(job), false)
                .await?
                .remove(0),
        )?;
        if let Some(o) = j.as_object_mut() {
            o.insert("timeout".into(), json!(left_secs(job)));
            o.insert("branch_id".into(), json!(place.branch_id));
            o.insert("flow_kind".into(), json!(place.flow_kind));
            o.insert("flow_id".into(), json!(place.flow_id));
            o.insert("run_id".into(), json!(place.run_id));
            o.insert("secrets".into(), json!(secrets));
            let trigger = self.trigger_data(&place).await?;
            if let Some(steps) = o.get_mut("steps").and_then(Value::as_array_mut) {
                for st in steps.iter_mut().filter_map(Value::as_object_mut) {
                    Self::inject_trigger_fields(st, trigger.as_ref());
                }
            }
            if let Some(t) = trigger {
                o.insert("trigger_data".into(), t);
            }
            // This project's agents start a docker job's container on it.
            if let Some(n) = &job.network {
                o.insert("network".into(), json!(n));
            }
            if !with_steps {
                o.remove("steps");
            }
        }
        Ok(j)
    }

    /// The repository changes behind a job's run (its own, or its flow's):
    /// the list of trigger records the original hands agents as `trigger_data`.
    async fn trigger_data(&self, place: &JobPlace) -> Result<Option<Value>> {
        self.store().run_trigger_data(place.run_id).await
    }

    /// `trigger_data` on a step, and on a `git` step its repository's
    /// `http_url` too: the agent checks out the trigger's `after` commit
    /// when both name the same repository (the original's agent compares
    /// them as strings, so `http_url` is the trigger's own spelling when the
    /// step's URL names the same repository).
    fn inject_trigger_fields(o: &mut Map<String, Value>, trigger: Option<&Value>) {
        let Some(trigger) = trigger else {
            return;
        };
        if o.get("tool").and_then(Value::as_str) == Some("git")
            && let Some(url) = o.get("checkout").and_then(Value::as_str)
        {
            let repo = trigger
                .get(0)
                .and_then(|t| t.get("repo"))
                .and_then(Value::as_str)
                .filter(|r| crate::webhooks::same_repo(r, url));
            let http_url = repo.map_or_else(|| crate::webhooks::http_url(url), str::to_string);
            o.insert("http_url".into(), json!(http_url));
        }
        o.insert("trigger_data".into(), trigger.clone());
    }

    async fn secret_values(&self, project_id: i64) -> Result<Vec<String>> {
        Ok(super::secrets::secret_values(
            &self.store().project_secrets(project_id).await?,
        ))
    }

    async fn agent_job(&self, agent: &AgentRow) -> Result<Option<JobRow>> {
        let fresh = self.store().agent(agent.id).await?;
        match fresh.and_then(|a| a.job_id) {
            Some(id) => self.store().job(id).await,
            None => Ok(None),
        }
    }

    async fn get_job_step(&self, agent: &AgentRow) -> Result<Value> {
        let finish = |msg: &str| json!({"job_step": {"finish": true}, "msg": msg});
        let Some(job) = self.agent_job(agent).await? else {
            return Ok(finish("no job assigned"));
        };
        if job.state == job_state::COMPLETED {
            return Ok(finish("job was canceled"));
        }
        let place = self
            .store()
            .job_place(job.id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
        let run = self.store().require_run(place.run_id).await?;
        let flow = self.store().require_flow(place.flow_id).await?;
        let stage = self
            .store()
            .stage_any(place.stage_id)
            .await?
            .ok_or_else(|| Error::not_found("Stage not found"))?;
        let branch = self
            .store()
            .branch_any(place.branch_id)
            .await?
            .ok_or_else(|| Error::not_found("Branch not found"))?;
        let secrets = self.store().project_secrets(place.project_id).await?;
        let mut args = run.args.0.as_object().cloned().unwrap_or_default();
        args.extend(secret_args(&secrets));

        for step in self.store().steps_of(&[job.id]).await? {
            if matches!(
                step.status,
                Some(step_status::DONE | step_status::SKIPPED | step_status::ERROR)
            ) {
                continue;
            }
            let ctx = self
                .engine()
                .prepare_context(
                    CtxFor::Step {
                        run: &run,
                        flow: &flow,
                        stage: &stage,
                        branch: &branch,
                        job: &job,
                        step_idx: step.idx,
                    },
                    &args,
                )
                .await?;
            let mut raw = step.fields_raw.0.as_object().cloned().unwrap_or_default();
            raw.remove("tool");
            let (value, masked, unresolved) =
                schema::substitute_checked(&Value::Object(raw), &args, &ctx);
            self.store()
                .set_step_fields(step.id, &value, &masked)
                .await?;
            let when = value
                .get("when")
                .and_then(Value::as_str)
                .unwrap_or("True")
                .to_string();
            match schema::when_decision(&when) {
                Some(true) => {}
                Some(false) => {
                    self.store()
                        .set_step_result(step.id, Some(step_status::SKIPPED), None)
                        .await?;
                    self.events().publish(Event::Job {
                        job_id: job.id,
                        run_id: job.run_id,
                    });
                    continue;
                }
                None => {
                    let msg =
                        format!("the step's 'when' condition gave '{when}', not True or False");
                    self.store()
                        .set_step_result(
                            step.id,
                            Some(step_status::ERROR),
                            Some(&json!({"status": "error", "reason": "when", "msg": msg})),
                        )
                        .await?;
                    self.events().publish(Event::Job {
                        job_id: job.id,
                        run_id: job.run_id,
                    });
                    continue;
                }
            }
            let step = self
                .store()
                .step(job.id, step.idx)
                .await?
                .ok_or_else(|| Error::not_found("Step not found"))?;
            self.engine().step_handed_out(&job, &step).await?;
            // Say which `#{...}` became <ERROR> (the original only shows
            // <ERROR> where the value should be).
            for u in &unresolved {
                self.engine()
                    .step_log_marker(&job, &step, &format!("--- {u} ---"), "WARNING")
                    .await?;
            }
            let mut js = serde_json::to_value(crate::view::step_json(&step, false))?;
            let o = js
                .as_object_mut()
                .ok_or_else(|| Error::internal("step JSON"))?;
            self.inject_step_fields(o, &secrets, &place).await?;
            Self::inject_trigger_fields(o, self.trigger_data(&place).await?.as_ref());
            // The original's agent talks to the object storage itself, over
            // S3 (this project's agents go through /backend).
            if agent.kind == agent_kind::ADDRESS {
                self.core.s3_step_fields(&job, &place, o).await?;
            }
            // For an agent `attempts` is the schema's: how many times to try
            // the step (the original's agent runs it `attempts` times, and
            // not at all for 0), not how many times it was handed out.
            let tries = step
                .fields
                .0
                .get("attempts")
                .and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .filter(|n| *n >= 1)
                .unwrap_or(1);
            o.insert("attempts".into(), json!(tries));
            o.insert("finish".into(), json!(false));
            o.insert("job_id".into(), json!(job.id));
            o.insert("branch_id".into(), json!(place.branch_id));
            o.insert("flow_kind".into(), json!(place.flow_kind));
            o.insert("flow_id".into(), json!(place.flow_id));
            o.insert("run_id".into(), json!(place.run_id));
            // The agent masks these in what the step prints.
            let mut masked = self.secret_values(place.project_id).await?;
            if let Some(k) = o.get("minio_secret_key").and_then(Value::as_str) {
                masked.push(k.to_string());
            }
            o.insert("secrets".into(), json!(masked));
            o.insert("branch_env".into(), serde_json::to_value(branch.env())?);
            return Ok(json!({"job_step": js}));
        }

        // No step left: the agent is done with this job.
        self.store().mark_job_finished(job.id).await?;
        self.store().unassign_agent(agent.id, job.id).await?;
        self.engine().job_completed(job.id).await?;
        self.events().wake_scheduler();
        Ok(finish("no steps to execute"))
    }

    /// Replace secret names in `ssh-key` / `access-token` with their values.
    async fn inject_step_fields(
        &self,
        o: &mut Map<String, Value>,
        secrets: &[crate::store::projects::SecretRow],
        place: &JobPlace,
    ) -> Result<()> {
        // A `data` step that reads: the value at its pointer of its scope's
        // data, now (this server's `get`; the original had none).
        if o.get("tool").and_then(Value::as_str) == Some("data")
            && o.get("operation").and_then(Value::as_str) == Some("get")
        {
            let scope = o.get("scope").and_then(Value::as_str).unwrap_or("flow");
            let pointer = o.get("json_pointer").and_then(Value::as_str).unwrap_or("/");
            match self.scope_data(place, scope).await {
                Ok((_, current)) => {
                    o.insert("data_value".into(), get_at_pointer(&current, pointer));
                }
                Err(e) => {
                    o.insert("data_error".into(), json!(e.to_string()));
                }
            }
        }
        let find = |name: &str| secrets.iter().find(|s| s.name == name);
        if let Some(name) = o.get("ssh-key").and_then(Value::as_str).map(str::to_string)
            && let Some(s) = find(&name).filter(|s| s.kind == secret_kind::SSH_KEY)
        {
            o.insert(
                "ssh-key".into(),
                json!({"username": s.data.0.get("username").cloned().unwrap_or(json!("")),
                           "key": s.data.0.get("key").cloned().unwrap_or(json!(""))}),
            );
        }
        if let Some(name) = o
            .get("access-token")
            .and_then(Value::as_str)
            .map(str::to_string)
            && let Some(s) = find(&name).filter(|s| s.kind == secret_kind::SIMPLE)
        {
            o.insert(
                "access-token".into(),
                s.data.0.get("secret").cloned().unwrap_or(json!("")),
            );
        }
        if o.get("tool").and_then(Value::as_str) == Some("artifacts")
            && !o.contains_key("destination")
        {
            o.insert("destination".into(), json!("."));
        }
        Ok(())
    }

    async fn step_result(&self, agent: &AgentRow, msg: &Value, v1: bool) -> Result<Value> {
        let job_id = msg
            .get("job_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::bad_request("missing job_id"))?;
        let idx = msg
            .get("step_idx")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::bad_request("missing step_idx"))?;
        let result = msg.get("result").cloned().unwrap_or_else(|| json!({}));
        let Some(job) = self.store().job(job_id).await? else {
            return Ok(json!({"cancel": true}));
        };
        if job.state == job_state::COMPLETED || job.agent_used_id != Some(agent.id) {
            return Ok(json!({"cancel": true}));
        }
        let Some(step) = self.store().step(job_id, idx).await? else {
            return Err(Error::bad_request(format!(
                "job {job_id} has no step {idx}"
            )));
        };
        let status = result
            .get("status")
            .and_then(Value::as_str)
            .and_then(step_status::parse);
        let place = self
            .store()
            .job_place(job_id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
        let mut stored = result.clone();
        if let Some(o) = stored.as_object_mut() {
            if let Some(tests) = o.remove("test-results") {
                crate::results::store_test_results(self.store(), &job, &step, &tests).await?;
            }
            if let Some(issues) = o.remove("issues") {
                crate::results::store_issues(self.store(), &job, &issues).await?;
            }
            if let Some(arts) = o.remove("artifacts") {
                self.record_reported_artifacts(&place, &step, &arts).await?;
            }
            if let Some(data) = o.remove("data")
                && let Err(e) = self.apply_step_data(&place, &step, data).await
            {
                o.insert("status".into(), json!("error"));
                o.insert("reason".into(), json!("exception"));
                o.insert("msg".into(), json!(e.to_string()));
            }
        }
        let status = match stored.get("status").and_then(Value::as_str) {
            Some("error") => Some(step_status::ERROR),
            _ => status,
        };
        // Merge with what the step already reported (in-progress updates).
        let mut merged = step
            .result
            .as_ref()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| json!({}));
        if let (Some(m), Some(n)) = (merged.as_object_mut(), stored.as_object()) {
            for (k, v) in n {
                m.insert(k.clone(), v.clone());
            }
        }
        self.store()
            .set_step_result(step.id, status, Some(&merged))
            .await?;
        if matches!(status, Some(step_status::DONE | step_status::ERROR))
            && let Some(line) = crate::engine::Engine::step_end_line(&merged)
        {
            let level = if status == Some(step_status::DONE) {
                "INFO"
            } else {
                "ERROR"
            };
            let line =
                crate::mask::mask_secrets(&line, &self.secret_values(place.project_id).await?);
            self.engine()
                .step_log_marker(&job, &step, &line, level)
                .await?;
        }
        self.events().publish(Event::Job {
            job_id,
            run_id: job.run_id,
        });
        if v1 {
            let steps = self.store().steps_of(&[job_id]).await?;
            let any_error = steps.iter().any(|s| s.status == Some(step_status::ERROR));
            let all_done = steps
                .iter()
                .all(|s| matches!(s.status, Some(step_status::DONE | step_status::SKIPPED)));
            if any_error || all_done {
                self.store().mark_job_finished(job_id).await?;
                self.store().unassign_agent(agent.id, job_id).await?;
                self.engine().job_completed(job_id).await?;
            }
        }
        Ok(json!({"timeout": left_secs(&job)}))
    }

    async fn keep_alive(&self, agent: &AgentRow, msg: &Value) -> Result<Value> {
        let job_id = msg.get("job_id").and_then(Value::as_i64);
        let job = self.agent_job(agent).await?;
        let cancel = match (job, job_id) {
            (Some(j), Some(id)) => j.id != id || j.state == job_state::COMPLETED,
            (Some(j), None) => j.state == job_state::COMPLETED,
            (None, _) => true,
        };
        Ok(if cancel {
            json!({"cancel": true})
        } else {
            json!({})
        })
    }

    async fn dispatch_tests(&self, agent: &AgentRow, msg: &Value) -> Result<Value> {
        let job_id = msg
            .get("job_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::bad_request("missing job_id"))?;
        let idx = msg
            .get("step_idx")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::bad_request("missing step_idx"))?;
        let tests: Vec<String> = msg
            .get("tests")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let Some(job) = self.store().job(job_id).await? else {
            return Ok(json!({}));
        };
        if job.agent_used_id != Some(agent.id) {
            return Ok(json!({}));
        }
        let Some(step) = self.store().step(job_id, idx).await? else {
            return Err(Error::bad_request(format!(
                "job {job_id} has no step {idx}"
            )));
        };
        if tests.is_empty() {
            return Ok(json!({"tests": []}));
        }
        crate::results::precreate_test_results(self.store(), &job, &step, &tests).await?;
        Ok(json!({"tests": tests}))
    }

    /// Record artifacts an agent says it uploaded (the original's agent
    /// reports them after uploading to its own storage).
    async fn record_reported_artifacts(
        &self,
        place: &JobPlace,
        step: &crate::store::jobs::StepRow,
        arts: &Value,
    ) -> Result<()> {
        let public = step
            .fields
            .0
            .get("public")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || step.fields.0.get("report_entry").is_some();
        let mut entries = Vec::new();
        for a in arts.as_array().into_iter().flatten() {
            let Some(path) = a.get("path").and_then(Value::as_str) else {
                continue;
            };
            let path = safe_rel_path(path)?;
            let size = a.get("size").and_then(Value::as_i64).unwrap_or(0);
            let this_public = public || a.get("report_entry").is_some();
            // Already recorded by our own upload endpoint? Then only counters.
            self.store()
                .insert_artifact(place, &path, size, this_public)
                .await?;
            if let Some(entry) = a
                .get("report_entry")
                .and_then(Value::as_str)
                .or_else(|| step.fields.0.get("report_entry").and_then(Value::as_str))
                && (entry == path || path.ends_with(entry))
            {
                entries.push(entry.to_string());
            }
        }
        self.update_artifact_counters(place).await?;
        if !entries.is_empty() {
            self.add_report_entries(place, &entries).await?;
        }
        Ok(())
    }

    /// Recount a run's and its flow's artifacts.
    pub(crate) async fn update_artifact_counters(&self, place: &JobPlace) -> Result<()> {
        for (run, target) in [(Some(place.run_id), "run"), (None, "flow")] {
            let (pc, ps, vc, vs) = self.store().artifact_counters(place.flow_id, run).await?;
            let current = match target {
                "run" => self.store().require_run(place.run_id).await?.artifacts.0,
                _ => self.store().require_flow(place.flow_id).await?.artifacts.0,
            };
            let entries = current
                .pointer("/public/entries")
                .cloned()
                .unwrap_or_else(|| json!([]));
            let v = json!({"public": {"size": ps, "count": pc, "entries": entries}, "private": {"size": vs, "count": vc}});
            match target {
                "run" => self.store().set_run_artifacts(place.run_id, &v).await?,
                _ => self.store().set_flow_artifacts(place.flow_id, &v).await?,
            }
        }
        Ok(())
    }

    async fn add_report_entries(&self, place: &JobPlace, entries: &[String]) -> Result<()> {
        let mut run = self.store().require_run(place.run_id).await?.artifacts.0;
        let mut flow = self.store().require_flow(place.flow_id).await?.artifacts.0;
        for target in [&mut run, &mut flow] {
            if let Some(list) = target
                .pointer_mut("/public/entries")
                .and_then(Value::as_array_mut)
            {
                for e in entries {
                    if !list.iter().any(|x| x.as_str() == Some(e)) {
                        list.push(json!(e));
                    }
                }
            }
        }
        self.store().set_run_artifacts(place.run_id, &run).await?;
        self.store().set_flow_artifacts(place.flow_id, &flow).await
    }

    /// The user data of a `data` step's scope (`flow`, `branch`,
    /// `branch-ci`, `branch-dev`, `project`): the entity's id and its data.
    async fn scope_data(&self, place: &JobPlace, scope: &str) -> Result<(i64, Value)> {
        Ok(match scope {
            "flow" | "" => (
                place.flow_id,
                self.store().require_flow(place.flow_id).await?.user_data.0,
            ),
            "project" => (
                place.project_id,
                self.store()
                    .require_project(place.project_id)
                    .await?
                    .user_data
                    .0,
            ),
            "branch" | "branch-ci" | "branch-dev" => {
                let b = self
                    .store()
                    .branch_any(place.branch_id)
                    .await?
                    .ok_or_else(|| Error::not_found("Branch not found"))?;
                let d = match scope {
                    "branch" => b.user_data.0,
                    "branch-ci" => b.user_data_ci.0,
                    _ => b.user_data_dev.0,
                };
                (place.branch_id, d)
            }
            other => {
                return Err(Error::bad_request(format!(
                    "incorrect data scope '{other}'"
                )));
            }
        })
    }

    /// The server side of the `data` tool: store reported data in the step's scope.
    async fn apply_step_data(
        &self,
        place: &JobPlace,
        step: &crate::store::jobs::StepRow,
        data: Value,
    ) -> Result<()> {
        let f = &step.fields.0;
        // The step's own `value` wins over what the agent reported, as in the
        // original; both are JSON texts (the schema types `value` a string)
        // and are stored parsed, a text that is no JSON as a string.
        let data = match f.get("value") {
            None | Some(Value::Null) => data,
            Some(Value::String(s)) if s.is_empty() => data,
            Some(v) => v.clone(),
        };
        let scope = f.get("scope").and_then(Value::as_str).unwrap_or("flow");
        let operation = f.get("operation").and_then(Value::as_str).unwrap_or("set");
        let pointer = f.get("json_pointer").and_then(Value::as_str).unwrap_or("/");
        // A jq program stays text; other data is JSON given as text.
        let data = match data {
            Value::String(s) if operation != "jq" => {
                serde_json::from_str(&s).unwrap_or(Value::String(s))
            }
            other => other,
        };
        if operation == "get" {
            // A `get` step reads (its value was sent with the step); what an
            // agent reports for it (the original's reports its file) is not stored.
            return Ok(());
        }
        if !matches!(operation, "set" | "jq" | "jsonpatch") {
            return Err(Error::bad_request(format!(
                "unknown data operation '{operation}': use set, jq, jsonpatch or get"
            )));
        }
        let (entity, current) = self.scope_data(place, scope).await?;
        let value = match operation {
            "set" => data,
            "jq" => {
                let Value::String(program) = data else {
                    return Err(Error::bad_request(
                        "a jq data step needs its jq program as text in 'value' or 'file'",
                    ));
                };
                let input = get_at_pointer(&current, pointer);
                jq_first(&program, &input)?
            }
            _ => {
                let ops: json_patch::Patch = serde_json::from_value(data).map_err(|e| {
                    Error::bad_request(format!(
                        "a jsonpatch data step needs an RFC 6902 patch (a list of operations): {e}"
                    ))
                })?;
                let mut doc = get_at_pointer(&current, pointer);
                json_patch::patch(&mut doc, &ops).map_err(|e| {
                    Error::bad_request(format!("the JSON patch does not apply: {e}"))
                })?;
                doc
            }
        };
        let updated = set_at_pointer(current, pointer, value)?;
        self.set_user_data(scope, entity, &updated).await
    }
}

/// The value at a JSON pointer of `apply_step_data` (`/` is the root; a
/// missing place is `null`).
fn get_at_pointer(doc: &Value, pointer: &str) -> Value {
    let mut cur = doc;
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        let next = match cur {
            Value::Array(list) => part.parse::<usize>().ok().and_then(|i| list.get(i)),
            Value::Object(obj) => obj.get(part),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Value::Null,
        }
    }
    cur.clone()
}

/// The first output of jq `program` on `input` (the data tool's `jq`
/// operation replaces the data by it).
fn jq_first(program: &str, input: &Value) -> Result<Value> {
    crate::jq::run(program, input)
        .map_err(|e| Error::bad_request(format!("data step: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::bad_request(format!(
                "data step: the jq program '{program}' gave no value"
            ))
        })
}

/// Set `value` at a JSON pointer (`/` replaces the root; `/a/0/b` walks
/// objects and list indexes, creating objects on the way).
pub fn set_at_pointer(mut doc: Value, pointer: &str, value: Value) -> Result<Value> {
    let parts: Vec<&str> = pointer.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Ok(value);
    }
    let mut cur = &mut doc;
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        cur = match cur {
            Value::Array(list) => {
                let len = list.len();
                let idx = part
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < len)
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "json_pointer '{pointer}': '{part}' is not an index below {len}"
                        ))
                    })?;
                if last {
                    list[idx] = value;
                    return Ok(doc);
                }
                &mut list[idx]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                let Value::Object(obj) = other else {
                    return Err(Error::internal("pointer walk"));
                };
                if last {
                    obj.insert((*part).to_string(), value);
                    return Ok(doc);
                }
                obj.entry((*part).to_string()).or_insert_with(|| json!({}))
            }
        };
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_pointer_set() {
        let d = json!({"a": [1, {"b": 2}], "x": 1});
        assert_eq!(set_at_pointer(d.clone(), "/", json!(5)).unwrap(), json!(5));
        assert_eq!(set_at_pointer(d.clone(), "/x", json!(2)).unwrap()["x"], 2);
        assert_eq!(
            set_at_pointer(d.clone(), "/a/1/b", json!(3)).unwrap()["a"][1]["b"],
            3
        );
        assert_eq!(
            set_at_pointer(d.clone(), "/n/m", json!(true)).unwrap()["n"]["m"],
            true
        );
        assert!(set_at_pointer(d, "/a/9", json!(0)).is_err());
    }

    #[test]
    fn artifact_paths_stay_inside() {
        assert_eq!(safe_rel_path("./a//b/c.txt").unwrap(), "a/b/c.txt");
        assert!(safe_rel_path("../etc/passwd").is_err());
        assert!(safe_rel_path("a/../../b").is_err());
        assert_eq!(safe_rel_path("/abs/x").unwrap(), "abs/x");
        assert!(safe_rel_path("").is_err());
    }
}
