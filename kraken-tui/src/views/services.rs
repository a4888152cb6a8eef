//! The server's services log (`:log`): what the engine, scheduler,
//! watchdog and server wrote, newest at the bottom, from a level on.

use kraken_core::api::logs::LogLine;
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Row};

use super::{Component, FilterList, Item, Outcome};
use crate::event::{DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Net, Task, Watch};
use crate::style;
use crate::text::sanitize;

/// The levels `l` cycles through: everything, then from a level on.
pub const LEVELS: [Option<&str>; 4] = [None, Some("info"), Some("warning"), Some("error")];

impl Item for LogLine {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        format!(
            "{} {} {} {}",
            self.level, self.service, self.host, self.message
        )
    }
}

/// A level in its colour.
fn level_span(level: &str) -> Span<'static> {
    let st = match level.to_ascii_uppercase().as_str() {
        "ERROR" | "CRITICAL" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        "WARNING" => Style::new().fg(Color::Yellow),
        "DEBUG" => style::dim(),
        _ => Style::new(),
    };
    Span::styled(level.to_string(), st)
}

/// The services log.
#[derive(Debug, Default)]
pub struct ServicesView {
    list: FilterList<LogLine>,
    /// Index in [`LEVELS`].
    level: usize,
    /// Why the log cannot be read (not a superadmin).
    denied: Option<String>,
}

impl ServicesView {
    /// The view, before its data came.
    pub fn new() -> ServicesView {
        ServicesView::default()
    }
}

impl Component for ServicesView {
    fn title(&self) -> String {
        "log".into()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(
            id,
            Watch::Services {
                level: LEVELS[self.level].map(str::to_string),
            },
        )]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        let DashEvent::Loaded { data, .. } = ev else {
            return false;
        };
        let lines = match *data {
            Loaded::Services(lines) => lines,
            Loaded::Forbidden(m) => {
                let changed = self.denied.as_ref() != Some(&m);
                self.denied = Some(m);
                return self.list.set_items(Vec::new()) | changed;
            }
            _ => return false,
        };
        let was_denied = self.denied.take().is_some();
        // The cursor stays on the newest line unless moved up.
        let follow = !self.list.loaded || self.list.at_end();
        let changed = self.list.set_items(lines);
        if follow {
            self.list.select_last();
        }
        changed || was_denied
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        match self.list.handle_key(key, keys) {
            Outcome::Ignored => {}
            other => return other,
        }
        if keys.level.matches(key) {
            self.level = (self.level + 1) % LEVELS.len();
            self.list.loaded = false;
            return Outcome::Restart;
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.back, "back"),
            KeyHint::new(&keys.level, "level"),
        ];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let level = match LEVELS[self.level] {
            None => "all levels".to_string(),
            Some(l) => format!("{l} and above"),
        };
        let n = self.list.items().len();
        let title = format!(
            " Services log: {n} line{}, {level}{} ",
            if n == 1 { "" } else { "s" },
            self.list.filter_title()
        );
        let block = Block::bordered().title(title);
        let header = Row::new(["TIME", "LEVEL", "SERVICE", "MESSAGE"]);
        let widths = [
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Fill(1),
        ];
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |l| {
                Row::new(vec![
                    Cell::from(Span::styled(
                        l.time.to_datetime().format("%H:%M:%S").to_string(),
                        style::dim(),
                    )),
                    Cell::from(level_span(&l.level)),
                    Cell::from(l.service.clone()),
                    Cell::from(sanitize(&l.message)),
                ])
            },
            self.denied
                .as_deref()
                .unwrap_or("no services log lines (at this level)"),
        );
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}
