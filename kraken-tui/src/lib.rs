//! `kraken-tui`: a terminal dashboard for Kraken CI.
//!
//! Projects → branches → flows (CI / DEV) → runs → jobs → steps and log,
//! live, over the same [`Kraken`](kraken_core::Kraken) handle as the CLI (a
//! server, or a database in process).
//!
//! * [`event`]: the one [`DashEvent`](event::DashEvent) type that input,
//!   ticks and network tasks send over one channel.
//! * [`app`]: the [`App`]: a stack of views, [`App::handle`] and [`App::draw`].
//! * [`views`]: the views, each a [`Component`](views::Component) that draws,
//!   handles keys and lists its key hints.
//! * [`net`]: the tokio tasks that read data, follow logs and run actions.
//! * [`keys`]: the [`KeyMap`](keys::KeyMap).
//! * [`connect`]: which server or database to open, from flags,
//!   environment and the stored login.
//!
//! The binary (`main.rs`) only adds the terminal: raw mode, the input
//! thread, the ticker, the panic hook and the loop that drains the channel
//! and draws when something changed. Tests drive [`App`] directly and draw
//! into ratatui's `TestBackend`.
#![forbid(unsafe_code)]

pub mod app;
pub mod connect;
pub mod event;
pub mod keys;
pub mod net;
pub mod style;
pub mod text;
pub mod views;

pub use app::{App, Options};
pub use event::DashEvent;
