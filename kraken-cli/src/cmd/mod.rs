//! The commands, one module per resource; `main` dispatches to their `run`.

use serde_json::{Map, Value};

use crate::out::usage;

pub mod agent;
pub mod agents;
pub mod branches;
pub mod completions;
pub mod flows;
pub mod groups;
pub mod jobs;
pub mod login;
pub mod logs;
pub mod projects;
pub mod results;
pub mod runs;
pub mod schema;
pub mod secrets;
pub mod settings;
pub mod stages;
pub mod systems;
pub mod tools;
pub mod users;
pub mod version;
pub mod watch;

/// `K=V` arguments as a JSON object of strings.
pub(crate) fn key_values(items: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for kv in items {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| usage(format!("'{kv}' is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(usage(format!("'{kv}' has an empty key")));
        }
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

/// A file the user named, or a usage error (exit 2).
pub(crate) fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}
