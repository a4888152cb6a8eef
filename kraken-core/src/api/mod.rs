//! The `Kraken` service: one method per REST operation, typed in and out,
//! with the permission checks inside.
//!
//! A [`Kraken`] handle talks to a server over HTTP ([`Kraken::login`],
//! [`Kraken::connect`]; feature `client`) or works in process (feature
//! `local`): there a `Local` acts for one `Principal`, the server
//! authenticates a bearer token with `Core::authenticate` and calls the
//! methods of `Core::kraken_for`, and an embedding program opens a database
//! with `Kraken::open` and acts as the local administrator.

#[cfg(feature = "local")]
use std::path::PathBuf;
#[cfg(feature = "local")]
use std::sync::Arc;
#[cfg(feature = "local")]
use std::time::Duration;

#[cfg(feature = "local")]
use crate::auth::Principal;
#[cfg(feature = "local")]
use crate::auth::cache::SessionCache;
#[cfg(feature = "local")]
use crate::auth::limiter::LoginLimiter;
#[cfg(feature = "local")]
use crate::engine::Engine;
#[cfg(feature = "local")]
pub use crate::engine::EngineLoops;
// The workflow schema lives in `schema`; kept here for callers of the old path.
#[cfg(feature = "local")]
use crate::error::{Error, Result};
#[cfg(feature = "local")]
use crate::model::Timestamp;
#[cfg(feature = "local")]
pub use crate::schema::WORKFLOW_SCHEMA;
#[cfg(feature = "local")]
use crate::storage::Storage;
#[cfg(feature = "local")]
use crate::store::Store;

#[cfg(feature = "local")]
pub(crate) mod agents;
#[cfg(feature = "local")]
pub mod backend;
#[cfg(feature = "local")]
pub(crate) mod branches;
#[cfg(feature = "local")]
pub mod cache;
pub mod client;
#[cfg(feature = "local")]
pub(crate) mod diagnostics;
#[cfg(feature = "local")]
pub mod exec;
#[cfg(feature = "local")]
pub(crate) mod flows;
mod helpers;
#[cfg(feature = "local")]
pub(crate) mod jobs;
#[cfg(feature = "local")]
pub mod logs;
#[cfg(feature = "local")]
pub(crate) mod projects;
#[cfg(feature = "local")]
pub mod results;
#[cfg(feature = "local")]
pub mod s3;
#[cfg(feature = "local")]
pub(crate) mod secrets;
#[cfg(feature = "local")]
pub(crate) mod seed;
#[cfg(feature = "local")]
pub(crate) mod settings;
#[cfg(feature = "local")]
pub(crate) mod stages;
#[cfg(feature = "local")]
pub(crate) mod tools;
#[cfg(feature = "local")]
pub(crate) mod users;
#[cfg(feature = "local")]
pub mod webhooks;

pub use client::{FollowEvent, Kraken};
#[cfg(feature = "local")]
pub use seed::builtin_tools;

#[cfg(feature = "local")]
/// Settings of a Kraken instance that are not stored in its database.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and agent work dirs live, and blobs
    /// (artifacts, tool packages) unless `storage` says otherwise.
    pub data_dir: PathBuf,
    /// Where blobs live: `None` for the data dir, a directory,
    /// `file:///dir` or `s3://bucket/prefix` (see [`crate::storage`]).
    pub storage: Option<String>,
    /// Sessions unused for this long expire.
    pub session_idle_timeout: Duration,
    /// Password for the `admin` user created on first start (`admin` if none).
    pub admin_password: Option<String>,
}

#[cfg(feature = "local")]
impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("kraken-data"),
            storage: None,
            session_idle_timeout: Duration::from_secs(30 * 24 * 3600),
            admin_password: None,
        }
    }
}

#[cfg(feature = "local")]
/// The shared state of one Kraken instance: its engine (store and events)
/// and configuration.
#[derive(Debug)]
pub struct Core {
    /// The engine: flows, runs, jobs over the store.
    engine: Arc<Engine>,
    /// The configuration.
    pub config: Config,
    /// Artifacts and tool packages.
    blobs: Storage,
    /// Id of the `admin` user (the in-process operator acts as it).
    admin_id: i64,
    /// `host:port` of the UDP log listener announced to agents.
    pub(crate) udp_addr: std::sync::Mutex<String>,
    /// `host:port` the S3 endpoint listens on (empty: it does not).
    pub(crate) s3_bound: std::sync::Mutex<String>,
    /// Failed-login counts.
    login_limiter: LoginLimiter,
    /// Authenticated sessions kept in memory.
    pub(crate) sessions: SessionCache,
    /// Where the jobs, runs and flows named by service log lines are.
    log_places: LogPlaces,
}

/// What a service log line names: a job, a run or a flow.
#[cfg(feature = "local")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Named {
    Job(i64),
    Run(i64),
    Flow(i64),
}

/// The place of a [`Named`]: (run, flow, flow kind, branch); run 0 for a flow.
#[cfg(feature = "local")]
type Place = (i64, i64, i64, i64);

/// Places of what service log lines name, kept because they never change (a
/// job stays in its run, a run in its flow, a flow in its branch and kind):
/// the server logs a few lines at each step of every flow, and each would
/// otherwise read its flow again. Bounded: emptied when full.
#[cfg(feature = "local")]
#[derive(Debug, Default)]
struct LogPlaces(std::sync::Mutex<std::collections::HashMap<Named, Place>>);

#[cfg(feature = "local")]
impl LogPlaces {
    const MAX: usize = 4096;

    fn get(&self, n: Named) -> Option<Place> {
        self.0.lock().ok()?.get(&n).copied()
    }

    fn put(&self, n: Named, p: Place) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(n, p);
        }
    }
}

#[cfg(feature = "local")]
/// How long a session may go without a touch of its `last_used` time;
/// saves a write per request.
const SESSION_TOUCH_INTERVAL_MS: i64 = 60_000;

/// What an invalid or unknown bearer token gets (the original's words).
pub const INVALID_TOKEN: &str = "The server could not verify that you are authorized to access \
    the URL requested. You either supplied the wrong credentials (e.g. a bad password), or your \
    browser doesn't understand how to supply the credentials required.";

#[cfg(feature = "local")]
impl Core {
    /// Open the store, apply migrations and seed a fresh database.
    pub async fn open(store: Store, config: Config) -> Result<Arc<Core>> {
        let blobs = Storage::open(config.storage.as_deref(), &config.data_dir)?;
        let admin_id = seed::seed(&store, &config).await?;
        Ok(Arc::new(Core {
            engine: Engine::with_git_cache(store, config.data_dir.join("git-cache")),
            config,
            blobs,
            admin_id,
            udp_addr: std::sync::Mutex::new(String::new()),
            s3_bound: std::sync::Mutex::new(String::new()),
            login_limiter: LoginLimiter::default(),
            log_places: LogPlaces::default(),
            sessions: SessionCache::default(),
        }))
    }

    /// Open a database (`db_url`, or the SQLite file in the data dir when
    /// `None`), apply migrations and seed it.
    pub async fn open_database(db_url: Option<&str>, config: Config) -> Result<Arc<Core>> {
        let store = match db_url {
            Some(url) => Store::open(url).await?,
            None => Store::open_data_dir(&config.data_dir).await?,
        };
        Core::open(store, config).await
    }

    /// The engine under this API.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub(crate) fn store(&self) -> &Store {
        self.engine.store()
    }

    /// Change notifications of this process (for live streams).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::events::Event> {
        self.engine.events().subscribe()
    }

    /// Spawn the engine's loops (scheduler, watchdog, background tasks);
    /// they stop when the returned value is dropped.
    pub fn start_engine(&self) -> EngineLoops {
        self.engine.start_loops()
    }

    /// Where artifacts and tool packages are stored (for messages and logs).
    pub fn storage(&self) -> &Storage {
        &self.blobs
    }

    /// The database's URL, its password hidden.
    pub fn database_url(&self) -> String {
        self.store().url()
    }

    /// Close the database (at shutdown).
    pub async fn close(&self) {
        self.store().close().await;
    }

    /// `POST /sessions`: log in with a user name and password.
    pub async fn login(&self, input: &crate::model::Login) -> Result<crate::model::Session> {
        self.login_from(input, None).await
    }

    /// `POST /sessions` from a source address (failed logins are throttled
    /// per user name and per address).
    pub async fn login_from(
        &self,
        input: &crate::model::Login,
        source: Option<std::net::IpAddr>,
    ) -> Result<crate::model::Session> {
        users::login(self.store(), &self.login_limiter, input, source).await
    }

    /// `GET /settings` without a session: the settings the login page needs.
    pub async fn public_settings(&self) -> Result<serde_json::Value> {
        settings::public_settings(self.store()).await
    }

    /// Keep log lines of this server's own services (engine, scheduler, ...).
    pub async fn write_service_logs(&self, lines: &[logs::NewLog]) -> Result<()> {
        // A line naming a job, a run or a flow is placed with its run, flow,
        // flow kind and branch, so the web UI's per-flow Logs tab finds it.
        let mut placed = lines.to_vec();
        for l in &mut placed {
            let named = if l.job_id != 0 && l.flow_id == 0 {
                Named::Job(l.job_id)
            } else if l.run_id != 0 && l.flow_id == 0 {
                Named::Run(l.run_id)
            } else if l.flow_id != 0 {
                Named::Flow(l.flow_id)
            } else {
                continue;
            };
            if let Some((run_id, flow_id, flow_kind, branch_id)) = self.log_place(named).await? {
                if l.run_id == 0 {
                    l.run_id = run_id;
                }
                l.flow_id = flow_id;
                l.flow_kind = flow_kind;
                l.branch_id = branch_id;
            }
        }
        self.store().append_logs(&placed).await
    }

    /// Where `named` is, from memory or the store; `None` when it is gone.
    async fn log_place(&self, named: Named) -> Result<Option<Place>> {
        if let Some(p) = self.log_places.get(named) {
            return Ok(Some(p));
        }
        let flow_place =
            |f: crate::store::flows::FlowRow, run_id: i64| (run_id, f.id, f.kind, f.branch_id);
        let place = match named {
            Named::Job(id) => self
                .store()
                .job_place(id)
                .await?
                .map(|p| (p.run_id, p.flow_id, p.flow_kind, p.branch_id)),
            Named::Run(id) => match self.store().run(id).await? {
                Some(run) => self
                    .store()
                    .flow(run.flow_id)
                    .await?
                    .map(|f| flow_place(f, id)),
                None => None,
            },
            Named::Flow(id) => self.store().flow(id).await?.map(|f| flow_place(f, 0)),
        };
        if let Some(p) = place {
            self.log_places.put(named, p);
        }
        Ok(place)
    }

    /// Wake the scheduler: agents or their groups changed.
    pub(crate) fn notify_agents_changed(&self) {
        self.engine.events().wake_scheduler();
    }

    /// A handle acting as `who`.
    pub fn kraken_for(self: &Arc<Self>, who: Principal) -> Local {
        self.kraken_as(Arc::new(who))
    }

    /// A handle acting as `who` (as [`Core::authenticate`] answers it).
    pub fn kraken_as(self: &Arc<Self>, who: Arc<Principal>) -> Local {
        Local {
            core: self.clone(),
            who,
        }
    }

    /// A handle acting as the local administrator.
    pub fn local_admin(self: &Arc<Self>) -> Local {
        self.kraken_for(Principal::local_admin(self.admin_id))
    }

    /// Resolve a bearer token to the principal it stands for.
    ///
    /// A session read in the last [`crate::auth::cache::SESSION_CACHE_MAX_AGE`]
    /// is answered from memory with no query (see [`crate::auth::cache`]); its
    /// last use is still written at most every minute, so idle sessions expire.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Principal>> {
        let now = Timestamp::now().millis();
        let idle = self.config.session_idle_timeout.as_millis() as i64;
        if let Some(cached) = self.sessions.get(token)
            && now - cached.last_used <= idle
        {
            if now - cached.last_used > SESSION_TOUCH_INTERVAL_MS
                && let Some(id) = cached.who.session_id
            {
                self.store().touch_session(id).await?;
                self.sessions.touched(token, now);
            }
            return Ok(cached.who);
        }
        let ticket = self.sessions.ticket();
        let invalid = || Error::Unauthorized(INVALID_TOKEN.to_string());
        let Some(session) = self.store().session_by_token(token).await? else {
            return Err(invalid());
        };
        if now - session.last_used > idle {
            self.store().end_session(session.id).await?;
            self.sessions.forget_token(token);
            return Err(Error::Unauthorized(
                "the session has expired: log in again".to_string(),
            ));
        }
        let Some(user) = self.store().user(session.user_id).await? else {
            return Err(invalid());
        };
        if !user.enabled() {
            // Disabling ends the sessions; this catches any left over.
            self.store().end_session(session.id).await?;
            self.sessions.forget_token(token);
            return Err(invalid());
        }
        let mut last_used = session.last_used;
        if now - session.last_used > SESSION_TOUCH_INTERVAL_MS {
            self.store().touch_session(session.id).await?;
            last_used = now;
        }
        let who = Arc::new(Principal {
            user_id: user.id,
            name: user.name.clone(),
            superadmin: user.superadmin,
            enabled: user.enabled(),
            session_id: Some(session.id),
            token: Some(session.token),
            roles: self.store().roles_of(user.id).await?,
        });
        self.sessions.insert(ticket, token, who.clone(), last_used);
        Ok(who)
    }
}

#[cfg(feature = "local")]
/// A handle on a Kraken instance acting for one principal.
#[derive(Clone)]
pub struct Local {
    pub(crate) core: Arc<Core>,
    pub(crate) who: Arc<Principal>,
}

#[cfg(feature = "local")]
impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("who", &self.who.name)
            .finish()
    }
}

#[cfg(feature = "local")]
impl Local {
    /// Open a database (`sqlite://ci.db`, `postgres://...`) in process, as the
    /// local administrator, with the default configuration.
    pub async fn open(url: &str) -> Result<Local> {
        let store = Store::open(url).await?;
        Ok(Core::open(store, Config::default()).await?.local_admin())
    }

    /// The shared core.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Who this handle acts for.
    pub fn principal(&self) -> &Principal {
        &self.who
    }

    pub(crate) fn store(&self) -> &Store {
        self.core.store()
    }

    /// The engine (no permission checks: callers check first).
    pub(crate) fn engine(&self) -> &Engine {
        &self.core.engine
    }

    /// Change notifications of this process.
    pub(crate) fn events(&self) -> &crate::events::Events {
        self.core.engine.events()
    }
}

#[cfg(feature = "local")]
/// Require a non-empty string field of a request body.
pub(crate) fn required<'a>(v: &'a Option<String>, msg: &str) -> Result<&'a str> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(v.as_deref().unwrap_or(s)),
        _ => Err(Error::bad_request(msg)),
    }
}
