//! The test harness: an [`App`] drawn into an 80×24 `TestBackend`, fed by
//! its own event channel, and helpers that read the screen as a person
//! would.

use std::fmt;
use std::time::{Duration, Instant};

use kraken_core::Kraken;
use kraken_tests::{Client, TestServer};
use kraken_tui::{App, DashEvent, Options};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};

/// How long a test waits for something to show up.
pub const WAIT: Duration = Duration::from_secs(90);

/// A server with an admin client, and a handle on it as the dashboard uses.
pub async fn server() -> (TestServer, Client, Kraken) {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let k = Kraken::connect(&s.url, admin.token.clone()).expect("handle");
    (s, admin, k)
}

/// A stage schema with one job of shell steps (from the API tests).
pub use kraken_tests::shell_stage;

/// What the screen shows.
pub struct Screen {
    /// The rows as text.
    pub lines: Vec<String>,
    buf: Buffer,
}

impl fmt::Display for Screen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "|{l}|")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Screen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Screen {
    fn new(buf: Buffer) -> Screen {
        let area = buf.area;
        let lines = (0..area.height)
            .map(|y| {
                (0..area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect();
        Screen { lines, buf }
    }

    /// Whether some row shows `s`.
    pub fn contains(&self, s: &str) -> bool {
        self.lines.iter().any(|l| l.contains(s))
    }

    /// The first row showing `s`.
    pub fn row_of(&self, s: &str) -> Option<usize> {
        self.lines.iter().position(|l| l.contains(s))
    }

    /// The first row showing `s`, as text.
    #[track_caller]
    pub fn line_with(&self, s: &str) -> &str {
        match self.row_of(s) {
            Some(r) => &self.lines[r],
            None => panic!("no row shows {s:?}:\n{self}"),
        }
    }

    /// The top row (breadcrumb).
    pub fn header(&self) -> &str {
        &self.lines[0]
    }

    /// The status line (second to last).
    pub fn status(&self) -> &str {
        &self.lines[self.lines.len() - 2]
    }

    /// The footer (key hints).
    pub fn footer(&self) -> &str {
        &self.lines[self.lines.len() - 1]
    }

    /// The colour of the first cell of `s` in the first row `within` shows.
    #[track_caller]
    pub fn fg_of(&self, s: &str, within: &str) -> Color {
        for (y, l) in self.lines.iter().enumerate() {
            if !l.contains(within) {
                continue;
            }
            // Map the byte offset to a column (one symbol per cell here).
            if let Some(off) = l.find(s) {
                let x = l[..off].chars().count() as u16;
                return self.buf[(x, y as u16)].fg;
            }
        }
        panic!("no row with {within:?} shows {s:?}:\n{self}")
    }

    /// The selected row of the list (drawn reversed up to its right edge).
    pub fn selected(&self) -> Option<&str> {
        let w = self.buf.area.width;
        self.lines.iter().enumerate().skip(1).find_map(|(y, l)| {
            let cell = &self.buf[(w - 2, y as u16)];
            cell.modifier
                .contains(Modifier::REVERSED)
                .then_some(l.as_str())
        })
    }
}

/// A dashboard in a test terminal.
pub struct Dash {
    /// The app.
    pub app: App,
    term: Terminal<TestBackend>,
}

impl Dash {
    /// A dashboard of 80×24 that polls quickly.
    pub fn new(k: Kraken) -> Dash {
        Self::sized(k, 80, 24)
    }

    /// A dashboard of any size.
    pub fn sized(k: Kraken, w: u16, h: u16) -> Dash {
        let app = App::with_options(
            k,
            Options {
                poll: Duration::from_millis(250),
                ..Options::default()
            },
        );
        let term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        Dash { app, term }
    }

    /// Press a key.
    pub fn key(&mut self, code: KeyCode) {
        self.app
            .handle(DashEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    /// Type characters.
    pub fn typed(&mut self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Resize the terminal.
    pub fn resize(&mut self, w: u16, h: u16) {
        self.term.backend_mut().resize(w, h);
        self.app.handle(DashEvent::Resize(w, h));
    }

    /// Draw and read the screen.
    pub fn screen(&mut self) -> Screen {
        let app = &mut self.app;
        let frame = self.term.draw(|f| app.draw(f)).expect("draw");
        Screen::new(frame.buffer.clone())
    }

    /// Handle the events that arrive within `d` (at least one wait).
    pub async fn pump(&mut self, d: Duration) {
        if let Ok(Some(ev)) = tokio::time::timeout(d, self.app.next_event()).await {
            self.app.handle(ev);
            while let Some(ev) = self.app.try_next_event() {
                self.app.handle(ev);
            }
        }
    }

    /// Handle events until the screen satisfies `cond`; the screen then.
    pub async fn until(&mut self, what: &str, cond: impl Fn(&Screen) -> bool) -> Screen {
        let end = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            self.pump(Duration::from_millis(200)).await;
        }
    }

    /// Handle events until the screen shows `text`.
    pub async fn until_text(&mut self, text: &str) -> Screen {
        self.until(&format!("{text:?}"), |s| s.contains(text)).await
    }

    /// Move the selection to the row showing `text` (from the top).
    #[track_caller]
    pub fn select(&mut self, text: &str) {
        self.key(KeyCode::Home);
        for _ in 0..200 {
            let s = self.screen();
            if s.selected().is_some_and(|l| l.contains(text)) {
                return;
            }
            self.key(KeyCode::Down);
        }
        let s = self.screen();
        panic!("no row with {text:?} to select:\n{s}");
    }

    /// Wait for the row showing `text`, open it, wait for `then` and the
    /// new view's data.
    pub async fn open(&mut self, text: &str, then: &str) -> Screen {
        self.until_text(text).await;
        self.select(text);
        self.key(KeyCode::Enter);
        self.until(&format!("{then:?} loaded"), |s| {
            s.contains(then) && !s.contains("loading…")
        })
        .await
    }
}
