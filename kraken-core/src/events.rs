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
    /// One wake-up per agent that waits for a job: only the agents that got
    /// a job are woken, not all of them.
    agent_wakers: std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<Notify>>>,
    /// Woken when the background task queue has work.
    pub tasks: Notify,
    /// Woken when notifications were queued.
    pub notify: Notify,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(16_384).0,
            scheduler: Notify::new(),
            agent_wakers: std::sync::Mutex::new(std::collections::HashMap::new()),
            tasks: Notify::new(),
            notify: Notify::new(),
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

    /// The wake-up of an agent (created on first use).
    pub fn agent_waker(&self, agent_id: i64) -> std::sync::Arc<Notify> {
        let mut m = self.agent_wakers.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(agent_id)
            .or_insert_with(|| std::sync::Arc::new(Notify::new()))
            .clone()
    }

    /// Tell an agent that waits for a job to ask again: it got one.
    pub fn wake_agent(&self, agent_id: i64) {
        let waker = self
            .agent_wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&agent_id)
            .cloned();
        if let Some(w) = waker {
            w.notify_waiters();
        }
    }
}
