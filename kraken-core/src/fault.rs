//! Fault injection for the durability tests (test-only in spirit, compiled
//! always): [`point`] aborts the process when the environment variable
//! `KRAKEN_FAULT` names that point, so a test can kill a real server at an
//! exact moment (between two state changes) instead of at a guessed time.
//!
//! Unset (every real deployment), a point costs one load of a cached value.
//! Never set `KRAKEN_FAULT` in production: the server dies at that point.

use std::sync::OnceLock;

/// The environment variable naming the fault point to die at.
pub const ENV: &str = "KRAKEN_FAULT";

fn armed() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Abort the process (as `SIGKILL` would end it: no destructor, no flush of
/// anything but stderr) when `KRAKEN_FAULT` is `name`.
///
/// Points in the engine: `before-flow-insert` (the sequences drawn, in the
/// flow's transaction), `after-flow-insert`, `before-jobs-insert`,
/// `after-job-complete`, `after-run-complete`, `in-history-analysis`,
/// `after-run-processed`, `after-step-in-progress`.
pub fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("kraken fault injection: aborting at '{name}' ({ENV})");
        std::process::abort();
    }
}
