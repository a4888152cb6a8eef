//! A job: its steps, and its log, followed live.
//!
//! The log is kept in a bounded buffer ([`LOG_CAPACITY`] lines by default,
//! the oldest dropped first) and only the lines on screen are laid out, so
//! drawing costs the same at 10 lines or 100 000, however fast lines come.
//!
//! Following: the view sticks to the end of the log while lines arrive.
//! Scrolling up (or jumping to a search match) stops following; `G`/End
//! resumes it.

use std::collections::VecDeque;

use kraken_core::model::{Job, Step, completion};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use serde_json::Value;

use super::jobs::job_end;
use super::{Component, Outcome, editing_hints};
use crate::event::{DashEvent, Loaded, LogEntry, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task, Watch};
use crate::style::{self, Status, job_status, step_status_of};
use crate::text::{contains_ci, find_all, highlight, rows_needed, wrap_spans};

/// How many log lines a log view keeps by default.
pub const LOG_CAPACITY: usize = 100_000;

/// Most steps shown at once above the log.
const MAX_STEP_ROWS: usize = 5;

/// One job's steps and log.
#[derive(Debug)]
pub struct LogView {
    job_id: i64,
    name: String,
    job: Option<Job>,
    lines: VecDeque<LogEntry>,
    capacity: usize,
    /// Lines dropped from the front so far.
    dropped: usize,
    /// Id of the last log line received (where following resumes).
    last_id: i64,
    follow: bool,
    /// First line shown when not following.
    top: usize,
    wrap: bool,
    search: String,
    searching: bool,
    /// The line of the current search match.
    current: Option<usize>,
    /// The log ended (with this completion status).
    ended: Option<Option<i64>>,
    /// Following failed.
    error: Option<String>,
    /// Size of the log area at the last draw.
    rows: usize,
    cols: usize,
}

impl LogView {
    /// The log of a job, following it.
    pub fn new(job_id: i64, name: &str) -> LogView {
        Self::with_capacity(job_id, name, LOG_CAPACITY)
    }

    /// The same, keeping at most `capacity` lines.
    pub fn with_capacity(job_id: i64, name: &str, capacity: usize) -> LogView {
        LogView {
            job_id,
            name: name.to_string(),
            job: None,
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            last_id: 0,
            follow: true,
            top: 0,
            wrap: false,
            search: String::new(),
            searching: false,
            current: None,
            ended: None,
            error: None,
            rows: 15,
            cols: 78,
        }
    }

    /// Whether it sticks to the end of the log.
    pub fn is_following(&self) -> bool {
        self.follow
    }

    /// Lines kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line arrived yet.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Add lines at the end, dropping the oldest beyond the capacity.
    pub fn push_lines(&mut self, lines: Vec<LogEntry>) {
        if let Some(l) = lines.last() {
            self.last_id = self.last_id.max(l.id);
        }
        self.lines.extend(lines);
        if self.lines.len() > self.capacity {
            let n = self.lines.len() - self.capacity;
            self.lines.drain(..n);
            self.dropped += n;
            self.top = self.top.saturating_sub(n);
            self.current = self.current.and_then(|c| c.checked_sub(n));
        }
    }

    /// The first line on screen when following.
    fn tail_start(&self) -> usize {
        let len = self.lines.len();
        let rows = self.rows.max(1);
        if !self.wrap {
            return len.saturating_sub(rows);
        }
        let mut used = 0;
        let mut i = len;
        while i > 0 {
            let r = rows_needed(&self.lines[i - 1].text, self.cols);
            if used + r > rows {
                break;
            }
            used += r;
            i -= 1;
        }
        if i == len { len.saturating_sub(1) } else { i }
    }

    /// The first line on screen.
    fn shown_top(&self) -> usize {
        if self.follow {
            self.tail_start()
        } else {
            self.top.min(self.tail_start())
        }
    }

    fn scroll_up(&mut self, n: usize) -> Outcome {
        let from = self.shown_top();
        self.follow = false;
        self.top = from.saturating_sub(n);
        Outcome::Changed
    }

    fn scroll_down(&mut self, n: usize) -> Outcome {
        if self.follow {
            return Outcome::Unchanged;
        }
        let to = (self.shown_top() + n).min(self.tail_start());
        if to == self.top {
            return Outcome::Unchanged;
        }
        self.top = to;
        Outcome::Changed
    }

    /// The next line matching the search from `start`, going around.
    fn find(&self, start: usize, forward: bool) -> Option<usize> {
        let n = self.lines.len();
        let needle = self.search.to_ascii_lowercase();
        if n == 0 || needle.is_empty() {
            return None;
        }
        let s = start % n;
        (0..n)
            .map(|k| {
                if forward {
                    (s + k) % n
                } else {
                    (s + n - k) % n
                }
            })
            .find(|&i| contains_ci(&self.lines[i].text, &needle))
    }

    fn jump(&mut self, found: Option<usize>) -> Outcome {
        match found {
            Some(i) => {
                self.current = Some(i);
                self.follow = false;
                self.top = i.saturating_sub(2);
                Outcome::Changed
            }
            None => Outcome::Message(format!("not found: {}", self.search)),
        }
    }

    fn search_key(&mut self, key: &KeyEvent) -> Outcome {
        match key.code {
            KeyCode::Enter => {
                self.searching = false;
                if self.search.is_empty() {
                    return Outcome::Changed;
                }
                let from = self.shown_top();
                self.jump(self.find(from, true))
            }
            KeyCode::Esc => {
                self.searching = false;
                self.search.clear();
                self.current = None;
                Outcome::Changed
            }
            KeyCode::Backspace => {
                self.search.pop();
                Outcome::Changed
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                self.search.push(c);
                Outcome::Changed
            }
            _ => Outcome::Unchanged,
        }
    }

    fn spans_of<'a>(&'a self, i: usize, needle: &str) -> Vec<Span<'a>> {
        let e = &self.lines[i];
        let base = if e.internal {
            style::dim()
        } else {
            Style::new()
        };
        if needle.is_empty() {
            return vec![Span::styled(e.text.as_str(), base)];
        }
        let mut hit = Style::new().fg(Color::Black).bg(Color::Yellow);
        if self.current == Some(i) {
            hit = hit.add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        }
        highlight(&e.text, &find_all(&e.text, needle), base, hit)
    }

    /// The rows of the log area.
    fn log_rows(&self) -> Vec<Line<'_>> {
        let len = self.lines.len();
        let rows = self.rows.max(1);
        let needle = self.search.to_ascii_lowercase();
        if !self.wrap {
            let start = self.shown_top();
            return (start..(start + rows).min(len))
                .map(|i| Line::from(self.spans_of(i, &needle)))
                .collect();
        }
        let mut out: VecDeque<Line<'_>> = VecDeque::new();
        if self.follow {
            // Bottom-aligned: lay out lines from the end until the screen is full.
            let mut i = len;
            while i > 0 && out.len() < rows {
                i -= 1;
                for l in wrap_spans(self.spans_of(i, &needle), self.cols)
                    .into_iter()
                    .rev()
                {
                    out.push_front(l);
                }
            }
            while out.len() > rows {
                out.pop_front();
            }
        } else {
            let mut i = self.shown_top();
            while i < len && out.len() < rows {
                out.extend(wrap_spans(self.spans_of(i, &needle), self.cols));
                i += 1;
            }
            out.truncate(rows);
        }
        out.into()
    }

    fn step_line(step: &Step, job: &Job) -> Line<'static> {
        let status = step_status_of(step, job);
        let d = step
            .result
            .as_ref()
            .and_then(|r| r.get("duration"))
            .and_then(Value::as_str)
            .map(|d| format!("  {d}"))
            .unwrap_or_default();
        Line::from(vec![
            Span::styled(format!("{:<9}", status.word()), status.style()),
            Span::raw(format!(" {}. {}", step.index, step.name)),
            Span::styled(d, style::dim()),
        ])
    }

    fn draw_steps(&self, frame: &mut Frame<'_>, area: Rect) {
        let mut title = vec![Span::raw(format!(" Job {} {} ", self.job_id, self.name))];
        let mut lines = Vec::new();
        if let Some(j) = &self.job {
            let status = job_status(j);
            title.push(status.span());
            if status != Status::Waiting {
                title.push(Span::raw(format!(
                    " {}",
                    style::duration(j.started, job_end(j))
                )));
            }
            if let Some(cs) = j.completion_status.filter(|c| *c != completion::ALL_OK) {
                title.push(Span::styled(
                    format!(" ({})", completion::describe(cs)),
                    status.style(),
                ));
            }
            if !j.agent_name.is_empty() {
                title.push(Span::styled(format!(" on {}", j.agent_name), style::dim()));
            }
            title.push(Span::raw(" "));
            // Keep the step that matters (running, else first failure) in sight.
            let focus = j
                .steps
                .iter()
                .position(|s| matches!(step_status_of(s, j), Status::Running | Status::Failed))
                .unwrap_or(0);
            let first = focus
                .saturating_sub(1)
                .min(j.steps.len().saturating_sub(MAX_STEP_ROWS));
            lines.extend(
                j.steps
                    .iter()
                    .skip(first)
                    .take(MAX_STEP_ROWS)
                    .map(|s| Self::step_line(s, j)),
            );
            if j.steps.is_empty() {
                lines.push(Line::from(Span::styled("no steps", style::dim())));
            }
        } else {
            lines.push(Line::from(Span::styled("loading…", style::dim())));
        }
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(Line::from(title))),
            area,
        );
    }

    fn log_title(&self) -> Line<'static> {
        let mut t = vec![Span::raw(" Log ")];
        if self.follow {
            t.push(Span::styled(
                "● following",
                Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
            ));
        } else {
            let bottom = (self.shown_top() + self.rows).min(self.lines.len());
            t.push(Span::styled(
                format!("■ paused at {}/{} (G: follow)", bottom, self.lines.len()),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
        }
        let count = if self.dropped > 0 {
            format!(" · last {} lines", self.lines.len())
        } else {
            format!(" · {} lines", self.lines.len())
        };
        t.push(Span::raw(count));
        if self.wrap {
            t.push(Span::raw(" · wrap"));
        }
        if !self.search.is_empty() || self.searching {
            let cursor = if self.searching { "▏" } else { "" };
            t.push(Span::styled(
                format!(" · /{}{cursor}", self.search),
                Style::new().fg(Color::Cyan),
            ));
        }
        if let Some(e) = &self.error {
            t.push(Span::styled(
                format!(" · stream failed: {e} (R: retry)"),
                Status::Failed.style(),
            ));
        } else if self.ended.is_some() {
            t.push(Span::styled(" · end of log", style::dim()));
        }
        t.push(Span::raw(" "));
        Line::from(t)
    }
}

impl Component for LogView {
    fn title(&self) -> String {
        self.name.clone()
    }

    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task> {
        self.error = None;
        let mut tasks = vec![net.watch(id, Watch::Job(self.job_id))];
        if self.ended.is_none() {
            tasks.push(net.follow(id, self.job_id, self.last_id));
        }
        tasks
    }

    fn update(&mut self, ev: DashEvent) -> bool {
        match ev {
            DashEvent::LogLines { lines, .. } => {
                self.push_lines(lines);
                true
            }
            DashEvent::JobState {
                state,
                completion_status,
                ..
            } => match self.job.as_mut() {
                Some(j) if j.state != state || j.completion_status != completion_status => {
                    j.state = state;
                    j.completion_status = completion_status;
                    true
                }
                _ => false,
            },
            DashEvent::LogEnd {
                completion_status, ..
            } => {
                self.ended = Some(completion_status);
                true
            }
            DashEvent::LogFailed { error, .. } => {
                self.error = Some(error);
                true
            }
            DashEvent::Loaded { data, .. } => match *data {
                Loaded::Job(j) => {
                    if self.job.as_ref() == Some(&*j) {
                        return false;
                    }
                    self.name = j.name.clone();
                    self.job = Some(*j);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome {
        if self.searching {
            return self.search_key(key);
        }
        let page = self.rows.max(2) - 1;
        if keys.up.matches(key) {
            self.scroll_up(1)
        } else if keys.down.matches(key) {
            self.scroll_down(1)
        } else if keys.page_up.matches(key) {
            self.scroll_up(page)
        } else if keys.page_down.matches(key) {
            self.scroll_down(page)
        } else if keys.top.matches(key) {
            self.follow = false;
            self.top = 0;
            Outcome::Changed
        } else if keys.bottom.matches(key) {
            self.follow = true;
            Outcome::Changed
        } else if keys.wrap.matches(key) {
            self.top = self.shown_top();
            self.wrap = !self.wrap;
            Outcome::Changed
        } else if keys.filter.matches(key) {
            self.searching = true;
            self.search.clear();
            self.current = None;
            Outcome::Changed
        } else if keys.next_match.matches(key) || keys.prev_match.matches(key) {
            if self.search.is_empty() {
                return Outcome::Message("press / to search the log first".into());
            }
            let forward = keys.next_match.matches(key);
            let n = self.lines.len().max(1);
            let from = match self.current {
                Some(c) if forward => c + 1,
                Some(c) => c + n - 1,
                None => self.shown_top(),
            };
            self.jump(self.find(from, forward))
        } else if keys.back.matches(key) && !self.search.is_empty() {
            self.search.clear();
            self.current = None;
            Outcome::Changed
        } else if keys.rerun_job.matches(key) {
            match &self.job {
                Some(j) if !job_status(j).is_live() => Outcome::Confirm(Command::RerunJob {
                    job_id: j.id,
                    name: j.name.clone(),
                }),
                _ => Outcome::Message(format!("job {} is still running", self.job_id)),
            }
        } else {
            Outcome::Ignored
        }
    }

    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint> {
        if self.searching {
            return editing_hints("search");
        }
        let mut h = vec![KeyHint::new(&keys.back, "back")];
        if self.follow {
            h.push(KeyHint::new(&keys.up, "scroll (stops follow)"));
        } else {
            h.push(KeyHint::new(&keys.bottom, "follow"));
            h.push(KeyHint::new(&keys.up, "scroll"));
        }
        h.push(KeyHint::new(&keys.filter, "search"));
        if !self.search.is_empty() {
            h.push(KeyHint::new(&keys.next_match, "next"));
        }
        h.push(KeyHint::new(
            &keys.wrap,
            if self.wrap { "no wrap" } else { "wrap" },
        ));
        h.push(KeyHint::new(&keys.rerun_job, "rerun"));
        h
    }

    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let step_rows = self
            .job
            .as_ref()
            .map_or(1, |j| j.steps.len().clamp(1, MAX_STEP_ROWS)) as u16;
        let [steps, log] = area.layout(&Layout::vertical([
            Constraint::Length(step_rows + 2),
            Constraint::Fill(1),
        ]));
        self.draw_steps(frame, steps);
        let block = Block::bordered().title(self.log_title());
        let inner = block.inner(log);
        self.rows = inner.height as usize;
        self.cols = inner.width as usize;
        frame.render_widget(block, log);
        if self.lines.is_empty() {
            let msg = if self.ended.is_some() {
                "this job wrote no log lines"
            } else {
                "waiting for log lines…"
            };
            frame.render_widget(Span::styled(msg, style::dim()), inner);
            return;
        }
        frame.render_widget(Paragraph::new(self.log_rows()), inner);
    }

    fn is_live(&self) -> bool {
        self.job.as_ref().is_some_and(|j| job_status(j).is_live())
    }

    fn is_editing(&self) -> bool {
        self.searching
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: usize, n: usize) -> Vec<LogEntry> {
        (from..from + n)
            .map(|i| LogEntry {
                id: i as i64,
                step: 0,
                internal: false,
                text: format!("line {i}"),
            })
            .collect()
    }

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn scrolling_up_stops_following_and_end_resumes() {
        let keys = KeyMap::default();
        let mut v = LogView::new(1, "j");
        v.rows = 10;
        v.push_lines(entries(0, 100));
        assert!(v.is_following());
        assert_eq!(v.shown_top(), 90);
        v.handle_key(&key(KeyCode::Up), &keys);
        assert!(!v.is_following());
        assert_eq!(v.shown_top(), 89);
        // New lines do not move a paused view.
        v.push_lines(entries(100, 50));
        assert_eq!(v.shown_top(), 89);
        v.handle_key(&key(KeyCode::PageUp), &keys);
        assert_eq!(v.shown_top(), 80);
        v.handle_key(&key(KeyCode::End), &keys);
        assert!(v.is_following());
        assert_eq!(v.shown_top(), 140);
    }

    #[test]
    fn the_buffer_is_bounded_and_positions_move_with_it() {
        let mut v = LogView::with_capacity(1, "j", 1000);
        v.rows = 10;
        v.follow = false;
        v.top = 500;
        v.push_lines(entries(0, 1500));
        assert_eq!(v.len(), 1000);
        assert_eq!(v.lines[0].text, "line 500");
        assert_eq!(v.top, 0);
        assert_eq!(v.dropped, 500);
    }

    #[test]
    fn search_jumps_between_matches_around_the_end() {
        let keys = KeyMap::default();
        let mut v = LogView::new(1, "j");
        v.rows = 5;
        let mut lines = entries(0, 50);
        lines[10].text = "an ERROR here".into();
        lines[40].text = "another error".into();
        v.push_lines(lines);
        v.handle_key(&key(KeyCode::Char('/')), &keys);
        assert!(v.is_editing());
        for c in "error".chars() {
            v.handle_key(&key(KeyCode::Char(c)), &keys);
        }
        v.handle_key(&key(KeyCode::Enter), &keys);
        // From the end (following), the search goes around to line 10.
        assert_eq!(v.current, Some(10));
        assert!(!v.is_following());
        v.handle_key(&key(KeyCode::Char('n')), &keys);
        assert_eq!(v.current, Some(40));
        v.handle_key(&key(KeyCode::Char('n')), &keys);
        assert_eq!(v.current, Some(10));
        v.handle_key(&key(KeyCode::Char('N')), &keys);
        assert_eq!(v.current, Some(40));
    }

    #[test]
    fn wrapped_tail_fills_the_screen_from_the_bottom() {
        let mut v = LogView::new(1, "j");
        v.rows = 4;
        v.cols = 10;
        v.wrap = true;
        v.push_lines(vec![
            LogEntry {
                id: 1,
                step: 0,
                internal: false,
                text: "a".repeat(25),
            },
            LogEntry {
                id: 2,
                step: 0,
                internal: false,
                text: "short".into(),
            },
        ]);
        let rows: Vec<String> = v.log_rows().iter().map(|l| l.to_string()).collect();
        assert_eq!(
            rows,
            [
                "a".repeat(10),
                "a".repeat(10),
                "a".repeat(5),
                "short".into()
            ]
        );
    }
}
