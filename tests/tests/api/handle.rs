//! The `Kraken` handle's helpers for embedders, over HTTP against a real
//! server: find a branch by name, start a flow with plain arguments, wait for
//! its typed outcome, read a job's log without the download's header line.

use std::time::Duration;

use kraken_core::model::{
    CompletionStatus, FlowArgs, FlowKind, FlowState, JobState, NewBranch, NewProject, Outcome,
    Paging, RunState, StageInput, StepStatus,
};
use kraken_core::{Error, Kraken};
use kraken_tests::{TestServer, shell_stage};

/// A logged-in handle and the id of branch `demo/main` with one stage
/// `build` running `cmds` in one job `job`.
async fn branch_with(s: &TestServer, cmds: &[&str]) -> (Kraken, i64) {
    let (k, session) = Kraken::login(&s.url, "admin", "admin")
        .await
        .expect("login");
    assert_eq!(session.user.name, "admin");
    let p = k
        .create_project(&NewProject::new("demo").with_description("embedded"))
        .await
        .expect("project");
    let b = k
        .create_branch(p.id, &NewBranch::new("main"))
        .await
        .expect("branch");
    k.create_stage(
        b.id,
        &StageInput::new("build", shell_stage("root", "job", cmds)),
    )
    .await
    .expect("stage");
    (k, b.id)
}

#[tokio::test]
async fn a_passing_flow_with_plain_arguments_and_its_log() {
    let s = TestServer::start().await;
    let (k, branch_id) = branch_with(&s, &["echo 'greeting=#{GREETING} count=#{COUNT}'"]).await;

    let b = k.branch_by_name("demo", "main").await.expect("by name");
    assert_eq!(b.id, branch_id);

    let args: FlowArgs = [("GREETING", "hello"), ("COUNT", "3")]
        .into_iter()
        .collect();
    let f = k
        .start_flow(branch_id, FlowKind::Ci, &args)
        .await
        .expect("start");
    // The flow's arguments come back plain, with no "Common" level.
    assert_eq!(f.args["GREETING"], "hello");
    assert!(!f.args.contains_key("Common"), "{:?}", f.args);

    let o = k
        .wait_flow(f.id, Duration::from_secs(60))
        .await
        .expect("wait");
    assert_eq!(o.verdict, Outcome::Passed, "{:?}", o.flow);
    assert!(o.passed());
    assert_eq!(o.id, f.id);
    assert_eq!(o.kind, FlowKind::Ci);
    assert_eq!(o.state, FlowState::Completed);
    assert_eq!(
        (o.counts.runs, o.counts.jobs, o.counts.jobs_failed),
        (1, 1, 0)
    );
    let run = &o.flow.runs[0];
    assert_eq!(run.run_state(), RunState::Processed);

    let jobs = k
        .get_run_jobs(run.id, &Paging::default(), false)
        .await
        .expect("jobs");
    let job = &jobs.items[0];
    assert_eq!(job.job_state(), Some(JobState::Completed));
    assert_eq!(job.completion(), Some(CompletionStatus::AllOk));
    assert!(
        job.steps
            .iter()
            .all(|st| st.step_status() == Some(StepStatus::Done)),
        "{:?}",
        job.steps
    );

    let log = k.job_log(job.id, None).await.expect("log");
    assert!(!log.starts_with("message"), "{log}");
    assert!(log.contains("greeting=hello count=3"), "{log}");
    // The download it is made of has the header line.
    let raw = k.job_log_text(job.id, None).await.expect("raw log");
    assert_eq!(raw, format!("message\n{log}"));
    let step_log = k.job_log(job.id, Some(0)).await.expect("step log");
    assert!(step_log.contains("greeting=hello"), "{step_log}");
}

#[tokio::test]
async fn a_failing_dev_flow_says_why_and_which_job() {
    let s = TestServer::start().await;
    let (k, branch_id) = branch_with(&s, &["echo about to fail", "exit 3"]).await;
    let f = k
        .start_flow(branch_id, FlowKind::Dev, &FlowArgs::new())
        .await
        .expect("start");
    assert_eq!(f.flow_kind(), FlowKind::Dev);
    let o = k
        .wait_flow(f.id, Duration::from_secs(60))
        .await
        .expect("wait");
    assert!(o.verdict.is_failure(), "{:?}", o.verdict);
    let why = o.verdict.reason().unwrap_or_default();
    assert!(why.contains("stage build has 1 failed job"), "{why}");
    assert_eq!(o.kind, FlowKind::Dev);
    assert_eq!((o.counts.jobs, o.counts.jobs_failed), (1, 1));

    let jobs = k
        .get_run_jobs(o.flow.runs[0].id, &Paging::default(), false)
        .await
        .expect("jobs");
    let job = &jobs.items[0];
    assert_eq!(job.completion(), Some(CompletionStatus::AgentErrorReturned));
    assert_eq!(job.steps[1].step_status(), Some(StepStatus::Error));
}

#[tokio::test]
async fn waiting_too_long_is_a_timeout_naming_what_still_runs() {
    let s = TestServer::start().await;
    let (k, branch_id) = branch_with(&s, &["sleep 30"]).await;
    let f = k
        .start_flow(branch_id, FlowKind::Ci, &FlowArgs::new())
        .await
        .expect("start");
    let started = std::time::Instant::now();
    let e = k
        .wait_flow(f.id, Duration::from_millis(1500))
        .await
        .expect_err("not decided in 1.5 s");
    assert!(started.elapsed() < Duration::from_secs(10));
    let Error::Timeout(msg) = &e else {
        panic!("expected a timeout, got {e:?}");
    };
    assert!(
        msg.contains(&format!("flow {} is not decided", f.id)),
        "{msg}"
    );
    assert!(msg.contains("stage build"), "{msg}");
    assert_eq!(e.status(), 504);

    // Cancelled, the flow is decided: cancelled, not failed.
    let f = k.get_flow(f.id).await.expect("flow");
    k.cancel_run(f.runs[0].id).await.expect("cancel");
    let o = k
        .wait_flow(f.id, Duration::from_secs(60))
        .await
        .expect("wait");
    assert!(
        matches!(o.verdict, Outcome::Cancelled(_)),
        "{:?}",
        o.verdict
    );
    assert!(!o.passed());
}

#[tokio::test]
async fn unknown_names_and_a_stage_called_common_are_refused() {
    let s = TestServer::start().await;
    let (k, branch_id) = branch_with(&s, &["true"]).await;
    let e = k
        .branch_by_name("demo", "nope")
        .await
        .expect_err("no branch");
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert_eq!(e.to_string(), "no branch named 'nope' in project 'demo'");
    let e = k
        .branch_by_name("nope", "main")
        .await
        .expect_err("no project");
    assert_eq!(e.to_string(), "no project named 'nope'");
    let e = k
        .start_flow(
            branch_id,
            FlowKind::Ci,
            &FlowArgs::new().stage_arg("Common", "X", "1"),
        )
        .await
        .expect_err("refused before sending");
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    // Nothing was started.
    let flows = k
        .get_flows(branch_id, "ci", None, None, None)
        .await
        .expect("flows");
    assert!(flows.items.is_empty());
}
