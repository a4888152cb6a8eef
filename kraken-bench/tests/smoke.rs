//! The whole benchmark at smoke sizes against a freshly spawned server, and
//! the exit codes of usage and connection errors. No speed is asserted.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kraken-bench"))
}

/// `kraken-server` from the same target directory as this test's binary.
fn server_bin() -> Option<PathBuf> {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_kraken-bench"));
    let server = bench.with_file_name(format!("kraken-server{}", std::env::consts::EXE_SUFFIX));
    server.is_file().then_some(server)
}

#[test]
fn smoke_run_against_a_spawned_server_prints_every_workload() {
    let Some(server) = server_bin() else {
        eprintln!(
            "skipped: no kraken-server next to kraken-bench; build it first (cargo build --workspace --bins)"
        );
        return;
    };
    let out = bench()
        .args(["--spawn-server", "--smoke", "--json", "--server-bin"])
        .arg(&server)
        .output()
        .expect("run kraken-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kraken-bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(report["ok"], true, "{stdout}");
    assert_eq!(report["spawned"], true);
    let figures = report["figures"].as_array().expect("figures");
    for w in [
        "reads",
        "create",
        "aged",
        "e2e",
        "throughput",
        "agents",
        "results",
        "logs",
        "memory",
    ] {
        assert!(
            figures.iter().any(|f| f["workload"] == w),
            "no figure for {w}: {stdout}"
        );
    }
    for f in figures {
        assert!(f["value"].is_number(), "{f}");
    }
    let errors = figures
        .iter()
        .find(|f| f["workload"] == "agents" && f["metric"] == "HTTP errors")
        .expect("agents errors figure");
    assert_eq!(errors["value"], 0.0);
}

#[test]
fn the_table_names_every_figure() {
    let Some(server) = server_bin() else {
        eprintln!("skipped: no kraken-server next to kraken-bench");
        return;
    };
    let out = bench()
        .args([
            "--spawn-server",
            "--smoke",
            "--only",
            "reads",
            "--server-bin",
        ])
        .arg(&server)
        .output()
        .expect("run kraken-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for needle in [
        "GET /api/version throughput",
        "GET /api/projects latency p99",
        "GET /api/branches/{id}/flows/ci latency p50",
        "RSS idle",
        "result: ok",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
}

#[test]
fn plain_api_works_without_the_servers_extensions() {
    let Some(server) = server_bin() else {
        eprintln!("skipped: no kraken-server next to kraken-bench");
        return;
    };
    let out = bench()
        .args([
            "--spawn-server",
            "--smoke",
            "--plain-api",
            "--only",
            "e2e,agents,results",
            "--server-bin",
        ])
        .arg(&server)
        .output()
        .expect("run kraken-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("plain API"), "{stdout}");
    assert!(
        stdout.contains("by polling GET /api/jobs/{id}/logs"),
        "{stdout}"
    );
    assert!(stdout.contains("no long-poll"), "{stdout}");
}

#[test]
fn an_unreachable_server_exits_2_with_one_line() {
    let out = bench()
        .args(["--server", "http://127.0.0.1:1", "--smoke"])
        .output()
        .expect("run kraken-bench");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:1"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--only", "nope"][..],
        &["--server", "localhost"],
        &["--connections", "0"],
    ] {
        let out = bench().args(args).output().expect("run kraken-bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
