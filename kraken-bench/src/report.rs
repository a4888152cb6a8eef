//! What a run found: figures (one per measured quantity), notes (how a
//! figure was measured) and errors, printed as a table or as JSON.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde::Serialize;
use serde_json::Value;

use crate::args::Sizes;

/// Width the table wraps long cells at.
const TABLE_WIDTH: u16 = 110;

/// One measured figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figure {
    /// Workload (or `memory`).
    pub workload: String,
    /// What was measured.
    pub metric: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `req/s`, `MiB`, ...; empty for counts).
    pub unit: String,
}

/// A workload's (or the run's) message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    /// Workload.
    pub workload: String,
    /// Text.
    pub text: String,
}

/// What one workload produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Figures.
    pub figures: Vec<Figure>,
    /// How things were measured, and what a figure means.
    pub notes: Vec<String>,
    /// Problems that make the workload fail while its figures still stand
    /// (HTTP errors under load, flows whose jobs failed, ...).
    pub failures: Vec<String>,
    workload: String,
}

impl Output {
    /// An empty output for a workload.
    pub fn new(workload: &str) -> Output {
        Output {
            workload: workload.to_string(),
            ..Output::default()
        }
    }

    /// Add a figure.
    pub fn figure(&mut self, metric: impl Into<String>, value: f64, unit: &str) {
        self.figures.push(Figure {
            workload: self.workload.clone(),
            metric: metric.into(),
            value,
            unit: unit.to_string(),
        });
    }

    /// Add p50 and p99 (ms) of samples, or a failure when there are none.
    pub fn latency(&mut self, what: &str, samples: &crate::stats::Samples) {
        match samples.p50_p99_ms() {
            Some((p50, p99)) => {
                self.figure(format!("{what} p50"), p50, "ms");
                self.figure(format!("{what} p99"), p99, "ms");
            }
            None => self.fail(format!("{what}: no successful sample")),
        }
    }

    /// Add a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Record a failure.
    pub fn fail(&mut self, text: impl Into<String>) {
        self.failures.push(text.into());
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// This tool and its version.
    pub tool: String,
    /// Server URL.
    pub server: String,
    /// `GET /api/version` of the server.
    pub server_version: Value,
    /// Whether the server was started by this run.
    pub spawned: bool,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// Smoke sizes.
    pub smoke: bool,
    /// Only the original's API was used (no SSE, no long-poll).
    pub plain_api: bool,
    /// Sizes used.
    pub sizes: Sizes,
    /// Workloads run.
    pub workloads: Vec<String>,
    /// Figures.
    pub figures: Vec<Figure>,
    /// Notes.
    pub notes: Vec<Message>,
    /// Errors (a failed workload, a failure under load, a failed clean-up).
    pub errors: Vec<Message>,
    /// No errors.
    pub ok: bool,
}

impl Report {
    /// Add what a workload produced (or the error that stopped it).
    pub fn add(&mut self, workload: &str, out: anyhow::Result<Output>) {
        match out {
            Ok(o) => {
                self.figures.extend(o.figures);
                self.notes.extend(o.notes.into_iter().map(|t| Message {
                    workload: workload.into(),
                    text: t,
                }));
                self.errors.extend(o.failures.into_iter().map(|t| Message {
                    workload: workload.into(),
                    text: t,
                }));
            }
            Err(e) => self.errors.push(Message {
                workload: workload.into(),
                text: format!("{e:#}"),
            }),
        }
        self.ok = self.errors.is_empty();
    }

    /// The figures as a table, then the notes and errors.
    pub fn to_text(&self) -> String {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED);
        // Long error messages wrap inside their cell instead of widening the table.
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(TABLE_WIDTH);
        table.set_header(vec!["workload", "metric", "value", "unit"]);
        for f in &self.figures {
            table.add_row(vec![
                f.workload.clone(),
                f.metric.clone(),
                format_value(f.value),
                f.unit.clone(),
            ]);
        }
        for e in &self.errors {
            table.add_row(vec![
                e.workload.clone(),
                format!("ERROR: {}", e.text),
                "failed".to_string(),
                String::new(),
            ]);
        }
        if let Some(c) = table.column_mut(2) {
            c.set_cell_alignment(CellAlignment::Right);
        }
        let mut out = format!(
            "kraken-bench against {} (server version {}){}, {}{}\n{table}\n",
            self.server,
            self.server_version
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
            if self.spawned { ", spawned" } else { "" },
            if self.smoke {
                "smoke sizes"
            } else {
                "full sizes"
            },
            if self.plain_api {
                ", plain API (no SSE, no long-poll)"
            } else {
                ""
            },
        );
        if !self.notes.is_empty() {
            out.push_str("notes:\n");
            for n in &self.notes {
                out.push_str(&format!("  [{}] {}\n", n.workload, n.text));
            }
        }
        out.push_str(if self.ok {
            "result: ok\n"
        } else {
            "result: FAILED (see the ERROR rows)\n"
        });
        out
    }
}

/// A value with a precision that suits its size.
pub fn format_value(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            tool: "kraken-bench".into(),
            server: "http://x".into(),
            server_version: serde_json::json!({"version": "1.0"}),
            spawned: false,
            started: "now".into(),
            smoke: true,
            plain_api: false,
            sizes: Sizes::smoke(),
            workloads: vec!["reads".into()],
            figures: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
            ok: true,
        }
    }

    #[test]
    fn values_are_rounded_by_size() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(1234.56), "1235");
        assert_eq!(format_value(12.345), "12.3");
        assert_eq!(format_value(0.1234), "0.12");
    }

    #[test]
    fn failures_and_errors_fail_the_run() {
        let mut r = report();
        let mut o = Output::new("reads");
        o.figure("GET /api/version req/s", 1000.5, "req/s");
        o.note("keep-alive");
        r.add("reads", Ok(o));
        assert!(r.ok);
        let text = r.to_text();
        assert!(text.contains("GET /api/version req/s"), "{text}");
        assert!(text.contains("[reads] keep-alive"), "{text}");
        assert!(text.contains("result: ok"));

        let mut o = Output::new("agents");
        o.fail("3 HTTP errors");
        r.add("agents", Ok(o));
        r.add("logs", Err(anyhow::anyhow!("flow 3 did not complete")));
        assert!(!r.ok);
        let text = r.to_text();
        assert!(text.contains("ERROR: 3 HTTP errors"), "{text}");
        assert!(text.contains("flow 3 did not complete"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 110), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["errors"].as_array().unwrap().len(), 2);
        assert_eq!(json["figures"][0]["unit"], "req/s");
    }
}
