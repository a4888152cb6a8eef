//! The test results of a run: failures first, with their change against
//! history (new, regr, fix), age and instability.

use std::cmp::Reverse;

use kraken_core::model::{Run, TestCaseResult, tc_change, tc_result};
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Wrap};

use super::{Component, FilterList, Item, Outcome};
use crate::event::{DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Net, Task, Watch};
use crate::style::{self, change_span, result_failed, result_span};

impl Item for TestCaseResult {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        format!(
            "{} {} {} {}",
            self.test_case_name,
            self.job_name,
            tc_result::name(self.result),
            tc_change::name(self.change)
        )
    }
}

/// The order of the results view: failures first; then regressions, new
/// and fixed tests; the unstable before the stable; then by name.
pub fn sort_results(results: &mut [TestCaseResult]) {
    fn change_rank(c: i64) -> u8 {
        match c {
            tc_change::REGR => 0,
            tc_change::NEW => 1,
            tc_change::FIX => 2,
            _ => 3,
        }
    }
    results.sort_by(|a, b| {
        (
            !result_failed(a.result),
            a.result != tc_result::PASSED,
            change_rank(a.change),
            Reverse(a.instability),
            &a.test_case_name,
        )
            .cmp(&(
                !result_failed(b.result),
                b.result != tc_result::PASSED,
                change_rank(b.change),
                Reverse(b.instability),
                &b.test_case_name,
            ))
    });
}

/// What a test said: its result, message, type, duration and output.
fn detail_pane(t: &TestCaseResult) -> Paragraph<'static> {
    let mut lines = vec![Line::from(vec![
        result_span(t.result),
        Span::raw("  "),
        Span::raw(t.test_case_name.clone()),
    ])];
    let mut field = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            lines.push(Line::from(vec![
                Span::styled(format!("{k:<9}"), style::dim()),
                Span::raw(v),
            ]));
        }
    };
    field("message", t.message.clone());
    field("type", t.failure_type.clone());
    field("duration", t.duration.map(|d| format!("{d:.3}s")));
    field("job", Some(format!("{} ({})", t.job_name, t.job_id)));
    match &t.output {
        Some(o) => {
            lines.push(Line::from(Span::styled("output", style::dim())));
            lines.extend(o.lines().map(|l| Line::from(l.to_string())));
        }
        None if t.message.is_none() && result_failed(t.result) => lines.push(Line::from(
            Span::styled("the agent reported no message or output", style::dim()),
        )),
        None => {}
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" Details "))
}

/// The history of a test case (newest first): flow, result, change and
/// date of each of its last results; `this` is the one selected.
fn history_pane(items: Option<&[TestCaseResult]>, this: i64) -> Paragraph<'static> {
    let block = Block::bordered().title(" History ");
    let Some(items) = items else {
        return Paragraph::new(Span::styled("loading…", style::dim())).block(block);
    };
    if items.is_empty() {
        return Paragraph::new(Span::styled("no history", style::dim())).block(block);
    }
    let lines: Vec<Line<'static>> = items
        .iter()
        .map(|t| {
            let (flow, date) = match &t.place {
                Some(p) => (
                    p.flow_label.clone(),
                    p.flow_created_at
                        .to_datetime()
                        .format("%m-%d %H:%M")
                        .to_string(),
                ),
                None => ("-".to_string(), String::new()),
            };
            let mut flow = Span::raw(format!("{flow:<6} "));
            if t.id == this {
                flow = flow.style(Style::new().add_modifier(Modifier::BOLD));
            }
            let result = result_span(t.result);
            let pad = 9usize.saturating_sub(result.content.chars().count());
            let change = change_span(t.change);
            let cpad = 5usize.saturating_sub(change.content.chars().count());
            Line::from(vec![
                flow,
                result,
                Span::raw(" ".repeat(pad)),
                change,
                Span::raw(" ".repeat(cpad)),
                Span::styled(date, style::dim()),
            ])
        })
        .collect();
    Paragraph::new(lines).block(block)
}

/// The test results of one run.
#[derive(Debug)]
pub struct ResultsView {
    run_id: i64,
    stage: String,
    run: Option<Run>,
    total: i64,
    list: FilterList<TestCaseResult>,
    /// Whether the selected test's details (message, output) are shown.
    detail: bool,
    /// The history of a result (its id, its results), read while its
    /// details are shown.
    history: Option<(i64, Vec<TestCaseResult>)>,
}

impl ResultsView {
    /// The results of a run.
    pub fn new(run_id: i64, stage: &str) -> ResultsView {
        ResultsView {
            run_id,
            stage: stage.to_string(),
            run: None,
            total: 0,
            list: FilterList::new(),
            detail: false,
            history: None,
        }
    }
}

impl Component for ResultsView {
    fn title(&self) -> String {
        "tests".into()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        let mut tasks = vec![net.watch(id, Watch::Results(self.run_id))];
        // The history of the test whose details are open.
        if self.detail
            && let Some(t) = self.list.selected()
        {
            tasks.push(net.watch(id, Watch::History(t.id)));
        }
        tasks
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        let DashEvent::Loaded { data, .. } = ev else {
            return false;
        };
        if let Loaded::History { id, items } = *data {
            let changed = self.history.as_ref() != Some(&(id, items.clone()));
            self.history = Some((id, items));
            return changed;
        }
        let Loaded::Results {
            run,
            mut results,
            total,
        } = *data
        else {
            return false;
        };
        sort_results(&mut results);
        let changed = self.list.set_items(results);
        let head = self.run.as_ref() != Some(&*run) || self.total != total;
        self.run = Some(*run);
        self.total = total;
        changed || head
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        if !self.list.editing && keys.open.matches(key) && self.list.selected().is_some() {
            self.detail = !self.detail;
            // Start (or stop) reading the history of the selected test.
            return Outcome::Restart;
        }
        let before = self.list.selected().map(|t| t.id);
        let out = self.list.handle_key(key, keys);
        if self.detail && self.list.selected().map(|t| t.id) != before {
            // The details follow the cursor: read the new test's history.
            return Outcome::Restart;
        }
        out
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.list.editing {
            return self.list.hints(keys);
        }
        let mut h = vec![
            KeyHint::new(&keys.back, "back"),
            KeyHint::new(
                &keys.open,
                if self.detail {
                    "hide details"
                } else {
                    "details"
                },
            ),
        ];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let area = match (self.detail, self.list.selected()) {
            (true, Some(t)) => {
                let [top, bottom] =
                    Layout::vertical([Constraint::Min(6), Constraint::Percentage(45)]).areas(area);
                let history = self
                    .history
                    .as_ref()
                    .filter(|(id, _)| *id == t.id)
                    .map(|(_, items)| items.as_slice());
                if bottom.width >= 70 {
                    let [left, right] =
                        Layout::horizontal([Constraint::Fill(1), Constraint::Length(38)])
                            .areas(bottom);
                    frame.render_widget(detail_pane(t), left);
                    frame.render_widget(history_pane(history, t.id), right);
                } else {
                    frame.render_widget(detail_pane(t), bottom);
                }
                top
            }
            _ => area,
        };
        let mut title = vec![Span::raw(format!(
            " Tests of run {} {} ",
            self.run_id, self.stage
        ))];
        if let Some(r) = &self.run {
            let failed = self
                .list
                .items()
                .iter()
                .filter(|t| result_failed(t.result))
                .count();
            title.push(Span::raw(format!(
                "{} tests",
                r.tests_total.max(self.total)
            )));
            if failed > 0 {
                title.push(Span::raw(", "));
                title.push(Span::styled(
                    format!("{failed} failed"),
                    style::Status::Failed.style(),
                ));
            }
            for (n, what) in [(r.regr_cnt, "regr"), (r.fix_cnt, "fix"), (r.new_cnt, "new")] {
                if n > 0 {
                    title.push(Span::raw(format!(", {n} {what}")));
                }
            }
            title.push(Span::raw(" "));
        }
        let filter = self.list.filter_title();
        if !filter.is_empty() {
            title.push(Span::raw(format!("{filter} ")));
        }
        let block = Block::bordered().title(Line::from(title));
        let header = Row::new(["RESULT", "CHANGE", "AGE", "INSTAB", "TEST", "JOB"]);
        let widths = [
            Constraint::Length(11),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(14),
        ];
        let empty = if self.run.as_ref().is_some_and(|r| r.state != "processed") {
            "no results yet: the run is not analysed"
        } else {
            "this run has no test results"
        };
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |t| {
                Row::new(vec![
                    Cell::from(result_span(t.result)),
                    Cell::from(change_span(t.change)),
                    Cell::from(t.age.to_string()),
                    Cell::from(t.instability.to_string()),
                    Cell::from(t.test_case_name.clone()),
                    Cell::from(Span::styled(t.job_name.clone(), style::dim())),
                ])
            },
            empty,
        );
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}
