//! The `kraken-server` binary: options, start, answer, stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn help_lists_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_kraken-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--bind",
        "--data-dir",
        "--db-url",
        "--log-level",
        "--agents",
        "--udp-bind",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help:\n{text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_kraken-server"))
        .arg("--db-url")
        .arg("mysql://x")
        .arg("--bind")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

#[test]
fn starts_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kraken-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--agents",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the server says where it listens")
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The server is another process: this one installs its own provider.
        let http = kraken_tests::http();
        // Without a token: a JSON error.
        let r = http.get(format!("{url}/api/version")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], 401);
        // The server's own log lines are kept as services logs.
        let login: serde_json::Value = http
            .post(format!("{url}/api/sessions"))
            .json(&serde_json::json!({"user": "admin", "password": "admin"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap().to_string();
        let t0 = Instant::now();
        loop {
            let logs: serde_json::Value = http
                .get(format!("{url}/api/services-logs?services=server"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let found = logs["items"].as_array().is_some_and(|i| {
                i.iter().any(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("kraken server listening"))
                })
            });
            if found {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no services log line: {logs}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(
        dir.path().join("kraken.db").exists(),
        "the embedded database is in the data dir"
    );

    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
