//! The schema sandbox against the attacks of issue 18: schema code that
//! overflowed the stack, allocated gigabytes or computed for half a minute
//! inside the server. Each runs through `kraken_core::schema` in worker
//! processes of `kraken-schema-worker` (this crate's worker program): the
//! evaluation fails with a clear message, in bounded time, and the next
//! evaluation works.
#![cfg(feature = "local")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kraken_core::schema::sandbox::{Mode, Sandbox};
use kraken_core::schema::{Limits, SchemaError, SchemaErrorKind, evaluate_in_process};
use serde_json::{Value, json};

fn worker_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kraken-schema-worker"))
}

fn sandbox() -> Sandbox {
    Sandbox::new(Mode::Workers {
        program: worker_program(),
        workers: 2,
    })
}

/// `stage(ctx)` running `body` (indented 4) before returning a small schema.
fn stage(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("def stage(ctx):\n{body}    return {{\"ok\": True}}\n")
}

const OK_CODE: &str = "def stage(ctx):\n    return {\"ok\": ctx.x}\n";

/// The sandbox still evaluates ordinary code.
#[track_caller]
fn still_works(s: &Sandbox) {
    assert_eq!(
        s.evaluate(OK_CODE, &json!({"x": 1}), &Limits::default()),
        Ok(json!({"ok": 1}))
    );
}

/// Evaluate, returning the error and how long it took.
#[track_caller]
fn fails(s: &Sandbox, code: &str, limits: &Limits) -> (SchemaError, Duration) {
    let start = Instant::now();
    match s.evaluate(code, &json!({}), limits) {
        Ok(v) => panic!("evaluation should fail, got {v}"),
        Err(e) => (e, start.elapsed()),
    }
}

/// VmHWM of this process in KiB: the parent must not grow with the attack.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn deeply_nested_code_is_refused_before_parsing_in_workers_and_in_process() {
    let s = sandbox();
    let attacks = [
        format!(
            "def stage(ctx):\n    return {{'a': {}1}}\n",
            "-".repeat(1000)
        ),
        format!(
            "def stage(ctx):\n    return {{'a': {}1{}}}\n",
            "[".repeat(700),
            "]".repeat(700)
        ),
        format!(
            "def stage(ctx):\n    return {{'a': {}1{}}}\n",
            "(".repeat(1000),
            ")".repeat(1000)
        ),
        // Big enough to overflow any stack, if it were parsed.
        format!("x = {}1{}\n", "[".repeat(200_000), "]".repeat(200_000)),
        format!("x = {}1\n", "not ".repeat(200_000)),
    ];
    for code in &attacks {
        let (e, _) = fails(&s, code, &Limits::default());
        assert_eq!(e.kind, SchemaErrorKind::Syntax, "{e}");
        assert!(e.message.contains("nests too deeply"), "{e}");
        assert!(e.line.is_some(), "{e}");
        let e = evaluate_in_process(code, &json!({}), &Limits::default()).unwrap_err();
        assert!(e.message.contains("nests too deeply"), "{e}");
    }
    still_works(&s);
}

#[test]
fn printing_a_value_nested_100000_levels_deep_is_an_error() {
    let s = sandbox();
    for print in [
        "str(l)",
        "repr(l)",
        "json.encode(l)",
        "'%s' % (l,)",
        "f'{l}'",
        "'{}'.format(l)",
    ] {
        let code = stage(&format!(
            "l = []\nfor i in range(100000):\n    l = [l]\nx = {print}"
        ));
        let (e, _) = fails(&s, &code, &Limits::default());
        assert_eq!(e.kind, SchemaErrorKind::Runtime, "{print}: {e}");
        assert!(
            e.message.contains("nests too deeply to be printed"),
            "{print}: {e}"
        );
        // The same in this process: no stack overflow either.
        let e = evaluate_in_process(&code, &json!({}), &Limits::default()).unwrap_err();
        assert!(
            e.message.contains("nests too deeply to be printed"),
            "{print}: {e}"
        );
    }
    still_works(&s);
}

#[test]
fn a_stack_overflow_kills_only_the_worker() {
    let s = sandbox();
    // Starlark quotes the whole dict in the error of `pop`: a value nested a
    // million levels deep overflows the worker's 64 MiB stack there.
    let code = stage("l = []\nfor i in range(1000000):\n    l = [l]\nd = {1: l}\nd.pop(2)");
    let limits = Limits {
        timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    let (e, _) = fails(&s, &code, &limits);
    assert_eq!(e.kind, SchemaErrorKind::Crash, "{e}");
    assert_eq!(
        e.to_string(),
        "compilation error: the schema code crashed the evaluator \
         (stack overflow: a value or an expression nested too deeply?)"
    );
    still_works(&s);
    still_works(&s);
}

#[test]
fn memory_is_limited_for_real() {
    let s = sandbox();
    let before = peak_rss_kib();
    for (what, body) in [
        (
            "replace",
            "s = (\"x\" * 30000).replace(\"x\", \"x\" * 30000)",
        ),
        (
            "extend",
            "l = [1] * 1000\nfor i in range(40):\n    l.extend(l)",
        ),
        ("+=", "l = [1] * 1000\nfor i in range(40):\n    l += l"),
        ("join", "s = \",\".join([\"x\" * 1000000] * 3000)"),
    ] {
        let start = Instant::now();
        let (e, _) = fails(&s, &stage(body), &Limits::default());
        assert_eq!(e.kind, SchemaErrorKind::Memory, "{what}: {e}");
        assert_eq!(
            e.to_string(),
            "compilation error: the schema code used more than the memory limit of 256 MiB",
            "{what}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            start.elapsed()
        );
        still_works(&s);
    }
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 100 * 1024, "this process grew by {grown} KiB");
}

#[test]
fn a_single_endless_computation_is_killed_at_the_deadline() {
    let s = sandbox();
    let limits = Limits {
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    // Squaring an integer of millions of bits is one step of the
    // interpreter that takes far longer than the time limit.
    let code = stage("x = (1 << 100000) - 1\nfor i in range(12):\n    x = x * x");
    let (e, took) = fails(&s, &code, &limits);
    assert_eq!(e.kind, SchemaErrorKind::Timeout, "{e}");
    assert_eq!(
        e.to_string(),
        "compilation error: the schema code ran longer than the time limit of 500 ms"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    still_works(&s);
}

#[test]
fn huge_results_are_refused_not_expanded() {
    let s = sandbox();
    // A million references to one list of a thousand strings: small on
    // the Starlark heap, a gigabyte as JSON.
    let code = "def stage(ctx):\n    l = [\"abc\"] * 1000\n    return {\"x\": [l] * 1000000}\n";
    let (e, _) = fails(&s, code, &Limits::default());
    assert_eq!(e.kind, SchemaErrorKind::Result, "{e}");
    assert!(e.message.contains("takes more than 32 MiB as JSON"), "{e}");
    let e = evaluate_in_process(code, &json!({}), &Limits::default()).unwrap_err();
    assert_eq!(e.kind, SchemaErrorKind::Result, "{e}");
    still_works(&s);
}

#[test]
fn workers_serve_concurrent_evaluations() {
    let s = sandbox();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    for j in 0..20 {
                        let got =
                            s.evaluate(OK_CODE, &json!({"x": i * 100 + j}), &Limits::default());
                        assert_eq!(got, Ok(json!({"ok": i * 100 + j})));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("evaluating thread");
        }
    });
}

#[test]
fn results_and_errors_are_those_of_the_interpreter() {
    let s = sandbox();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas");
    let ctx: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("ctx.json")).expect("ctx.json"))
            .expect("ctx.json is JSON");
    let code = std::fs::read_to_string(root.join("kraken-ci-own-schemas/build.py"))
        .expect("example schema");
    assert_eq!(
        s.evaluate(&code, &ctx, &Limits::default()),
        evaluate_in_process(&code, &ctx, &Limits::default())
    );
    for bad in [
        "def stage(ctx):\n    return {",
        "def stage(ctx):\n    return {'a': 1 + 'x'}\n",
    ] {
        let in_worker = s.evaluate(bad, &ctx, &Limits::default());
        assert!(in_worker.is_err());
        assert_eq!(
            in_worker,
            evaluate_in_process(bad, &ctx, &Limits::default())
        );
    }
}

#[test]
fn a_program_that_is_not_a_worker_is_reported() {
    for program in ["/bin/true", "/bin/cat", "/nonexistent/kraken-schema-worker"] {
        let s = Sandbox::new(Mode::Workers {
            program: PathBuf::from(program),
            workers: 1,
        });
        let start = Instant::now();
        let e = s
            .evaluate(OK_CODE, &json!({"x": 1}), &Limits::default())
            .unwrap_err();
        assert_eq!(e.kind, SchemaErrorKind::Unavailable, "{program}: {e}");
        assert!(e.message.contains(program), "{e}");
        assert!(start.elapsed() < Duration::from_secs(15), "{program}");
    }
}
