//! `kraken results`: test case results.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::ResultsCmd;
use crate::out::{Out, usage};

/// Runs one `kraken results` verb.
pub async fn run(k: &Kraken, out: &Out, c: &ResultsCmd) -> anyhow::Result<()> {
    match c {
        ResultsCmd::Show { result } => {
            let t = k.get_result(*result).await?;
            out.show(&t, || {
                out.fields(&[
                    ("test", t.test_case_name.clone()),
                    ("result", tc_result::name(t.result).into()),
                    ("change", tc_change::name(t.change).into()),
                    ("age", t.age.to_string()),
                    ("instability", t.instability.to_string()),
                    ("relevancy", t.relevancy.to_string()),
                    ("job", format!("{} ({})", t.job_name, t.job_id)),
                    (
                        "duration",
                        t.duration.map(|d| format!("{d:.3}s")).unwrap_or_default(),
                    ),
                    ("type", t.failure_type.clone().unwrap_or_default()),
                    ("message", t.message.clone().unwrap_or_default()),
                ])?;
                if let Some(o) = &t.output {
                    out.line("output:")?;
                    for l in o.lines() {
                        out.line(format!("  {l}"))?;
                    }
                }
                if let Some(c) = &t.comment {
                    for e in &c.data {
                        out.line(format!(
                            "comment by {}: {}",
                            e["author"].as_str().unwrap_or(""),
                            e["text"].as_str().unwrap_or("")
                        ))?;
                    }
                }
                Ok(())
            })
        }
        ResultsCmd::History { result } => {
            let l = k.get_result_history(*result, &Paging::default()).await?;
            out.list(&l, &["ID", "FLOW", "RESULT", "CHANGE", "AGE"], |t| {
                let flow = t
                    .place
                    .as_ref()
                    .map(|p| p.flow_label.clone())
                    .unwrap_or_default();
                vec![
                    t.id.to_string(),
                    flow,
                    tc_result::name(t.result).into(),
                    tc_change::name(t.change).into(),
                    t.age.to_string(),
                ]
            })
        }
        ResultsCmd::Comment {
            result,
            text,
            author,
            state,
        } => {
            let state = match state.as_str() {
                "new" => 0,
                "investigating" => 1,
                "bug-in-product" => 2,
                "bug-in-test" => 3,
                other => {
                    return Err(usage(format!(
                        "unknown state '{other}': use new, investigating, bug-in-product or bug-in-test"
                    )));
                }
            };
            let t = k
                .create_or_update_test_case_comment(
                    *result,
                    &CommentInput {
                        text: Some(text.clone()),
                        author: Some(author.clone()),
                        state: Some(state),
                    },
                )
                .await?;
            out.json_only(&t)
        }
    }
}
