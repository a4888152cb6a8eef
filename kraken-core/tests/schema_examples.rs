//! The original's example stage schemas (Kraken workflow examples and
//! Kraken CI's own stages, under `tests/fixtures/schemas/`) evaluate with
//! Starlark to exactly what CPython produced for them (`<name>.json`, made by
//! `gen_expected.py` with the same `ctx.json`), and validate.
#![cfg(feature = "local")]

use std::path::{Path, PathBuf};

use kraken_core::schema::{Limits, WorkflowValidator, evaluate};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schemas")
}

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

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_example_evaluates_like_python_and_validates() {
    let root = fixtures();
    let ctx = read_json(&root.join("ctx.json"));
    let validator = WorkflowValidator::builtin().expect("embedded workflow schema compiles");
    let mut files = Vec::new();
    examples(&root, &mut files);
    assert_eq!(
        files.len(),
        39,
        "7 own schemas + 32 workflow examples are expected"
    );

    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let code = std::fs::read_to_string(file).expect("example is readable");
        let expected = read_json(&file.with_extension("json"));
        let got = match evaluate(&code, &ctx, &Limits::default()) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: evaluation failed: {e}"));
                continue;
            }
        };
        if got != expected {
            failures.push(format!(
                "{name}: differs from Python\n  rust:   {got}\n  python: {expected}"
            ));
            continue;
        }
        // Same keys in the same order (serde_json keeps insertion order).
        let (a, b) = (got.to_string(), expected.to_string());
        if a != b {
            failures.push(format!(
                "{name}: key order differs\n  rust:   {a}\n  python: {b}"
            ));
            continue;
        }
        if let Err(e) = validator.validate(&got) {
            failures.push(format!("{name}: does not validate: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
