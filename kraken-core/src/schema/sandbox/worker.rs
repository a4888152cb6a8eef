//! The worker side: a process that evaluates schema code under operating
//! system limits and answers on stdout (see [`super::protocol`]).

use std::io::{self, BufRead, BufWriter, Write};

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::time::TimeValLike;

use super::protocol::{Answer, Hello, MAX_ANSWER_BYTES, Request, VERSION};
use crate::schema::eval::{EVAL_STACK_BYTES, evaluate_in_process};
use crate::schema::{Limits, SchemaError, SchemaErrorKind};

/// Address space allowed on top of the worker's own size and twice the
/// heap limit: room for the result, its JSON text and the interpreter's
/// temporary copies.
const ADDRESS_SPACE_MARGIN: u64 = 256 * 1024 * 1024;

/// CPU seconds allowed on top of the time limit (the parent's wall-clock
/// deadline normally stops the worker first).
const CPU_MARGIN_SECS: u64 = 2;

/// Run the worker until stdin closes; the process's exit code.
pub(super) fn main() -> i32 {
    // A panic inside the interpreter is caught and answered as an error;
    // stderr is kept for what kills the process (stack overflow, failed
    // allocation), which the parent reads to say what happened.
    std::panic::set_hook(Box::new(|_| {}));
    // An abort must not leave a core file behind.
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    // The evaluations run on one thread with the stack the interpreter
    // wants, reserved now, before the address space is limited.
    let serving = std::thread::Builder::new()
        .name("schema-worker".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(serve);
    match serving {
        Ok(t) => t.join().unwrap_or(70),
        Err(_) => 71,
    }
}

/// Greet, then answer requests until stdin closes.
fn serve() -> i32 {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let hello = Hello {
        kraken_schema_worker: VERSION,
    };
    if write_line(&mut out, &hello).is_err() {
        return 0;
    }
    let mut line = String::new();
    // The heap limit the address space was last limited for.
    let mut limited_for = None;
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let result = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let limits = Limits::from(request.limits);
                set_limits(&limits, &mut limited_for);
                evaluate_in_process(&request.code, &request.ctx, &limits)
            }
            Err(e) => Err(SchemaError::new(
                SchemaErrorKind::Unavailable,
                format!("the schema worker could not read its request: {e}"),
            )),
        };
        let mut answer = serde_json::to_vec(&Answer::from(result)).unwrap_or_default();
        if answer.len() > MAX_ANSWER_BYTES || answer.is_empty() {
            let e = SchemaError::new(
                SchemaErrorKind::Result,
                format!(
                    "the value returned by stage(ctx) is larger than {} MiB as JSON",
                    MAX_ANSWER_BYTES / (1024 * 1024)
                ),
            );
            answer = serde_json::to_vec(&Answer::from(Err(e))).unwrap_or_default();
        }
        answer.push(b'\n');
        if out.write_all(&answer).and_then(|()| out.flush()).is_err() {
            return 0;
        }
    }
}

fn write_line<T: serde::Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Limit this process for the next evaluation: CPU time to what it used so
/// far plus the time limit, address space to its size plus twice the heap
/// limit (measured when the heap limit first comes or changes: reading
/// `/proc` on every request would cost more than a typical evaluation;
/// the parent replaces a worker after 1,000 evaluations anyway). Crossing
/// either kills the process (SIGXCPU, or an allocation that fails and
/// aborts), which the parent reports as the evaluation's error.
fn set_limits(limits: &Limits, limited_for: &mut Option<usize>) {
    if let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) {
        let used = usage.user_time().num_seconds() + usage.system_time().num_seconds();
        let used = u64::try_from(used).unwrap_or(0);
        let budget = limits.timeout.as_secs() + 1 + CPU_MARGIN_SECS;
        set_soft_limit(Resource::RLIMIT_CPU, used.saturating_add(budget));
    }
    if *limited_for == Some(limits.max_heap_bytes) {
        return;
    }
    if let Some(size) = address_space_bytes() {
        *limited_for = Some(limits.max_heap_bytes);
        let heap = u64::try_from(limits.max_heap_bytes).unwrap_or(u64::MAX);
        let allowed = size
            .saturating_add(heap.saturating_mul(2))
            .saturating_add(ADDRESS_SPACE_MARGIN);
        set_soft_limit(Resource::RLIMIT_AS, allowed);
    }
}

/// Set the soft limit of `resource` (never above its hard limit).
fn set_soft_limit(resource: Resource, soft: u64) {
    if let Ok((_, hard)) = getrlimit(resource) {
        let _ = setrlimit(resource, soft.min(hard), hard);
    }
}

/// The process's virtual size (`VmSize` of `/proc/self/status`); `None`
/// where there is no such file (the address space is then not limited).
fn address_space_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line
        .trim_start_matches("VmSize:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}
