//! Every agent (`:agents`), with its state, groups, last contact and the
//! job it runs; `enter` opens that job's log.

use kraken_core::model::{Agent, agent_state};
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row};

use super::{Component, FilterList, Item, LogView, Outcome};
use crate::event::{DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Net, Task, Watch};
use crate::style::{self, job_status};

/// An agent's state in one word: `disabled`, `active` or `inactive`.
pub fn agent_word(a: &Agent) -> &'static str {
    if a.disabled {
        "disabled"
    } else if a.state == agent_state::ACTIVE {
        "active"
    } else {
        "inactive"
    }
}

/// The names of an agent's groups.
fn groups(a: &Agent) -> String {
    a.groups
        .iter()
        .map(|g| g.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl Item for Agent {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        let job = match &self.job {
            Some(j) => format!("{} {} {}", j.id, j.name, job_status(j).word()),
            None => "idle".into(),
        };
        format!(
            "{} {} {} {} {job}",
            self.name,
            self.address,
            groups(self),
            agent_word(self)
        )
    }
}

/// Every agent.
#[derive(Debug, Default)]
pub struct AgentsView {
    list: FilterList<Agent>,
    /// Why the agents cannot be listed (not a superadmin).
    denied: Option<String>,
}

impl AgentsView {
    /// The view, before its data came.
    pub fn new() -> AgentsView {
        AgentsView::default()
    }
}

impl Component for AgentsView {
    fn title(&self) -> String {
        "agents".into()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(id, Watch::Agents)]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        match ev {
            DashEvent::Loaded { data, .. } => match *data {
                Loaded::Agents(a) => self.denied.take().is_some() | self.list.set_items(a),
                Loaded::Forbidden(m) => {
                    let changed = self.denied.as_ref() != Some(&m);
                    self.denied = Some(m);
                    self.list.set_items(Vec::new()) | changed
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        match self.list.handle_key(key, keys) {
            Outcome::Ignored => {}
            other => return other,
        }
        if keys.open.matches(key)
            && let Some(a) = self.list.selected()
        {
            return match &a.job {
                Some(j) => Outcome::Open(Box::new(LogView::new(j.id, &j.name))),
                None => Outcome::Message(format!("agent {} is idle: no job to show", a.name)),
            };
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.open, "job log"),
            KeyHint::new(&keys.back, "back"),
        ];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let busy = self.list.items().iter().filter(|a| a.job.is_some()).count();
        let title = format!(
            " Agents: {} ({busy} busy){} ",
            self.list.items().len(),
            self.list.filter_title()
        );
        let block = Block::bordered().title(title);
        let header = Row::new(["STATE", "AGENT", "GROUPS", "JOB", "LAST SEEN"]);
        let widths = [
            Constraint::Length(8),
            Constraint::Fill(1),
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Length(9),
        ];
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |a| {
                let word = agent_word(a);
                let state = match word {
                    "active" => Span::styled(word, Style::new().fg(Color::Green)),
                    _ => Span::styled(word, style::dim()),
                };
                let job = match &a.job {
                    Some(j) => Cell::from(Line::from(vec![
                        Span::raw(format!("{} {} ", j.id, j.name)),
                        job_status(j).span(),
                    ])),
                    None => Cell::from(Span::styled("idle", style::dim())),
                };
                Row::new(vec![
                    Cell::from(state),
                    Cell::from(a.name.clone()),
                    Cell::from(groups(a)),
                    job,
                    Cell::from(Span::styled(
                        a.last_seen.map(style::ago).unwrap_or_default(),
                        style::dim(),
                    )),
                ])
            },
            self.denied.as_deref().unwrap_or("no agents"),
        );
    }

    fn is_live(&self) -> bool {
        // "last seen" moves on.
        !self.list.items().is_empty()
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}
