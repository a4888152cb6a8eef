//! Running commands for the step tools.
//!
//! Every command runs in its own process group with stdin from `/dev/null`
//! and stdout and stderr on one pipe, so its output lines reach
//! [`StepRun::output`](super::StepRun::output) in exactly the order the
//! process wrote them (like `2>&1`, and like the original agent, which sent
//! stderr to stdout). Lines are sent as they come; a line longer than
//! [`MAX_LINE`] bytes is sent in pieces, invalid UTF-8 is replaced by `�`
//! and a last line without a newline is still sent.
//!
//! A command stops at its step timeout, at the job deadline or when the job
//! is canceled: its whole group gets `SIGTERM`, then `SIGKILL` after
//! [`TERM_GRACE`], so grandchildren die too. Output still in the pipe is
//! read for a short while and then dropped, so nothing hangs on a process
//! that escaped the group.
//!
//! When a command exits normally but left processes of its group running
//! (`cmd: "server &"`), the step ends anyway; the group is registered in
//! [`BackgroundProcs`] so the agent kills it at the end of the job (the
//! original agent, too, left such processes running until the job ended),
//! and their output keeps flowing to the step's output channel for as long
//! as someone else holds a sender of it.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout_at};

use super::BackgroundProcs;

/// The longest line sent as one piece (bytes); longer lines are split.
pub const MAX_LINE: usize = 64 * 1024;
/// Time between `SIGTERM` and `SIGKILL` when a command is stopped.
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// After a stop, how long output still in the pipe is read.
const FINAL_DRAIN: Duration = Duration::from_millis(500);
/// After a normal exit, output is read until the pipe closes or stays quiet
/// this long (processes left in the background may keep it open).
const IDLE_DRAIN: Duration = Duration::from_millis(200);
/// After a normal exit, output is read at most this long.
const MAX_DRAIN: Duration = Duration::from_secs(5);
/// Lines read ahead of a slow output consumer.
const MAX_PENDING: usize = 1024;
/// The replacement of secrets in logged command lines and output.
pub use crate::mask::MASK;

/// A command to run.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    /// Program (a path, or a name looked up in `PATH`).
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Environment added to the agent's own.
    pub env: Vec<(String, String)>,
    /// Strings replaced by [`MASK`] in the output (secrets).
    pub mask: Vec<String>,
}

impl Cmd {
    /// A command `program args...` in `cwd`.
    pub fn new(program: impl Into<String>, cwd: &Path) -> Self {
        Cmd {
            program: program.into(),
            cwd: cwd.to_path_buf(),
            ..Cmd::default()
        }
    }

    /// Add an argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// The command line for logs, secrets masked.
    pub fn display(&self) -> String {
        let mut s = shell_quote(&self.program);
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        mask_secrets(&s, &self.mask)
    }
}

/// When a command must stop.
#[derive(Debug, Clone)]
pub struct Limits {
    /// End of the step's own timeout, if it has one.
    pub step_end: Option<Instant>,
    /// The step's timeout in seconds, for messages.
    pub timeout_secs: Option<u64>,
    /// The job's deadline.
    pub deadline: Instant,
    /// Turns `true` when the job is canceled.
    pub cancel: watch::Receiver<bool>,
}

/// Why a command or a guarded operation stopped before finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The step's timeout passed.
    StepTimeout,
    /// The job's deadline passed.
    JobTimeout,
    /// The job was canceled.
    Canceled,
}

impl Limits {
    /// Wait until one of the limits is reached.
    pub async fn reached(&mut self) -> Stop {
        let step_end = self.step_end;
        tokio::select! {
            biased;
            () = canceled(&mut self.cancel) => Stop::Canceled,
            () = sleep_until(self.deadline) => Stop::JobTimeout,
            () = sleep_until_opt(step_end) => Stop::StepTimeout,
        }
    }

    /// A limit already reached, if any.
    pub fn check(&self) -> Option<Stop> {
        let now = Instant::now();
        if *self.cancel.borrow() {
            Some(Stop::Canceled)
        } else if now >= self.deadline {
            Some(Stop::JobTimeout)
        } else if self.step_end.is_some_and(|e| now >= e) {
            Some(Stop::StepTimeout)
        } else {
            None
        }
    }

    /// Run `fut` unless a limit is reached first.
    pub async fn guard<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        if let Some(stop) = self.check() {
            return Err(stop);
        }
        tokio::select! {
            biased;
            stop = self.reached() => Err(stop),
            v = fut => Ok(v),
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited by itself: its exit code, or minus the number of the
    /// signal that killed it (as Python's `returncode`).
    Code(i64),
    /// It was stopped (and its group killed).
    Stopped(Stop),
}

/// Resolve when `cancel` becomes `true`; never when its sender is gone.
async fn canceled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending::<()>().await,
    }
}

/// Quote `s` for a POSIX shell when it needs it (for logs).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub use crate::mask::mask_secrets;

/// Send a signal to a whole process group; a group that is gone is fine.
pub fn kill_group(pgid: i32, sig: Signal) {
    // Never signal our own group (0) or init's (1) by mistake.
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

/// Whether any process (possibly a zombie) is still in the group.
fn group_exists(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

/// A file removed when dropped (scripts, keys, reports of a step).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Create `dir/<prefix><unique><suffix>` with `content`, readable and
    /// writable only by the owner.
    pub fn create(
        dir: &Path,
        prefix: &str,
        suffix: &str,
        content: &[u8],
    ) -> Result<TempFile, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::unique_path(dir, prefix, suffix);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let file = TempFile { path };
        f.write_all(content)
            .map_err(|e| format!("cannot write {}: {e}", file.path.display()))?;
        Ok(file)
    }

    /// Reserve a unique path `dir/<prefix><unique><suffix>` that is removed
    /// on drop if something creates it.
    pub fn reserve(dir: &Path, prefix: &str, suffix: &str) -> TempFile {
        TempFile {
            path: Self::unique_path(dir, prefix, suffix),
        }
    }

    fn unique_path(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        dir.join(format!(
            "{prefix}{}-{n}-{nanos:08x}{suffix}",
            std::process::id()
        ))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Splits bytes into lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` known to hold no newline.
    scanned: usize,
    mask: Vec<String>,
}

impl LineSplitter {
    /// A splitter masking the given secrets.
    pub fn new(mask: Vec<String>) -> Self {
        LineSplitter {
            mask,
            ..LineSplitter::default()
        }
    }

    /// Take `data`; complete lines (and pieces of over-long ones) go to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut VecDeque<String>) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let from = start.max(self.scanned);
            let len = self.buf.len();
            let nl = self.buf[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| from + i);
            match nl {
                Some(end) if end - start <= MAX_LINE => {
                    let line = &self.buf[start..end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    out.push_back(self.text(line));
                    start = end + 1;
                    self.scanned = start;
                }
                None if len - start < MAX_LINE => {
                    self.scanned = len;
                    break;
                }
                _ => {
                    // Too long: send a piece; the bytes up to the newline
                    // (or the end) are known to hold none.
                    let cut = utf8_cut(&self.buf[start..], MAX_LINE);
                    out.push_back(self.text(&self.buf[start..start + cut]));
                    start += cut;
                    self.scanned = nl.unwrap_or(len);
                }
            }
        }
        self.buf.drain(..start);
        self.scanned -= start;
    }

    /// The rest, a last line without a newline.
    pub fn finish(&mut self, out: &mut VecDeque<String>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            out.push_back(self.text(line));
        }
        self.scanned = 0;
    }

    fn text(&self, bytes: &[u8]) -> String {
        mask_secrets(&String::from_utf8_lossy(bytes), &self.mask)
    }
}

/// Where to cut `b` (longer than `max`) so that the first piece is at most
/// `max` bytes and, when possible, no UTF-8 character is split.
fn utf8_cut(b: &[u8], max: usize) -> usize {
    let mut cut = max;
    // Continuation bytes are 0b10xx_xxxx; a character is at most 4 bytes.
    while cut > max - 3 && b.get(cut).is_some_and(|&c| c & 0xC0 == 0x80) {
        cut -= 1;
    }
    if b.get(cut).is_some_and(|&c| c & 0xC0 == 0x80) {
        max
    } else {
        cut
    }
}

/// Reads a command's output pipe and forwards its lines.
struct Pump {
    reader: pipe::Receiver,
    splitter: LineSplitter,
    pending: VecDeque<String>,
    output: mpsc::WeakSender<String>,
    buf: Vec<u8>,
    eof: bool,
    /// The output channel is closed: lines are dropped.
    out_closed: bool,
}

enum PumpEvent {
    Read(std::io::Result<usize>),
    Sent(bool),
}

impl Pump {
    fn new(reader: pipe::Receiver, output: mpsc::WeakSender<String>, mask: Vec<String>) -> Self {
        Pump {
            reader,
            splitter: LineSplitter::new(mask),
            pending: VecDeque::new(),
            output,
            buf: vec![0; 64 * 1024],
            eof: false,
            out_closed: false,
        }
    }

    /// All output read and forwarded.
    fn done(&self) -> bool {
        self.eof && self.pending.is_empty()
    }

    /// Read more output or send a line; pends forever when there is nothing to do.
    async fn step(&mut self) {
        if self.out_closed {
            self.pending.clear();
        }
        let can_read = !self.eof && self.pending.len() < MAX_PENDING;
        let sender = if self.pending.is_empty() {
            None
        } else {
            let s = self.output.upgrade();
            if s.is_none() {
                self.out_closed = true;
                self.pending.clear();
            }
            s
        };
        let ev = {
            let Pump { reader, buf, .. } = self;
            tokio::select! {
                r = reader.read(buf), if can_read => PumpEvent::Read(r),
                p = reserve(sender.as_ref()), if sender.is_some() => match p {
                    Some(permit) => {
                        if let Some(line) = self.pending.pop_front() {
                            permit.send(line);
                        }
                        PumpEvent::Sent(true)
                    }
                    None => PumpEvent::Sent(false),
                },
                else => std::future::pending().await,
            }
        };
        match ev {
            PumpEvent::Read(Ok(0)) | PumpEvent::Read(Err(_)) => {
                self.eof = true;
                self.splitter.finish(&mut self.pending);
            }
            PumpEvent::Read(Ok(n)) => {
                self.splitter.push(&self.buf[..n], &mut self.pending);
            }
            PumpEvent::Sent(true) => {
                // Send what fits in the channel without waiting.
                if let Some(tx) = &sender {
                    while let Some(line) = self.pending.pop_front() {
                        match tx.try_send(line) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(line)) => {
                                self.pending.push_front(line);
                                break;
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                self.out_closed = true;
                                self.pending.clear();
                            }
                        }
                    }
                }
            }
            PumpEvent::Sent(false) => {
                self.out_closed = true;
                self.pending.clear();
            }
        }
    }

    /// Send what was read so far, including a partial last line, waiting
    /// at most until `until` for a slow consumer.
    async fn flush(&mut self, until: Instant) {
        self.splitter.finish(&mut self.pending);
        if let Some(tx) = self.output.upgrade() {
            while let Some(line) = self.pending.pop_front() {
                match timeout_at(until, tx.send(line)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
        self.pending.clear();
    }

    /// Keep forwarding output in a task of its own until the pipe closes
    /// or `until`.
    fn detach(mut self, until: Instant) {
        tokio::spawn(async move {
            let _ = timeout_at(until, async {
                while !self.done() {
                    self.step().await;
                }
            })
            .await;
        });
    }
}

async fn reserve(tx: Option<&mpsc::Sender<String>>) -> Option<mpsc::Permit<'_, String>> {
    match tx {
        Some(tx) => tx.reserve().await.ok(),
        None => None,
    }
}

/// Start `cmd` in a new process group with its output on one pipe.
fn spawn(cmd: &Cmd) -> Result<(tokio::process::Child, i32, pipe::Receiver), String> {
    let what = || format!("cannot run '{}'", cmd.program);
    let (reader, writer) = std::io::pipe().map_err(|e| format!("{}: pipe: {e}", what()))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("{}: pipe: {e}", what()))?;
    let child = {
        // The command holds the pipe's write ends: it must be dropped right
        // after the spawn, or the pipe never reports the end of the output.
        let mut c = tokio::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .current_dir(&cmd.cwd)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2))
            .process_group(0)
            .kill_on_drop(false);
        c.spawn()
    }
    .map_err(|e| format!("{} in {}: {e}", what(), cmd.cwd.display()))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| format!("{}: the process has no id", what()))?;
    let reader = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| format!("{}: pipe: {e}", what()))?;
    Ok((child, pgid, reader))
}

fn exit_code(st: ExitStatus) -> i64 {
    match (st.code(), st.signal()) {
        (Some(c), _) => i64::from(c),
        (None, Some(s)) => -i64::from(s),
        (None, None) => -1,
    }
}

/// Run `cmd` to its end or until a limit of `limits`, streaming its output
/// lines to `output`. Processes it leaves running after a normal exit are
/// registered in `background` (see the module docs).
///
/// Errors are failures to start the command, with a message saying so.
pub async fn run(
    cmd: &Cmd,
    limits: &Limits,
    output: &mpsc::Sender<String>,
    background: &BackgroundProcs,
) -> Result<Exit, String> {
    let mut limits = limits.clone();
    if let Some(stop) = limits.check() {
        return Ok(Exit::Stopped(stop));
    }
    let (mut child, pgid, reader) = spawn(cmd)?;
    let mut pump = Pump::new(reader, output.downgrade(), cmd.mask.clone());

    // Phase 1: until the process exits or a limit is reached.
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let stop = {
        let reached = limits.reached();
        let wait = child.wait();
        tokio::pin!(reached, wait);
        loop {
            tokio::select! {
                biased;
                stop = &mut reached => break Some(stop),
                st = &mut wait => {
                    status = Some(st);
                    break None;
                }
                () = pump.step() => {}
            }
        }
    };

    let Some(stop) = stop else {
        // Phase 2a: a normal exit; read what is left in the pipe until it
        // closes or stays quiet (time spent waiting for a slow consumer
        // does not count), at most MAX_DRAIN.
        let cap = Instant::now() + MAX_DRAIN;
        let mut last = Instant::now();
        while !pump.done() {
            let idle_end = pump.pending.is_empty().then(|| last + IDLE_DRAIN);
            tokio::select! {
                biased;
                () = sleep_until(cap) => break,
                () = sleep_until_opt(idle_end) => break,
                () = pump.step() => last = Instant::now(),
            }
        }
        let code = match status {
            Some(Ok(st)) => exit_code(st),
            Some(Err(e)) => return Err(format!("waiting for '{}' failed: {e}", cmd.program)),
            None => -1,
        };
        if group_exists(pgid) {
            background.register(pgid);
        }
        if !pump.done() {
            // Processes left running hold the pipe (or the consumer is
            // slow): the rest of the output follows from a task of its own.
            pump.detach(limits.deadline);
        }
        return Ok(Exit::Code(code));
    };

    // Phase 2b: stopped; SIGTERM the group, SIGKILL after the grace time.
    kill_group(pgid, Signal::SIGTERM);
    let grace_end = Instant::now() + TERM_GRACE;
    let mut exited = false;
    while !exited {
        tokio::select! {
            biased;
            _ = child.wait() => exited = true,
            () = sleep_until(grace_end) => break,
            () = pump.step() => {}
        }
    }
    // Grandchildren that survived SIGTERM (or ignore it) die now.
    kill_group(pgid, Signal::SIGKILL);
    if !exited {
        let _ = timeout_at(Instant::now() + TERM_GRACE, child.wait()).await;
    }
    let drain_end = Instant::now() + FINAL_DRAIN;
    while !pump.done() {
        tokio::select! {
            biased;
            () = sleep_until(drain_end) => break,
            () = pump.step() => {}
        }
    }
    pump.flush(Instant::now() + FINAL_DRAIN).await;
    Ok(Exit::Stopped(stop))
}

/// Start `cmd` in the background: its group is registered in `background`
/// (the agent kills it when the job ends) and its output goes to `output`
/// while someone holds a sender of it, at most until `until`. `keep` (a
/// script file, say) is dropped when the process exits. Returns the group id.
pub fn spawn_background(
    cmd: &Cmd,
    output: &mpsc::Sender<String>,
    background: &BackgroundProcs,
    until: Instant,
    keep: Vec<TempFile>,
) -> Result<i32, String> {
    let (mut child, pgid, reader) = spawn(cmd)?;
    background.register(pgid);
    let pump = Pump::new(reader, output.downgrade(), cmd.mask.clone());
    pump.detach(until);
    tokio::spawn(async move {
        // Reap the process; then the script it ran can go.
        let _ = child.wait().await;
        drop(keep);
    });
    Ok(pgid)
}

/// Look `name` up in `path` (a `PATH` value); `name` with a `/` is taken as is.
pub fn find_in_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exe(&p).then_some(p);
    }
    std::env::split_paths(path?)
        .map(|d| d.join(name))
        .find(|p| is_exe(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(vec!["s3cret".into()]);
        let mut out = VecDeque::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out.into()
    }

    #[test]
    fn lines_are_split_across_chunks() {
        assert_eq!(
            split(&[b"a\nb", b"c\r\n", b"\nlast"]),
            vec!["a", "bc", "", "last"]
        );
        assert_eq!(split(&[b"x\n"]), vec!["x"]);
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn secrets_are_masked_and_bad_utf8_replaced() {
        assert_eq!(
            split(&[b"token=s3cret ok\n", b"\xff\xfe\n"]),
            vec!["token=****** ok", "\u{fffd}\u{fffd}"]
        );
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        // 'é' is 2 bytes: 40000 of them are 80000 bytes.
        let long = "é".repeat(40_000);
        let mut data = long.clone().into_bytes();
        data.push(b'\n');
        let out = split(&[&data[..1000], &data[1000..]]);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|l| l.len() <= MAX_LINE));
        assert!(!out.concat().contains('\u{fffd}'));
        assert_eq!(out.concat(), long);
    }

    #[test]
    fn quoting_for_logs() {
        assert_eq!(shell_quote("git"), "git");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
