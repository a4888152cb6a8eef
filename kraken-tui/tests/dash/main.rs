//! The dashboard on real data: a server (or an in-process database) filled
//! by each test, the app driven with keys and events, the screen drawn into
//! an 80×24 `TestBackend` and read as a person would read it.
//!
//! One test binary (modules below) so the workspace links it once.

mod actions;
mod cli;
mod common;
mod drill;
mod flows;
mod jump;
mod live;
mod offline;
mod results;
