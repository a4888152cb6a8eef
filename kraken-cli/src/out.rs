//! Output: tables on a terminal, plain columns in pipes, JSON on request;
//! a closed pipe ends the program quietly with exit code 0.

use std::fmt::Display;
use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table};
use kraken_core::model::List;
use serde::Serialize;

/// Why the program stops, and with which exit code.
#[derive(Debug)]
pub struct Exit {
    /// Exit code.
    pub code: u8,
    /// One line for stderr (none for a quiet exit).
    pub message: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message.as_deref().unwrap_or(""))
    }
}

impl std::error::Error for Exit {}

/// Usage or connection error (exit 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 2,
        message: Some(msg.into()),
    }
    .into()
}

/// Something named does not exist (exit 3).
pub fn not_found(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 3,
        message: Some(msg.into()),
    }
    .into()
}

/// The flow or run failed (exit 1).
pub fn failed(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 1,
        message: Some(msg.into()),
    }
    .into()
}

/// A wait timed out (exit 124).
pub fn timed_out(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 124,
        message: Some(msg.into()),
    }
    .into()
}

fn write_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Exit {
            code: 0,
            message: None,
        }
        .into()),
        Err(e) => Err(usage(format!("cannot write to stdout: {e}"))),
    }
}

/// The `--jq` filter of this command, if any (set once by `main`).
pub static JQ: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Print what jq filter `filter` makes of `v`: strings raw, other values as
/// compact JSON, one per line. A bad filter is a usage error (exit 2).
fn write_jq(filter: &str, value: &serde_json::Value) -> anyhow::Result<()> {
    let outputs = kraken_core::jq::run(filter, value).map_err(usage)?;
    let mut s = String::new();
    for o in outputs {
        match o {
            serde_json::Value::String(t) => s.push_str(&t),
            other => s.push_str(&serde_json::to_string(&other)?),
        }
        s.push('\n');
    }
    write_out(&s)
}

/// The JSON of `v` with words beside the original's numbers (see
/// [`crate::words`]).
fn to_json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(v)?;
    crate::words::add(&mut value);
    Ok(value)
}

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON instead of tables.
    pub json: bool,
    /// Output for people: stdout is a terminal (or `CLICOLOR_FORCE` is set):
    /// boxed tables, relative times.
    pub tty: bool,
    /// Colours for states in tables (a terminal, and no `NO_COLOR`).
    pub color: bool,
}

/// Whether an environment variable is set to something other than empty or `0`.
fn env_on(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

impl Out {
    /// Output to stdout, JSON or not. `CLICOLOR_FORCE=1` asks for terminal
    /// output in a pipe; `NO_COLOR` turns colours off (<https://no-color.org>).
    pub fn new(json: bool) -> Out {
        let tty = std::io::stdout().is_terminal() || env_on("CLICOLOR_FORCE");
        Out {
            json,
            tty,
            color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// A time for people: relative on a terminal (`2m ago`), absolute
    /// (RFC 3339, UTC) in pipes.
    pub fn when(&self, t: kraken_core::model::Timestamp) -> String {
        if self.tty {
            ago(t.secs_until(kraken_core::model::Timestamp::now()))
        } else {
            t.to_string()
        }
    }

    /// Print a value as pretty JSON (or what `--jq` makes of it).
    pub fn json<T: Serialize + ?Sized>(&self, v: &T) -> anyhow::Result<()> {
        let v = to_json(v)?;
        if let Some(filter) = JQ.get() {
            return write_jq(filter, &v);
        }
        let mut s = serde_json::to_string_pretty(&v)?;
        s.push('\n');
        write_out(&s)
    }

    /// The table-or-JSON choice, made here only: with `--json` the value as
    /// pretty JSON, else whatever `text` prints (a table, fields, a line or
    /// nothing).
    pub fn show<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if self.json { self.json(value) } else { text() }
    }

    /// Print a list: with `--json` the whole list as the API answers it
    /// (`{"items": [...], "total": N}`), else a table of one row per item.
    pub fn list<T: Serialize>(
        &self,
        list: &List<T>,
        headers: &[&str],
        row: impl FnMut(&T) -> Vec<String>,
    ) -> anyhow::Result<()> {
        self.show(list, || {
            self.table(headers, list.items.iter().map(row).collect())
        })
    }

    /// Print what a command created or changed: its JSON with `--json`, else
    /// one line (usually its id).
    pub fn value<T: Serialize + ?Sized>(
        &self,
        value: &T,
        line: impl Display,
    ) -> anyhow::Result<()> {
        self.show(value, || self.line(line))
    }

    /// Print a value with `--json` only; without it the command is quiet.
    pub fn json_only<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        self.show(value, || Ok(()))
    }

    /// Print one entry of a stream: a JSON line with `--json` (JSON Lines),
    /// else its text.
    pub fn entry<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl Display,
    ) -> anyhow::Result<()> {
        if self.json {
            self.json_line(value)
        } else {
            self.line(text)
        }
    }

    /// Print a value as one JSON line (streams).
    pub fn json_line<T: Serialize + ?Sized>(&self, v: &T) -> anyhow::Result<()> {
        let v = to_json(v)?;
        if let Some(filter) = JQ.get() {
            return write_jq(filter, &v);
        }
        let mut s = serde_json::to_string(&v)?;
        s.push('\n');
        write_out(&s)
    }

    /// Print a line.
    pub fn line(&self, s: impl Display) -> anyhow::Result<()> {
        write_out(&format!("{s}\n"))
    }

    /// Print rows: a boxed table on a terminal, plain columns otherwise.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
        let mut t = Table::new();
        if self.tty {
            t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            t.load_style(comfy_table::presets::NOTHING);
        }
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.set_header(headers.to_vec());
        for r in rows {
            t.add_row(r.into_iter().map(|text| {
                let color = self.color.then(|| state_color(&text)).flatten();
                let cell = comfy_table::Cell::new(text);
                match color {
                    Some(c) => cell.fg(c),
                    None => cell,
                }
            }));
        }
        let mut s = t.to_string();
        if !self.tty {
            // Plain columns for scripts: no padding at line ends.
            s = s
                .lines()
                .map(|l| l.trim_end().trim_start_matches(' '))
                .collect::<Vec<_>>()
                .join("\n");
        }
        s.push('\n');
        write_out(&s)
    }

    /// Print key/value pairs.
    pub fn fields(&self, pairs: &[(&str, String)]) -> anyhow::Result<()> {
        let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (k, v) in pairs {
            s.push_str(&format!("{k:width$}  {v}\n"));
        }
        write_out(&s)
    }
}

/// `N s ago`, `N m ago`, `N h ago`, `N d ago`.
pub fn ago(secs: i64) -> String {
    match secs {
        ..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// The colour of a table cell that starts with a state word: green for
/// passed, red for failed, yellow for cancelled or waiting for a person,
/// blue while running.
fn state_color(text: &str) -> Option<comfy_table::Color> {
    use comfy_table::Color;
    let word = text.split([' ', '(']).next().unwrap_or("");
    Some(match word {
        "passed" | "done" => Color::Green,
        "failed" | "error" => Color::Red,
        "cancelled" | "canceled" | "manual" => Color::Yellow,
        "running" | "in-progress" | "queued" | "finishing" | "assigned" => Color::Blue,
        _ => return None,
    })
}

/// Text of an optional value.
pub fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}
