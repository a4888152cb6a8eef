//! Pages of a big job log are found by position (kept counts and line
//! positions): every page, in both orders, of the job's view and of its
//! step's view, is the matching slice of the whole log.

use std::time::Duration;

use serde_json::Value;

use kraken_tests::{TestServer, shell_stage};

fn messages(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().trim_end().to_string())
        .collect()
}

#[tokio::test]
async fn every_page_is_the_slice_of_the_whole_log() {
    // More lines than one batch of the agent (4,096), so batches follow each other.
    const N: usize = 10_000;
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("paged").await;
    let bid = admin.branch(pid, "main").await;
    admin
        .stage(
            bid,
            "chatty",
            &shell_stage("root", "seq", &[&format!("seq 1 {N}")]),
        )
        .await;
    let flow = admin.flow(bid).await;
    let done = admin
        .wait_flow(flow["id"].as_i64().unwrap(), Duration::from_secs(60))
        .await;
    let job = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await[0]["id"]
        .as_i64()
        .unwrap();

    for base in [
        format!("/api/jobs/{job}/logs"),
        format!("/api/jobs/{job}/0/logs"),
    ] {
        let all = admin.get(&format!("{base}?start=0&limit=100000")).await;
        let whole = messages(&all.body);
        let total = all.body["total"].as_u64().unwrap() as usize;
        assert_eq!(whole.len(), total, "{base}");
        // The job's output, in order, with nothing lost or doubled.
        let numbers: Vec<&String> = whole
            .iter()
            .filter(|m| m.chars().all(|c| c.is_ascii_digit()) && !m.is_empty())
            .collect();
        let want: Vec<String> = (1..=N).map(|i| i.to_string()).collect();
        assert_eq!(numbers, want.iter().collect::<Vec<_>>(), "{base}");
        for (start, limit) in [
            (0, 1),
            (0, 10),
            (7, 13),
            (N / 2, 10),
            (total - 10, 10),
            (total - 3, 10),
            (total, 5),
            (total + 7, 5),
        ] {
            let asc = admin
                .get(&format!("{base}?start={start}&limit={limit}"))
                .await;
            assert_eq!(asc.body["total"].as_u64().unwrap() as usize, total);
            let end = (start + limit).min(total);
            let want: Vec<String> = if start < total {
                whole[start..end].to_vec()
            } else {
                vec![]
            };
            assert_eq!(messages(&asc.body), want, "{base} asc {start} {limit}");
            let desc = admin
                .get(&format!("{base}?start={start}&limit={limit}&order=desc"))
                .await;
            let mut rev = whole.clone();
            rev.reverse();
            let want: Vec<String> = if start < total {
                rev[start..end].to_vec()
            } else {
                vec![]
            };
            assert_eq!(messages(&desc.body), want, "{base} desc {start} {limit}");
        }
    }
}
