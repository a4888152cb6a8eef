//! The branches of a project, with their latest CI flow.

use kraken_core::model::Branch;
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Block, Cell, Row};

use super::projects::{branch_latest_cells, status_of};
use super::{Component, FilterList, FlowsView, Item, Outcome};
use crate::event::{DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task, Watch};

impl Item for Branch {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        format!(
            "{} {} {}",
            self.name,
            self.branch_name.as_deref().unwrap_or(""),
            status_of(self).word()
        )
    }
}

/// The branches of one project.
#[derive(Debug)]
pub struct BranchesView {
    project_id: i64,
    project_name: String,
    list: FilterList<Branch>,
    gone: bool,
}

impl BranchesView {
    /// The branches of a project.
    pub fn new(project_id: i64, project_name: &str) -> BranchesView {
        BranchesView {
            project_id,
            project_name: project_name.to_string(),
            list: FilterList::new(),
            gone: false,
        }
    }
}

impl Component for BranchesView {
    fn title(&self) -> String {
        self.project_name.clone()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        // The project list carries each branch's latest flows.
        vec![net.watch(id, Watch::Projects)]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        let DashEvent::Loaded { data, .. } = ev else {
            return false;
        };
        let Loaded::Projects(projects) = *data else {
            return false;
        };
        match projects.into_iter().find(|p| p.id == self.project_id) {
            Some(p) => {
                self.gone = false;
                self.project_name = p.name;
                self.list.set_items(p.branches)
            }
            None => {
                let was = self.gone;
                self.gone = true;
                self.list.set_items(Vec::new()) || !was
            }
        }
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        match self.list.handle_key(key, keys) {
            Outcome::Ignored => {}
            other => return other,
        }
        let Some(b) = self.list.selected() else {
            return Outcome::Ignored;
        };
        if keys.open.matches(key) {
            return Outcome::Open(Box::new(FlowsView::new(b.id, &b.name)));
        }
        if keys.create_flow.matches(key) {
            return Outcome::Confirm(Command::CreateFlow {
                branch_id: b.id,
                branch_name: b.name.clone(),
                kind: "ci".into(),
                args: Vec::new(),
            });
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.open, "flows"),
            KeyHint::new(&keys.back, "back"),
            KeyHint::new(&keys.create_flow, "new CI flow"),
        ];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let title = format!(
            " Branches of {}{} ",
            self.project_name,
            self.list.filter_title()
        );
        let block = Block::bordered().title(title);
        let header = Row::new(["STATE", "BRANCH", "GIT BRANCH", "CI FLOW", "WHEN"]);
        let widths = [
            Constraint::Length(9),
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(9),
        ];
        let empty = if self.gone {
            "this project no longer exists"
        } else {
            "no branches"
        };
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |b| {
                let (flow, when) = branch_latest_cells(b);
                Row::new(vec![
                    Cell::from(status_of(b).span()),
                    Cell::from(b.name.clone()),
                    Cell::from(b.branch_name.clone().unwrap_or_default()),
                    flow,
                    when,
                ])
            },
            empty,
        );
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}
