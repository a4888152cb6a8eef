//! Flow-level actions in the flows view: arguments for a new flow, cancel
//! a flow (every unfinished run), rerun its failed jobs.

use kraken_core::model::Paging;
use kraken_tests::TestServer;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;

use crate::common::{Dash, WAIT, shell_stage};

#[tokio::test]
async fn flows_get_arguments_and_are_cancelled_or_rerun_from_the_flows_view() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    let marker = tmp.path().join("failed-once");
    // Two agents: a cancelled job's agent may take a moment to stop.
    let s = TestServer::start_with_agents(2).await;
    let admin = s.admin().await;
    let k = kraken_core::Kraken::connect(&s.url, admin.token.clone()).unwrap();
    let p = admin.project("acts").await;
    let main = admin.branch(p, "Main").await;
    let flaky = admin.branch(p, "Flaky").await;
    let wait = format!(
        "echo started; n=0; while [ ! -f '{}' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done",
        gate.display()
    );
    admin
        .stage(main, "deploy", &shell_stage("root", "long", &[&wait]))
        .await;
    // Fails the first time, passes when rerun.
    let once = format!(
        "if [ -f '{m}' ]; then echo second-time; else touch '{m}'; echo first-time; exit 3; fi",
        m = marker.display()
    );
    admin
        .stage(flaky, "test", &shell_stage("root", "flaky", &[&once]))
        .await;
    let failed = admin.flow(flaky).await["id"].as_i64().unwrap();
    admin.wait_flow(failed, WAIT).await;
    let first = admin.flow(main).await["id"].as_i64().unwrap();
    let label = format!("{first}.");

    let mut d = Dash::new(k.clone());
    d.open("acts", "Branches of acts").await;
    d.open("Main", "CI flows of Main").await;
    let sc = d
        .until("the flow to run", |s| {
            s.row_of(&label)
                .is_some_and(|r| s.lines[r].contains("running"))
        })
        .await;
    // A running flow offers cancel (X), not rerun.
    assert!(sc.footer().contains("cancel flow"), "{sc}");
    assert!(!sc.footer().contains("rerun failed"), "{sc}");
    d.select(&label);
    d.key(KeyCode::Char('F'));
    let sc = d.screen();
    assert!(!sc.contains("Confirm"), "{sc}");
    assert!(sc.status().contains("is still running"), "{sc}");

    // X asks, then cancels every unfinished run.
    d.key(KeyCode::Char('X'));
    let sc = d.screen();
    assert!(
        sc.contains("Cancel flow") && sc.contains(&format!("(id {first})")),
        "{sc}"
    );
    d.key(KeyCode::Char('y'));
    let sc = d
        .until("the flow cancelled", |s| {
            s.status()
                .contains(&format!("flow {label}: cancelled 1 run(s)"))
                && s.line_with(&label).contains("cancelled")
        })
        .await;
    assert_eq!(sc.fg_of("cancelled", &label), Color::DarkGray, "{sc}");
    d.key(KeyCode::Char('X'));
    let sc = d.screen();
    assert!(!sc.contains("Confirm"), "{sc}");
    assert!(sc.status().contains("has already ended"), "{sc}");

    // c asks for arguments; one without `=` creates nothing.
    d.key(KeyCode::Char('c'));
    let sc = d.screen();
    assert!(sc.contains("Flow arguments"), "{sc}");
    assert!(sc.contains("Arguments of the new CI flow on Main"), "{sc}");
    assert!(
        sc.footer().contains("next") && sc.footer().contains("cancel"),
        "{sc}"
    );
    d.typed("VERSION=1 oops");
    d.key(KeyCode::Enter);
    let sc = d.screen();
    assert!(
        sc.contains("'oops' is not KEY=VALUE: nothing was created"),
        "{sc}"
    );
    assert!(!sc.contains("Confirm"), "{sc}");
    assert_eq!(
        sc.fg_of("'oops'", "nothing was created"),
        Color::Red,
        "{sc}"
    );
    d.key(KeyCode::Esc);
    let sc = d.screen();
    assert!(!sc.contains("Flow arguments"), "{sc}");
    d.pump(std::time::Duration::from_millis(500)).await;
    let flows = k.get_flows(main, "ci", None, None, None).await.unwrap();
    assert_eq!(flows.total, 1, "nothing was created");

    // Good arguments, comma or space separated, go to the confirmation and
    // to the flow; the cursor goes to the new flow.
    d.key(KeyCode::Char('c'));
    d.typed("VERSION=1.2.3, MODE=fast");
    d.key(KeyCode::Enter);
    let sc = d.screen();
    assert!(
        sc.contains("Create a new CI flow on branch Main with VERSION=1.2.3")
            && sc.contains("MODE=fast?"),
        "{sc}"
    );
    d.key(KeyCode::Char('y'));
    let sc = d
        .until("the new flow selected", |s| {
            s.status().contains("created CI flow")
                && s.selected().is_some_and(|r| !r.contains(&label))
        })
        .await;
    let second = k
        .get_flows(main, "ci", None, None, None)
        .await
        .unwrap()
        .items[0]
        .clone();
    assert_ne!(second.id, first);
    assert!(
        sc.selected().is_some_and(|r| r.contains(&second.label)),
        "{sc}"
    );
    // Given as `Common` arguments, the flow has them with its own (KK_...).
    assert_eq!(second.args["VERSION"], "1.2.3", "{:?}", second.args);
    assert_eq!(second.args["MODE"], "fast", "{:?}", second.args);
    // X in the runs view of the new flow (the cursor is on it) cancels it.
    d.until("the new flow to run", |s| {
        s.selected().is_some_and(|r| r.contains("running"))
    })
    .await;
    d.key(KeyCode::Enter);
    let sc = d
        .until("its run", |s| {
            s.row_of("deploy")
                .is_some_and(|r| s.lines[r].contains("running"))
        })
        .await;
    assert!(sc.contains(&format!("CI flow {}", second.label)), "{sc}");
    assert!(
        sc.footer().contains("cancel run") && sc.footer().contains("cancel flow"),
        "{sc}"
    );
    d.key(KeyCode::Char('X'));
    let sc = d.screen();
    assert!(sc.contains(&format!("(id {})", second.id)), "{sc}");
    d.key(KeyCode::Char('y'));
    d.until("the run cancelled", |s| {
        s.line_with("deploy").contains("cancelled")
            && s.status()
                .contains(&format!("flow {}: cancelled 1 run(s)", second.label))
    })
    .await;
    d.key(KeyCode::Esc);
    d.until("the new flow cancelled", |s| {
        s.selected().is_some_and(|r| r.contains("cancelled"))
    })
    .await;

    // A failed flow offers F: rerun its failed jobs.
    d.key(KeyCode::Esc);
    d.until_text("Branches of acts").await;
    let flabel = format!("{failed}.");
    let sc = d.open("Flaky", "CI flows of Flaky").await;
    let sc = if sc.contains(&flabel) {
        sc
    } else {
        d.until_text(&flabel).await
    };
    assert!(sc.line_with(&flabel).contains("failed"), "{sc}");
    assert!(sc.footer().contains("rerun failed"), "{sc}");
    assert!(!sc.footer().contains("cancel flow"), "{sc}");
    d.select(&flabel);
    d.key(KeyCode::Char('F'));
    let sc = d.screen();
    assert!(
        sc.contains(&format!("Rerun the failed jobs of flow {flabel}")),
        "{sc}"
    );
    d.key(KeyCode::Char('y'));
    let sc = d
        .until("the rerun", |s| {
            s.status()
                .contains(&format!("flow {flabel}: 1 failed job(s) rerun"))
        })
        .await;
    assert!(sc.selected().is_some_and(|r| r.contains(&flabel)), "{sc}");
    // The rerun job passes, and so does the flow.
    d.until("the flow to pass", |s| {
        s.line_with(&flabel).contains("passed")
    })
    .await;
    let run = k.get_flow(failed).await.unwrap().runs[0].id;
    let jobs = k.get_run_jobs(run, &Paging::default(), true).await.unwrap();
    assert_eq!(jobs.items.len(), 2, "the failed job and its rerun");
    // Nothing failed any more: F says so instead of rerunning anything.
    d.key(KeyCode::Char('F'));
    d.key(KeyCode::Char('y'));
    d.until("no failed job", |s| {
        s.status().contains("has no failed job to rerun")
    })
    .await;
    std::fs::write(&gate, "go").unwrap();
}
