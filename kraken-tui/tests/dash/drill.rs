//! Drill-down and back, filters, the flows tabs, help.

use std::time::Duration;

use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;
use serde_json::json;

use crate::common::{Dash, WAIT, server, shell_stage};

#[tokio::test]
async fn drill_down_from_projects_to_a_log_and_back() {
    let (_s, admin, k) = server().await;
    let alpha = admin.project("alpha").await;
    admin.project("beta").await;
    let main = admin.branch(alpha, "Main").await;
    admin.branch(alpha, "Release").await;
    admin
        .stage(
            main,
            "build",
            &shell_stage(
                "root",
                "compile",
                &["echo hello-from-kraken", "echo second-step"],
            ),
        )
        .await;
    let flow = admin.flow(main).await;
    let fid = flow["id"].as_i64().unwrap();
    admin.wait_flow(fid, WAIT).await;
    let label = format!("{fid}.");

    let mut d = Dash::new(k);
    let s = d.until_text("alpha").await;
    assert!(s.header().contains("Kraken › projects"), "{s}");
    assert!(s.contains("beta"), "{s}");
    assert_eq!(s.fg_of("passed", "alpha"), Color::Green, "{s}");
    assert!(
        s.line_with("alpha").contains(&format!("Main {label}")),
        "{s}"
    );
    assert!(s.line_with("beta").contains("no flows yet"), "{s}");
    for hint in ["enter", "branches", "/", "filter", "?", "help", "q", "quit"] {
        assert!(s.footer().contains(hint), "footer lacks {hint}: {s}");
    }

    let s = d.open("alpha", "Branches of alpha").await;
    assert!(s.header().contains("projects › alpha"), "{s}");
    assert!(s.line_with("Main").contains("passed"), "{s}");
    assert!(s.line_with("Main").contains(&label), "{s}");
    assert!(s.line_with("Release").contains("-"), "{s}");
    assert!(s.footer().contains("new CI flow"), "{s}");

    let s = d.open("Main", "CI flows of Main").await;
    assert!(s.contains(" CI (1) "), "{s}");
    assert!(s.line_with(&label).contains("passed"), "{s}");
    assert!(s.line_with(&label).contains("1 run"), "{s}");
    assert!(s.line_with(&label).contains("ago"), "{s}");
    assert!(s.footer().contains("CI/DEV"), "{s}");

    let s = d.open(&label, &format!("CI flow {label}")).await;
    assert!(s.line_with("build").contains("passed"), "{s}");
    assert!(s.line_with("build").contains("1 job"), "{s}");
    assert!(
        s.footer().contains("tests") && s.footer().contains("cancel run"),
        "{s}"
    );

    let s = d.open("build", "compile").await;
    assert!(s.contains("Run "), "{s}");
    let row = s.line_with("compile");
    assert!(row.contains("passed") && row.contains("builtin-1"), "{s}");
    assert!(
        s.footer().contains("log") && s.footer().contains("rerun"),
        "{s}"
    );

    let s = d.open("compile", "hello-from-kraken").await;
    let s = if s.contains("end of log") {
        s
    } else {
        d.until_text("end of log").await
    };
    assert!(s.contains("second-step"), "{s}");
    assert!(s.contains("Job ") && s.contains("passed"), "{s}");
    assert!(s.contains("0. echo hello-from-kraken"), "{s}");
    assert!(s.contains("● following"), "{s}");
    assert!(
        s.header()
            .contains(&format!("alpha › Main › CI {label} › build › compile")),
        "{s}"
    );

    // Back, one view at a time, to where we started.
    for expect in [
        "Run ",
        &format!("CI flow {label}"),
        "CI flows of Main",
        "Branches of alpha",
        "Projects",
    ] {
        d.key(KeyCode::Esc);
        let s = d.until_text(expect).await;
        assert!(!s.contains("hello-from-kraken"), "{s}");
    }
    assert_eq!(d.app.breadcrumb(), ["projects"]);
    // Esc at the top stays there.
    d.key(KeyCode::Esc);
    assert_eq!(d.app.breadcrumb(), ["projects"]);
    assert!(!d.app.should_quit());

    // A bigger terminal shows the same, wider.
    d.resize(120, 40);
    let s = d.screen();
    assert_eq!(s.lines.len(), 40);
    assert!(
        s.contains("alpha") && s.lines[0].chars().count() == 120,
        "{s}"
    );

    d.key(KeyCode::Char('q'));
    assert!(d.app.should_quit());
}

#[tokio::test]
async fn slash_filters_the_list_and_esc_clears_it() {
    let (_s, admin, k) = server().await;
    for name in ["alpha", "beta", "delta"] {
        admin.project(name).await;
    }
    let mut d = Dash::new(k);
    d.until_text("delta").await;
    d.key(KeyCode::Char('/'));
    let s = d.screen();
    assert!(
        s.footer().contains("type") && s.footer().contains("keep"),
        "{s}"
    );
    assert!(!s.footer().contains("quit"), "typing does not quit: {s}");
    // While typing, q and ? are letters of the filter.
    d.typed("ta?");
    let s = d.screen();
    assert!(s.contains("nothing matches /ta?"), "{s}");
    d.key(KeyCode::Backspace);
    let s = d.screen();
    assert!(s.contains("/ta▏ (2 of 3)"), "{s}");
    assert!(
        s.contains("beta") && s.contains("delta") && !s.contains("alpha"),
        "{s}"
    );
    assert!(!d.app.should_quit());
    d.key(KeyCode::Enter);
    let s = d.screen();
    assert!(s.contains("/ta (2 of 3)"), "{s}");
    assert!(s.footer().contains("clear filter"), "{s}");
    // The filter survives refreshes and keeps narrowing new data.
    admin.project("zeta").await;
    d.pump(Duration::from_millis(600)).await;
    d.pump(Duration::from_millis(600)).await;
    let s = d.until_text("/ta (3 of 4)").await;
    assert!(s.contains("zeta"), "{s}");
    // Enter opens the selected (filtered) item; Esc comes back to the filter.
    d.select("delta");
    d.key(KeyCode::Enter);
    d.until_text("Branches of delta").await;
    d.key(KeyCode::Esc);
    let s = d.until_text("Projects").await;
    assert!(s.contains("/ta (3 of 4)"), "{s}");
    // Esc first clears the filter.
    d.key(KeyCode::Esc);
    let s = d.screen();
    assert!(s.contains("alpha") && s.contains("beta"), "{s}");
    assert!(!s.contains("of 4)"), "{s}");
    assert_eq!(d.app.breadcrumb(), ["projects"]);
}

#[tokio::test]
async fn tab_switches_between_ci_and_dev_flows_and_help_lists_every_key() {
    let (_s, admin, k) = server().await;
    let p = admin.project("tabs-project").await;
    let b = admin.branch(p, "Main").await;
    admin
        .stage(b, "build", &shell_stage("root", "j", &["true"]))
        .await;
    let ci = admin.flow(b).await["id"].as_i64().unwrap();
    let dev = admin
        .post(&format!("/api/branches/{b}/flows/dev"), json!({}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();
    admin.wait_flow(ci, WAIT).await;
    admin.wait_flow(dev, WAIT).await;
    let (ci, dev) = (format!("{ci}."), format!("{dev}."));

    let mut d = Dash::new(k);
    d.open("tabs-project", "Branches of tabs-project").await;
    let s = d.open("Main", "CI flows of Main").await;
    let s = if s.contains(&ci) {
        s
    } else {
        d.until_text(&ci).await
    };
    assert!(!s.contains(&format!(" {dev} ")), "{s}");
    d.key(KeyCode::Tab);
    let s = d.until_text("DEV flows of Main").await;
    let s = if s.contains(&dev) {
        s
    } else {
        d.until_text(&dev).await
    };
    assert!(s.contains(" DEV (1) ") && s.contains(" CI (1) "), "{s}");
    assert!(s.footer().contains("new DEV flow"), "{s}");
    d.key(KeyCode::Tab);
    d.until_text("CI flows of Main").await;

    d.key(KeyCode::Char('?'));
    let s = d.screen();
    assert!(s.contains("Keys (any key closes)"), "{s}");
    for what in [
        "open the selected item",
        "filter list / search log",
        "switch CI / DEV flows",
        "cancel a run",
        "rerun a job",
        "wrap log lines",
        "last / follow the log",
        "cancel a flow",
        "rerun a flow's failures",
        "views: agents jobs log",
        "services log level",
        "quit",
    ] {
        assert!(s.contains(what), "help lacks {what}: {s}");
    }
    d.key(KeyCode::Char('x'));
    let s = d.screen();
    assert!(!s.contains("Keys (any key closes)"), "{s}");
    assert!(s.contains("CI flows of Main"), "{s}");
}
