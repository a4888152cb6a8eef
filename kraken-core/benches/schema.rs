//! Time to evaluate and to validate each reference stage schema.
//!
//! `cargo bench -p kraken-core --bench schema` prints, per example, the mean
//! time of an evaluation in process (a `Sandbox` in `Mode::InProcess`:
//! nesting check, parse, rewrite, run the top level, call `stage(ctx)`,
//! convert to JSON), of the same in a worker process of the schema sandbox
//! (what the servers do: send code and ctx, evaluate, read the schema
//! back), and of
//! `WorkflowValidator::validate`, after a warm-up. Set `SCHEMA_BENCH_MS` to
//! change the time spent per measurement (default 200 ms).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kraken_core::schema::sandbox::{DEFAULT_WORKERS, Mode, Sandbox};
use kraken_core::schema::{Limits, WorkflowValidator, evaluate_in_process};
use serde_json::Value;

fn examples(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            examples(&p, out);
        } else if p.extension().is_some_and(|x| x == "py")
            && p.file_name().is_some_and(|n| n != "gen_expected.py")
        {
            out.push(p);
        }
    }
}

/// Mean duration of `f` over as many runs as fit in `budget` (at least 10),
/// after 10 warm-up runs.
fn mean(budget: Duration, mut f: impl FnMut()) -> (Duration, u32) {
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while n < 10 || start.elapsed() < budget {
        f();
        n += 1;
    }
    (start.elapsed() / n, n)
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("SCHEMA_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas");
    let ctx: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("ctx.json")).expect("ctx.json is readable"),
    )
    .expect("ctx.json is JSON");
    let limits = Limits::default();

    let build = Instant::now();
    let validator = WorkflowValidator::builtin().expect("embedded workflow schema compiles");
    println!(
        "building the WorkflowValidator (once): {} µs",
        micros(build.elapsed())
    );

    let local = Sandbox::new(Mode::InProcess);
    let sandbox = Sandbox::new(Mode::Workers {
        program: PathBuf::from(env!("CARGO_BIN_EXE_kraken-schema-worker")),
        workers: DEFAULT_WORKERS,
    });
    let start = Instant::now();
    sandbox.warm_up().expect("a schema worker starts");
    println!(
        "starting a schema worker process (once): {} µs",
        micros(start.elapsed())
    );

    let mut files = Vec::new();
    examples(&root, &mut files);
    println!();
    println!(
        "{:<52} {:>12} {:>12} {:>12} {:>7}",
        "example", "in process", "in worker", "validate", "runs"
    );
    println!("{}", "-".repeat(99));
    let mut evals = Vec::new();
    let mut workers = Vec::new();
    let mut vals = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let code = std::fs::read_to_string(file).expect("example is readable");
        let schema = evaluate_in_process(&code, &ctx, &limits).expect("example evaluates");
        assert_eq!(
            sandbox.evaluate(&code, &ctx, &limits).as_ref(),
            Ok(&schema),
            "{name} evaluates the same in a worker"
        );
        validator.validate(&schema).expect("example validates");
        let (eval_t, n) = mean(budget, || {
            black_box(local.evaluate(black_box(&code), &ctx, &limits).ok());
        });
        let (worker_t, _) = mean(budget, || {
            black_box(sandbox.evaluate(black_box(&code), &ctx, &limits).ok());
        });
        let (val_t, _) = mean(budget, || {
            black_box(validator.validate(black_box(&schema)).ok());
        });
        println!(
            "{:<52} {:>12} {:>12} {:>12} {:>7}",
            name,
            micros(eval_t),
            micros(worker_t),
            micros(val_t),
            n
        );
        evals.push(eval_t);
        workers.push(worker_t);
        vals.push(val_t);
    }
    evals.sort();
    workers.sort();
    vals.sort();
    let avg = |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(1);
    println!("{}", "-".repeat(99));
    println!(
        "{:<52} {:>12} {:>12} {:>12}",
        "mean over examples",
        micros(avg(&evals)),
        micros(avg(&workers)),
        micros(avg(&vals))
    );
    println!(
        "{:<52} {:>12} {:>12} {:>12}",
        "median",
        micros(evals[evals.len() / 2]),
        micros(workers[workers.len() / 2]),
        micros(vals[vals.len() / 2])
    );
    println!(
        "{:<52} {:>12} {:>12} {:>12}",
        "slowest",
        micros(evals[evals.len() - 1]),
        micros(workers[workers.len() - 1]),
        micros(vals[vals.len() - 1])
    );
}
