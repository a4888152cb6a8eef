//! The binary's contract: a clear one-line error and exit code 2 when
//! there is nothing to connect to or no terminal.

use std::process::{Command, Stdio};

fn tui(args: &[&str], config_dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kraken-tui"))
        .args(args)
        .env_remove("KRAKEN_SERVER")
        .env_remove("KRAKEN_TOKEN")
        .env_remove("KRAKEN_DB")
        .env("KRAKEN_CONFIG_DIR", config_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run kraken-tui");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nothing_to_connect_to_is_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = tui(&[], dir.path());
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("nothing to connect to") && err.contains("kraken login"),
        "{err}"
    );

    let (code, err) = tui(
        &["--server", "http://a:1", "--db", "sqlite://x.db"],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("either --server or --db"), "{err}");

    // A stored login is used, but without a terminal the dashboard says so.
    std::fs::write(
        dir.path().join("credentials.json"),
        r#"{"server": "http://127.0.0.1:9", "token": "t", "user": "ann"}"#,
    )
    .unwrap();
    let (code, err) = tui(&[], dir.path());
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs a terminal"), "{err}");

    let (code, err) = tui(&["--bogus"], dir.path());
    assert_eq!(code, 2, "{err}");
}
