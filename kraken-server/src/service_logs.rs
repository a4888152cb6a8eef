//! The server's own logs (engine, scheduler, watchdog, agents, HTTP) kept in
//! the database as *services logs*, as the original keeps its services'
//! logs: `GET /api/services-logs`, and `GET /api/logs` without a job filter.
//!
//! A tracing layer copies events of this project's crates (INFO and above)
//! into a bounded channel; the server drains it into the logs table in
//! batches. When the channel is full, lines are dropped rather than slowing
//! the server down.

use std::sync::{Arc, Mutex, OnceLock};

use kraken_core::Core;
use kraken_core::api::logs::NewLog;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

type Channel = (mpsc::Sender<NewLog>, Mutex<Option<mpsc::Receiver<NewLog>>>);

static CHANNEL: OnceLock<Channel> = OnceLock::new();

fn channel() -> &'static Channel {
    CHANNEL.get_or_init(|| {
        let (tx, rx) = mpsc::channel(10_000);
        (tx, Mutex::new(Some(rx)))
    })
}

/// The tracing layer that keeps services logs (add it to the subscriber).
#[derive(Debug, Default, Clone, Copy)]
pub struct ServiceLogLayer;

/// The service a log event belongs to, from its module path, named as the
/// original names its services (the web UI's Logs tabs ask for `server`,
/// `rq`, `scheduler`, `watchdog` and `planner`): planning runs is the
/// planner's, background tasks (analysis, recovery) are `rq`'s.
fn service_of(target: &str) -> Option<&'static str> {
    if !target.starts_with("kraken_") {
        return None;
    }
    Some(if target.contains("::engine::scheduler") {
        "scheduler"
    } else if target.contains("::engine::watchdog") || target.contains("::engine::recovery") {
        "watchdog"
    } else if target.contains("::engine::planner") {
        "planner"
    } else if target.contains("::engine") || target.contains("::results") {
        "rq"
    } else if target.contains("::agent") {
        "agent"
    } else {
        "server"
    })
}

/// An event's message, its other fields as `name=value`, and the ids it
/// names (`job`, `run`, `flow`, `branch`, `agent`, `step`), which place the
/// line with what it concerns.
#[derive(Default)]
struct Message {
    text: String,
    job: i64,
    run: i64,
    flow: i64,
    branch: i64,
    agent: i64,
    step: Option<i64>,
}

impl Message {
    fn id(&mut self, name: &str, v: i64) -> bool {
        let slot = match name {
            "job" | "job_id" => &mut self.job,
            "run" | "run_id" => &mut self.run,
            "flow" | "flow_id" => &mut self.flow,
            "branch" | "branch_id" => &mut self.branch,
            "agent" | "agent_id" => &mut self.agent,
            "step" | "step_idx" => {
                self.step = Some(v);
                return true;
            }
            _ => return false,
        };
        *slot = v;
        true
    }
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.insert_str(0, &format!("{value:?}"));
        } else {
            self.text.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            self.text.push_str(&format!(" {}={value}", field.name()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.id(field.name(), value);
        self.text.push_str(&format!(" {}={value}", field.name()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.id(field.name(), i64::try_from(value).unwrap_or(i64::MAX));
        self.text.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S: Subscriber> Layer<S> for ServiceLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > Level::INFO {
            return;
        }
        let Some(service) = service_of(meta.target()) else {
            return;
        };
        let mut msg = Message::default();
        event.record(&mut msg);
        let level = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            _ => "INFO",
        };
        let line = NewLog {
            time: chrono::Utc::now().timestamp_millis(),
            message: msg.text,
            service: service.to_string(),
            host: String::new(),
            path: meta.file().unwrap_or("").to_string(),
            lineno: i64::from(meta.line().unwrap_or(0)),
            level: level.to_string(),
            step: msg.step.unwrap_or(-1),
            job_id: msg.job,
            run_id: msg.run,
            flow_id: msg.flow,
            branch_id: msg.branch,
            agent_id: msg.agent,
            ..NewLog::default()
        };
        // Dropped when the channel is full: logging never blocks the server.
        let _ = channel().0.try_send(line);
    }
}

/// Store services logs of this process into `core`'s database until the
/// process ends (only the first server of a process does it).
pub fn spawn_writer(core: Arc<Core>) -> Option<tokio::task::JoinHandle<()>> {
    let mut rx = channel().1.lock().ok()?.take()?;
    Some(tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < 500 {
                match rx.try_recv() {
                    Ok(l) => batch.push(l),
                    Err(_) => break,
                }
            }
            if core.write_service_logs(&batch).await.is_err() {
                // The database is going away (shutdown): stop quietly.
                break;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::{ServiceLogLayer, channel, service_of};
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_keep_their_service_and_the_ids_they_name() {
        let subscriber = tracing_subscriber::registry().with(ServiceLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "kraken_core::engine::planner", run = 7, job = 42u64, "planned");
        });
        let mut rx = channel().1.lock().unwrap().take().unwrap();
        let line = rx.try_recv().unwrap();
        assert_eq!(line.service, "planner");
        assert_eq!((line.job_id, line.run_id), (42, 7));
        assert!(line.message.starts_with("planned"), "{}", line.message);
        assert_eq!(line.step, -1);
    }

    #[test]
    fn services_by_module() {
        assert_eq!(
            service_of("kraken_core::engine::scheduler"),
            Some("scheduler")
        );
        assert_eq!(
            service_of("kraken_core::engine::watchdog"),
            Some("watchdog")
        );
        assert_eq!(service_of("kraken_core::engine::planner"), Some("planner"));
        assert_eq!(service_of("kraken_core::engine::analysis"), Some("rq"));
        assert_eq!(
            service_of("kraken_core::engine::recovery"),
            Some("watchdog")
        );
        assert_eq!(service_of("kraken_core::agent"), Some("agent"));
        assert_eq!(service_of("kraken_server"), Some("server"));
        assert_eq!(service_of("sqlx::query"), None);
    }
}
