//! Running and queued jobs across projects (`:jobs`); `enter` opens a
//! job's log.

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Row};

use super::{Component, FilterList, Item, LogView, Outcome};
use crate::event::{DashEvent, Loaded, RunningJob, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Net, Task, Watch};
use crate::style::{self, Status, job_status};

impl Item for RunningJob {
    fn key(&self) -> i64 {
        self.job.id
    }
    fn text(&self) -> String {
        format!(
            "{}/{} {} {} {} {} {} {}",
            self.project,
            self.branch,
            self.flow,
            self.stage,
            self.job.id,
            self.job.name,
            self.job.agent_name,
            job_status(&self.job).word()
        )
    }
}

/// Running and queued jobs.
#[derive(Debug, Default)]
pub struct RunningView {
    list: FilterList<RunningJob>,
}

impl RunningView {
    /// The view, before its data came.
    pub fn new() -> RunningView {
        RunningView::default()
    }
}

impl Component for RunningView {
    fn title(&self) -> String {
        "jobs".into()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(id, Watch::Running)]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        match ev {
            DashEvent::Loaded { data, .. } => match *data {
                Loaded::Running(j) => self.list.set_items(j),
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
            && let Some(r) = self.list.selected()
        {
            return Outcome::Open(Box::new(LogView::new(r.job.id, &r.job.name)));
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.open, "log"),
            KeyHint::new(&keys.back, "back"),
        ];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let items = self.list.items();
        let running = items
            .iter()
            .filter(|r| job_status(&r.job) == Status::Running)
            .count();
        let title = format!(
            " Jobs: {running} running, {} waiting{} ",
            items.len() - running,
            self.list.filter_title()
        );
        let block = Block::bordered().title(title);
        let header = Row::new([
            "STATE", "BRANCH", "FLOW", "STAGE", "JOB", "AGENT", "DURATION",
        ]);
        let widths = [
            Constraint::Length(8),
            Constraint::Fill(1),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Fill(1),
            Constraint::Length(12),
            Constraint::Length(8),
        ];
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |r| {
                let j = &r.job;
                let status = job_status(j);
                let agent = if j.agent_name.is_empty() {
                    Span::styled("-", style::dim())
                } else {
                    Span::raw(j.agent_name.clone())
                };
                // A waiting job shows how long it has waited, dimmed.
                let d = if status == Status::Waiting {
                    Span::styled(style::duration(Some(j.created), None), style::dim())
                } else {
                    Span::raw(style::duration(j.started, None))
                };
                Row::new(vec![
                    Cell::from(status.span()),
                    Cell::from(format!("{}/{}", r.project, r.branch)),
                    Cell::from(r.flow.clone()),
                    Cell::from(r.stage.clone()),
                    Cell::from(format!("{} {}", j.id, j.name)),
                    Cell::from(agent),
                    Cell::from(d),
                ])
            },
            "no running or queued jobs",
        );
    }

    fn is_live(&self) -> bool {
        !self.list.items().is_empty()
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}
