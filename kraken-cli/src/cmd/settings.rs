//! `kraken settings`: server settings.

use kraken_core::Kraken;
use serde_json::{Map, Value, json};

use crate::args::SettingsCmd;
use crate::out::{Out, usage};

/// Runs one `kraken settings` verb.
pub async fn run(k: &Kraken, out: &Out, c: &SettingsCmd) -> anyhow::Result<()> {
    match c {
        SettingsCmd::Show => {
            let s = k.get_settings().await?;
            out.show(&s, || {
                let mut rows = Vec::new();
                for (g, vals) in s.as_object().into_iter().flatten() {
                    for (n, v) in vals.as_object().into_iter().flatten() {
                        rows.push(vec![
                            format!("{g}.{n}"),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        ]);
                    }
                }
                out.table(&["SETTING", "VALUE"], rows)
            })
        }
        SettingsCmd::Set { values } => {
            let mut changes = Map::new();
            for kv in values {
                let (key, v) = kv
                    .split_once('=')
                    .ok_or_else(|| usage(format!("'{kv}' is not GROUP.NAME=VALUE")))?;
                let (g, n) = key
                    .split_once('.')
                    .ok_or_else(|| usage(format!("'{key}' is not GROUP.NAME")))?;
                let value = match v {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => v
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| Value::String(v.to_string())),
                };
                let grp = changes.entry(g.to_string()).or_insert_with(|| json!({}));
                if let Some(o) = grp.as_object_mut() {
                    o.insert(n.to_string(), value);
                }
            }
            let s = k.update_settings(&Value::Object(changes)).await?;
            out.json_only(&s)
        }
    }
}
