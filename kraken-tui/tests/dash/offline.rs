//! An unreachable server: a status line and retries, not an exit.

use kraken_core::Kraken;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;

use crate::common::{Dash, server};

#[tokio::test]
async fn an_empty_database_says_how_to_start() {
    let (_s, _admin, k) = server().await;
    let mut d = Dash::new(k);
    let s = d.until_text("no projects yet").await;
    for step in [
        "kraken projects create demo",
        "kraken branches create demo main",
        "kraken stages create demo/main build --file build.py",
        "press c on the branch",
        "From a fresh clone to a finished flow",
    ] {
        assert!(s.contains(step), "the hint lacks {step:?}: {s}");
    }
    // The commands and the section it points to are the README's.
    let readme = include_str!("../../../README.md");
    assert!(readme.contains("### From a fresh clone to a finished flow"));
    for cmd in [
        "kraken projects create demo",
        "kraken branches create demo main",
        "kraken stages create demo/main build --file build.py",
    ] {
        assert!(readme.contains(cmd), "README lacks {cmd}");
    }
}

#[tokio::test]
async fn an_unreachable_server_shows_a_status_line_and_retries() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let k = Kraken::connect(&url, Some("token".into())).unwrap();
    let mut d = Dash::new(k);
    let s = d
        .until("the offline status", |s| s.status().contains("retrying"))
        .await;
    let status = s.status();
    assert!(status.contains(&format!("cannot reach {url}")), "{s}");
    assert!(status.contains("R: retry now"), "{s}");
    assert_eq!(s.fg_of("cannot reach", "retrying"), Color::Red, "{s}");
    assert!(s.header().contains("offline"), "{s}");
    assert!(s.contains("loading…"), "{s}");
    assert!(s.footer().contains("quit"), "{s}");
    // Retrying now keeps it alive and tells the same.
    d.key(KeyCode::Char('R'));
    let s = d
        .until("the offline status again", |s| {
            s.status().contains("retrying")
        })
        .await;
    assert!(!d.app.should_quit(), "{s}");
}
