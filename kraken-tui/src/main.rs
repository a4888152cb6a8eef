//! `kraken-tui`: the Kraken CI terminal dashboard.
//!
//! This file is the terminal around [`kraken_tui::App`]: flags, raw mode
//! and the alternate screen, a panic hook that gives the terminal back,
//! the input thread and the ticker that feed the event channel, and the
//! loop that drains that channel and draws only when something changed
//! (at most one frame per 16 ms, however fast events come).

use std::io::{IsTerminal, Stdout};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use kraken_core::Kraken;
use kraken_core::credentials::Credentials;
use kraken_tui::connect::{Choice, Source, Target, resolve};
use kraken_tui::{App, DashEvent};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use tokio::sync::mpsc;

/// The live Kraken CI dashboard in your terminal.
///
/// Projects → branches → flows → runs → jobs → log, refreshed live. Keys:
/// enter opens, esc goes back, / filters, ? lists every key, q quits.
#[derive(Debug, Parser)]
#[command(name = "kraken-tui", version)]
struct Cli {
    /// Kraken server URL (default: the server of `kraken login`).
    #[arg(long, env = "KRAKEN_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Session token (default: the one `kraken login` stored for that server).
    #[arg(long, env = "KRAKEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Open a database in this process instead (sqlite://ci.db,
    /// postgres://...): the engine and one agent run inside the dashboard.
    #[arg(long, env = "KRAKEN_DB", value_name = "URL")]
    db: Option<String>,
}

/// Time between two frames at most.
const FRAME: Duration = Duration::from_millis(16);
/// Events handled before a frame is drawn, at most.
const BATCH: usize = 10_000;

/// A panic of a background task, for the status line.
static BACKGROUND_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    // First: this may be a schema worker process (see kraken_core::schema::sandbox).
    kraken_core::schema::sandbox::run_worker_if_requested();
    // HTTPS (reqwest, object_store) needs the process's rustls provider: ring.
    kraken_core::tls::install_provider();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let source = |id: &str| match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Source::Env,
        _ => Source::Flag,
    };
    let choice = Choice {
        server: cli.server.map(|s| (s, source("server"))),
        token: cli.token,
        db: cli.db.map(|d| (d, source("db"))),
    };
    let (stored, stored_err) = match Credentials::load() {
        Ok(c) => (c, None),
        Err(e) => (None, Some(e)),
    };
    let target = match resolve(choice, stored) {
        Ok(t) => t,
        Err(e) => {
            match stored_err {
                Some(s) => eprintln!("kraken-tui: {e} ({s})"),
                None => eprintln!("kraken-tui: {e}"),
            }
            return ExitCode::from(2);
        }
    };
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        eprintln!("kraken-tui: needs a terminal: run it with stdin and stdout on a TTY");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kraken-tui: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(target))
}

async fn run(target: Target) -> ExitCode {
    let kraken = match target {
        Target::Server { url, token } => Kraken::connect(&url, token),
        Target::Db(url) => Kraken::open(&url).await,
    };
    let kraken = match kraken {
        Ok(k) => k,
        Err(e) => {
            eprintln!("kraken-tui: {e}");
            return ExitCode::from(2);
        }
    };
    let mut screen = match Screen::enter() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kraken-tui: cannot set up the terminal: {e}");
            return ExitCode::from(2);
        }
    };
    let result = ui_loop(&mut screen.terminal, App::new(kraken)).await;
    drop(screen);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kraken-tui: terminal error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The terminal in raw mode on the alternate screen; given back on drop.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        install_panic_hook();
        enable_raw_mode()?;
        let setup = execute!(std::io::stdout(), EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(std::io::stdout())));
        match setup {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore_terminal();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leave raw mode and the alternate screen (best effort: it runs while
/// things are already going wrong).
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// A panic on the UI thread gives the terminal back before the message is
/// printed; a panic of a background task (a network task, the in-process
/// engine) must not tear the screen down: it is shown on the status line.
fn install_panic_hook() {
    let ui = std::thread::current().id();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui {
            restore_terminal();
            default(info);
        } else {
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut slot) = BACKGROUND_PANIC.lock() {
                *slot = Some(format!(
                    "a background task crashed: {what}{at} (R: restart)"
                ));
            }
        }
    }));
}

/// Read keys and resizes on a thread of its own and send them.
fn spawn_input(tx: mpsc::Sender<DashEvent>) {
    let notify = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("kraken-tui-input".into())
        .spawn(move || {
            loop {
                match event::poll(Duration::from_millis(250)) {
                    Ok(true) => {
                        let ev = match event::read() {
                            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                                DashEvent::Key(k)
                            }
                            Ok(Event::Resize(w, h)) => DashEvent::Resize(w, h),
                            Ok(_) => continue,
                            Err(_) => return,
                        };
                        if tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Ok(false) => {
                        if tx.is_closed() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    if let Err(e) = spawned {
        // Without input the dashboard cannot even be quit: say so loudly.
        let _ = notify.try_send(DashEvent::Notice(format!("cannot read the keyboard: {e}")));
    }
}

/// A tick every second (durations move on), and news of crashed tasks.
fn spawn_ticker(tx: mpsc::Sender<DashEvent>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let crashed = BACKGROUND_PANIC.lock().ok().and_then(|mut s| s.take());
            if let Some(m) = crashed
                && tx.send(DashEvent::Notice(m)).await.is_err()
            {
                return;
            }
            if tx.send(DashEvent::Tick).await.is_err() {
                return;
            }
        }
    });
}

/// Drain the channel; draw when something changed, one frame per [`FRAME`]
/// at most, so a flood of log lines costs a few frames, not one per line.
async fn ui_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    mut app: App,
) -> std::io::Result<()> {
    spawn_input(app.sender());
    spawn_ticker(app.sender());
    let mut last_draw: Option<Instant> = None;
    loop {
        if app.should_quit() {
            return Ok(());
        }
        let wait = if app.needs_redraw() {
            let due = last_draw.map_or(Duration::ZERO, |t| FRAME.saturating_sub(t.elapsed()));
            if due.is_zero() {
                terminal.draw(|f| app.draw(f))?;
                last_draw = Some(Instant::now());
                None
            } else {
                Some(due)
            }
        } else {
            None
        };
        let ev = match wait {
            Some(due) => match tokio::time::timeout(due, app.next_event()).await {
                Ok(ev) => ev,
                // Time for the frame.
                Err(_) => continue,
            },
            None => app.next_event().await,
        };
        let Some(ev) = ev else {
            return Ok(());
        };
        app.handle(ev);
        for _ in 0..BATCH {
            match app.try_next_event() {
                Some(ev) => app.handle(ev),
                None => break,
            }
        }
    }
}
