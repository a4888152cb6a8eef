//! The runs of a flow (one per stage).

use kraken_core::model::{Flow, Run};
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row};

use super::flows::{flow_action, flow_action_hint};
use super::{Component, FilterList, Item, JobsView, Outcome, ResultsView};
use crate::event::{Created, DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task, Watch};
use crate::style::{self, flow_status, run_status};

impl Item for Run {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        format!(
            "{} {} {}",
            self.id,
            self.stage_name,
            run_status(self).word()
        )
    }
}

/// Jobs of a run in a few words: `3 jobs, 1 failed`.
pub(crate) fn jobs_summary(r: &Run) -> String {
    let mut s = format!(
        "{} job{}",
        r.jobs_total,
        if r.jobs_total == 1 { "" } else { "s" }
    );
    if r.jobs_error > 0 {
        s.push_str(&format!(", {} failed", r.jobs_error));
    } else if r.jobs_executing + r.jobs_waiting + r.jobs_processing > 0 {
        s.push_str(&format!(
            ", {} going",
            r.jobs_executing + r.jobs_waiting + r.jobs_processing
        ));
    }
    s
}

/// Tests of a run: `12/14 passed`.
pub(crate) fn tests_summary(r: &Run) -> String {
    if r.tests_total == 0 {
        String::new()
    } else {
        format!("{}/{} ok", r.tests_passed, r.tests_total)
    }
}

/// The runs of one flow.
#[derive(Debug)]
pub struct RunsView {
    flow_id: i64,
    kind: String,
    label: String,
    flow: Option<Flow>,
    list: FilterList<Run>,
}

impl RunsView {
    /// The runs of a flow.
    pub fn new(flow_id: i64, kind: &str, label: &str) -> RunsView {
        RunsView {
            flow_id,
            kind: kind.to_string(),
            label: label.to_string(),
            flow: None,
            list: FilterList::new(),
        }
    }
}

impl Component for RunsView {
    fn title(&self) -> String {
        format!("{} {}", self.kind.to_uppercase(), self.label)
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(id, Watch::Flow(self.flow_id))]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        let DashEvent::Loaded { data, .. } = ev else {
            return false;
        };
        let Loaded::Flow(flow) = *data else {
            return false;
        };
        let changed = self.list.set_items(flow.runs.clone());
        let head_changed = self.flow.as_ref().is_none_or(|f| {
            f.state != flow.state || f.finished != flow.finished || f.label != flow.label
        });
        self.label = flow.label.clone();
        self.flow = Some(*flow);
        changed || head_changed
    }

    fn select_new(&mut self, created: &Created) {
        if let Some(id) = created.run {
            self.list.want(id);
        }
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        match self.list.handle_key(key, keys) {
            Outcome::Ignored => {}
            other => return other,
        }
        if let Some(f) = &self.flow
            && let Some(o) = flow_action(f, key, keys)
        {
            return o;
        }
        let Some(r) = self.list.selected() else {
            return Outcome::Ignored;
        };
        if keys.open.matches(key) {
            return Outcome::Open(Box::new(JobsView::new(r.id, &r.stage_name)));
        }
        if keys.results.matches(key) {
            return Outcome::Open(Box::new(ResultsView::new(r.id, &r.stage_name)));
        }
        if keys.cancel_run.matches(key) {
            if !run_status(r).is_live() {
                return Outcome::Message(format!("run {} has already ended", r.id));
            }
            return Outcome::Confirm(Command::CancelRun {
                run_id: r.id,
                stage: r.stage_name.clone(),
            });
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.open, "jobs"),
            KeyHint::new(&keys.back, "back"),
            KeyHint::new(&keys.results, "tests"),
            KeyHint::new(&keys.cancel_run, "cancel run"),
        ];
        h.extend(flow_action_hint(self.flow.as_ref(), keys));
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let mut title = vec![Span::raw(format!(
            " {} flow {} ",
            self.kind.to_uppercase(),
            self.label
        ))];
        if let Some(f) = &self.flow {
            title.push(flow_status(f).span());
            title.push(Span::raw(format!(
                " {} ",
                style::duration(Some(f.created), f.finished)
            )));
        }
        let filter = self.list.filter_title();
        if !filter.is_empty() {
            title.push(Span::raw(format!("{filter} ")));
        }
        let block = Block::bordered().title(Line::from(title));
        let header = Row::new(["STATE", "ID", "STAGE", "JOBS", "TESTS", "DURATION"]);
        let widths = [
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(17),
            Constraint::Length(11),
            Constraint::Length(11),
        ];
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |r| {
                let start = r.started.or(Some(r.created));
                Row::new(vec![
                    Cell::from(run_status(r).span()),
                    Cell::from(Span::styled(r.id.to_string(), style::dim())),
                    Cell::from(r.stage_name.clone()),
                    Cell::from(jobs_summary(r)),
                    Cell::from(tests_summary(r)),
                    Cell::from(style::duration(start, r.finished)),
                ])
            },
            "no runs",
        );
    }

    fn is_live(&self) -> bool {
        self.list.visible().any(|r| run_status(r).is_live())
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}
