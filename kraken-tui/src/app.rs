//! The dashboard's state and its two entry points: [`App::handle`] for
//! every [`DashEvent`] and [`App::draw`] for a frame.
//!
//! The app keeps a stack of views (the drill-down). Only the view on top is
//! live: its tasks run while it is on top and stop when another view opens
//! over it or it is closed. Nothing here waits on the network: tasks report
//! through the channel, and [`App::needs_redraw`] tells the loop whether
//! anything visible changed since the last frame.

use std::time::{Duration, Instant};

use kraken_core::Kraken;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use tokio::sync::mpsc;

use crate::event::{DashEvent, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task, parse_args};
use crate::style;
use crate::text::{ellipsize, width};
use crate::views::{AgentsView, Component, Outcome, ProjectsView, RunningView, ServicesView};

/// The views `:` opens by name, with what they show.
pub const VIEWS: [(&str, &str); 4] = [
    ("agents", "agents and their jobs"),
    ("jobs", "running and queued jobs"),
    ("log", "the services log"),
    ("projects", "back to the projects"),
];

/// The view a `:` command names: a name of [`VIEWS`] (or `services` for
/// `log`), or the start of exactly one.
pub fn view_named(typed: &str) -> Option<&'static str> {
    let t = typed.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    if "services".starts_with(&t) && t.len() >= 2 {
        return Some("log");
    }
    if let Some((n, _)) = VIEWS.iter().find(|(n, _)| *n == t) {
        return Some(n);
    }
    let mut found = VIEWS.iter().filter(|(n, _)| n.starts_with(&t));
    match (found.next(), found.next()) {
        (Some((n, _)), None) => Some(n),
        _ => None,
    }
}

/// How many events the channel holds before senders wait.
const CHANNEL: usize = 1024;
/// How long an action's message stays on the status line.
const MESSAGE_TTL: Duration = Duration::from_secs(8);

/// Settings of a dashboard.
#[derive(Debug, Clone)]
pub struct Options {
    /// The keys.
    pub keys: KeyMap,
    /// How often lists are read again when nothing reports changes.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keys: KeyMap::default(),
            poll: Duration::from_secs(2),
        }
    }
}

/// A view on the stack with the tasks that keep it live.
struct Entry {
    id: ViewId,
    view: Box<dyn Component>,
    tasks: Vec<Task>,
}

/// A popup over the views.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Popup {
    Help,
    Confirm(Command),
    /// Flow arguments for a new flow, typed before the confirmation.
    Args {
        cmd: Command,
        text: String,
        error: Option<String>,
    },
}

/// A message on the status line.
#[derive(Debug, Clone)]
struct Message {
    text: String,
    error: bool,
    until: Option<Instant>,
}

/// The dashboard.
pub struct App {
    net: Net,
    rx: mpsc::Receiver<DashEvent>,
    tx: mpsc::Sender<DashEvent>,
    keys: KeyMap,
    stack: Vec<Entry>,
    popup: Option<Popup>,
    /// The `:` prompt, while it is open: what was typed.
    prompt: Option<String>,
    message: Option<Message>,
    /// The last failure to read the top view's data, and when it is retried.
    offline: Option<(String, String)>,
    next_id: ViewId,
    dirty: bool,
    quit: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("net", &self.net)
            .field("views", &self.breadcrumb())
            .field("popup", &self.popup)
            .finish()
    }
}

impl App {
    /// A dashboard on a handle, showing the projects. Must be called within
    /// a tokio runtime: it starts reading at once.
    pub fn new(kraken: Kraken) -> App {
        Self::with_options(kraken, Options::default())
    }

    /// A dashboard with these settings.
    pub fn with_options(kraken: Kraken, options: Options) -> App {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let mut net = Net::new(kraken, tx.clone());
        net.poll = options.poll;
        let mut app = App {
            net,
            rx,
            tx,
            keys: options.keys,
            stack: Vec::new(),
            popup: None,
            prompt: None,
            message: None,
            offline: None,
            next_id: 1,
            dirty: true,
            quit: false,
        };
        app.push(Box::new(ProjectsView::new()));
        app
    }

    /// A sender for events from outside (input thread, ticker).
    pub fn sender(&self) -> mpsc::Sender<DashEvent> {
        self.tx.clone()
    }

    /// Wait for the next event.
    pub async fn next_event(&mut self) -> Option<DashEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<DashEvent> {
        self.rx.try_recv().ok()
    }

    /// Whether the screen must be drawn again.
    pub fn needs_redraw(&self) -> bool {
        self.dirty
    }

    /// Whether the person asked to leave.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// The names of the open views, outermost first.
    pub fn breadcrumb(&self) -> Vec<String> {
        self.stack.iter().map(|e| e.view.title()).collect()
    }

    /// The keymap.
    pub fn keys(&self) -> &KeyMap {
        &self.keys
    }

    /// The key hints of the footer: the top view's, then the global ones.
    pub fn key_hints(&self) -> Vec<KeyHint> {
        if self.prompt.is_some() {
            return vec![
                KeyHint {
                    key: "enter".into(),
                    what: "open",
                },
                KeyHint {
                    key: "tab".into(),
                    what: "complete",
                },
                KeyHint {
                    key: "esc".into(),
                    what: "cancel",
                },
            ];
        }
        match &self.popup {
            Some(Popup::Help) => {
                return vec![KeyHint {
                    key: "any key".into(),
                    what: "close",
                }];
            }
            Some(Popup::Confirm(_)) => {
                return vec![
                    KeyHint::new(&self.keys.yes, "yes"),
                    KeyHint::new(&self.keys.no, "no"),
                ];
            }
            Some(Popup::Args { .. }) => {
                return vec![
                    KeyHint {
                        key: "type".into(),
                        what: "KEY=VALUE ...",
                    },
                    KeyHint {
                        key: "enter".into(),
                        what: "next",
                    },
                    KeyHint {
                        key: "esc".into(),
                        what: "cancel",
                    },
                ];
            }
            None => {}
        }
        let Some(top) = self.stack.last() else {
            return Vec::new();
        };
        let mut h = top.view.key_hints(&self.keys);
        if !top.view.is_editing() {
            h.push(KeyHint::new(&self.keys.help, "help"));
            h.push(KeyHint::new(&self.keys.command, "views"));
            h.push(KeyHint {
                key: self.keys.quit.main_label(),
                what: "quit",
            });
        }
        h
    }

    fn new_id(&mut self) -> ViewId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn push(&mut self, mut view: Box<dyn Component>) {
        if let Some(top) = self.stack.last_mut() {
            top.tasks.clear();
        }
        let id = self.new_id();
        let tasks = view.start(&self.net, id);
        self.stack.push(Entry { id, view, tasks });
        self.dirty = true;
    }

    fn pop(&mut self) {
        if self.stack.len() <= 1 {
            return;
        }
        self.stack.pop();
        self.restart();
    }

    /// Stop and start the top view's tasks (under a new id, so that late
    /// answers of the old tasks are dropped).
    fn restart(&mut self) {
        let id = self.new_id();
        let net = self.net.clone();
        if let Some(top) = self.stack.last_mut() {
            top.tasks.clear();
            top.id = id;
            top.tasks = top.view.start(&net, id);
        }
        self.dirty = true;
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
            until: Some(Instant::now() + MESSAGE_TTL),
        });
        self.dirty = true;
    }

    /// Open a view by its `:` name over the projects (`projects`: back
    /// to them).
    fn jump(&mut self, name: &str) {
        let view: Box<dyn Component> = match name {
            "agents" => Box::new(AgentsView::new()),
            "jobs" => Box::new(RunningView::new()),
            "log" => Box::new(ServicesView::new()),
            _ => {
                self.stack.truncate(1);
                self.restart();
                return;
            }
        };
        self.stack.truncate(1);
        self.push(view);
    }

    /// A key while the `:` prompt is open.
    fn on_prompt_key(&mut self, key: &KeyEvent, mut typed: String) {
        self.dirty = true;
        match key.code {
            KeyCode::Esc => {}
            KeyCode::Enter => {
                if typed.trim().is_empty() {
                    return;
                }
                match view_named(&typed) {
                    Some(name) => self.jump(name),
                    None => {
                        let names: Vec<&str> = VIEWS.iter().map(|(n, _)| *n).collect();
                        self.say(
                            format!("no view '{}': try {}", typed.trim(), names.join(", ")),
                            true,
                        );
                    }
                }
            }
            KeyCode::Tab => {
                let t = typed.trim().to_ascii_lowercase();
                if let Some((n, _)) = VIEWS.iter().find(|(n, _)| n.starts_with(&t)) {
                    typed = n.to_string();
                }
                self.prompt = Some(typed);
            }
            KeyCode::Backspace => {
                typed.pop();
                self.prompt = Some(typed);
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                typed.push(c);
                self.prompt = Some(typed);
            }
            _ => self.prompt = Some(typed),
        }
    }

    fn top_id(&self) -> Option<ViewId> {
        self.stack.last().map(|e| e.id)
    }

    /// Handle one event.
    pub fn handle(&mut self, ev: DashEvent) {
        match ev {
            DashEvent::Key(k) => self.on_key(&k),
            DashEvent::Resize(..) => self.dirty = true,
            DashEvent::Tick => {
                if self
                    .message
                    .as_ref()
                    .and_then(|m| m.until)
                    .is_some_and(|u| Instant::now() >= u)
                {
                    self.message = None;
                    self.dirty = true;
                }
                if self.stack.last().is_some_and(|e| e.view.is_live()) {
                    self.dirty = true;
                }
            }
            DashEvent::LoadFailed {
                view,
                error,
                retry_in,
            } => {
                if Some(view) == self.top_id() {
                    let retry = format!(
                        "retrying in {}s · {}: retry now",
                        retry_in.as_secs().max(1),
                        self.keys.refresh.main_label()
                    );
                    self.offline = Some((error, retry));
                    self.dirty = true;
                }
            }
            DashEvent::ActionDone { result, created } => {
                match result {
                    Ok(m) => self.say(m, false),
                    Err(e) => self.say(e, true),
                }
                if let Some(top) = self.stack.last_mut() {
                    top.view.select_new(&created);
                }
                if let Some(top) = self.stack.last() {
                    for t in &top.tasks {
                        t.refresh();
                    }
                }
            }
            DashEvent::Notice(m) => self.say(m, true),
            ev @ (DashEvent::Loaded { .. }
            | DashEvent::LogLines { .. }
            | DashEvent::JobState { .. }
            | DashEvent::LogEnd { .. }
            | DashEvent::LogFailed { .. }) => {
                let view = match &ev {
                    DashEvent::Loaded { view, .. }
                    | DashEvent::LogLines { view, .. }
                    | DashEvent::JobState { view, .. }
                    | DashEvent::LogEnd { view, .. }
                    | DashEvent::LogFailed { view, .. } => *view,
                    _ => return,
                };
                let Some(top) = self.stack.last_mut() else {
                    return;
                };
                if top.id != view {
                    return;
                }
                if matches!(ev, DashEvent::Loaded { .. }) && self.offline.take().is_some() {
                    self.dirty = true;
                }
                if top.view.update(ev) {
                    self.dirty = true;
                }
            }
        }
    }

    fn on_key(&mut self, key: &KeyEvent) {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        if let Some(typed) = self.prompt.take() {
            self.on_prompt_key(key, typed);
            return;
        }
        match self.popup.take() {
            Some(Popup::Help) => {
                self.dirty = true;
                return;
            }
            Some(Popup::Args {
                mut cmd,
                mut text,
                mut error,
            }) => {
                self.dirty = true;
                match key.code {
                    KeyCode::Esc => return,
                    KeyCode::Enter => match parse_args(&text) {
                        Ok(parsed) => {
                            if let Command::CreateFlow { args, .. } = &mut cmd {
                                *args = parsed;
                            }
                            self.popup = Some(Popup::Confirm(cmd));
                            return;
                        }
                        Err(e) => error = Some(e),
                    },
                    KeyCode::Backspace => {
                        text.pop();
                        error = None;
                    }
                    KeyCode::Char(c)
                        if !key
                            .modifiers
                            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                    {
                        text.push(c);
                        error = None;
                    }
                    _ => {}
                }
                self.popup = Some(Popup::Args { cmd, text, error });
                return;
            }
            Some(Popup::Confirm(cmd)) => {
                if self.keys.yes.matches(key) {
                    self.say(cmd.doing(), false);
                    // Stays until the outcome replaces it.
                    if let Some(m) = self.message.as_mut() {
                        m.until = None;
                    }
                    self.net.run(cmd);
                } else if !self.keys.no.matches(key) {
                    // Anything else leaves the question open.
                    self.popup = Some(Popup::Confirm(cmd));
                    return;
                }
                self.dirty = true;
                return;
            }
            None => {}
        }
        let Some(editing) = self.stack.last().map(|t| t.view.is_editing()) else {
            return;
        };
        if !editing {
            if self.keys.quit.matches(key) {
                self.quit = true;
                return;
            }
            if self.keys.help.matches(key) {
                self.popup = Some(Popup::Help);
                self.dirty = true;
                return;
            }
            if self.keys.refresh.matches(key) {
                self.restart();
                return;
            }
            if self.keys.command.matches(key) {
                self.prompt = Some(String::new());
                self.dirty = true;
                return;
            }
        }
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        match top.view.handle_key(key, &self.keys) {
            Outcome::Ignored => {
                if self.keys.back.matches(key) {
                    self.pop();
                }
            }
            Outcome::Changed => self.dirty = true,
            Outcome::Unchanged => {}
            Outcome::Open(v) => self.push(v),
            Outcome::Confirm(c) => {
                self.popup = Some(Popup::Confirm(c));
                self.dirty = true;
            }
            Outcome::AskArgs(cmd) => {
                self.popup = Some(Popup::Args {
                    cmd,
                    text: String::new(),
                    error: None,
                });
                self.dirty = true;
            }
            Outcome::Restart => self.restart(),
            Outcome::Message(m) => self.say(m, false),
        }
    }

    /// Draw a frame.
    pub fn draw(&mut self, frame: &mut Frame<'_>) {
        self.dirty = false;
        let area = frame.area();
        let [head, body, status, foot] = area.layout(&Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ]));
        self.draw_header(frame, head);
        if let Some(top) = self.stack.last_mut() {
            top.view.draw(frame, body);
        }
        self.draw_status(frame, status);
        self.draw_footer(frame, foot);
        match &self.popup {
            Some(Popup::Help) => self.draw_help(frame, body),
            Some(Popup::Confirm(c)) => draw_confirm(frame, body, &c.question(), &self.keys),
            Some(Popup::Args { cmd, text, error }) => {
                draw_args(frame, body, cmd, text, error.as_deref());
            }
            None => {}
        }
    }

    fn draw_header(&self, frame: &mut Frame<'_>, area: Rect) {
        let (dot, dot_style) = if self.offline.is_some() {
            ("● offline ", Style::new().fg(Color::Red))
        } else {
            ("● ", Style::new().fg(Color::Green))
        };
        let target = self.net.kraken().target();
        let right_w = (width(dot) + width(&target) + 1).min(area.width as usize / 2);
        let target = ellipsize(&target, right_w.saturating_sub(width(dot) + 1));
        let left_w = (area.width as usize).saturating_sub(right_w + 1);
        let crumbs = self.breadcrumb().join(" › ");
        let mut left = format!(" Kraken › {crumbs}");
        if width(&left) > left_w {
            // Keep the end of the path: it says where one is.
            let chars: Vec<char> = left.chars().collect();
            let mut keep = String::new();
            for c in chars.iter().rev() {
                if width(&keep) + 2 >= left_w {
                    break;
                }
                keep.insert(0, *c);
            }
            left = format!(" …{keep}");
        }
        let pad =
            (area.width as usize).saturating_sub(width(&left) + width(dot) + width(&target) + 1);
        let line = Line::from(vec![
            Span::styled(left, Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" ".repeat(pad)),
            Span::styled(dot, dot_style),
            Span::styled(target, style::dim()),
            Span::raw(" "),
        ]);
        frame.render_widget(
            Paragraph::new(line).style(Style::new().bg(Color::Reset)),
            area,
        );
    }

    fn draw_status(&self, frame: &mut Frame<'_>, area: Rect) {
        let line = if let Some(typed) = &self.prompt {
            // The prompt, then the views that match what was typed.
            let t = typed.trim().to_ascii_lowercase();
            let mut spans = vec![
                Span::styled(
                    format!(":{typed}▏"),
                    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw("  "),
            ];
            let matching: Vec<_> = VIEWS.iter().filter(|(n, _)| n.starts_with(&t)).collect();
            if matching.is_empty() {
                spans.push(Span::styled("no such view", Style::new().fg(Color::Red)));
            } else if matching.len() == 1 {
                let (n, what) = matching[0];
                spans.push(Span::styled(format!("{n}: {what}"), style::dim()));
            } else {
                let names: Vec<&str> = matching.iter().map(|(n, _)| *n).collect();
                spans.push(Span::styled(names.join(" · "), style::dim()));
            }
            Line::from(spans)
        } else if let Some((error, retry)) = &self.offline {
            // The way out (retry) always shows; the error is cut to fit.
            let room = (area.width as usize).saturating_sub(width(retry) + 6);
            Line::from(vec![
                Span::styled(
                    " ✖ ",
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                Span::styled(ellipsize(error, room), Style::new().fg(Color::Red)),
                Span::styled(format!(" · {retry}"), Style::new().fg(Color::Yellow)),
            ])
        } else if let Some(m) = &self.message {
            let st = if m.error {
                Style::new().fg(Color::Red)
            } else {
                Style::new().fg(Color::Cyan)
            };
            Line::from(Span::styled(format!(" {}", m.text), st))
        } else {
            Line::default()
        };
        frame.render_widget(line, area);
    }

    fn draw_footer(&self, frame: &mut Frame<'_>, area: Rect) {
        let mut spans = vec![Span::raw(" ")];
        let mut used = 1;
        let key_style = Style::new()
            .fg(Color::Black)
            .bg(Color::Cyan)
            .add_modifier(Modifier::BOLD);
        for h in self.key_hints() {
            let w = width(&h.key) + width(h.what) + 4;
            if used + w > area.width as usize {
                break;
            }
            spans.push(Span::styled(format!(" {} ", h.key), key_style));
            spans.push(Span::raw(format!(" {} ", h.what)));
            used += w;
        }
        frame.render_widget(Line::from(spans), area);
    }

    fn draw_help(&self, frame: &mut Frame<'_>, area: Rect) {
        let all = self.keys.all();
        let key_w = all.iter().map(|h| width(&h.key)).max().unwrap_or(4);
        let what_w = all.iter().map(|h| width(h.what)).max().unwrap_or(10);
        let col_w = key_w + what_w + 3;
        // One column when it fits, else two side by side.
        let per_col = if all.len() + 2 <= area.height as usize {
            all.len()
        } else {
            all.len().div_ceil(2)
        };
        let entry = |h: &KeyHint| {
            vec![
                Span::styled(
                    format!(" {:<key_w$} ", h.key),
                    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("{:<what_w$} ", h.what)),
            ]
        };
        let lines: Vec<Line<'_>> = (0..per_col)
            .map(|i| {
                let mut spans = entry(&all[i]);
                if let Some(h) = all.get(i + per_col) {
                    spans.extend(entry(h));
                }
                Line::from(spans)
            })
            .collect();
        let cols = all.len().div_ceil(per_col);
        let w = ((col_w * cols) as u16 + 2).min(area.width);
        let h = (per_col as u16 + 2).min(area.height);
        let rect = area.centered(Constraint::Length(w), Constraint::Length(h));
        frame.render_widget(Clear, rect);
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(" Keys (any key closes) ")),
            rect,
        );
    }
}

fn draw_args(frame: &mut Frame<'_>, area: Rect, cmd: &Command, text: &str, error: Option<&str>) {
    let what = match cmd {
        Command::CreateFlow {
            branch_name, kind, ..
        } => format!(
            " Arguments of the new {} flow on {branch_name}",
            kind.to_uppercase()
        ),
        other => format!(" {}", other.question()),
    };
    let mut text = vec![
        Line::from(what),
        Line::from(Span::styled(
            " KEY=VALUE, comma or space separated; empty: none",
            style::dim(),
        )),
        Line::from(vec![
            Span::styled(" > ", Style::new().fg(Color::Cyan)),
            Span::raw(format!("{text}▏")),
        ]),
    ];
    if let Some(e) = error {
        text.push(Line::from(Span::styled(
            format!(" {e}: nothing was created"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )));
    }
    let w = 60.min(area.width.saturating_sub(2)).max(10);
    let rect = area.centered(Constraint::Length(w), Constraint::Length(6));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(" Flow arguments ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        rect,
    );
}

fn draw_confirm(frame: &mut Frame<'_>, area: Rect, question: &str, keys: &KeyMap) {
    let w = (width(question) as u16 + 6).clamp(30, area.width.saturating_sub(4).max(10));
    let rect = area.centered(Constraint::Length(w), Constraint::Length(6));
    let text = vec![
        Line::from(format!(" {question}")),
        Line::default(),
        Line::from(vec![
            Span::styled(
                format!(" {} ", keys.yes.main_label()),
                Style::new().fg(Color::Black).bg(Color::Green),
            ),
            Span::raw(" yes   "),
            Span::styled(
                format!(" {} ", keys.no.main_label()),
                Style::new().fg(Color::Black).bg(Color::Red),
            ),
            Span::raw(" no"),
        ]),
    ];
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(" Confirm ")
                .border_style(Style::new().fg(Color::Yellow)),
        ),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::view_named;

    #[test]
    fn views_are_named_by_a_unique_start_or_an_alias() {
        assert_eq!(view_named("agents"), Some("agents"));
        assert_eq!(view_named(" Jobs "), Some("jobs"));
        assert_eq!(view_named("ag"), Some("agents"));
        assert_eq!(view_named("l"), Some("log"));
        assert_eq!(view_named("services"), Some("log"));
        assert_eq!(view_named("p"), Some("projects"));
        assert_eq!(view_named(""), None);
        assert_eq!(view_named("nope"), None);
    }
}
