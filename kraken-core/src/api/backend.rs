//! The agent protocol (`POST /backend`): the original's messages, so its
//! Python agent runs jobs against this server unchanged, plus log lines and
//! artifacts over HTTP for this project's agents.
//!
//! Every request names the agent by `address`. An unknown address registers
//! an unauthorized agent; an administrator authorizes it (`PATCH /agents`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Core, Local};
use crate::engine::context::{CtxFor, secret_args};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{job_state, secret_kind, step_status};
use crate::schema;
use crate::store::agents::AgentRow;
use crate::store::jobs::JobRow;
use crate::store::logs::NewLog;
use crate::store::now_ms;
use crate::store::results::JobPlace;

/// Longest a `get-job` may wait for a job (our agents ask with `wait`).
const MAX_WAIT: Duration = Duration::from_secs(30);

pub use crate::model::{AgentLogLine, AgentLogs};

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

impl Core {
    /// Answer one agent message.
    pub async fn backend(self: &Arc<Self>, msg: &Value, remote_ip: Option<&str>) -> Result<Value> {
        let k = self.local_admin();
        let kind = msg
            .get("msg")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("missing 'msg' in agent request"))?;
        let address = match msg.get("address").and_then(Value::as_str) {
            Some(a) if !a.is_empty() => a.to_string(),
            _ => remote_ip
                .map(str::to_string)
                .ok_or_else(|| Error::bad_request("missing 'address' in agent request"))?,
        };
        crate::model::limits::check("address", &address, crate::model::limits::ADDRESS)?;
        let agent = match self.store().agent_by_address(&address).await? {
            Some(a) if a.deleted.is_none() => a,
            _ => {
                self.store().register_agent(&address, remote_ip).await?;
                tracing::info!(%address, "new agent: waiting for authorization");
                return Ok(json!({"unauthorized": true}));
            }
        };
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
                    .map(Duration::from_secs_f64);
                k.get_job_for_agent(&agent, kind == "get-job", wait.map(|w| w.min(MAX_WAIT)))
                    .await?
            }
            "get-job-step" => k.get_job_step(&agent).await?,
            "step-result" | "step-result2" => {
                k.step_result(&agent, msg, kind == "step-result").await?
            }
            "dispatch-tests" => k.dispatch_tests(&agent, msg).await?,
            "keep-alive" => k.keep_alive(&agent, msg).await?,
            _ => json!({}),
        };
        if matches!(kind, "host-info" | "get-job" | "get-job2" | "get-job-step")
            && let Some(o) = out.as_object_mut()
        {
            o.insert("cfg".into(), cfg);
            o.insert("version".into(), json!(crate::VERSION));
        }
        Ok(out)
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

    /// `POST /backend/logs`: store log lines of one of the agent's jobs.
    /// Answers `{cancel: true}` when the job was canceled meanwhile.
    pub async fn agent_logs(self: &Arc<Self>, logs: &AgentLogs) -> Result<Value> {
        let agent = self.authorized_agent(&logs.address).await?;
        let job = self.store().require_job(logs.job_id).await?;
        if job.agent_used_id != Some(agent.id) {
            return Err(Error::forbidden(format!(
                "job {} is not a job of agent {}",
                job.id, agent.address
            )));
        }
        let place = self
            .store()
            .job_place(job.id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
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
        self.mask_job_logs(&mut rows).await?;
        if let Some(last_id) = self.store().insert_logs(&rows).await? {
            self.engine().events().publish(Event::Logs {
                job_id: job.id,
                last_id,
            });
        }
        Ok(json!({"cancel": job.state == job_state::COMPLETED}))
    }

    /// Store an artifact file uploaded by an agent for its job; returns its size.
    pub async fn agent_upload_artifact(
        self: &Arc<Self>,
        address: &str,
        job_id: i64,
        path: &str,
        public: bool,
        bytes: &[u8],
    ) -> Result<i64> {
        let agent = self.authorized_agent(address).await?;
        let job = self.store().require_job(job_id).await?;
        if job.agent_used_id != Some(agent.id) {
            return Err(Error::forbidden(format!(
                "job {job_id} is not a job of agent {address}"
            )));
        }
        let path = safe_rel_path(path)?;
        let place = self
            .store()
            .job_place(job_id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
        let file = self.artifact_file(&place, place.run_id, &path);
        if let Some(dir) = file.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        tokio::fs::write(&file, bytes).await.map_err(|e| {
            Error::internal(format!("cannot store artifact {}: {e}", file.display()))
        })?;
        let size = bytes.len() as i64;
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
        address: &str,
        job_id: i64,
        pattern: &str,
    ) -> Result<Value> {
        let agent = self.authorized_agent(address).await?;
        let job = self.store().require_job(job_id).await?;
        if job.agent_used_id != Some(agent.id) {
            return Err(Error::forbidden(format!(
                "job {job_id} is not a job of agent {address}"
            )));
        }
        let place = self
            .store()
            .job_place(job_id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
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

    /// Read an artifact of a run of the job's flow.
    pub async fn agent_read_artifact(
        self: &Arc<Self>,
        address: &str,
        job_id: i64,
        run_id: i64,
        path: &str,
    ) -> Result<Vec<u8>> {
        let agent = self.authorized_agent(address).await?;
        let job = self.store().require_job(job_id).await?;
        if job.agent_used_id != Some(agent.id) {
            return Err(Error::forbidden(format!(
                "job {job_id} is not a job of agent {address}"
            )));
        }
        let place = self
            .store()
            .job_place(job_id)
            .await?
            .ok_or_else(|| Error::not_found("Job not found"))?;
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
        let file = self.artifact_file(&place, run_id, &path);
        tokio::fs::read(&file)
            .await
            .map_err(|_| Error::not_found(format!("artifact {path} not found")))
    }

    /// Where an artifact of a run lives on disk.
    pub fn artifact_file(&self, place: &JobPlace, run_id: i64, path: &str) -> PathBuf {
        self.config
            .data_dir
            .join("artifacts")
            .join(format!("{:08}", place.branch_id))
            .join(place.flow_id.to_string())
            .join(run_id.to_string())
            .join(path)
    }

    /// Store log records sent as UDP datagrams by the original's agents
    /// (one JSON object per datagram, as its ClickHouse proxy receives them).
    /// Bad datagrams are skipped; returns how many lines were stored.
    pub async fn ingest_udp_logs(&self, datagrams: &[Vec<u8>]) -> Result<usize> {
        let mut rows = Vec::new();
        for d in datagrams {
            let Ok(v) = serde_json::from_slice::<Value>(d) else {
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
            let step = v.get("step").and_then(Value::as_i64).unwrap_or(-1);
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
                    branch_id: i("branch"),
                    flow_kind: i("flow_kind"),
                    flow_id: i("flow"),
                    run_id: i("run"),
                    job_id: i("job"),
                    step,
                    tool: s("tool"),
                    agent_id: i("agent"),
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

    async fn authorized_agent(&self, address: &str) -> Result<AgentRow> {
        match self.store().agent_by_address(address).await? {
            Some(a) if a.deleted.is_none() && a.authorized => Ok(a),
            _ => Err(Error::forbidden(format!(
                "agent {address} is unknown or not authorized"
            ))),
        }
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
            if !with_steps {
                o.remove("steps");
            }
        }
        Ok(j)
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
            let (value, masked) = schema::substitute(&Value::Object(raw), &args, &ctx);
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
            let mut js = serde_json::to_value(crate::view::step_json(&step, false))?;
            let o = js
                .as_object_mut()
                .ok_or_else(|| Error::internal("step JSON"))?;
            self.inject_step_fields(o, &secrets, &place).await?;
            o.insert("finish".into(), json!(false));
            o.insert("job_id".into(), json!(job.id));
            o.insert("branch_id".into(), json!(place.branch_id));
            o.insert("flow_kind".into(), json!(place.flow_kind));
            o.insert("flow_id".into(), json!(place.flow_id));
            o.insert("run_id".into(), json!(place.run_id));
            o.insert(
                "secrets".into(),
                json!(self.secret_values(place.project_id).await?),
            );
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
        _place: &JobPlace,
    ) -> Result<()> {
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
        let data = match data {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            other => other,
        };
        let scope = f.get("scope").and_then(Value::as_str).unwrap_or("flow");
        let operation = f.get("operation").and_then(Value::as_str).unwrap_or("set");
        let pointer = f.get("json_pointer").and_then(Value::as_str).unwrap_or("/");
        if operation != "set" {
            return Err(Error::bad_request(format!(
                "data operation '{operation}' is not supported by this server: use 'set'"
            )));
        }
        let (entity, current) = match scope {
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
        };
        let updated = set_at_pointer(current, pointer, data)?;
        self.set_user_data(scope, entity, &updated).await
    }
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
