//! The results view: failed tests first, with change, age and instability.

use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;
use serde_json::json;

use crate::common::{Dash, WAIT, server};

/// A job writing a JUnit file: `a_ok` always passes, `z_flaky` fails in
/// the second CI flow; then collected.
fn junit_stage() -> String {
    let script = r##"if [ "#{KK_FLOW_SEQ}" = "2" ]; then R='<failure message="boom">trace</failure>'; else R=''; fi; printf '<testsuite name="s"><testcase classname="suite" name="a_ok"/><testcase classname="suite" name="m_ok"/><testcase classname="suite" name="z_flaky">%s</testcase></testsuite>' "$R" > results.xml"##;
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"tests\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": {}}}, {{\"tool\": \"junit_collect\", \"file_glob\": \"results.xml\"}}], \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}\n",
        serde_json::to_string(script).unwrap()
    )
}

#[tokio::test]
async fn results_show_failures_first_with_change_age_and_instability() {
    let (_s, admin, k) = server().await;
    let p = admin.project("tested").await;
    let b = admin.branch(p, "Main").await;
    admin.stage(b, "unit", &junit_stage()).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let f = admin
            .post(&format!("/api/branches/{b}/flows/ci"), json!({}))
            .await;
        let id = f.expect(201)["id"].as_i64().unwrap();
        admin.wait_flow(id, WAIT).await;
        ids.push(id);
    }
    let (first, last) = (ids[0], ids[1]);
    let label = format!("{last}.");

    let mut d = Dash::new(k);
    d.open("tested", "Branches of tested").await;
    let s = d.open("Main", &label).await;
    // Its job passed but a test regressed: the flow failed, the one verdict
    // the CLI's exit code gives too (Flow::outcome).
    assert!(s.line_with(&label).contains("failed"), "{s}");
    assert_eq!(s.fg_of("2/3 ok", &label), Color::Red, "{s}");
    let s = d.open(&label, "unit").await;
    assert!(s.line_with("unit").contains("2/3 ok"), "{s}");
    d.select("unit");
    d.key(KeyCode::Char('t'));
    let s = d.until_text("suite::a_ok").await;
    assert!(s.contains("Tests of run"), "{s}");
    assert!(s.contains("3 tests, 1 failed, 1 regr"), "{s}");
    assert!(
        s.header().ends_with("tests") || s.header().contains("› tests"),
        "{s}"
    );
    for col in ["RESULT", "CHANGE", "AGE", "INSTAB", "TEST"] {
        assert!(s.contains(col), "{s}");
    }
    // The failure comes first although its name sorts last.
    let z = s.row_of("suite::z_flaky").unwrap();
    let a = s.row_of("suite::a_ok").unwrap();
    let m = s.row_of("suite::m_ok").unwrap();
    assert!(z < a && a < m, "{s}");
    let row = s.line_with("suite::z_flaky");
    assert!(row.contains("Failed") && row.contains("regr"), "{s}");
    assert_eq!(s.fg_of("Failed", "suite::z_flaky"), Color::Red, "{s}");
    assert_eq!(s.fg_of("Passed", "suite::a_ok"), Color::Green, "{s}");
    // Instability 1 for the flip; the passing tests have aged one flow.
    let cells = |l: &str| -> Vec<String> {
        l.replace('│', " ")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(cells(row)[..4], ["Failed", "regr", "0", "1"], "{s}");
    assert_eq!(
        cells(s.line_with("suite::a_ok"))[..3],
        ["Passed", "1", "0"],
        "{s}"
    );

    // Enter shows what the failed test said (its JUnit message and text),
    // and its history: this flow's failure, the pass before it.
    d.select("suite::z_flaky");
    d.key(KeyCode::Enter);
    let s = d.screen();
    assert!(s.contains("Details"), "{s}");
    assert!(s.line_with("message").contains("boom"), "{s}");
    assert!(s.contains("trace"), "{s}");
    assert!(s.contains("History"), "{s}");
    let before = format!("│{first}. ");
    let s = d.until("the history", |s| s.contains(&before)).await;
    // Newest first: the regression in this flow, then the pass before.
    let now = s.line_with(&format!("│{last}. "));
    let then = s.line_with(&before);
    assert!(now.contains("Failed") && now.contains("regr"), "{s}");
    assert!(then.contains("Passed") && !then.contains("regr"), "{s}");
    assert!(s.row_of(&format!("│{last}. ")) < s.row_of(&before), "{s}");
    // With the flow's date (month-day hour:minute).
    let date = chrono::Utc::now().format("%m-%d").to_string();
    assert!(then.contains(&date), "{s}");
    assert_eq!(s.fg_of("Failed", &format!("│{last}. ")), Color::Red, "{s}");
    // The history follows the cursor: a_ok passed in both flows.
    d.select("suite::a_ok");
    let s = d
        .until("a_ok's history", |s| {
            s.row_of(&format!("│{last}. "))
                .is_some_and(|r| s.lines[r].contains("Passed"))
        })
        .await;
    assert!(s.line_with(&before).contains("Passed"), "{s}");
    assert!(!s.contains("boom"), "{s}");
    d.key(KeyCode::Enter);
    let s = d.screen();
    assert!(!s.contains("Details") && !s.contains("History"), "{s}");

    // Filter on the change word.
    d.key(KeyCode::Char('/'));
    d.typed("regr");
    let s = d.screen();
    assert!(
        s.contains("suite::z_flaky") && !s.contains("suite::a_ok"),
        "{s}"
    );
    // Esc clears the filter, the next one goes back to the runs.
    d.key(KeyCode::Esc);
    let s = d.screen();
    assert!(
        s.contains("suite::a_ok") && s.contains("suite::z_flaky"),
        "{s}"
    );
    d.key(KeyCode::Esc);
    d.until_text("CI flow").await;
}
