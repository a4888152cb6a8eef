//! Scheduler: hands queued jobs to idle agents of their group (§5.3).
//!
//! FIFO by run, then job. For a `local` executor with a system other than
//! `any`, the agent's reported system must match. A `docker` or `lxd` job
//! goes only to an agent that reported that executor in its host info
//! (`"docker": "<version>"`); while no agent of its group has it, the job
//! waits with a note saying so, and never runs on a bare host. The claim
//! is atomic in the database, so two schedulers (or servers) never give
//! one job to two agents.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::Engine;
use crate::error::Result;
use crate::events::Event;

/// Whether an agent with `host_info` can run jobs of `executor`.
pub fn can_run(host_info: Option<&Value>, executor: &str) -> bool {
    !needs_capability(executor)
        || host_info
            .and_then(|h| h.get(executor))
            .is_some_and(|v| match v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            })
}

/// Whether jobs of `executor` need an agent that reported it (`docker`,
/// `lxd`); `local` runs anywhere.
fn needs_capability(executor: &str) -> bool {
    !matches!(executor, "" | "local")
}

/// The note of a job that no agent of its group can run.
pub fn no_executor_note(group: &str, executor: &str) -> String {
    format!("no agent of group '{group}' can run executor '{executor}'")
}

impl Engine {
    /// Assign as many waiting jobs as there are idle agents; returns how many.
    pub async fn assign_jobs(&self) -> Result<usize> {
        let idle = self.store.idle_agents().await?;
        if idle.is_empty() {
            return Ok(0);
        }
        let distinct: HashSet<i64> = idle.iter().map(|a| a.agent_id).collect();
        let jobs = self.store.waiting_jobs(1000).await?;
        let mut taken: HashSet<i64> = HashSet::new();
        // (group, executor) -> whether an agent of the group can run it.
        let mut capable: HashMap<(i64, String), bool> = HashMap::new();
        let mut assigned = 0;
        for job in jobs {
            if taken.len() == distinct.len() {
                break;
            }
            let match_system = job.system_name != "any" && job.executor == "local";
            let candidates: Vec<_> = idle
                .iter()
                .filter(|a| {
                    a.group_id == job.agents_group_id
                        && !taken.contains(&a.agent_id)
                        && can_run(a.host_info.as_ref().map(|h| &h.0), &job.executor)
                        && (!match_system
                            || a.host_info
                                .as_ref()
                                .and_then(|h| h.0.get("system"))
                                .and_then(Value::as_str)
                                == Some(job.system_name.as_str()))
                })
                .collect();
            if candidates.is_empty() && needs_capability(&job.executor) {
                self.note_missing_executor(&job, &mut capable).await?;
            }
            for agent in candidates {
                if self.store.claim_job(job.id, agent.agent_id).await? {
                    if needs_capability(&job.executor) {
                        self.store.set_waiting_job_note(job.id, None).await?;
                    }
                    tracing::info!(job = job.id, agent = agent.agent_id, "job assigned");
                    self.events.wake_agent(agent.agent_id);
                    taken.insert(agent.agent_id);
                    assigned += 1;
                    if let Some(j) = self.store.job(job.id).await? {
                        self.events.publish(Event::Job {
                            job_id: j.id,
                            run_id: j.run_id,
                        });
                    }
                    break;
                }
                // The agent was taken meanwhile (another server): try the next.
                taken.insert(agent.agent_id);
            }
        }
        Ok(assigned)
    }

    /// A `docker`/`lxd` job found no idle agent that can run it: when no
    /// agent of its group can (busy or not), say so on the job (once), so
    /// the API, the CLI and the dashboard show why it waits.
    async fn note_missing_executor(
        &self,
        job: &crate::store::jobs::WaitingJob,
        capable: &mut HashMap<(i64, String), bool>,
    ) -> Result<()> {
        let key = (job.agents_group_id, job.executor.clone());
        let can = match capable.get(&key) {
            Some(c) => *c,
            None => {
                let infos = self.store.group_host_infos(job.agents_group_id).await?;
                let c = infos
                    .iter()
                    .any(|h| can_run(h.as_ref().map(|j| &j.0), &job.executor));
                capable.insert(key, c);
                c
            }
        };
        let note = if can {
            None
        } else {
            let group = self
                .store
                .group(job.agents_group_id)
                .await?
                .map_or_else(|| job.agents_group_id.to_string(), |g| g.name);
            Some(no_executor_note(&group, &job.executor))
        };
        if self
            .store
            .set_waiting_job_note(job.id, note.as_deref())
            .await?
        {
            if let Some(n) = &note {
                tracing::info!(job = job.id, "{n}");
            }
            if let Some(j) = self.store.job(job.id).await? {
                self.events.publish(Event::Job {
                    job_id: j.id,
                    run_id: j.run_id,
                });
            }
        }
        Ok(())
    }
}
