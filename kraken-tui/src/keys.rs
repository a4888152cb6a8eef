//! Key bindings: one [`KeyMap`] (with a `Default`) that every view reads,
//! and the [`KeyHint`]s the footer and the help popup show.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// One key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl, Alt, ... (Shift is ignored for characters: `G` is `G`).
    pub modifiers: KeyModifiers,
}

impl Key {
    /// A key without modifiers.
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            modifiers: KeyModifiers::NONE,
        }
    }

    /// A character key.
    pub const fn ch(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    /// A character key with Ctrl.
    pub const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            modifiers: KeyModifiers::CONTROL,
        }
    }

    /// Whether a key event is this key.
    pub fn matches(&self, ev: &KeyEvent) -> bool {
        fn norm(code: KeyCode, m: KeyModifiers) -> KeyModifiers {
            if matches!(code, KeyCode::Char(_)) {
                m.difference(KeyModifiers::SHIFT)
            } else {
                m
            }
        }
        self.code == ev.code && norm(self.code, self.modifiers) == norm(ev.code, ev.modifiers)
    }

    /// How the key is written in hints.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Enter => "enter".to_string(),
            KeyCode::Esc => "esc".to_string(),
            KeyCode::Tab => "tab".to_string(),
            KeyCode::BackTab => "S-tab".to_string(),
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            KeyCode::Home => "Home".to_string(),
            KeyCode::End => "End".to_string(),
            KeyCode::Backspace => "bksp".to_string(),
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            other => format!("{other:?}"),
        };
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            format!("^{base}")
        } else {
            base
        }
    }
}

/// The keys of one action; hints show the first two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The keys, main one first.
    pub keys: Vec<Key>,
}

impl Binding {
    /// A binding of these keys.
    pub fn new(keys: impl Into<Vec<Key>>) -> Binding {
        Binding { keys: keys.into() }
    }

    /// Whether a key event triggers this action.
    pub fn matches(&self, ev: &KeyEvent) -> bool {
        self.keys.iter().any(|k| k.matches(ev))
    }

    /// How its main key is written (`""` for a binding without keys).
    pub fn main_label(&self) -> String {
        self.keys.first().map(Key::label).unwrap_or_default()
    }

    /// How the binding is written in hints (`j/↓`).
    pub fn label(&self) -> String {
        self.keys
            .iter()
            .take(2)
            .map(Key::label)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Every key of the dashboard. `Default` is the documented keymap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMap {
    /// Leave the dashboard.
    pub quit: Binding,
    /// Open the selected item.
    pub open: Binding,
    /// Go back to the previous view (or clear a filter first).
    pub back: Binding,
    /// Show every key.
    pub help: Binding,
    /// Filter a list; search a log.
    pub filter: Binding,
    /// Next search match.
    pub next_match: Binding,
    /// Previous search match.
    pub prev_match: Binding,
    /// Move up / scroll up.
    pub up: Binding,
    /// Move down / scroll down.
    pub down: Binding,
    /// A page up.
    pub page_up: Binding,
    /// A page down.
    pub page_down: Binding,
    /// First item / top of the log.
    pub top: Binding,
    /// Last item / end of the log, following it again.
    pub bottom: Binding,
    /// Toggle wrapping of long log lines.
    pub wrap: Binding,
    /// Switch between CI and DEV flows.
    pub switch_kind: Binding,
    /// Test results of a run.
    pub results: Binding,
    /// Create a flow on the branch.
    pub create_flow: Binding,
    /// Cancel a run.
    pub cancel_run: Binding,
    /// Rerun a job.
    pub rerun_job: Binding,
    /// Cancel a flow (every unfinished run).
    pub cancel_flow: Binding,
    /// Rerun the failed jobs of a flow.
    pub rerun_failed: Binding,
    /// Open a view by name (`:agents`).
    pub command: Binding,
    /// Cycle the level of the services log.
    pub level: Binding,
    /// Read again now (and reconnect).
    pub refresh: Binding,
    /// Confirm.
    pub yes: Binding,
    /// Decline.
    pub no: Binding,
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap {
            quit: Binding::new([Key::ch('q'), Key::ctrl('c')]),
            open: Binding::new([Key::plain(KeyCode::Enter), Key::plain(KeyCode::Right)]),
            back: Binding::new([Key::plain(KeyCode::Esc), Key::plain(KeyCode::Left)]),
            help: Binding::new([Key::ch('?')]),
            filter: Binding::new([Key::ch('/')]),
            next_match: Binding::new([Key::ch('n')]),
            prev_match: Binding::new([Key::ch('N')]),
            up: Binding::new([Key::plain(KeyCode::Up), Key::ch('k')]),
            down: Binding::new([Key::plain(KeyCode::Down), Key::ch('j')]),
            page_up: Binding::new([Key::plain(KeyCode::PageUp), Key::ctrl('b')]),
            page_down: Binding::new([Key::plain(KeyCode::PageDown), Key::ctrl('f')]),
            top: Binding::new([Key::ch('g'), Key::plain(KeyCode::Home)]),
            bottom: Binding::new([Key::ch('G'), Key::plain(KeyCode::End)]),
            wrap: Binding::new([Key::ch('w')]),
            switch_kind: Binding::new([Key::plain(KeyCode::Tab), Key::plain(KeyCode::BackTab)]),
            results: Binding::new([Key::ch('t')]),
            create_flow: Binding::new([Key::ch('c')]),
            cancel_run: Binding::new([Key::ch('x')]),
            rerun_job: Binding::new([Key::ch('r')]),
            cancel_flow: Binding::new([Key::ch('X')]),
            rerun_failed: Binding::new([Key::ch('F')]),
            command: Binding::new([Key::ch(':')]),
            level: Binding::new([Key::ch('l')]),
            refresh: Binding::new([Key::ch('R'), Key::plain(KeyCode::F(5))]),
            yes: Binding::new([Key::ch('y'), Key::plain(KeyCode::Enter)]),
            no: Binding::new([Key::ch('n'), Key::plain(KeyCode::Esc)]),
        }
    }
}

impl KeyMap {
    /// Every action with what it does, in the order the help shows them.
    pub fn all(&self) -> Vec<KeyHint> {
        vec![
            KeyHint::new(&self.open, "open the selected item"),
            KeyHint::new(&self.back, "back / clear filter"),
            KeyHint::new(&self.up, "up (log: stops following)"),
            KeyHint::new(&self.down, "down"),
            KeyHint::new(&self.page_up, "page up"),
            KeyHint::new(&self.page_down, "page down"),
            KeyHint::new(&self.top, "first item / top of log"),
            KeyHint::new(&self.bottom, "last / follow the log"),
            KeyHint::new(&self.filter, "filter list / search log"),
            KeyHint::new(&self.next_match, "next match in the log"),
            KeyHint::new(&self.prev_match, "previous match"),
            KeyHint::new(&self.wrap, "wrap log lines on/off"),
            KeyHint::new(&self.switch_kind, "switch CI / DEV flows"),
            KeyHint::new(&self.results, "test results of a run"),
            KeyHint::new(&self.create_flow, "create a flow"),
            KeyHint::new(&self.cancel_run, "cancel a run"),
            KeyHint::new(&self.rerun_job, "rerun a job"),
            KeyHint::new(&self.cancel_flow, "cancel a flow"),
            KeyHint::new(&self.rerun_failed, "rerun a flow's failures"),
            KeyHint::new(&self.command, "views: agents jobs log"),
            KeyHint::new(&self.level, "services log level"),
            KeyHint::new(&self.refresh, "read again / reconnect"),
            KeyHint::new(&self.help, "this help"),
            KeyHint::new(&self.quit, "quit"),
        ]
    }
}

/// A key and what it does here, as the footer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHint {
    /// The key(s), e.g. `enter` or `j/↓`.
    pub key: String,
    /// What it does.
    pub what: &'static str,
}

impl KeyHint {
    /// A hint for a binding.
    pub fn new(b: &Binding, what: &'static str) -> KeyHint {
        KeyHint {
            key: b.label(),
            what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_is_ignored_for_characters_only() {
        let k = KeyMap::default();
        let shifted_g = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert!(k.bottom.matches(&shifted_g));
        assert!(!k.top.matches(&shifted_g));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(k.quit.matches(&ctrl_c));
        assert!(!k.create_flow.matches(&ctrl_c));
        assert_eq!(k.down.label(), "↓/j");
        assert_eq!(k.page_down.label(), "PgDn/^f");
    }
}
