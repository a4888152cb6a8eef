//! The parent side: a small pool of worker processes, each a program run
//! with [`super::WORKER_ARG`], and what to do when one misbehaves.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::Value as Json;

use super::local::Threads;
use super::protocol::{Answer, Hello, MAX_ANSWER_BYTES, RequestRef, VERSION, WireLimits};
use super::{Mode, WORKER_ARG};
use crate::schema::eval::{check_ctx_depth, memory_message, timeout_message};
use crate::schema::{Limits, SchemaError, SchemaErrorKind};

/// Wall-clock time a worker gets on top of [`Limits::timeout`] before it
/// is killed: the worker stops ordinary code itself at the time limit;
/// this catches single operations that never return to the interpreter.
const GRACE: Duration = Duration::from_secs(1);

/// How long a new worker may take to greet.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Evaluations after which a worker is replaced by a fresh process (keeps
/// whatever its allocator holds on to from growing forever).
const MAX_EVALUATIONS: u32 = 1000;

/// Bytes of a worker's stderr kept to explain its death.
const STDERR_KEEP: usize = 16 * 1024;

/// Evaluates schema code: in worker processes, or in this process.
///
/// A `Sandbox` in [`Mode::Workers`] starts up to `workers` processes on
/// demand and keeps them for the next evaluations; one evaluation uses one
/// worker, others wait for a free one. A worker that crashes, overruns its
/// time or answers garbage is killed and replaced, and the evaluation
/// fails with a [`SchemaError`] that says why. Dropping the `Sandbox`
/// stops its idle workers.
pub struct Sandbox {
    mode: Mode,
    pool: Option<Pool>,
    threads: Threads,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("mode", &self.mode).finish()
    }
}

impl Sandbox {
    /// A sandbox evaluating as `mode` says (no process is started yet).
    pub fn new(mode: Mode) -> Sandbox {
        let pool = match &mode {
            Mode::Workers { program, workers } => Some(Pool {
                program: program.clone(),
                size: (*workers).max(1),
                state: Mutex::new(PoolState::default()),
                freed: Condvar::new(),
            }),
            Mode::InProcess => None,
        };
        Sandbox {
            mode,
            pool,
            threads: Threads::new(),
        }
    }

    /// How this sandbox evaluates.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Start one worker now (in [`Mode::Workers`]) so that the first
    /// evaluation does not wait for it.
    pub fn warm_up(&self) -> Result<(), SchemaError> {
        if let Some(pool) = &self.pool {
            let worker = pool.acquire()?;
            pool.release(worker);
        }
        Ok(())
    }

    /// Evaluate `code` with `ctx` (see [`crate::schema::evaluate`]).
    pub fn evaluate(&self, code: &str, ctx: &Json, limits: &Limits) -> Result<Json, SchemaError> {
        match &self.pool {
            Some(pool) => pool.evaluate(code, ctx, limits),
            None => self.threads.evaluate(code, ctx, limits),
        }
    }
}

struct Pool {
    program: PathBuf,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Workers waiting for work.
    idle: Vec<Worker>,
    /// Workers alive or being started, idle or busy.
    live: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn evaluate(&self, code: &str, ctx: &Json, limits: &Limits) -> Result<Json, SchemaError> {
        // The worker reads ctx with serde_json, which refuses very deep JSON.
        check_ctx_depth(ctx)?;
        let request = RequestRef {
            code,
            ctx,
            limits: WireLimits::from(limits),
        };
        let mut request = serde_json::to_vec(&request).map_err(|e| {
            SchemaError::new(
                SchemaErrorKind::Unavailable,
                format!("the schema code could not be sent to the evaluator: {e}"),
            )
        })?;
        request.push(b'\n');
        let mut worker = self.acquire()?;
        let outcome = worker.exchange(&request, limits.timeout.saturating_add(GRACE));
        let failure = match outcome {
            Exchange::Answer(line) => match serde_json::from_slice::<Answer>(&line) {
                Ok(answer) => {
                    worker.evaluations += 1;
                    if worker.evaluations >= MAX_EVALUATIONS {
                        self.discard(worker);
                    } else {
                        self.release(worker);
                    }
                    return answer.into();
                }
                Err(e) => SchemaError::new(
                    SchemaErrorKind::Unavailable,
                    format!(
                        "the schema evaluator gave an unreadable answer ({e}); it was restarted"
                    ),
                ),
            },
            Exchange::TooLong => SchemaError::new(
                SchemaErrorKind::Unavailable,
                "the schema evaluator gave an over-long answer; it was restarted",
            ),
            Exchange::TimedOut => {
                SchemaError::new(SchemaErrorKind::Timeout, timeout_message(limits))
            }
            Exchange::Closed => {
                let (status, stderr) = worker.death();
                crash_error(status, &stderr, limits)
            }
        };
        tracing::warn!(
            program = %self.program.display(),
            error = %failure,
            "schema worker process stopped; starting a new one"
        );
        self.discard(worker);
        self.replenish();
        Err(failure)
    }

    /// An idle worker, a new one if fewer than `size` are alive, or the
    /// next one freed.
    fn acquire(&self) -> Result<Worker, SchemaError> {
        let mut state = self.lock();
        loop {
            if let Some(mut worker) = state.idle.pop() {
                if worker.is_alive() {
                    return Ok(worker);
                }
                state.live = state.live.saturating_sub(1);
                drop(state);
                drop(worker);
                state = self.lock();
                continue;
            }
            if state.live < self.size {
                state.live += 1;
                drop(state);
                return Worker::spawn(&self.program).map_err(|e| {
                    self.lock().live -= 1;
                    self.freed.notify_one();
                    SchemaError::new(SchemaErrorKind::Unavailable, e)
                });
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn release(&self, worker: Worker) {
        self.lock().idle.push(worker);
        self.freed.notify_one();
    }

    /// Stop a worker and make room for a new one.
    fn discard(&self, worker: Worker) {
        drop(worker);
        let mut state = self.lock();
        state.live = state.live.saturating_sub(1);
        drop(state);
        self.freed.notify_one();
    }

    /// Start a worker in place of one that died, unless the pool is full.
    fn replenish(&self) {
        {
            let mut state = self.lock();
            if state.live >= self.size {
                return;
            }
            state.live += 1;
        }
        match Worker::spawn(&self.program) {
            Ok(worker) => self.release(worker),
            Err(e) => {
                tracing::warn!(error = %e, "could not start a schema worker process");
                self.lock().live -= 1;
                self.freed.notify_one();
            }
        }
    }
}

/// The error for a worker that died while evaluating, from its exit status
/// and the end of its stderr.
fn crash_error(status: Option<ExitStatus>, stderr: &str, limits: &Limits) -> SchemaError {
    const SIGSEGV: i32 = 11;
    const SIGBUS: i32 = 7;
    const SIGKILL: i32 = 9;
    const SIGXCPU: i32 = 24;
    let signal = status.and_then(|s| s.signal());
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return SchemaError::new(SchemaErrorKind::Memory, memory_message(limits));
    }
    if signal == Some(SIGXCPU) {
        return SchemaError::new(SchemaErrorKind::Timeout, timeout_message(limits));
    }
    let why = if stderr.contains("overflowed its stack") || matches!(signal, Some(SIGSEGV | SIGBUS))
    {
        "stack overflow: a value or an expression nested too deeply?".to_string()
    } else if signal == Some(SIGKILL) {
        "killed, out of memory?".to_string()
    } else {
        match status {
            Some(s) => format!("too deep? {s}"),
            None => "too deep?".to_string(),
        }
    };
    SchemaError::new(
        SchemaErrorKind::Crash,
        format!("the schema code crashed the evaluator ({why})"),
    )
}

/// What came back for a request.
enum Exchange {
    /// One line (without the newline).
    Answer(Vec<u8>),
    /// A line longer than [`MAX_ANSWER_BYTES`].
    TooLong,
    /// Nothing in time; the worker was killed.
    TimedOut,
    /// The worker closed its stdout: it died.
    Closed,
}

/// One worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// What was read from stdout past the last complete line.
    pending: Vec<u8>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    evaluations: u32,
}

impl Worker {
    /// Start `program` as a worker and wait for its greeting.
    fn spawn(program: &Path) -> Result<Worker, String> {
        let mut command = Command::new(program);
        command
            .arg(WORKER_ARG)
            // Nothing of the server's environment (secrets, database URLs)
            // reaches the evaluator. One malloc arena, and big blocks always
            // mapped and unmapped on their own, keep its address space
            // (which is limited) close to what it really uses.
            .env_clear()
            .env("MALLOC_ARENA_MAX", "1")
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Not in the server's process group: a Ctrl-C in the terminal
            // is the server's to handle; workers exit when it closes their stdin.
            .process_group(0);
        if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
            command.env("LD_LIBRARY_PATH", path);
        }
        let mut child = command.spawn().map_err(|e| {
            format!(
                "the schema sandbox could not start its worker program {}: {e}",
                program.display()
            )
        })?;
        let (Some(stdin), Some(stdout), Some(stderr_pipe)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the schema sandbox could not talk to its worker".into());
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr.clone();
        let stderr_reader = std::thread::Builder::new()
            .name("schema-worker-err".into())
            .spawn(move || keep_tail(stderr_pipe, &kept));
        let mut worker = Worker {
            child,
            stdin,
            stdout,
            pending: Vec::new(),
            stderr,
            stderr_reader: stderr_reader.ok(),
            evaluations: 0,
        };
        if worker.stderr_reader.is_none() {
            return Err("the schema sandbox could not start a thread".into());
        }
        let greeting = match worker.read_line(Instant::now() + HELLO_TIMEOUT) {
            Exchange::Answer(line) => serde_json::from_slice::<Hello>(&line).ok(),
            _ => None,
        };
        match greeting {
            Some(h) if h.kraken_schema_worker == VERSION => Ok(worker),
            Some(h) => Err(format!(
                "the schema worker program {} speaks version {} of the protocol, not {VERSION}",
                program.display(),
                h.kraken_schema_worker
            )),
            None => Err(format!(
                "{} did not start as a schema worker (a Kraken program calling \
                 kraken_core::schema::sandbox::run_worker_if_requested() first is needed)",
                program.display()
            )),
        }
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send one request and wait up to `wall` for its answer; a worker that
    /// does not answer in time is killed.
    fn exchange(&mut self, request: &[u8], wall: Duration) -> Exchange {
        if self
            .stdin
            .write_all(request)
            .and_then(|()| self.stdin.flush())
            .is_err()
        {
            return Exchange::Closed;
        }
        let answer = self.read_line(Instant::now() + wall);
        if matches!(answer, Exchange::TimedOut) {
            self.kill();
        }
        answer
    }

    /// The next line of the worker's stdout, read in this thread (no
    /// thread hand-over on the way), waiting with `poll` until `deadline`.
    fn read_line(&mut self, deadline: Instant) -> Exchange {
        let mut scanned = 0;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(end) = self.pending[scanned..].iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=scanned + end).collect();
                line.pop();
                return Exchange::Answer(line);
            }
            scanned = self.pending.len();
            if scanned > MAX_ANSWER_BYTES {
                return Exchange::TooLong;
            }
            let now = Instant::now();
            if now >= deadline {
                return Exchange::TimedOut;
            }
            let wait = PollTimeout::try_from(deadline - now).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.stdout.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => return Exchange::Closed,
            }
            match self.stdout.read(&mut chunk) {
                Ok(0) => return Exchange::Closed,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Exchange::Closed,
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// After the worker closed its stdout: its exit status and the end of
    /// its stderr.
    fn death(&mut self) -> (Option<ExitStatus>, String) {
        let until = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => {
                    self.kill();
                    break None;
                }
            }
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        (status, String::from_utf8_lossy(&stderr).into_owned())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keep the last [`STDERR_KEEP`] bytes of a worker's stderr.
fn keep_tail(mut stderr: impl Read, kept: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEEP {
                    let cut = kept.len() - STDERR_KEEP;
                    kept.drain(..cut);
                }
            }
        }
    }
}
