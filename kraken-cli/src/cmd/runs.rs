//! `kraken runs`.

use kraken_core::Kraken;
use kraken_core::model::*;
use kraken_core::model::{IssueFilter, TcrFilter};

use crate::args::RunsCmd;
use crate::cmd::jobs::{JOB_HEADERS, job_row};
use crate::cmd::key_values;
use crate::out::{Out, opt, usage};
use crate::resolve::stage_in_flow;

/// A run's row under `RUN_HEADERS`.
pub(crate) fn run_row(r: &Run) -> Vec<String> {
    vec![
        r.id.to_string(),
        r.stage_name.clone(),
        // Its verdict once decided, its state until then.
        match r.outcome() {
            Outcome::Running => r.state.clone(),
            o => o.word().to_string(),
        },
        format!("{}/{}", r.jobs_error, r.jobs_total),
        format!("{}/{}", r.tests_passed, r.tests_total),
        format!("{}/{}/{}", r.new_cnt, r.regr_cnt, r.fix_cnt),
        r.duration.clone(),
    ]
}

/// The columns of a run's row.
pub(crate) const RUN_HEADERS: &[&str] = &[
    "RUN",
    "STAGE",
    "STATE",
    "FAILED/JOBS",
    "PASSED/TESTS",
    "NEW/REGR/FIX",
    "DURATION",
];

fn parse_result(s: &str) -> anyhow::Result<i64> {
    Ok(match s {
        "not-run" => tc_result::NOT_RUN,
        "passed" => tc_result::PASSED,
        "failed" => tc_result::FAILED,
        "error" => tc_result::ERROR,
        "disabled" => tc_result::DISABLED,
        "unsupported" => tc_result::UNSUPPORTED,
        other => {
            return Err(usage(format!(
                "unknown result '{other}': use passed, failed, error, disabled, unsupported or not-run"
            )));
        }
    })
}

fn parse_change(s: &str) -> anyhow::Result<i64> {
    Ok(match s {
        "no-change" => tc_change::NO,
        "fix" => tc_change::FIX,
        "regr" => tc_change::REGR,
        "new" => tc_change::NEW,
        other => {
            return Err(usage(format!(
                "unknown change '{other}': use new, regr, fix or no-change"
            )));
        }
    })
}

const NOTIFICATION_HEADERS: &[&str] = &[
    "ID",
    "EVENT",
    "CHANNEL",
    "TARGET",
    "STATE",
    "ATTEMPTS",
    "UPDATED",
    "LAST ERROR",
];

fn notification_row(out: &Out, n: &RunNotification) -> Vec<String> {
    vec![
        n.id.to_string(),
        n.event.clone(),
        n.channel.clone(),
        n.target.clone(),
        n.state.clone(),
        n.attempts.to_string(),
        out.when(n.updated),
        n.last_error.clone().unwrap_or_default(),
    ]
}

/// Runs one `kraken runs` verb.
pub async fn run(k: &Kraken, out: &Out, c: &RunsCmd) -> anyhow::Result<()> {
    match c {
        RunsCmd::Show { run } => {
            let r = k.get_run(*run).await?;
            let notes = k.get_run_notifications(*run).await?;
            out.show(&r, || {
                out.table(RUN_HEADERS, vec![run_row(&r)])?;
                if let Some(n) = &r.note {
                    out.line(format!("note: {n}"))?;
                }
                if !notes.is_empty() {
                    out.line("notifications:")?;
                    out.table(
                        NOTIFICATION_HEADERS,
                        notes.iter().map(|n| notification_row(out, n)).collect(),
                    )?;
                }
                Ok(())
            })?;
        }
        RunsCmd::Notifications { run } => {
            let notes = k.get_run_notifications(*run).await?;
            out.show(&notes, || {
                out.table(
                    NOTIFICATION_HEADERS,
                    notes.iter().map(|n| notification_row(out, n)).collect(),
                )
            })?;
        }
        RunsCmd::Create { flow, stage, args } => {
            let f = k.get_flow(*flow).await?;
            let sid = stage_in_flow(&f, stage)?;
            let r = k
                .create_run(
                    *flow,
                    &NewRun {
                        stage_id: Some(sid),
                        args: Some(key_values(args)?),
                    },
                )
                .await?;
            out.value(&r, r.id)?;
        }
        RunsCmd::Start { run } => {
            let r = k.run_run_jobs(*run).await?;
            out.value(&r, r.id)?;
        }
        RunsCmd::Cancel { run } => {
            k.cancel_run(*run).await?;
        }
        RunsCmd::Jobs { run, all } => {
            let l = k.get_run_jobs(*run, &Paging::default(), *all).await?;
            out.list(&l, JOB_HEADERS, job_row)?;
        }
        RunsCmd::Results {
            run,
            statuses,
            changes,
            text,
            limit,
        } => {
            let filter = TcrFilter {
                statuses: statuses
                    .iter()
                    .map(|s| parse_result(s))
                    .collect::<anyhow::Result<_>>()?,
                changes: changes
                    .iter()
                    .map(|s| parse_change(s))
                    .collect::<anyhow::Result<_>>()?,
                text: text.clone(),
                ..Default::default()
            };
            let paging = Paging {
                start: None,
                limit: Some(*limit),
                sort_field: Some("relevancy".into()),
                sort_dir: Some("desc".into()),
            };
            let l = k.get_run_results(*run, &filter, &paging).await?;
            out.list(
                &l,
                &[
                    "ID",
                    "TEST",
                    "RESULT",
                    "CHANGE",
                    "AGE",
                    "INSTABILITY",
                    "JOB",
                ],
                |t| {
                    vec![
                        t.id.to_string(),
                        t.test_case_name.clone(),
                        tc_result::name(t.result).to_string(),
                        tc_change::name(t.change).to_string(),
                        t.age.to_string(),
                        t.instability.to_string(),
                        t.job_name.clone(),
                    ]
                },
            )?;
        }
        RunsCmd::Issues { run } => {
            let l = k
                .get_run_issues(*run, &IssueFilter::default(), &Paging::default())
                .await?;
            let t = |x: i64| {
                ["error", "warning", "convention", "refactor"]
                    .get(x as usize)
                    .copied()
                    .unwrap_or("?")
            };
            out.list(&l, &["TYPE", "LOCATION", "SYMBOL", "MESSAGE", "AGE"], |i| {
                vec![
                    t(i.issue_type).into(),
                    format!("{}:{}", opt(&i.path), opt(&i.line)),
                    opt(&i.symbol),
                    opt(&i.message),
                    i.age.to_string(),
                ]
            })?;
        }
    }
    Ok(())
}
