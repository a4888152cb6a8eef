//! Scheduler: hands queued jobs to idle agents of their group (§5.3).
//!
//! FIFO by run, then job. For a `local` executor with a system other than
//! `any`, the agent's reported system must match. The claim is atomic in the
//! database, so two schedulers (or servers) never give one job to two agents.

use std::collections::HashSet;

use serde_json::Value;

use super::Engine;
use crate::error::Result;
use crate::events::Event;

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
                        && (!match_system
                            || a.host_info
                                .as_ref()
                                .and_then(|h| h.0.get("system"))
                                .and_then(Value::as_str)
                                == Some(job.system_name.as_str()))
                })
                .collect();
            for agent in candidates {
                if self.store.claim_job(job.id, agent.agent_id).await? {
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
}
