//! Actions with a confirmation: cancel a run (on a server), create a flow
//! and rerun a job (in process, the engine and agent inside the test).

use kraken_core::Kraken;
use kraken_core::model::{NewBranch, NewProject, StageInput};
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;

use crate::common::{Dash, server, shell_stage};

#[tokio::test]
async fn cancelling_a_run_asks_first() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    let (_s, admin, k) = server().await;
    let p = admin.project("cancel-me").await;
    let b = admin.branch(p, "Main").await;
    let wait = format!(
        "echo started; n=0; while [ ! -f '{}' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done",
        gate.display()
    );
    admin
        .stage(b, "deploy", &shell_stage("root", "long", &[&wait]))
        .await;
    let fid = admin.flow(b).await["id"].as_i64().unwrap();
    let label = format!("{fid}.");

    let mut d = Dash::new(k);
    d.open("cancel-me", "Branches of cancel-me").await;
    d.open("Main", &label).await;
    d.open(&label, "deploy").await;
    let s = d
        .until("the run to run", |s| {
            s.row_of("deploy")
                .is_some_and(|r| s.lines[r].contains("running"))
        })
        .await;
    assert_eq!(s.fg_of("running", "deploy"), Color::Yellow, "{s}");

    // x asks; n keeps the run going.
    d.select("deploy");
    d.key(KeyCode::Char('x'));
    let s = d.screen();
    assert!(s.contains("Confirm"), "{s}");
    assert!(
        s.contains("Cancel run") && s.contains("(stage deploy)"),
        "{s}"
    );
    assert!(
        s.footer().contains("yes") && s.footer().contains("no"),
        "{s}"
    );
    // Other keys leave the question open.
    d.key(KeyCode::Down);
    assert!(d.screen().contains("Confirm"));
    d.key(KeyCode::Char('n'));
    let s = d.screen();
    assert!(!s.contains("Confirm"), "{s}");
    d.pump(std::time::Duration::from_millis(500)).await;
    let s = d.screen();
    assert!(s.line_with("deploy").contains("running"), "{s}");

    // x, y cancels it.
    d.key(KeyCode::Char('x'));
    d.key(KeyCode::Char('y'));
    let s = d.screen();
    assert!(s.status().contains("cancelling run"), "{s}");
    let s = d
        .until("the cancelled run and the outcome", |s| {
            s.row_of("deploy")
                .is_some_and(|r| s.lines[r].contains("cancelled"))
                && s.status().contains("cancelled")
        })
        .await;
    assert!(
        s.status().contains("run") && !s.status().contains("…"),
        "{s}"
    );
    assert_eq!(s.fg_of("cancelled", "deploy"), Color::DarkGray, "{s}");
    // Pressing x again on an ended run says so instead of asking.
    d.key(KeyCode::Char('x'));
    let s = d.screen();
    assert!(!s.contains("Confirm"), "{s}");
    assert!(s.status().contains("already ended"), "{s}");
    std::fs::write(&gate, "go").unwrap();
}

#[tokio::test]
async fn in_process_create_a_flow_then_rerun_its_job() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("ci.db").display());
    let k = Kraken::open_with(&url, &tmp.path().join("files"))
        .await
        .expect("open in process");
    let p = k
        .create_project(&NewProject {
            name: Some("local".into()),
            description: None,
        })
        .await
        .unwrap();
    let b = k
        .create_branch(
            p.id,
            &NewBranch {
                name: Some("Main".into()),
                ..NewBranch::default()
            },
        )
        .await
        .unwrap();
    k.create_stage(
        b.id,
        &StageInput {
            name: Some("build".into()),
            schema_code: Some(shell_stage("root", "hello", &["echo in-process-hello"])),
            ..StageInput::default()
        },
    )
    .await
    .unwrap();

    let mut d = Dash::new(k);
    let s = d.open("local", "Branches of local").await;
    assert!(s.header().contains("sqlite://"), "{s}");
    d.until_text("Main").await;
    d.select("Main");
    d.key(KeyCode::Char('c'));
    let s = d.screen();
    assert!(s.contains("Create a new CI flow on branch Main?"), "{s}");
    d.key(KeyCode::Char('y'));
    let s = d
        .until("the flow created", |s| {
            s.status().contains("created CI flow")
        })
        .await;
    assert!(s.status().contains("on Main"), "{s}");
    // The branch list learns about the flow without polling (engine events).
    let s = d
        .until("the branch's flow to pass", |s| {
            s.line_with("Main").contains("passed")
        })
        .await;
    assert_eq!(s.fg_of("passed", "Main"), Color::Green, "{s}");

    d.key(KeyCode::Enter);
    let s = d
        .until("the flow row", |s| {
            s.contains("CI flows of Main") && s.lines.iter().any(|l| l.contains("passed"))
        })
        .await;
    let label = s
        .lines
        .iter()
        .find(|l| l.contains("passed"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| panic!("no flow row: {s}"));
    // `c` in the flows view asks for arguments first (none: enter), then
    // confirms; the cursor goes to the new flow once it shows.
    d.select(&label);
    d.key(KeyCode::Char('c'));
    assert!(d.screen().contains("Flow arguments"));
    d.key(KeyCode::Enter);
    let s = d.screen();
    assert!(s.contains("Create a new CI flow on branch Main?"), "{s}");
    d.key(KeyCode::Char('y'));
    let s = d
        .until("the second flow", |s| {
            s.selected().is_some_and(|r| r.contains(" 2. "))
        })
        .await;
    assert!(s.status().contains("created CI flow"), "{s}");
    d.until("the second flow to end", |s| {
        s.line_with(" 2. ").contains("passed")
    })
    .await;
    d.open(&label, "build").await;
    d.open("build", "hello").await;
    d.select("hello");
    d.key(KeyCode::Char('r'));
    let s = d.screen();
    assert!(s.contains("Rerun job") && s.contains("(hello)"), "{s}");
    d.key(KeyCode::Enter);
    let s = d
        .until("the rerun", |s| s.status().contains("rerun as job"))
        .await;
    let new_job = s
        .status()
        .split("rerun as job ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    assert!(!new_job.is_empty(), "{s}");
    // The list shows the new job (the old one is covered) until it passes.
    let s = d
        .until("the new job to pass", |s| {
            s.lines.iter().any(|l| {
                l.contains("hello") && l.contains(&format!(" {new_job} ")) && l.contains("passed")
            })
        })
        .await;
    assert_eq!(
        s.lines.iter().filter(|l| l.contains("hello")).count(),
        1,
        "{s}"
    );
    let s = d.open("hello", "in-process-hello").await;
    assert!(s.contains(&format!("Job {new_job} hello")), "{s}");
}
