//! In-process notifications: what changed, for live streams (SSE), the
//! scheduler and waiting agents.
//!
//! They are hints, not the truth: a listener re-reads the database when
//! woken, and also polls now and then, so several servers sharing one
//! PostgreSQL still see each other's changes (only later).

use tokio::sync::{Notify, broadcast};

/// Something changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// New log lines of a job, up to this log id.
    Logs {
        /// Job.
        job_id: i64,
        /// Last stored log id.
        last_id: i64,
    },
    /// A job's state or steps changed.
    Job {
        /// Job.
        job_id: i64,
        /// Its run.
        run_id: i64,
    },
    /// A run's state changed.
    Run {
        /// Run.
        run_id: i64,
        /// Its flow.
        flow_id: i64,
    },
    /// A flow's state changed.
    Flow {
        /// Flow.
        flow_id: i64,
        /// Its branch.
        branch_id: i64,
    },
}

/// The hub every part of one process publishes to.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    /// Woken when there may be work for the scheduler.
    pub scheduler: Notify,
    /// Woken when jobs were handed to agents (waiting agents re-ask).
    pub agents: Notify,
    /// Woken when the background task queue has work.
    pub tasks: Notify,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(16_384).0,
            scheduler: Notify::new(),
            agents: Notify::new(),
            tasks: Notify::new(),
        }
    }
}

impl Events {
    /// Publish a change (no-op without listeners).
    pub fn publish(&self, e: Event) {
        let _ = self.tx.send(e);
    }

    /// Listen to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Ask the scheduler to run now.
    pub fn wake_scheduler(&self) {
        self.scheduler.notify_one();
    }

    /// Tell every waiting agent to ask for a job again.
    pub fn wake_agents(&self) {
        self.agents.notify_waiters();
    }
}
