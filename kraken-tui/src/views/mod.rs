//! The views of the drill-down, each a [`Component`]: projects → branches
//! → flows (CI / DEV) → runs → jobs → steps and log, and a run's test
//! results; and the views `:` opens by name: agents, running jobs, the
//! services log.
//!
//! A view owns what it shows; the [`App`](crate::App) keeps a stack of them,
//! starts the tasks of the one on top ([`Component::start`]), routes its
//! data to it ([`Component::update`]) and its keys
//! ([`Component::handle_key`]), and draws its footer from
//! [`Component::key_hints`].

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::Rect;

use crate::event::{Created, DashEvent, ViewId};
use crate::keys::{KeyHint, KeyMap};
use crate::net::{Command, Net, Task};

mod agents;
mod branches;
mod flows;
mod jobs;
mod list;
mod log;
mod projects;
mod results;
mod running;
mod runs;
mod services;

pub use agents::AgentsView;
pub use branches::BranchesView;
pub use flows::FlowsView;
pub use jobs::JobsView;
pub use list::{FilterList, Item};
pub use log::{LOG_CAPACITY, LogView};
pub use projects::ProjectsView;
pub use results::ResultsView;
pub use running::RunningView;
pub use runs::RunsView;
pub use services::ServicesView;

/// What the app does after a view handled a key.
pub enum Outcome {
    /// The key is not for this view.
    Ignored,
    /// Handled; what the view shows changed.
    Changed,
    /// Handled; nothing to redraw.
    Unchanged,
    /// Open a view on top of this one.
    Open(Box<dyn Component>),
    /// Ask for confirmation, then run the command.
    Confirm(Command),
    /// Ask for flow arguments (`KEY=VALUE ...`) for a
    /// [`Command::CreateFlow`], then for confirmation.
    AskArgs(Command),
    /// Stop and start this view's tasks again (what it watches changed).
    Restart,
    /// Show a message on the status line.
    Message(String),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ignored => f.write_str("Ignored"),
            Outcome::Changed => f.write_str("Changed"),
            Outcome::Unchanged => f.write_str("Unchanged"),
            Outcome::Open(v) => write!(f, "Open({})", v.title()),
            Outcome::Confirm(c) => write!(f, "Confirm({c:?})"),
            Outcome::AskArgs(c) => write!(f, "AskArgs({c:?})"),
            Outcome::Restart => f.write_str("Restart"),
            Outcome::Message(m) => write!(f, "Message({m})"),
        }
    }
}

/// A part of the screen that draws itself, handles its events and says
/// which keys it offers.
pub trait Component: Send {
    /// Its name in the breadcrumb (`build`, `CI 3.`).
    fn title(&self) -> String;

    /// Start the tasks that keep it live (watch its data, follow a log).
    fn start(&mut self, net: &Net, id: ViewId) -> Vec<Task>;

    /// Data addressed to it arrived; returns whether what it shows changed.
    fn update(&mut self, ev: DashEvent) -> bool;

    /// A key; what the app should do about it.
    fn handle_key(&mut self, key: &KeyEvent, keys: &KeyMap) -> Outcome;

    /// The keys it offers now, for the footer.
    fn key_hints(&self, keys: &KeyMap) -> Vec<KeyHint>;

    /// Draw into `area`.
    fn draw(&mut self, frame: &mut Frame<'_>, area: Rect);

    /// Whether it shows something that changes with time alone (the
    /// duration of a running item), so a tick must redraw it.
    fn is_live(&self) -> bool {
        false
    }

    /// Put the cursor on what an action made (a flow just created, a job
    /// just rerun) once it shows up.
    fn select_new(&mut self, _created: &Created) {}

    /// Whether a text input (filter, search) has the keys.
    fn is_editing(&self) -> bool {
        false
    }
}

/// Hints of a text input.
pub(crate) fn editing_hints(what: &'static str) -> Vec<KeyHint> {
    vec![
        KeyHint {
            key: "type".into(),
            what,
        },
        KeyHint {
            key: "enter".into(),
            what: "keep",
        },
        KeyHint {
            key: "esc".into(),
            what: "clear",
        },
    ]
}
