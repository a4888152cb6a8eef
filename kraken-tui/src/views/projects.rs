//! The first view: every project, with the state of its branches' latest
//! CI flows.

use kraken_core::model::{Branch, Project};
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Row};

use super::{BranchesView, Component, FilterList, Item, Outcome};
use crate::event::{DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Net, Task, Watch};
use crate::style::{self, Status, branch_status, project_status};

impl Item for Project {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        let branches: Vec<&str> = self.branches.iter().map(|b| b.name.as_str()).collect();
        format!(
            "{} {} {} {}",
            self.name,
            self.description.as_deref().unwrap_or(""),
            branches.join(" "),
            project_status(self).word()
        )
    }
}

/// The latest CI flow of a branch: (label, status, id).
pub(crate) fn latest_flow(b: &Branch) -> Option<(String, Status, i64)> {
    if let Some(Some(f)) = &b.last_incomplete_flow {
        return Some((f.label.clone(), Status::Running, f.id));
    }
    if let Some(Some(f)) = &b.last_completed_flow {
        let s = if f.errors {
            Status::Failed
        } else {
            Status::Passed
        };
        return Some((f.label.clone(), s, f.id));
    }
    None
}

/// What the projects view says on an empty database: how to start.
pub const EMPTY_HINT: &str =
    "no projects yet. To start, with the kraken command (add --db URL for a database in process):
  kraken projects create demo
  kraken branches create demo main
  kraken stages create demo/main build --file build.py
then press c on the branch here to start a flow.
README: \"From a fresh clone to a finished flow\".";

/// Every project.
#[derive(Debug, Default)]
pub struct ProjectsView {
    list: FilterList<Project>,
}

impl ProjectsView {
    /// The view, before its data came.
    pub fn new() -> ProjectsView {
        ProjectsView::default()
    }
}

impl Component for ProjectsView {
    fn title(&self) -> String {
        "projects".into()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(id, Watch::Projects)]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        match ev {
            DashEvent::Loaded { data, .. } => match *data {
                Loaded::Projects(p) => self.list.set_items(p),
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
            && let Some(p) = self.list.selected()
        {
            return Outcome::Open(Box::new(BranchesView::new(p.id, &p.name)));
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![KeyHint::new(&keys.open, "branches")];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let title = format!(" Projects{} ", self.list.filter_title());
        let block = Block::bordered().title(title);
        let header = Row::new(["STATE", "PROJECT", "BRANCHES", "LATEST CI FLOW"]);
        let widths = [
            Constraint::Length(9),
            Constraint::Fill(1),
            Constraint::Length(8),
            Constraint::Length(24),
        ];
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |p| {
                let status = project_status(p);
                let latest = p
                    .branches
                    .iter()
                    .filter_map(|b| latest_flow(b).map(|f| (b, f)))
                    .max_by_key(|(_, f)| f.2);
                let latest = match latest {
                    Some((b, (label, s, _))) => Cell::from(ratatui::text::Line::from(vec![
                        Span::raw(format!("{} {label} ", b.name)),
                        s.span(),
                    ])),
                    None => Cell::from(Span::styled("no flows yet", style::dim())),
                };
                Row::new(vec![
                    Cell::from(status.span()),
                    Cell::from(p.name.clone()),
                    Cell::from(p.branches.len().to_string()),
                    latest,
                ])
            },
            EMPTY_HINT,
        );
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}

/// Branch rows need the same "latest flow" as project rows.
pub(crate) fn branch_latest_cells(b: &Branch) -> (Cell<'static>, Cell<'static>) {
    match latest_flow(b) {
        Some((label, _, _)) => {
            let when = match (&b.last_incomplete_flow, &b.last_completed_flow) {
                (Some(Some(f)), _) => f.created.map(style::ago),
                (_, Some(Some(f))) => f.finished.map(style::ago),
                _ => None,
            };
            (
                Cell::from(label),
                Cell::from(Span::styled(when.unwrap_or_default(), style::dim())),
            )
        }
        None => (Cell::from(Span::styled("-", style::dim())), Cell::from("")),
    }
}

/// The status of a branch, re-exported for the branches view.
pub(crate) fn status_of(b: &Branch) -> Status {
    branch_status(b)
}
