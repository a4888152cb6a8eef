//! The layering of the workspace, checked on the sources: dependencies point
//! one way, front ends -> `api` -> `engine` -> `store`.
//!
//! * Nothing below the API (`engine`, `store`, `results`, `schema`, `view`,
//!   `model`, `events`, `mask`, `triggers`, `notify`) names `api`.
//! * The front ends (server, CLI, dashboard, bench) never reach the store or
//!   the engine directly: they go through `kraken_core::api`.
//! * One rustls crypto provider in the whole build, ring: aws-lc-rs (a long
//!   C build) is not in `Cargo.lock` at all (issue #17).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of the files under `paths` (relative to the workspace) that match
/// `bad`, outside comments and string literals that merely name a path.
fn offenders(paths: &[&str], bad: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for p in paths {
        let full = root.join(p);
        if full.is_file() {
            files.push(full);
        } else {
            rust_files(&full, &mut files);
        }
    }
    assert!(!files.is_empty(), "no sources found under {paths:?}");
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for b in bad {
                let ident = |c: char| c.is_alphanumeric() || c == '_';
                let hit = code.match_indices(b).any(|(i, _)| {
                    // `"kraken_core::engine::x"` is a tracing target, not a use;
                    // `Local` is that type, not `LocalFileSystem`.
                    let after = code[i + b.len()..].chars().next();
                    let whole = !b.ends_with(ident) || after.is_none_or(|c| !ident(c));
                    !code[..i].ends_with('"') && whole
                });
                if hit {
                    out.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    out
}

#[test]
fn nothing_below_the_api_imports_it() {
    let below = [
        "kraken-core/src/engine",
        "kraken-core/src/store",
        "kraken-core/src/results",
        "kraken-core/src/schema",
        "kraken-core/src/view.rs",
        "kraken-core/src/model.rs",
        "kraken-core/src/events.rs",
        "kraken-core/src/mask.rs",
        "kraken-core/src/triggers.rs",
        "kraken-core/src/storage.rs",
        "kraken-core/src/notify",
    ];
    let bad = offenders(&below, &["crate::api", "super::api", "Local", "Principal"]);
    assert!(
        bad.is_empty(),
        "these import the API layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_engine_does_not_act_for_a_caller() {
    let bad = offenders(
        &["kraken-core/src/engine"],
        &["local_admin", "kraken_for", "who."],
    );
    assert!(
        bad.is_empty(),
        "the engine acts for a caller:\n{}",
        bad.join("\n")
    );
}

#[test]
fn front_ends_go_through_the_api() {
    let front = [
        "kraken-server/src",
        "kraken-cli/src",
        "kraken-tui/src",
        "kraken-bench/src",
    ];
    let bad = offenders(
        &front,
        &[
            "kraken_core::store",
            "kraken_core::engine",
            "kraken_core::results",
            ".store()",
        ],
    );
    assert!(
        bad.is_empty(),
        "front ends reaching below the API:\n{}",
        bad.join("\n")
    );
}

/// `Cargo.lock` holds every package any feature of the workspace can build:
/// no aws-lc, and one version of ring.
#[test]
fn ring_is_the_one_tls_provider() {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(&lock).expect("read Cargo.lock");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(
        names.len() > 100,
        "no packages read from {}",
        lock.display()
    );
    let aws_lc: Vec<&&str> = names.iter().filter(|n| n.starts_with("aws-lc")).collect();
    assert!(
        aws_lc.is_empty(),
        "{aws_lc:?} in Cargo.lock: a feature brings rustls' aws-lc-rs provider back \
         (reqwest \"rustls\", sqlx \"tls-rustls-aws-lc-rs\", lettre \"aws-lc-rs\", \
         object_store \"aws\"); use the ring ones (see the workspace Cargo.toml)"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "ring").count(),
        1,
        "one version of ring"
    );
}
