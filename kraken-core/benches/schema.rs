//! Time to evaluate and to validate each reference stage schema.
//!
//! `cargo bench -p kraken-core --bench schema` prints, per example, the mean
//! time of `schema::evaluate` (parse, rewrite, run the top level, call
//! `stage(ctx)`, convert to JSON) and of `WorkflowValidator::validate`, after
//! a warm-up. Set `SCHEMA_BENCH_MS` to change the time spent per measurement
//! (default 200 ms).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kraken_core::schema::{Limits, WorkflowValidator, evaluate};
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

    let mut files = Vec::new();
    examples(&root, &mut files);
    println!();
    println!(
        "{:<52} {:>14} {:>14} {:>8}",
        "example", "evaluate µs", "validate µs", "runs"
    );
    println!("{}", "-".repeat(91));
    let mut evals = Vec::new();
    let mut vals = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let code = std::fs::read_to_string(file).expect("example is readable");
        let schema = evaluate(&code, &ctx, &limits).expect("example evaluates");
        validator.validate(&schema).expect("example validates");
        let (eval_t, n) = mean(budget, || {
            black_box(evaluate(black_box(&code), &ctx, &limits).ok());
        });
        let (val_t, _) = mean(budget, || {
            black_box(validator.validate(black_box(&schema)).ok());
        });
        println!(
            "{:<52} {:>14} {:>14} {:>8}",
            name,
            micros(eval_t),
            micros(val_t),
            n
        );
        evals.push(eval_t);
        vals.push(val_t);
    }
    evals.sort();
    vals.sort();
    let avg = |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(1);
    println!("{}", "-".repeat(91));
    println!(
        "{:<52} {:>14} {:>14}",
        "mean over examples",
        micros(avg(&evals)),
        micros(avg(&vals))
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "median",
        micros(evals[evals.len() / 2]),
        micros(vals[vals.len() / 2])
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "slowest",
        micros(evals[evals.len() - 1]),
        micros(vals[vals.len() - 1])
    );
}
