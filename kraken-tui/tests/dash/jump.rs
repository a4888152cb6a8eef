//! `:` opens a view by name: agents with their jobs, running and queued
//! jobs across projects, the services log; `:projects` goes back.

use kraken_core::api::logs::NewLog;
use kraken_core::model::Timestamp;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;

use crate::common::{Dash, server, shell_stage};
use kraken_core::Kraken;

#[tokio::test]
async fn agents_and_the_services_log_tell_a_non_admin_why_they_are_empty() {
    let (s, _admin, _k) = server().await;
    let (_, bob) = s.user("bob").await;
    let k = Kraken::connect(&s.url, bob.token.clone()).unwrap();
    let mut d = Dash::new(k);
    d.until_text("Projects").await;
    for (view, title) in [("agents", "Agents"), ("log", "Services log")] {
        d.key(KeyCode::Char(':'));
        d.typed(view);
        d.key(KeyCode::Enter);
        let sc = d.until_text("only superadmin").await;
        assert!(sc.contains(title), "{sc}");
        // Not a connection problem: no offline mark, no retry line.
        assert!(!sc.header().contains("offline"), "{sc}");
        assert!(!sc.status().contains("retrying"), "{sc}");
    }
}

/// A step that says `started` and waits until `gate` exists (at most 60 s).
fn gated(gate: &std::path::Path) -> String {
    format!(
        "echo started-{}; n=0; while [ ! -f '{}' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done",
        gate.file_name().unwrap().to_string_lossy(),
        gate.display()
    )
}

#[tokio::test]
async fn colon_opens_agents_jobs_and_the_services_log() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    let (s, admin, k) = server().await;
    let p = admin.project("ops").await;
    // One agent: the job of Main runs, the job of Other waits for it.
    let main = admin.branch(p, "Main").await;
    let other = admin.branch(p, "Other").await;
    admin
        .stage(
            main,
            "deploy",
            &shell_stage("root", "ship", &[&gated(&gate)]),
        )
        .await;
    admin
        .stage(
            other,
            "check",
            &shell_stage("root", "lint", &[&gated(&gate)]),
        )
        .await;
    let main_flow = admin.flow(main).await["id"].as_i64().unwrap();
    admin.flow(other).await;

    let mut d = Dash::new(k);
    d.until_text("ops").await;
    let sc = d.screen();
    assert!(sc.footer().contains(" :  views "), "{sc}");

    // `:` opens the prompt with the choices; tab completes, esc cancels.
    d.key(KeyCode::Char(':'));
    let sc = d.screen();
    assert!(sc.status().contains(":▏"), "{sc}");
    assert!(
        sc.status().contains("agents · jobs · log · projects"),
        "{sc}"
    );
    assert!(
        sc.footer().contains("complete") && sc.footer().contains("cancel"),
        "{sc}"
    );
    d.typed("ag");
    d.key(KeyCode::Tab);
    let sc = d.screen();
    assert!(sc.status().contains(":agents▏"), "{sc}");
    assert!(sc.status().contains("agents and their jobs"), "{sc}");
    d.key(KeyCode::Esc);
    let sc = d.screen();
    assert!(!sc.status().contains(":agents"), "{sc}");
    assert_eq!(d.app.breadcrumb(), ["projects"]);
    // An unknown name says which ones there are.
    d.key(KeyCode::Char(':'));
    d.typed("nope");
    assert!(d.screen().status().contains("no such view"));
    d.key(KeyCode::Enter);
    let sc = d.screen();
    assert!(
        sc.status()
            .contains("no view 'nope': try agents, jobs, log, projects"),
        "{sc}"
    );
    assert_eq!(d.app.breadcrumb(), ["projects"]);

    // :agents — the agent, its groups and the job it runs.
    d.key(KeyCode::Char(':'));
    d.typed("agents");
    d.key(KeyCode::Enter);
    let sc = d
        .until("the agent running ship", |s| {
            s.row_of("builtin-1")
                .is_some_and(|r| s.lines[r].contains("ship") && s.lines[r].contains("running"))
        })
        .await;
    assert!(sc.header().contains("projects › agents"), "{sc}");
    assert!(sc.contains("Agents: 1 (1 busy)"), "{sc}");
    let row = sc.line_with("builtin-1");
    assert!(row.contains("active") && row.contains("all"), "{sc}");
    assert_eq!(sc.fg_of("running", "builtin-1"), Color::Yellow, "{sc}");
    assert!(sc.footer().contains("job log"), "{sc}");
    // Enter opens the job's log.
    let sc = d.open("builtin-1", "started-gate").await;
    assert!(sc.contains("Job ") && sc.contains("ship"), "{sc}");
    assert!(sc.header().contains("agents › ship"), "{sc}");
    d.key(KeyCode::Esc);
    d.until_text("Agents: 1").await;

    // :jobs — the running job and the queued one, across branches.
    d.key(KeyCode::Char(':'));
    d.typed("jobs");
    d.key(KeyCode::Enter);
    let sc = d
        .until("both jobs", |s| {
            s.contains("ops/Main") && s.contains("ops/Other")
        })
        .await;
    assert_eq!(d.app.breadcrumb(), ["projects", "jobs"]);
    assert!(sc.contains("Jobs: 1 running, 1 waiting"), "{sc}");
    for col in [
        "STATE", "BRANCH", "FLOW", "STAGE", "JOB", "AGENT", "DURATION",
    ] {
        assert!(sc.contains(col), "{sc}");
    }
    let ship = sc.line_with("ops/Main");
    assert!(
        ship.contains("running")
            && ship.contains(&format!("CI {main_flow}."))
            && ship.contains("deploy")
            && ship.contains("ship")
            && ship.contains("builtin-1"),
        "{sc}"
    );
    let lint = sc.line_with("ops/Other");
    assert!(
        lint.contains("waiting") && lint.contains("check") && lint.contains("lint"),
        "{sc}"
    );
    assert_eq!(sc.fg_of("waiting", "ops/Other"), Color::Blue, "{sc}");
    // Enter opens the log of the job under the cursor.
    let sc = d.open("ops/Main", "started-gate").await;
    assert!(sc.header().contains("jobs › ship"), "{sc}");
    d.key(KeyCode::Esc);
    d.until_text("Jobs: 1 running").await;

    // :log — the services log, newest at the bottom, by level.
    let now = Timestamp::now().millis();
    let line = |i: i64, level: &str, service: &str| NewLog {
        time: now + i,
        message: format!("tui-{} line", level.to_ascii_lowercase()),
        service: service.into(),
        host: "test".into(),
        level: level.into(),
        ..NewLog::default()
    };
    s.core()
        .write_service_logs(&[
            line(0, "DEBUG", "engine"),
            line(1, "INFO", "scheduler"),
            line(2, "WARNING", "watchdog"),
            line(3, "ERROR", "server"),
        ])
        .await
        .unwrap();
    d.key(KeyCode::Char(':'));
    d.typed("log");
    d.key(KeyCode::Enter);
    let sc = d.until_text("tui-error line").await;
    assert!(sc.header().contains("projects › log"), "{sc}");
    assert!(sc.contains("all levels"), "{sc}");
    for l in ["tui-debug", "tui-info", "tui-warning"] {
        let (at, end) = (sc.row_of(l), sc.row_of("tui-error"));
        assert!(at.is_some() && at < end, "{l}: {sc}");
    }
    // The newest line is selected (at the bottom).
    assert!(
        sc.selected().is_some_and(|r| r.contains("tui-error line")),
        "{sc}"
    );
    assert_eq!(sc.fg_of("ERROR", "tui-error"), Color::Red, "{sc}");
    assert!(sc.line_with("tui-warning").contains("watchdog"), "{sc}");
    assert!(sc.footer().contains("level"), "{sc}");
    // l: from info on, then warning, then error.
    d.key(KeyCode::Char('l'));
    let sc = d
        .until("info and above", |s| {
            s.contains("info and above") && s.contains("tui-info") && !s.contains("tui-debug")
        })
        .await;
    assert!(sc.contains("tui-error"), "{sc}");
    d.key(KeyCode::Char('l'));
    let sc = d
        .until("warning and above", |s| {
            s.contains("warning and above") && s.contains("tui-warning") && !s.contains("tui-info")
        })
        .await;
    assert!(sc.contains("tui-error"), "{sc}");
    d.key(KeyCode::Char('l'));
    let sc = d
        .until("error and above", |s| {
            s.contains("error and above") && s.contains("tui-error") && !s.contains("tui-warning")
        })
        .await;
    assert!(sc.contains("Services log: 1 line, error"), "{sc}");
    // The alias `services` names the same view.
    d.key(KeyCode::Char(':'));
    d.typed("services");
    assert!(d.screen().status().contains(":services▏"));
    d.key(KeyCode::Enter);
    d.until_text("all levels").await;
    assert_eq!(d.app.breadcrumb(), ["projects", "log"]);

    // :projects goes back to the top.
    d.key(KeyCode::Char(':'));
    d.typed("projects");
    d.key(KeyCode::Enter);
    let sc = d.until_text("Projects").await;
    assert!(sc.contains("ops"), "{sc}");
    assert_eq!(d.app.breadcrumb(), ["projects"]);
    std::fs::write(&gate, "go").unwrap();
}
