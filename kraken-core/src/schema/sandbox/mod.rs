//! Evaluating schema code out of harm's way: in worker processes with
//! operating-system limits.
//!
//! Schema code comes from anyone who may edit a stage, and the schema
//! preview (`PUT /stages/{id}/schema`) evaluates code from anyone who may
//! *view* one. The interpreter bounds time, call depth and (periodically)
//! its heap, and [`super::nesting`] bounds how deeply the code nests before
//! it is parsed, but inside one process that is not enough: a single
//! operation can allocate gigabytes (`s.replace(...)`, `l.extend(l)`) or run
//! for minutes (a product of huge integers) before the interpreter looks
//! again, and a value built nested a million levels deep overflows the
//! stack when it is printed, which aborts the process.
//!
//! So [`evaluate`] hands the code to one of a small pool of worker
//! processes ([`Sandbox`]). A worker is this same program started again
//! with the hidden first argument [`WORKER_ARG`]; every Kraken binary calls
//! [`run_worker_if_requested`] at the top of `main`. The worker evaluates
//! on a thread with a 64 MiB stack, under `RLIMIT_AS` (its size plus twice
//! the heap limit plus 256 MiB), `RLIMIT_CPU` (the time limit plus 3 s) and
//! no core dumps, with an empty environment. The parent gives it the time
//! limit plus 1 s of wall-clock time. A worker that overruns is killed; one
//! that dies (stack overflow, failed allocation under `RLIMIT_AS`,
//! `SIGXCPU`) or answers garbage is replaced; either way the evaluation
//! fails with a [`SchemaError`] saying why: "the schema code crashed the
//! evaluator (stack overflow ...)", "used more than the memory limit of
//! N MiB", "ran longer than the time limit of N ms". The server answers 400
//! and carries on.
//!
//! # Which program runs the workers
//!
//! The first that applies:
//!
//! 1. what [`configure`] set;
//! 2. the environment variable `KRAKEN_SCHEMA_WORKER` ([`WORKER_ENV`]): the
//!    path of a program that calls [`run_worker_if_requested`] (for example
//!    `kraken-server`, `kraken` or `kraken-schema-worker`), or `in-process`;
//! 3. the running program itself (`/proc/self/exe`, which survives an
//!    upgrade of the binary on disk) when it called
//!    [`run_worker_if_requested`];
//! 4. otherwise evaluation stays in this process ([`Mode::InProcess`]), with
//!    a warning in the log: a library embedding Kraken that did not opt in
//!    is never re-executed behind its back. In-process evaluation keeps the
//!    nesting bound, the time and call-depth limits and a stack of its own,
//!    but cannot stop a single huge allocation or computation, nor a stack
//!    overflow on a value nested millions of levels deep; embedders that
//!    evaluate untrusted code must name a worker program.
//!
//! `KRAKEN_SCHEMA_WORKERS` ([`WORKERS_ENV`]) sets the number of worker
//! processes (default [`DEFAULT_WORKERS`]).

mod local;
mod pool;
mod protocol;
mod worker;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value as Json;

pub use pool::Sandbox;

use super::{Limits, SchemaError};

/// The first argument that makes a Kraken program a schema worker.
pub const WORKER_ARG: &str = "__kraken-schema-worker";

/// Environment variable naming the worker program (or `in-process`).
pub const WORKER_ENV: &str = "KRAKEN_SCHEMA_WORKER";

/// Environment variable setting the number of worker processes.
pub const WORKERS_ENV: &str = "KRAKEN_SCHEMA_WORKERS";

/// Worker processes of the default sandbox.
pub const DEFAULT_WORKERS: usize = 2;

/// How a [`Sandbox`] evaluates schema code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// In up to `workers` processes running `program` with [`WORKER_ARG`].
    Workers {
        /// A program that calls [`run_worker_if_requested`] first thing.
        program: PathBuf,
        /// How many processes at most (at least one).
        workers: usize,
    },
    /// In this process, with [`super::evaluate_in_process`] on a few
    /// threads with a 64 MiB stack (see its documentation for what this does
    /// not contain).
    InProcess,
}

/// Whether this program called [`run_worker_if_requested`].
static WORKER_CAPABLE: AtomicBool = AtomicBool::new(false);

/// The sandbox [`evaluate`] uses, made on first use.
static DEFAULT: Mutex<Option<Arc<Sandbox>>> = Mutex::new(None);

/// Call this first thing in `main`: when the program was started as a
/// schema worker ([`WORKER_ARG`]), it serves evaluations on stdin/stdout
/// and exits when stdin closes; otherwise it returns at once, and the
/// program may from now on be started as a worker by [`evaluate`].
pub fn run_worker_if_requested() {
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new(WORKER_ARG)) {
        std::process::exit(worker::main());
    }
    WORKER_CAPABLE.store(true, Ordering::SeqCst);
}

/// Evaluate schema code in the default sandbox (see the module
/// documentation): run its top level, call `stage(ctx)` with `ctx` (a JSON
/// object) and return the result as JSON with dict keys in source order.
///
/// This blocks for up to [`Limits::timeout`] plus a second (plus the wait
/// for a free worker); from async code call it inside
/// `tokio::task::spawn_blocking`.
pub fn evaluate(code: &str, ctx: &Json, limits: &Limits) -> Result<Json, SchemaError> {
    default_sandbox().evaluate(code, ctx, limits)
}

/// Make the default sandbox evaluate as `mode` from now on (evaluations
/// under way finish where they are).
pub fn configure(mode: Mode) {
    *DEFAULT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Sandbox::new(mode)));
}

/// How the default sandbox evaluates.
pub fn mode() -> Mode {
    default_sandbox().mode().clone()
}

/// Start a worker of the default sandbox in the background, so that the
/// first evaluation does not wait for it (nothing in [`Mode::InProcess`]).
pub fn warm_up() {
    let sandbox = default_sandbox();
    if matches!(sandbox.mode(), Mode::Workers { .. }) {
        let _ = std::thread::Builder::new()
            .name("schema-warm-up".into())
            .spawn(move || {
                if let Err(e) = sandbox.warm_up() {
                    tracing::warn!(error = %e, "schema sandbox");
                }
            });
    }
}

fn default_sandbox() -> Arc<Sandbox> {
    let mut default = DEFAULT.lock().unwrap_or_else(PoisonError::into_inner);
    default
        .get_or_insert_with(|| {
            let mode = default_mode();
            match &mode {
                Mode::Workers { program, workers } => tracing::debug!(
                    program = %program.display(),
                    workers,
                    "schema code is evaluated in worker processes"
                ),
                Mode::InProcess => tracing::warn!(
                    "schema code is evaluated inside this process, where memory and CPU \
                     limits cannot be enforced; set {WORKER_ENV} to a Kraken program (e.g. \
                     kraken-server) to evaluate it in worker processes"
                ),
            }
            Arc::new(Sandbox::new(mode))
        })
        .clone()
}

/// The mode from the environment and [`run_worker_if_requested`].
fn default_mode() -> Mode {
    let workers = std::env::var(WORKERS_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_WORKERS);
    match std::env::var_os(WORKER_ENV) {
        Some(v) if v == "in-process" => Mode::InProcess,
        Some(v) if !v.is_empty() => Mode::Workers {
            program: PathBuf::from(v),
            workers,
        },
        _ if WORKER_CAPABLE.load(Ordering::SeqCst) => Mode::Workers {
            program: this_program(),
            workers,
        },
        _ => Mode::InProcess,
    }
}

/// The running program: `/proc/self/exe` where it exists (it stays valid
/// when the file is replaced by an upgrade), else its path.
fn this_program() -> PathBuf {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        return proc_exe.to_path_buf();
    }
    std::env::current_exe().unwrap_or_else(|_| proc_exe.to_path_buf())
}
