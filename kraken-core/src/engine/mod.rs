//! The engine: planner (flows → runs → jobs), scheduler (jobs → agents),
//! completion and child triggering, watchdog and timed triggers, and the
//! background task worker.
//!
//! [`Engine::start`] spawns the loops of one server. They are event-driven
//! (woken by [`crate::events::Events`]) with a slow periodic tick as a safety
//! net, so several servers on one PostgreSQL also see each other's work.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::events::Events;
use crate::store::Store;

pub(crate) mod complete;
pub(crate) mod context;
pub(crate) mod notify;
pub(crate) mod planner;
pub mod recovery;
pub mod repo;
pub(crate) mod scheduler;
pub mod stage_repo;
pub(crate) mod stage_schema;
pub(crate) mod tasks;
pub(crate) mod watchdog;

pub use planner::string_args;
pub use stage_schema::workflow_schema;

/// The engine's context: the store and the event bus of one process. It acts
/// for nobody (permission checks belong to the API above it); every state
/// change of flows, runs and jobs goes through its methods.
#[derive(Debug)]
pub struct Engine {
    /// This engine, for work it hands to a task of its own.
    me: std::sync::Weak<Engine>,
    store: Store,
    events: Events,
    validator: stage_schema::ValidatorCache,
    /// This engine's name in leases it holds (process id and start time).
    instance: String,
    /// Where polled repositories are fetched to (bare clones, one per URL).
    git_cache: std::path::PathBuf,
    /// Repository triggers being polled by this process (timer ids): a
    /// poll slower than its interval is not started twice.
    polling: std::sync::Mutex<std::collections::HashSet<i64>>,
}

impl Engine {
    /// An engine over `store` (no loop runs until [`Engine::start_loops`]);
    /// polled repositories are cached in the system's temporary directory.
    pub fn new(store: Store) -> Arc<Engine> {
        Self::with_git_cache(store, std::env::temp_dir().join("kraken-git-cache"))
    }

    /// An engine over `store` that keeps the clones of polled repositories
    /// in `git_cache` (a server uses `<data dir>/git-cache`).
    pub fn with_git_cache(store: Store, git_cache: std::path::PathBuf) -> Arc<Engine> {
        Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            store,
            events: Events::default(),
            validator: std::sync::Mutex::new(None),
            instance: {
                // Unique among the engines of one process too (tests run several).
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("{}-{}-{n}", std::process::id(), crate::store::now_ms())
            },
            git_cache,
            polling: Default::default(),
        })
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Change notifications of this process.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Complete a run in a task of its own, off the caller's path (a run
    /// whose jobs all ended when they were created). Should this process
    /// stop first, the recovery of any server completes it (a run whose
    /// jobs all ended).
    pub(crate) fn complete_run_soon(&self, run_id: i64) {
        let Some(engine) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = engine.complete_run(run_id, None).await {
                tracing::warn!(run = run_id, error = %e, "completing the run failed");
            }
        });
    }

    /// Spawn the scheduler, watchdog and task worker of this engine.
    pub fn start_loops(self: &Arc<Self>) -> EngineLoops {
        EngineLoops::start(self.clone())
    }
}

/// The running loops of an engine; stopped when dropped.
#[derive(Debug)]
pub struct EngineLoops {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for EngineLoops {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How often growing tables are checked for statistics (PostgreSQL).
const STATISTICS_EVERY: Duration = Duration::from_secs(2);

impl EngineLoops {
    /// Spawn the scheduler, watchdog and task worker for `engine`.
    fn start(engine: Arc<Engine>) -> EngineLoops {
        let mut tasks = Vec::new();

        let k = engine.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = k.assign_jobs().await {
                    tracing::warn!(error = %e, "scheduler");
                }
                // Woken by new jobs or freed agents; every second anyway.
                let _ = tokio::time::timeout(Duration::from_secs(1), k.events.scheduler.notified())
                    .await;
            }
        }));

        let k = engine.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = k.run_queued_tasks().await {
                    tracing::warn!(error = %e, "task worker");
                }
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), k.events.tasks.notified()).await;
            }
        }));

        // Notifications: their own worker, so a slow endpoint holds nothing else.
        tasks.push(tokio::spawn(engine.clone().notification_worker()));

        // Recovery: at start, then every few seconds (see recovery.rs).
        let k = engine.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = k.recover().await {
                    tracing::warn!(error = %e, "recovery");
                }
                tokio::time::sleep(recovery::RECOVERY_EVERY).await;
            }
        }));

        // PostgreSQL's statistics of growing tables (see
        // `Store::refresh_statistics`): its own loop, as an `ANALYZE` of a
        // big table may take a while.
        let k = engine.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(STATISTICS_EVERY).await;
                let started = std::time::Instant::now();
                match k.store.refresh_statistics().await {
                    Ok(t) if t.is_empty() => {}
                    Ok(t) => tracing::debug!(tables = ?t, took = ?started.elapsed(), "statistics refreshed"),
                    Err(e) => tracing::warn!(error = %e, "statistics"),
                }
            }
        }));

        let k = engine;
        tasks.push(tokio::spawn(async move {
            let mut tick: u64 = 0;
            loop {
                if let Err(e) = k.check_job_timeouts().await {
                    tracing::warn!(error = %e, "watchdog: job timeouts");
                }
                if let Err(e) = k.fire_timers().await {
                    tracing::warn!(error = %e, "watchdog: timers");
                }
                if tick.is_multiple_of(2)
                    && let Err(e) = k.check_dead_agents().await
                {
                    tracing::warn!(error = %e, "watchdog: dead agents");
                }
                if tick.is_multiple_of(30)
                    && let Err(e) = k.check_run_timeouts().await
                {
                    tracing::warn!(error = %e, "watchdog: run timeouts");
                }
                if tick % 86_400 == 3600
                    && let Err(e) = k.apply_log_retention().await
                {
                    tracing::warn!(error = %e, "watchdog: log retention");
                }
                tick += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
        EngineLoops { tasks }
    }
}
