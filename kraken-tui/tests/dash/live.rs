//! The log view on a running job: lines arrive live, scrolling up stops
//! following, G resumes; a flood of lines does not stall drawing.

use std::time::{Duration, Instant};

use kraken_tui::event::LogEntry;
use kraken_tui::views::{Component, LogView};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyCode;

use crate::common::{Dash, WAIT, server, shell_stage};

/// A shell command that waits (at most a minute) until `gate` exists.
fn wait_for(gate: &std::path::Path) -> String {
    format!(
        "n=0; while [ ! -f '{}' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done",
        gate.display()
    )
}

#[tokio::test]
async fn a_running_jobs_log_arrives_live_and_scrolling_up_stops_following() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    let (_s, admin, k) = server().await;
    let p = admin.project("live").await;
    let b = admin.branch(p, "Main").await;
    let script = format!(
        "for i in $(seq 1 30); do echo early-$i; done; {}; for i in $(seq 1 40); do echo late-$i; done; echo all-done",
        wait_for(&gate)
    );
    admin
        .stage(b, "build", &shell_stage("root", "slow", &[&script]))
        .await;
    let fid = admin.flow(b).await["id"].as_i64().unwrap();

    let mut d = Dash::new(k);
    d.open("live", "Branches of live").await;
    d.open("Main", &format!("{fid}.")).await;
    d.open(&format!("{fid}."), "build").await;
    d.open("build", "slow").await;
    let s = d.open("slow", "Log").await;
    assert!(s.contains("Job "), "{s}");

    // The lines written so far arrive while the job runs, and the view
    // follows them.
    let s = d.until_text("early-30").await;
    assert!(s.contains("● following"), "{s}");
    assert!(s.contains("running"), "{s}");
    assert!(!s.contains("end of log"), "{s}");
    assert!(s.footer().contains("scroll (stops follow)"), "{s}");

    // Up: no longer following.
    d.key(KeyCode::Up);
    let s = d.screen();
    assert!(s.contains("■ paused at"), "{s}");
    assert!(s.footer().contains("follow"), "{s}");
    let before = s.row_of("early-25");

    // The job goes on and ends; the paused view stays where it was.
    std::fs::write(&gate, "go").unwrap();
    let s = d
        .until("the end of the log", |s| {
            s.contains("end of log") && s.contains("passed")
        })
        .await;
    assert!(s.contains("passed"), "{s}");
    assert!(!s.contains("all-done"), "paused view moved: {s}");
    assert_eq!(s.row_of("early-25"), before, "{s}");

    // G follows again: the end of the log is on screen.
    d.key(KeyCode::Char('G'));
    let s = d.screen();
    assert!(s.contains("● following"), "{s}");
    assert!(s.contains("all-done") && s.contains("late-40"), "{s}");
    assert!(!s.contains("early-25"), "{s}");

    // Search jumps to a match and stops following; n finds the next one.
    d.key(KeyCode::Char('/'));
    d.typed("early-1");
    d.key(KeyCode::Enter);
    let s = d.screen();
    assert!(s.contains("■ paused"), "{s}");
    assert!(s.contains("/early-1"), "{s}");
    assert!(s.contains("early-1") && s.contains("early-10"), "{s}");
    // Home goes to the top, End back to the end.
    d.key(KeyCode::Home);
    d.key(KeyCode::End);
    let s = d.screen();
    assert!(s.contains("● following") && s.contains("all-done"), "{s}");
    // Wrap toggles.
    d.key(KeyCode::Char('w'));
    assert!(d.screen().contains("· wrap"));
}

#[tokio::test]
async fn a_flood_of_lines_is_followed_to_its_end() {
    let (_s, admin, k) = server().await;
    let p = admin.project("flood").await;
    let b = admin.branch(p, "Main").await;
    admin
        .stage(
            b,
            "build",
            &shell_stage("root", "noisy", &["seq 1 20000; echo flood-over"]),
        )
        .await;
    let fid = admin.flow(b).await["id"].as_i64().unwrap();
    let mut d = Dash::new(k);
    d.open("flood", "Branches of flood").await;
    d.open("Main", &format!("{fid}.")).await;
    d.open(&format!("{fid}."), "build").await;
    d.open("build", "noisy").await;
    d.open("noisy", "Log").await;
    let s = d
        .until("the whole log", |s| {
            s.contains("flood-over") && s.contains("end of log")
        })
        .await;
    assert!(s.contains("19999") && s.contains("20000"), "{s}");
    assert!(s.contains("● following"), "{s}");
    let _ = WAIT;
}

#[test]
fn drawing_costs_the_same_with_a_full_buffer() {
    let mut v = LogView::new(7, "big");
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    // 250 000 lines in batches, as a fast job would send them: the buffer
    // keeps the last 100 000 and every frame lays out only what it shows.
    let mut id = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let lines: Vec<LogEntry> = (0..5000)
            .map(|_| {
                id += 1;
                LogEntry {
                    id,
                    step: 0,
                    internal: false,
                    text: format!("line {id} {}", "x".repeat(id as usize % 200)),
                }
            })
            .collect();
        v.update(kraken_tui::DashEvent::LogLines { view: 0, lines });
        let t = Instant::now();
        term.draw(|f| v.draw(f, f.area())).unwrap();
        slowest = slowest.max(t.elapsed());
    }
    assert_eq!(v.len(), 100_000);
    let screen = term.backend().to_string();
    assert!(screen.contains("line 250000"), "{screen}");
    assert!(screen.contains("last 100000 lines"), "{screen}");
    assert!(
        slowest < Duration::from_millis(250),
        "a frame took {slowest:?}"
    );
}

/// Long lines of two-byte characters reach the follower intact: a chunk of
/// the event stream may end inside a character (it used to turn into
/// U+FFFD on the way).
#[tokio::test]
async fn multibyte_characters_survive_the_event_stream() {
    use futures_util::StreamExt;
    use kraken_core::api::FollowEvent;

    let (_s, admin, k) = server().await;
    let p = admin.project("utf8").await;
    let b = admin.branch(p, "Main").await;
    admin
        .stage(
            b,
            "build",
            &shell_stage(
                "root",
                "wide",
                &["for n in 1 2 3 4 5; do yes é | head -n 50000 | tr -d '\\n'; echo; done"],
            ),
        )
        .await;
    let fid = admin.flow(b).await["id"].as_i64().unwrap();
    let done = admin.wait_flow(fid, WAIT).await;
    let run = done["runs"][0]["id"].as_i64().unwrap();
    let job = admin.run_jobs(run).await[0]["id"].as_i64().unwrap();
    let mut stream = k.follow_job(job, 0);
    let mut chars = 0;
    while let Some(ev) = stream.next().await {
        if let FollowEvent::Line(l) = ev.unwrap() {
            assert!(!l.message.contains('\u{FFFD}'), "a character was cut");
            // (The agent also logs the command, which has one é.)
            if l.message.starts_with('é') {
                chars += l.message.chars().filter(|c| *c == 'é').count();
            }
        }
    }
    assert_eq!(chars, 5 * 50_000);
}
