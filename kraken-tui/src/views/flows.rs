//! The flows of a branch, in two tabs: CI and DEV.

use kraken_core::model::Flow;
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row};

use super::{Component, FilterList, Item, Outcome, RunsView};
use crate::event::{Created, DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task, Watch};
use crate::style::{self, Status, flow_status, run_status};

/// The flow kinds, in tab order.
const KINDS: [&str; 2] = ["ci", "dev"];

impl Item for Flow {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        format!(
            "{} {} {}",
            self.label,
            flow_status(self).word(),
            self.branch_name.as_deref().unwrap_or("")
        )
    }
}

/// Runs of a flow in a few words: `3 runs, 1 failed`.
fn runs_summary(f: &Flow) -> String {
    let n = f.runs.len();
    let failed = f
        .runs
        .iter()
        .filter(|r| run_status(r) == Status::Failed)
        .count();
    let running = f.runs.iter().filter(|r| run_status(r).is_live()).count();
    let mut s = format!("{n} run{}", if n == 1 { "" } else { "s" });
    if failed > 0 {
        s.push_str(&format!(", {failed} failed"));
    } else if running > 0 {
        s.push_str(&format!(", {running} going"));
    }
    s
}

/// Tests of a flow's runs: `12/14 ok`, red when some failed.
fn tests_cell(f: &Flow) -> Cell<'static> {
    let (total, passed, not_run) = f.runs.iter().fold((0, 0, 0), |(t, p, n), r| {
        (t + r.tests_total, p + r.tests_passed, n + r.tests_not_run)
    });
    if total == 0 {
        return Cell::from("");
    }
    let text = format!("{passed}/{total} ok");
    if passed + not_run < total {
        Cell::from(Span::styled(text, Status::Failed.style()))
    } else {
        Cell::from(text)
    }
}

/// `X` and `F` on a flow, in the flows view and the runs view: cancel it
/// (if it still runs) or rerun its failed jobs (once it ended).
pub(crate) fn flow_action(f: &Flow, key: &KeyEvent, keys: &KeyMap) -> Option<Outcome> {
    if keys.cancel_flow.matches(key) {
        if !flow_status(f).is_live() {
            return Some(Outcome::Message(format!(
                "flow {} has already ended",
                f.label
            )));
        }
        return Some(Outcome::Confirm(Command::CancelFlow {
            flow_id: f.id,
            label: f.label.clone(),
        }));
    }
    if keys.rerun_failed.matches(key) {
        if flow_status(f).is_live() {
            return Some(Outcome::Message(format!(
                "flow {} is still running: its failed jobs can be rerun once it ends",
                f.label
            )));
        }
        return Some(Outcome::Confirm(Command::RerunFailed {
            flow_id: f.id,
            label: f.label.clone(),
        }));
    }
    None
}

/// The hint of the flow action that fits `f`: cancel while it runs, rerun
/// the failures once it failed.
pub(crate) fn flow_action_hint(f: Option<&Flow>, keys: &KeyMap) -> Option<KeyHint> {
    let status = flow_status(f?);
    if status.is_live() {
        Some(KeyHint::new(&keys.cancel_flow, "cancel flow"))
    } else if status == Status::Failed {
        Some(KeyHint::new(&keys.rerun_failed, "rerun failed"))
    } else {
        None
    }
}

/// The flows of one branch.
#[derive(Debug)]
pub struct FlowsView {
    branch_id: i64,
    branch_name: String,
    /// Index in [`KINDS`].
    kind: usize,
    lists: [FilterList<Flow>; 2],
    totals: [i64; 2],
}

impl FlowsView {
    /// The flows of a branch, CI first.
    pub fn new(branch_id: i64, branch_name: &str) -> FlowsView {
        FlowsView {
            branch_id,
            branch_name: branch_name.to_string(),
            kind: 0,
            lists: [FilterList::new(), FilterList::new()],
            totals: [0, 0],
        }
    }

    fn list(&self) -> &FilterList<Flow> {
        &self.lists[self.kind]
    }

    fn list_mut(&mut self) -> &mut FilterList<Flow> {
        &mut self.lists[self.kind]
    }
}

impl Component for FlowsView {
    fn title(&self) -> String {
        self.branch_name.clone()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(
            id,
            Watch::Flows {
                branch_id: self.branch_id,
                kind: KINDS[self.kind].to_string(),
            },
        )]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        let DashEvent::Loaded { data, .. } = ev else {
            return false;
        };
        let Loaded::Flows { kind, flows, total } = *data else {
            return false;
        };
        let Some(i) = KINDS.iter().position(|k| *k == kind) else {
            return false;
        };
        let total_changed = self.totals[i] != total;
        self.totals[i] = total;
        self.lists[i].set_items(flows) || total_changed
    }

    fn select_new(&mut self, created: &Created) {
        if let Some(id) = created.flow {
            self.list_mut().want(id);
        }
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        match self.list_mut().handle_key(key, keys) {
            Outcome::Ignored => {}
            other => return other,
        }
        if keys.switch_kind.matches(key) {
            self.kind = 1 - self.kind;
            return Outcome::Restart;
        }
        if keys.create_flow.matches(key) {
            // Arguments first, then the confirmation.
            return Outcome::AskArgs(Command::CreateFlow {
                branch_id: self.branch_id,
                branch_name: self.branch_name.clone(),
                kind: KINDS[self.kind].to_string(),
                args: Vec::new(),
            });
        }
        if let Some(f) = self.list().selected()
            && let Some(o) = flow_action(f, key, keys)
        {
            return o;
        }
        if keys.open.matches(key)
            && let Some(f) = self.list().selected()
        {
            return Outcome::Open(Box::new(RunsView::new(f.id, &f.kind, &f.label)));
        }
        Outcome::Ignored
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list().editing {
            return self.list().hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.open, "runs"),
            KeyHint::new(&keys.back, "back"),
            // The main key only: room for the flow actions at 80 columns.
            KeyHint {
                key: keys.switch_kind.main_label(),
                what: "CI/DEV",
            },
            KeyHint::new(
                &keys.create_flow,
                if self.kind == 0 {
                    "new CI flow"
                } else {
                    "new DEV flow"
                },
            ),
        ];
        h.extend(flow_action_hint(self.list().selected(), keys));
        h.extend(self.list().hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let [tabs, body] = area.layout(&Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
        ]));
        let mut spans = vec![Span::raw(" ")];
        for (i, k) in KINDS.iter().enumerate() {
            let label = if self.lists[i].loaded {
                format!(" {} ({}) ", k.to_uppercase(), self.totals[i])
            } else {
                format!(" {} ", k.to_uppercase())
            };
            let st = if i == self.kind {
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else {
                style::dim()
            };
            spans.push(Span::styled(label, st));
            spans.push(Span::raw(" "));
        }
        frame.render_widget(Line::from(spans), tabs);

        let kind = KINDS[self.kind].to_uppercase();
        let title = format!(
            " {kind} flows of {}{} ",
            self.branch_name,
            self.list().filter_title()
        );
        let block = Block::bordered().title(title);
        let header = Row::new(["STATE", "FLOW", "RUNS", "TESTS", "STARTED", "DURATION"]);
        let widths = [
            Constraint::Length(9),
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(10),
        ];
        let empty = format!("no {kind} flows yet: press c to create one");
        let list = &mut self.lists[self.kind];
        list.draw(
            frame,
            body,
            block,
            header,
            &widths,
            |f| {
                Row::new(vec![
                    Cell::from(flow_status(f).span()),
                    Cell::from(f.label.clone()),
                    Cell::from(runs_summary(f)),
                    tests_cell(f),
                    Cell::from(Span::styled(style::ago(f.created), style::dim())),
                    Cell::from(style::duration(Some(f.created), f.finished)),
                ])
            },
            &empty,
        );
    }

    fn is_live(&self) -> bool {
        self.list().visible().any(|f| flow_status(f).is_live())
    }

    fn is_editing(&self) -> bool {
        self.list().editing
    }
}
