//! Simulated agents: they speak the original agent's `/backend` protocol
//! (`host-info`, `get-job`, `get-job-step`, `step-result2`) without running
//! anything, so the server's side of job hand-out is what gets measured.
//!
//! `get-job` carries `"wait": secs`, this server's long-poll extension; a
//! server that ignores it answers at once and the agent sleeps a little
//! before asking again, as the original agent does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use crate::client::{Api, short};
use crate::fixture::Fixture;

/// Requests in flight while enrolling agents.
const ENROLL_PARALLEL: usize = 16;
/// How long an ordinary agent message may take.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// One simulated agent.
#[derive(Clone)]
pub struct SimAgent {
    api: Api,
    /// Its address (its identity for the original server, a label for
    /// this one, which knows it by `key`).
    pub address: String,
    /// Its key, sent as a bearer token (this server's agent
    /// authentication); the server replaces it once it is authorized.
    key: Arc<Mutex<String>>,
    requests: Arc<AtomicU64>,
    long_poll: bool,
}

/// Agents registered, authorized and put in a fresh group of the fixture.
pub struct Enrolled {
    /// The agents.
    pub agents: Vec<SimAgent>,
    /// Name of their group (jobs for them name it as `agents_group`).
    pub group: String,
    /// Backend requests sent by all of them.
    pub requests: Arc<AtomicU64>,
}

/// A random agent key (256 bits in hex).
fn new_key() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn host_info(address: &str) -> Value {
    json!({"address": address, "msg": "host-info", "info": {
        "system": "debian-12", "system_type": "linux", "distro_name": "debian",
        "distro_version": "12", "isolation_type": "bare-metal", "isolation": "bare-metal"}})
}

/// Register `n` agents (`<fixture name>-<i>`), authorize them
/// (`PATCH /api/agents`) and move them into a fresh group of their own
/// (`PUT /api/agents/{id}`), so that only they take that group's jobs and
/// the server's own agents take none of them.
///
/// With `long_poll` their `get-job` asks the server to wait for a job.
pub async fn enroll(fx: &mut Fixture, n: usize, long_poll: bool) -> Result<Enrolled> {
    let requests = Arc::new(AtomicU64::new(0));
    let agents: Vec<SimAgent> = (0..n)
        .map(|i| SimAgent {
            api: fx.api.clone(),
            address: format!("{}-{i}", fx.name),
            key: Arc::new(Mutex::new(new_key())),
            requests: requests.clone(),
            long_poll,
        })
        .collect();
    // An unknown address registers an unauthorized agent.
    stream::iter(agents.iter().map(|a| async move {
        let r = a.send(&host_info(&a.address), MESSAGE_TIMEOUT).await?;
        if r.get("unauthorized").is_none() && r.get("agent_id").is_none() {
            bail!(
                "host-info of {}: unexpected answer {}",
                a.address,
                short(&r)
            );
        }
        Ok(())
    }))
    .buffer_unordered(ENROLL_PARALLEL)
    .try_collect::<Vec<()>>()
    .await
    .context("registering simulated agents")?;

    let ids = find_agent_ids(&fx.api, &agents).await?;
    fx.track_agents(&ids);
    for chunk in ids.chunks(100) {
        let body: Vec<Value> = chunk
            .iter()
            .map(|id| json!({"id": id, "authorized": true}))
            .collect();
        fx.api
            .patch("/api/agents", &Value::Array(body))
            .await
            .context("authorizing simulated agents")?;
    }
    let (gid, group) = fx.group().await?;
    let api = fx.api.clone();
    stream::iter(ids.iter().map(|id| {
        let api = api.clone();
        async move {
            api.put(
                &format!("/api/agents/{id}"),
                &json!({"groups": [{"id": gid}]}),
            )
            .await
        }
    }))
    .buffer_unordered(ENROLL_PARALLEL)
    .try_collect::<Vec<Value>>()
    .await
    .context("moving simulated agents into their group")?;
    // Authorized now: host-info records the system they run.
    stream::iter(agents.iter().map(|a| async move {
        let r = a.send(&host_info(&a.address), MESSAGE_TIMEOUT).await?;
        if r.get("agent_id").is_none() {
            bail!("host-info of authorized agent {}: {}", a.address, short(&r));
        }
        Ok(())
    }))
    .buffer_unordered(ENROLL_PARALLEL)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(Enrolled {
        agents,
        group,
        requests,
    })
}

/// The ids of freshly registered agents, from `GET /api/agents?unauthorized=true`.
async fn find_agent_ids(api: &Api, agents: &[SimAgent]) -> Result<Vec<i64>> {
    let wanted: HashMap<&str, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.address.as_str(), i))
        .collect();
    let mut ids = vec![None; agents.len()];
    let mut start = 0;
    loop {
        let page = api
            .get(&format!(
                "/api/agents?unauthorized=true&start={start}&limit=100"
            ))
            .await
            .context("listing unauthorized agents")?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for it in &items {
            if let (Some(addr), Some(id)) = (it["address"].as_str(), it["id"].as_i64())
                && let Some(i) = wanted.get(addr)
            {
                ids[*i] = Some(id);
            }
        }
        if items.is_empty() || ids.iter().all(Option::is_some) {
            break;
        }
        start += items.len();
    }
    let missing = ids.iter().filter(|i| i.is_none()).count();
    if missing > 0 {
        bail!("{missing} registered agent(s) are not listed by GET /api/agents?unauthorized=true");
    }
    Ok(ids.into_iter().flatten().collect())
}

impl SimAgent {
    /// Send a message; anything but a 200 with a JSON object, or an
    /// `unauthorized` answer after enrolment, is an error.
    async fn send(&self, msg: &Value, timeout: Duration) -> Result<Value> {
        self.send_raw(serde_json::to_vec(msg)?, timeout).await
    }

    /// Send a serialized message.
    pub async fn send_raw(&self, body: Vec<u8>, timeout: Duration) -> Result<Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let key = self.key.lock().map(|k| k.clone()).unwrap_or_default();
        let mut a = self.api.backend_raw(body, &key, timeout).await?;
        if let Some(new) = a
            .body
            .as_object_mut()
            .and_then(|o| o.remove("agent_key"))
            .and_then(|k| k.as_str().map(str::to_string))
            && let Ok(mut k) = self.key.lock()
        {
            *k = new;
        }
        if a.status != 200 {
            bail!(
                "/backend answered HTTP {} to {}: {}",
                a.status,
                self.address,
                a.message()
            );
        }
        if !a.body.is_object() {
            bail!(
                "/backend answered {} with no JSON object: {}",
                self.address,
                short(&a.body)
            );
        }
        Ok(a.body)
    }

    /// `get-job`, waiting up to `wait` on servers that long-poll; the job
    /// when one was handed out.
    pub async fn get_job(&self, wait: Duration) -> Result<Option<Value>> {
        let mut msg = json!({"address": self.address, "msg": "get-job"});
        if self.long_poll {
            msg["wait"] = json!(wait.as_secs_f64());
        }
        let r = self.send(&msg, wait + MESSAGE_TIMEOUT).await?;
        if r.get("unauthorized").is_some() {
            bail!("get-job: agent {} is not authorized", self.address);
        }
        let job = r.get("job").cloned().unwrap_or(Value::Null);
        Ok(job.get("id").and_then(Value::as_i64).map(|_| job))
    }

    /// `get-job-step`: the next step, or `None` when the job is finished.
    pub async fn get_job_step(&self) -> Result<Option<Value>> {
        let r = self
            .send(
                &json!({"address": self.address, "msg": "get-job-step"}),
                MESSAGE_TIMEOUT,
            )
            .await?;
        let step = r
            .get("job_step")
            .with_context(|| format!("get-job-step without job_step: {}", short(&r)))?;
        match step.get("finish").and_then(Value::as_bool) {
            Some(true) => Ok(None),
            Some(false) => Ok(Some(step.clone())),
            None => bail!("get-job-step without finish: {}", short(&r)),
        }
    }

    /// The `step-result2` message for a step of a job.
    pub fn step_result_msg(&self, job_id: i64, step_idx: i64, result: &Value) -> Value {
        json!({"address": self.address, "msg": "step-result2", "job_id": job_id,
               "step_idx": step_idx, "result": result})
    }

    /// Report every step of the handed-out job done and finish it; returns
    /// how many steps it had.
    pub async fn finish_job(&self, job: &Value) -> Result<usize> {
        let job_id = job["id"].as_i64().context("job without id")?;
        let mut steps = 0;
        while let Some(step) = self.get_job_step().await? {
            let idx = step["index"].as_i64().unwrap_or(0);
            let r = self
                .send(
                    &self.step_result_msg(job_id, idx, &json!({"status": "done", "duration": 0})),
                    MESSAGE_TIMEOUT,
                )
                .await?;
            if r.get("cancel").and_then(Value::as_bool) == Some(true) {
                bail!("step-result2 of job {job_id}: the server canceled the job");
            }
            steps += 1;
            if steps > 100 {
                bail!("job {job_id} hands out more than 100 steps");
            }
        }
        Ok(steps)
    }
}
