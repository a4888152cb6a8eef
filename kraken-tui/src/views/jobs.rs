//! The jobs of a run.

use kraken_core::model::{Job, Run};
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row};

use super::runs::{jobs_summary, tests_summary};
use super::{Component, FilterList, Item, LogView, Outcome, ResultsView};
use crate::event::{Created, DashEvent, Loaded, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task, Watch};
use crate::style::{self, Status, job_status, run_status};

impl Item for Job {
    fn key(&self) -> i64 {
        self.id
    }
    fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.id,
            self.name,
            self.system,
            self.agent_name,
            job_status(self).word()
        )
    }
}

/// The end of a job (finished by its agent, else completed).
pub(crate) fn job_end(j: &Job) -> Option<kraken_core::model::Timestamp> {
    j.finished.or(j.completed)
}

/// `notified 3/4, 1 failed, 1 pending` (delivered of all), or empty
/// when the run has no notifications (`kraken runs show` has the details).
fn notified_summary(n: &[kraken_core::model::RunNotification]) -> String {
    if n.is_empty() {
        return String::new();
    }
    let count = |s: &str| n.iter().filter(|x| x.state == s).count();
    let mut out = format!("notified {}/{}", count("delivered"), n.len());
    for s in ["failed", "pending"] {
        let c = count(s);
        if c > 0 {
            out.push_str(&format!(", {c} {s}"));
        }
    }
    out
}

/// The jobs of one run.
#[derive(Debug)]
pub struct JobsView {
    run_id: i64,
    stage: String,
    run: Option<Run>,
    /// How the run's notifications went (`notified 3/4, 1 failed`).
    notified: String,
    list: FilterList<Job>,
}

impl JobsView {
    /// The jobs of a run.
    pub fn new(run_id: i64, stage: &str) -> JobsView {
        JobsView {
            run_id,
            stage: stage.to_string(),
            run: None,
            notified: String::new(),
            list: FilterList::new(),
        }
    }
}

impl Component for JobsView {
    fn title(&self) -> String {
        self.stage.clone()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        vec![net.watch(id, Watch::Run(self.run_id))]
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        let DashEvent::Loaded { data, .. } = ev else {
            return false;
        };
        let Loaded::Jobs {
            run,
            jobs,
            notifications,
        } = *data
        else {
            return false;
        };
        let changed = self.list.set_items(jobs);
        let notified = notified_summary(&notifications);
        let head_changed = self.run.as_ref() != Some(&*run) || notified != self.notified;
        self.run = Some(*run);
        self.notified = notified;
        changed || head_changed
    }

    fn select_new(&mut self, created: &Created) {
        if let Some(id) = created.job {
            self.list.want(id);
        }
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        match self.list.handle_key(key, keys) {
            Outcome::Ignored => {}
            other => return other,
        }
        if keys.results.matches(key) {
            return Outcome::Open(Box::new(ResultsView::new(self.run_id, &self.stage)));
        }
        if keys.cancel_run.matches(key) {
            if self.run.as_ref().is_some_and(|r| !run_status(r).is_live()) {
                return Outcome::Message(format!("run {} has already ended", self.run_id));
            }
            return Outcome::Confirm(Command::CancelRun {
                run_id: self.run_id,
                stage: self.stage.clone(),
            });
        }
        let Some(j) = self.list.selected() else {
            return Outcome::Ignored;
        };
        if keys.open.matches(key) {
            return Outcome::Open(Box::new(LogView::new(j.id, &j.name)));
        }
        if keys.rerun_job.matches(key) {
            if job_status(j).is_live() {
                return Outcome::Message(format!(
                    "job {} is still running: cancel the run first",
                    j.id
                ));
            }
            return Outcome::Confirm(Command::RerunJob {
                job_id: j.id,
                name: j.name.clone(),
            });
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
            KeyHint::new(&keys.rerun_job, "rerun"),
            KeyHint::new(&keys.cancel_run, "cancel run"),
            KeyHint::new(&keys.results, "tests"),
        ];
        h.extend(self.list.hints(keys));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let mut title = vec![Span::raw(format!(" Run {} {} ", self.run_id, self.stage))];
        if let Some(r) = &self.run {
            title.push(run_status(r).span());
            title.push(Span::raw(format!(" {} ", jobs_summary(r))));
            let tests = tests_summary(r);
            if !tests.is_empty() {
                title.push(Span::raw(format!("tests {tests} ")));
            }
            if !self.notified.is_empty() {
                title.push(Span::raw(format!("{} ", self.notified)));
            }
        }
        let filter = self.list.filter_title();
        if !filter.is_empty() {
            title.push(Span::raw(format!("{filter} ")));
        }
        let block = Block::bordered().title(Line::from(title));
        let header = Row::new(["STATE", "ID", "JOB", "SYSTEM", "AGENT", "DURATION"]);
        let widths = [
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(10),
            // An agent's name, or why a job waits for one.
            Constraint::Fill(1),
            Constraint::Length(11),
        ];
        self.list.draw(
            frame,
            area,
            block,
            header,
            &widths,
            |j| {
                let status = job_status(j);
                let agent = if let Some(note) = j.notes.as_ref().filter(|n| {
                    !n.is_empty() && j.agent_name.is_empty() && status == Status::Waiting
                }) {
                    // Why it waits: no agent can run its executor.
                    Span::styled(note.clone(), Status::Manual.style())
                } else if j.agent_name.is_empty() {
                    Span::styled("-", style::dim())
                } else {
                    Span::raw(j.agent_name.clone())
                };
                let d = if status == Status::Waiting {
                    String::new()
                } else {
                    style::duration(j.started, job_end(j))
                };
                Row::new(vec![
                    Cell::from(status.span()),
                    Cell::from(Span::styled(j.id.to_string(), style::dim())),
                    Cell::from(j.name.clone()),
                    Cell::from(j.system.clone()),
                    Cell::from(agent),
                    Cell::from(d),
                ])
            },
            "no jobs",
        );
    }

    fn is_live(&self) -> bool {
        self.list.visible().any(|j| job_status(j).is_live())
    }

    fn is_editing(&self) -> bool {
        self.list.editing
    }
}

#[cfg(test)]
mod tests {
    use super::notified_summary;
    use kraken_core::model::{RunNotification, Timestamp};

    fn n(state: &str) -> RunNotification {
        RunNotification {
            id: 1,
            run_id: 1,
            event: "end".into(),
            channel: "github".into(),
            target: String::new(),
            state: state.into(),
            attempts: 1,
            last_error: None,
            created: Timestamp(0),
            updated: Timestamp(0),
            delivered: None,
        }
    }

    #[test]
    fn the_run_title_says_how_its_notifications_went() {
        assert_eq!(notified_summary(&[]), "");
        assert_eq!(
            notified_summary(&[n("delivered"), n("failed"), n("pending"), n("delivered")]),
            "notified 2/4, 1 failed, 1 pending"
        );
    }
}
