//! Test results and their history analysis, comments, issues, artifacts,
//! stats and flow history, end to end.

use std::time::Duration;

use serde_json::{Value, json};

use kraken_tests::{Client, TestServer, manual_agent};

const WAIT: Duration = Duration::from_secs(60);

/// A stage whose job writes a JUnit file (t1 fails in CI flows 2 and 5 and in
/// DEV flows; t2 always passes) and collects it.
fn junit_stage() -> String {
    let script = r##"if [ "#{KK_FLOW_SEQ}" = "2" ] || [ "#{KK_FLOW_SEQ}" = "5" ] || [ "#{KK_FLOW_TYPE}" = "DEV" ]; then R='<failure message="boom">trace</failure>'; else R=''; fi; printf '<testsuite name="s"><testcase classname="suite" name="t1">%s</testcase><testcase classname="suite" name="t2"/></testsuite>' "$R" > results.xml"##;
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"tests\", \"steps\": [{{\"tool\": \"shell\", \"cmd\": {}}}, {{\"tool\": \"junit_collect\", \"file_glob\": \"results.xml\"}}], \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}\n",
        serde_json::to_string(script).unwrap()
    )
}

async fn run_flow(c: &Client, branch: i64, kind: &str) -> Value {
    let f = c
        .post(&format!("/api/branches/{branch}/flows/{kind}"), json!({}))
        .await;
    let id = f.expect(201)["id"].as_i64().unwrap();
    c.wait_flow(id, WAIT).await
}

/// Every result of a run (the server's largest page), by name.
async fn results_of(c: &Client, run: i64) -> Vec<Value> {
    let r = c
        .get(&format!(
            "/api/runs/{run}/results?sort_field=name&limit=100000"
        ))
        .await;
    r.expect(200)["items"].as_array().unwrap().clone()
}

fn brief(r: &Value) -> (String, i64, i64, i64, i64) {
    (
        r["test_case_name"].as_str().unwrap().to_string(),
        r["result"].as_i64().unwrap(),
        r["change"].as_i64().unwrap(),
        r["age"].as_i64().unwrap(),
        r["instability"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn history_analysis_new_regr_fix_dev_and_comments() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin.stage(bid, "tests", &junit_stage()).await;

    // CI 1: both new.
    let f1 = run_flow(&admin, bid, "ci").await;
    let r1 = f1["runs"][0].clone();
    assert_eq!(r1["tests_total"], 2);
    assert_eq!(r1["tests_passed"], 2);
    assert_eq!(r1["new_cnt"], 2);
    let res = results_of(&admin, r1["id"].as_i64().unwrap()).await;
    assert_eq!(brief(&res[0]), ("suite::t1".into(), 1, 3, 0, 0));
    assert_eq!(brief(&res[1]), ("suite::t2".into(), 1, 3, 0, 0));

    // CI 2: t1 fails: a regression; t2 ages.
    let f2 = run_flow(&admin, bid, "ci").await;
    let r2 = f2["runs"][0].clone();
    assert_eq!(
        (
            r2["regr_cnt"].as_i64(),
            r2["no_change_cnt"].as_i64(),
            r2["tests_passed"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let r2_id = r2["id"].as_i64().unwrap();
    let res = results_of(&admin, r2_id).await;
    assert_eq!(brief(&res[0]), ("suite::t1".into(), 2, 2, 0, 1));
    assert_eq!(brief(&res[1]), ("suite::t2".into(), 1, 0, 1, 0));
    assert_eq!(res[0]["relevancy"], 6);
    let failed_tcr = res[0]["id"].as_i64().unwrap();

    // Filters and sorting.
    let only_failed = admin
        .get(&format!("/api/runs/{r2_id}/results?statuses=2"))
        .await;
    assert_eq!(only_failed.expect(200)["total"], 1);
    let regr = admin
        .get(&format!("/api/runs/{r2_id}/results?changes=2&changes=3"))
        .await;
    assert_eq!(regr.body["items"][0]["test_case_name"], "suite::t1");
    let by_text = admin
        .get(&format!("/api/runs/{r2_id}/results?test_case_text=T2"))
        .await;
    assert_eq!(by_text.body["total"], 1);
    let old = admin
        .get(&format!("/api/runs/{r2_id}/results?min_age=1"))
        .await;
    assert_eq!(old.body["items"][0]["test_case_name"], "suite::t2");
    let desc = admin
        .get(&format!(
            "/api/runs/{r2_id}/results?sort_field=relevancy&sort_dir=desc"
        ))
        .await;
    assert_eq!(desc.body["items"][0]["test_case_name"], "suite::t1");
    admin
        .get(&format!("/api/runs/{r2_id}/results?sort_field=colour"))
        .await
        .expect(400);
    admin
        .get(&format!("/api/runs/{r2_id}/results?statuses=bad"))
        .await
        .expect(400);
    admin.get("/api/runs/99999/results").await.expect(404);

    // A comment on the failure.
    let c = admin
        .post(
            &format!("/api/test_case_results/{failed_tcr}/comment"),
            json!({"text": "looking", "author": "ann", "state": 1}),
        )
        .await;
    assert_eq!(c.expect(200)["comment"]["state"], 1);
    assert_eq!(c.body["comment"]["data"][0]["text"], "looking");
    let c = admin
        .post(
            &format!("/api/test_case_results/{failed_tcr}/comment"),
            json!({"text": "bug in product", "author": "bob", "state": 2}),
        )
        .await;
    assert_eq!(
        c.expect(200)["comment"]["data"][0]["text"],
        "bug in product",
        "newest first"
    );
    assert_eq!(
        c.body["relevancy"], 5,
        "a root-caused failure is less relevant"
    );
    admin
        .post(
            &format!("/api/test_case_results/{failed_tcr}/comment"),
            json!({"text": "x", "author": "a"}),
        )
        .await
        .expect(400);
    admin
        .post(
            &format!("/api/test_case_results/{failed_tcr}/comment"),
            json!({"text": "x", "author": "a", "state": 9}),
        )
        .await
        .expect(400);
    admin
        .post(
            "/api/test_case_results/99999/comment",
            json!({"text": "x", "author": "a", "state": 0}),
        )
        .await
        .expect(404);
    let one = admin
        .get(&format!("/api/test_case_results/{failed_tcr}"))
        .await;
    assert_eq!(one.expect(200)["flow_kind"], "ci");
    assert_eq!(one.body["stage_name"], "tests");

    // CI 3: t1 fixed.
    let f3 = run_flow(&admin, bid, "ci").await;
    let res = results_of(&admin, f3["runs"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(brief(&res[0]), ("suite::t1".into(), 1, 1, 0, 2));
    assert_eq!(brief(&res[1]), ("suite::t2".into(), 1, 0, 2, 0));
    assert_eq!(f3["runs"][0]["fix_cnt"], 1);

    // DEV: compared with the latest CI result, whose age and instability it copies.
    let d = run_flow(&admin, bid, "dev").await;
    let res = results_of(&admin, d["runs"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(brief(&res[0]), ("suite::t1".into(), 2, 2, 0, 2));
    assert_eq!(brief(&res[1]), ("suite::t2".into(), 1, 0, 2, 0));
    let dev_tcr = res[0]["id"].as_i64().unwrap();

    // CI 5: t1 fails again and inherits the comment.
    let f5 = run_flow(&admin, bid, "ci").await;
    let res = results_of(&admin, f5["runs"][0]["id"].as_i64().unwrap()).await;
    assert_eq!(brief(&res[0]), ("suite::t1".into(), 2, 2, 0, 3));
    assert_eq!(res[0]["comment"]["data"][0]["text"], "bug in product");
    assert_eq!(
        res[0]["comment"]["state"], 0,
        "a carried comment starts as new again"
    );
    let t1_ci5 = res[0]["id"].as_i64().unwrap();

    // History of a result: the same test in the branch's CI flows, newest first.
    let h = admin
        .get(&format!("/api/test_case_results/{t1_ci5}/history"))
        .await;
    let results: Vec<i64> = h.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_i64().unwrap())
        .collect();
    assert_eq!(results, [2, 1, 2, 1]);
    let hd = admin
        .get(&format!("/api/test_case_results/{dev_tcr}/history"))
        .await;
    assert_eq!(
        hd.expect(200)["items"][0]["flow_kind"],
        "dev",
        "a DEV result leads its history"
    );

    // Flow history and branch stats follow the flows.
    let fh = admin
        .get(&format!("/api/flows/{}/history?limit=10", f5["id"]))
        .await;
    let items = fh.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4);
    let regr: Vec<i64> = items
        .iter()
        .map(|i| i["tests_regr"].as_i64().unwrap())
        .collect();
    assert_eq!(regr, [0, 1, 0, 1]);
    assert_eq!(items[2]["tests_fix"], 1);
    admin
        .get(&format!("/api/flows/{}/history", d["id"]))
        .await
        .expect(400);
    admin
        .get(&format!("/api/flows/{}/history?limit=101", f5["id"]))
        .await
        .expect(400);
    let stats = admin.get(&format!("/api/branches/{bid}/stats")).await;
    assert_eq!(stats.expect(200)["ci"]["flows_total"], 4);
    assert_eq!(stats.body["dev"]["flows_total"], 1);
    assert_eq!(stats.body["ci"]["durations"].as_array().unwrap().len(), 4);
    assert!(stats.body["ci"]["avg_duration_last_week"].is_string());
    let analysis = admin
        .get(&format!("/api/flows/{}/analysis", f5["id"]))
        .await;
    assert_eq!(analysis.expect(200)["total_tests"], 2);
    assert_eq!(analysis.body["stats"]["tests"]["all"]["any"]["Failed"], 1);
    // Branch summaries in the project list.
    let projects = admin.get("/api/projects").await;
    let b = &projects.body["items"][0]["branches"][0];
    assert_eq!(b["last_completed_flow"]["id"], f5["id"]);
    assert_eq!(b["last_incomplete_flow"], json!(null));
    assert_eq!(f5["summary"]["tests_regr"], 1);
}

#[tokio::test]
async fn artifacts_upload_download_and_report_entries() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let upload = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"make\", \"steps\": [\
        {\"tool\": \"shell\", \"cmd\": \"mkdir -p out/sub && head -c 70000 /dev/urandom > out/blob.bin && echo '<html>report</html>' > out/sub/index.html\"},\
        {\"tool\": \"artifacts\", \"source\": \"out/blob.bin\", \"public\": True},\
        {\"tool\": \"artifacts\", \"source\": \"out/sub/index.html\", \"report_entry\": \"out/sub/index.html\"}],\
        \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "upload", upload).await;
    let download = "def stage(ctx):\n    return {\"parent\": \"upload\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"use\", \"steps\": [\
        {\"tool\": \"artifacts\", \"action\": \"download\", \"source\": \"out/blob.bin\"},\
        {\"tool\": \"shell\", \"cmd\": \"ls -l; sha256sum out/blob.bin blob.bin 2>/dev/null || true\"}],\
        \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "download", download).await;
    let flow = run_flow(&admin, bid, "ci").await;
    for r in flow["runs"].as_array().unwrap() {
        let jobs = admin.run_jobs(r["id"].as_i64().unwrap()).await;
        assert_eq!(r["jobs_error"], 0, "{jobs:?}");
    }
    let fid = flow["id"].as_i64().unwrap();
    let list = admin.get(&format!("/api/flows/{fid}/artifacts")).await;
    let items = list.expect(200)["items"].as_array().unwrap().clone();
    let blob = items
        .iter()
        .find(|a| a["path"].as_str().unwrap().ends_with("blob.bin"))
        .expect("blob listed");
    assert_eq!(blob["size"], 70000);
    let url = blob["url"].as_str().unwrap().to_string();
    let got = admin
        .http
        .get(format!("{}{url}", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let bytes = got.bytes().await.unwrap();
    // Byte-identical with what the job wrote: compare with the file the download stage got.
    let up_run = flow["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage_name"] == "upload")
        .unwrap()
        .clone();
    let down_run = flow["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage_name"] == "download")
        .unwrap()
        .clone();
    assert_eq!(bytes.len(), 70000);
    let core = s.core();
    let stored = std::fs::read(
        s.data_dir
            .join("artifacts")
            .join(format!("{:08}", bid))
            .join(fid.to_string())
            .join(up_run["id"].to_string())
            .join("out/blob.bin"),
    )
    .unwrap();
    assert_eq!(bytes.as_ref(), stored.as_slice());
    let _ = core;
    let dj = admin
        .run_jobs(down_run["id"].as_i64().unwrap())
        .await
        .remove(0);
    let log = admin.job_log(dj["id"].as_i64().unwrap()).await.join("\n");
    assert!(log.contains("blob.bin"), "{log}");
    // The report entry.
    let run = admin.get(&format!("/api/runs/{}", up_run["id"])).await.body;
    assert_eq!(run["report_entries"][0]["name"], "Index");
    let report = admin
        .http
        .get(format!(
            "{}{}",
            s.url,
            run["report_entries"][0]["url"]
                .as_str()
                .unwrap()
                .replace("/public/", "/report/")
        ))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(report.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(report.text().await.unwrap().trim(), "<html>report</html>");
    assert_eq!(
        admin
            .get(&format!("/api/runs/{}/artifacts", up_run["id"]))
            .await
            .body["total"],
        2
    );
    // Errors.
    let bad = admin
        .http
        .get(format!("{}/artifacts/secret/f/{fid}/out/blob.bin", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let missing = admin
        .http
        .get(format!("{}/artifacts/public/f/{fid}/nope.txt", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let anon = reqwest::get(format!("{}{url}", s.url)).await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);
}

#[tokio::test]
async fn issues_age_against_the_previous_good_job_and_tasks_are_listed() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let addr = "lint-agent";
    let agent = manual_agent(&s, &admin, addr, json!({"system": "debian-12"})).await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"lint\", \"steps\": [{\"tool\": \"pylint\", \"modules_or_packages\": \"pkg\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "lint", code).await;
    // The original agent's pylint tool reports issues; play its part.
    let run_once = |issues: Value| {
        let admin = admin.clone();
        let agent = agent.clone();
        async move {
            let flow = admin.flow(bid).await;
            let job_id = take_job(&agent, addr).await;
            let step = finish_job(
                &agent,
                addr,
                job_id,
                json!({"status": "done", "duration": 1, "issues": issues}),
            )
            .await;
            assert_eq!(step["tool"], "pylint");
            admin.wait_flow(flow["id"].as_i64().unwrap(), WAIT).await
        }
    };
    let i = |path: &str, line: i64, t: &str, sym: &str| json!({"path": path, "line": line, "column": 1, "type": t, "symbol": sym, "message": format!("{sym} here"), "module": "pkg"});
    let f1 = run_once(json!([
        i("a.py", 10, "warning", "unused-import"),
        i("b.py", 5, "error", "undefined")
    ]))
    .await;
    assert_eq!(f1["runs"][0]["issues_total"], 2);
    assert_eq!(
        f1["runs"][0]["issues_new"], 0,
        "first issues are not counted as new"
    );
    let f2 = run_once(json!([
        i("a.py", 13, "warning", "unused-import"),
        i("b.py", 5, "convention", "undefined"),
        i("c.py", 1, "refactor", "too-many")
    ]))
    .await;
    let r2 = f2["runs"][0]["id"].as_i64().unwrap();
    assert_eq!(f2["runs"][0]["issues_new"], 2);
    let issues = admin.get(&format!("/api/runs/{r2}/issues")).await;
    let items = issues.expect(200)["items"].as_array().unwrap().clone();
    let age_of = |p: &str| {
        items.iter().find(|x| x["path"] == p).unwrap()["age"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((age_of("a.py"), age_of("b.py"), age_of("c.py")), (1, 0, 0));
    assert_eq!(items[0]["module"], "pkg", "extra fields are kept");
    let warnings = admin
        .get(&format!("/api/runs/{r2}/issues?issue_types=1"))
        .await;
    assert_eq!(warnings.body["total"], 1);
    let by_loc = admin
        .get(&format!("/api/runs/{r2}/issues?location=C.PY"))
        .await;
    assert_eq!(by_loc.body["total"], 1);
    admin
        .get(&format!("/api/runs/{r2}/issues?issue_types=x"))
        .await
        .expect(400);

    // Background tasks of this server, and queueing one.
    let tasks = admin.get("/api/last-rq-jobs").await;
    assert!(
        tasks.expect(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["func_name"] == "analyze_results_history" && t["status"] == "finished")
    );
    let q = admin
        .post(
            "/api/rq/queue",
            json!({"func_name": "analyze_results_history", "args": r2.to_string()}),
        )
        .await;
    q.expect(201);
    admin
        .post("/api/rq/queue", json!({"func_name": "rm_rf", "args": "1"}))
        .await
        .expect(400);
    admin
        .post(
            "/api/rq/queue",
            json!({"func_name": "analyze_run", "args": "99999"}),
        )
        .await
        .expect(404);
    let (_, user) = s.user("u").await;
    user.get("/api/last-rq-jobs").await.expect(403);
    let forced = admin.post(&format!("/api/runs/{r2}"), json!({})).await;
    forced.expect(200);
    admin
        .wait_for(&format!("/api/runs/{r2}"), WAIT, |r| {
            r["state"] == "processed"
        })
        .await;
}

/// The agent at `addr` takes its job and reports its single step.
async fn take_job(anon: &Client, addr: &str) -> i64 {
    let gj = anon
        .post(
            "/backend",
            json!({"address": addr, "msg": "get-job", "wait": 20}),
        )
        .await;
    let job = gj.expect(200)["job"]["id"].as_i64();
    job.unwrap_or_else(|| panic!("agent {addr} got no job: {}", gj.body))
}

/// A manual agent `addr` (its client) and a branch (its id) whose one
/// stage `tests` runs one pytest job on that agent's group.
async fn pytest_branch(s: &TestServer, admin: &Client, addr: &str) -> (Client, i64) {
    let agent = manual_agent(s, admin, addr, json!({"system": "debian-12"})).await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = "def stage(ctx):\n    return {\"parent\": \"root\", \"triggers\": {\"parent\": True}, \"jobs\": [{\"name\": \"tests\", \"steps\": [{\"tool\": \"pytest\", \"params\": \"-v\"}], \"environments\": [{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}]}]}";
    admin.stage(bid, "tests", code).await;
    (agent, bid)
}

/// The agent at `addr` runs the only step of `job`: reports `result` and
/// finishes the job. Returns the step it was given.
async fn finish_job(anon: &Client, addr: &str, job: i64, result: Value) -> Value {
    let st = anon
        .post("/backend", json!({"address": addr, "msg": "get-job-step"}))
        .await;
    let step = st.expect(200)["job_step"].clone();
    assert_eq!(step["index"], 0, "{step}");
    anon.post(
        "/backend",
        json!({"address": addr, "msg": "step-result2", "job_id": job, "step_idx": 0,
               "result": result}),
    )
    .await
    .expect(200);
    let fin = anon
        .post("/backend", json!({"address": addr, "msg": "get-job-step"}))
        .await;
    assert_eq!(fin.expect(200)["job_step"]["finish"], true);
    step
}

/// The agent at `addr` reports test `t1` with `result` for `job`.
async fn report_t1(anon: &Client, addr: &str, job: i64, result: i64) {
    let tests = json!([{"test": "t1", "cmd": "pytest -k t1", "status": result}]);
    finish_job(
        anon,
        addr,
        job,
        json!({"status": "done", "duration": 1, "test-results": tests}),
    )
    .await;
}

/// §8.2 rows 6 and 11: a rerun job's results are compared with the flow
/// before (its covered job is not history, now or later), and a CI run that
/// completes before the previous one waits for it to be analysed first.
#[tokio::test]
async fn covered_jobs_are_not_history_and_analysis_keeps_flow_order() {
    const PASSED: i64 = 1;
    const FAILED: i64 = 2;
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let (a, b) = ("agent-a", "agent-b");
    let (ca, bid) = pytest_branch(&s, &admin, a).await;
    let t1_of = |run: i64| {
        let admin = admin.clone();
        async move {
            let items = results_of(&admin, run).await;
            assert_eq!(items.len(), 1, "one result in run {run}: {items:?}");
            let (_, result, change, age, inst) = brief(&items[0]);
            (result, change, age, inst)
        }
    };
    let flow_run = |f: &Value| f["runs"][0]["id"].as_i64().unwrap();

    // Flow 1 passes, flow 2 fails: a regression.
    let f1 = admin.flow(bid).await;
    let j = take_job(&ca, a).await;
    report_t1(&ca, a, j, PASSED).await;
    let f1 = admin.wait_flow(f1["id"].as_i64().unwrap(), WAIT).await;
    assert_eq!(t1_of(flow_run(&f1)).await, (PASSED, 3, 0, 0));
    let f2 = admin.flow(bid).await;
    let f2_id = f2["id"].as_i64().unwrap();
    let failed_job = take_job(&ca, a).await;
    report_t1(&ca, a, failed_job, FAILED).await;
    let f2 = admin.wait_flow(f2_id, WAIT).await;
    let r2 = flow_run(&f2);
    assert_eq!(t1_of(r2).await, (FAILED, 2, 0, 1));

    // The failed job is rerun and passes: compared with flow 1, not with the
    // covered failure in its own run, so no change and age 1.
    admin
        .put(&format!("/api/jobs/{failed_job}"), json!({}))
        .await
        .expect(200);
    let j = take_job(&ca, a).await;
    assert_ne!(j, failed_job);
    report_t1(&ca, a, j, PASSED).await;
    admin.wait_flow(f2_id, WAIT).await;
    assert_eq!(t1_of(r2).await, (PASSED, 0, 1, 0));

    // Flow 3 takes agent a and holds it; flow 4 runs on agent b and finishes first.
    let f3 = admin.flow(bid).await;
    let j3 = take_job(&ca, a).await;
    let cb = manual_agent(&s, &admin, b, json!({"system": "debian-12"})).await;
    let f4 = admin.flow(bid).await;
    let j4 = take_job(&cb, b).await;
    report_t1(&cb, b, j4, FAILED).await;
    let r4 = admin
        .wait_for(&format!("/api/flows/{}", f4["id"]), WAIT, |f| {
            f["runs"][0]["state"] == "completed"
        })
        .await["runs"][0]["id"]
        .as_i64()
        .unwrap();
    // Its analysis task ran and postponed itself: the run stays completed.
    admin
        .wait_for("/api/last-rq-jobs", WAIT, |t| {
            t["items"].as_array().unwrap().iter().any(|t| {
                t["func_name"] == "analyze_results_history"
                    && t["args"] == json!([r4])
                    && t["status"] == "finished"
            })
        })
        .await;
    let run4 = admin.get(&format!("/api/runs/{r4}")).await;
    assert_eq!(run4.expect(200)["state"], "completed", "{}", run4.body);

    // Flow 3 finishes: it is analysed (history: flow 2's rerun pass and
    // flow 1, never the covered failure), then flow 4 after it.
    report_t1(&ca, a, j3, PASSED).await;
    let f3 = admin.wait_flow(f3["id"].as_i64().unwrap(), WAIT).await;
    assert_eq!(t1_of(flow_run(&f3)).await, (PASSED, 0, 2, 0));
    admin.wait_flow(f4["id"].as_i64().unwrap(), WAIT).await;
    assert_eq!(t1_of(r4).await, (FAILED, 2, 0, 1));
}

/// Only the newest ten earlier results are a test's history: a flip older
/// than that no longer makes it unstable, while its age keeps counting.
#[tokio::test]
async fn history_is_the_newest_ten_earlier_results() {
    const PASSED: i64 = 1;
    const FAILED: i64 = 2;
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let a = "agent-window";
    let (ca, bid) = pytest_branch(&s, &admin, a).await;
    // Flows 1-3 fail, pass, fail; flows 4-14 pass.
    let mut seq = vec![FAILED, PASSED, FAILED];
    seq.extend([PASSED; 11]);
    let mut t1 = Vec::new();
    for result in seq {
        let f = admin.flow(bid).await;
        let job = take_job(&ca, a).await;
        report_t1(&ca, a, job, result).await;
        let f = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
        let items = results_of(&admin, f["runs"][0]["id"].as_i64().unwrap()).await;
        assert_eq!(items.len(), 1, "{items:?}");
        let (_, result, change, age, instability) = brief(&items[0]);
        t1.push((result, change, age, instability));
    }
    // (result, change, age, instability)
    assert_eq!(t1[3], (PASSED, 1, 0, 3), "flow 4 fixes it");
    // Flow 13: history is flows 3-12, one flip (the fix in flow 4).
    assert_eq!(t1[12], (PASSED, 0, 9, 1));
    // Flow 14: history is flows 4-13, all passed.
    assert_eq!(t1[13], (PASSED, 0, 10, 0));
}

/// A flow of `kind` (`ci` or `dev`) on `branch` whose one job agent `agent`
/// takes and finishes reporting `tests`; its run's results, by name.
async fn flow_reporting(
    admin: &Client,
    anon: &Client,
    agent: &str,
    branch: i64,
    kind: &str,
    tests: Value,
) -> Vec<Value> {
    let f = admin
        .post(&format!("/api/branches/{branch}/flows/{kind}"), json!({}))
        .await
        .expect(201)
        .clone();
    let job = take_job(anon, agent).await;
    finish_job(
        anon,
        agent,
        job,
        json!({"status": "done", "duration": 1, "test-results": tests}),
    )
    .await;
    let f = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    results_of(admin, f["runs"][0]["id"].as_i64().unwrap()).await
}

/// The analysis of a run with more results than the server writes in one
/// statement (4,096 on SQLite) stores every result's outcome, and a
/// comment carried to a result past the first statement's rows sticks. A
/// test first reported among 4,200 known ones gets its test case (the
/// known names are looked up, only the new one is inserted).
#[tokio::test]
async fn every_result_of_a_big_run_gets_its_analysis() {
    const PASSED: i64 = 1;
    const FAILED: i64 = 2;
    const N: usize = 4_200;
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let a = "agent-big";
    let (ca, bid) = pytest_branch(&s, &admin, a).await;
    let tests = |failing: &[usize]| -> Value {
        (0..N)
            .map(|i| {
                let status = if failing.contains(&i) { FAILED } else { PASSED };
                json!({"test": format!("case-{i:04}"), "cmd": format!("run {i}"), "status": status})
            })
            .collect()
    };
    let by_name = |items: Vec<Value>| -> std::collections::HashMap<String, Value> {
        items
            .into_iter()
            .map(|r| (r["test_case_name"].as_str().unwrap().to_string(), r))
            .collect()
    };
    // Flow 1: case-4150 fails, and gets a comment.
    let r1 = by_name(flow_reporting(&admin, &ca, a, bid, "ci", tests(&[4150])).await);
    assert_eq!(r1.len(), N);
    let failed = r1["case-4150"]["id"].as_i64().unwrap();
    admin
        .post(
            &format!("/api/test_case_results/{failed}/comment"),
            json!({"text": "flaky disk", "author": "ann", "state": 1}),
        )
        .await
        .expect(200);
    // Flow 2: the first and last results regress, case-4150 fails again,
    // and a test new to the server joins the known ones.
    let mut second = tests(&[0, 4150, N - 1]);
    second
        .as_array_mut()
        .unwrap()
        .push(json!({"test": "case-new", "cmd": "run new", "status": PASSED}));
    let r2 = by_name(flow_reporting(&admin, &ca, a, bid, "ci", second).await);
    let f2 = admin.get(&format!("/api/branches/{bid}/flows/ci")).await;
    let run2 = &f2.expect(200)["items"][0]["runs"][0];
    assert_eq!(run2["regr_cnt"], 2, "{run2}");
    assert_eq!(run2["new_cnt"], 1, "{run2}");
    assert_eq!(run2["no_change_cnt"], N as i64 - 2);
    assert_eq!(r2.len(), N + 1);
    assert_eq!(brief(&r2["case-new"]), ("case-new".into(), PASSED, 3, 0, 0));
    // (name, result, change, age, instability)
    for name in ["case-0000", &format!("case-{:04}", N - 1)] {
        assert_eq!(brief(&r2[name]), (name.to_string(), FAILED, 2, 0, 1));
    }
    for name in ["case-0001", "case-4095", "case-4096", "case-4198"] {
        assert_eq!(brief(&r2[name]), (name.to_string(), PASSED, 0, 1, 0));
    }
    assert_eq!(
        brief(&r2["case-4150"]),
        ("case-4150".into(), FAILED, 0, 1, 0)
    );
    assert_eq!(r2["case-4150"]["comment"]["data"][0]["text"], "flaky disk");
    assert_eq!(r2["case-4150"]["comment"]["state"], 0);
    assert!(r2["case-4149"]["comment"].is_null(), "{}", r2["case-4149"]);
}

/// A test not run in the newest flows still has its history: the analysis
/// reads the branch's newest 20 CI flows first and, for a series with
/// fewer than ten results there, the whole history of its test case.
#[tokio::test]
async fn history_reaches_back_past_the_flows_a_test_did_not_run_in() {
    const PASSED: i64 = 1;
    const FAILED: i64 = 2;
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let a = "agent-gap";
    let (ca, bid) = pytest_branch(&s, &admin, a).await;
    // t1 in every flow; t2 fails, passes and fails in flows 1-3, is not
    // run in flows 4-23, and fails again in flow 24; t3 fails in flow 1
    // only.
    let mut last = Vec::new();
    for i in 1..=24 {
        let mut tests = vec![json!({"test": "t1", "cmd": "pytest -k t1", "status": PASSED})];
        if i == 1 {
            tests.push(json!({"test": "t3", "cmd": "pytest -k t3", "status": FAILED}));
        }
        let t2 = match i {
            1 | 3 | 24 => Some(FAILED),
            2 => Some(PASSED),
            _ => None,
        };
        if let Some(status) = t2 {
            tests.push(json!({"test": "t2", "cmd": "pytest -k t2", "status": status}));
        }
        last = flow_reporting(&admin, &ca, a, bid, "ci", json!(tests)).await;
    }
    let got: Vec<_> = last.iter().map(brief).collect();
    // (name, result, change, age, instability)
    assert_eq!(
        got,
        vec![
            ("t1".to_string(), PASSED, 0, 23, 0),
            // History: flows 1-3 (failed, passed, failed): the same result
            // as the newest (no change), one older than it, two flips.
            ("t2".to_string(), FAILED, 0, 1, 2),
        ]
    );

    // A DEV flow's results are compared with the latest CI result of each
    // test, however old: t3's is flow 1's failure, 23 CI flows back.
    let all = |status: i64| {
        ["t1", "t2", "t3"]
            .map(|t| json!({"test": t, "cmd": format!("pytest -k {t}"), "status": status}))
    };
    let dev = flow_reporting(&admin, &ca, a, bid, "dev", json!(all(PASSED))).await;
    let got: Vec<_> = dev.iter().map(brief).collect();
    // (name, result, change, age, instability): the reference's age and
    // instability; t2 and t3 fixed (1), t1 unchanged (0).
    assert_eq!(
        got,
        vec![
            ("t1".to_string(), PASSED, 0, 23, 0),
            ("t2".to_string(), PASSED, 1, 1, 2),
            ("t3".to_string(), PASSED, 1, 0, 0),
        ]
    );
}

/// Artifacts and tool packages in S3 (moto's local S3 server): a 6 MB
/// artifact (more than one 5 MiB part) goes up from one stage, comes down
/// byte-identical in a child stage and through the API; nothing is kept in
/// the data dir; an object gone from the bucket is a 404 saying so.
#[tokio::test]
async fn artifacts_and_tools_in_s3() {
    let Some(moto) = kraken_tests::Moto::start().await else {
        return;
    };
    moto.bucket("kraken-it").await;
    let s =
        TestServer::start_with_storage(1, Some(moto.storage_url("kraken-it", "ci/blobs"))).await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    // Deterministic content, made again by the test and the child stage.
    let make = "yes 0123456789abcdef | head -c 6000000";
    let upload = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"make\", \"steps\": [\
        {{\"tool\": \"shell\", \"cmd\": \"mkdir -p out && {make} > out/big.bin && echo small > out/small.txt\"}},\
        {{\"tool\": \"artifacts\", \"source\": \"out/big.bin\", \"public\": True}},\
        {{\"tool\": \"artifacts\", \"source\": \"out/small.txt\", \"public\": True}}],\
        \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}"
    );
    admin.stage(bid, "upload", &upload).await;
    let download = format!(
        "def stage(ctx):\n    return {{\"parent\": \"upload\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{{\"name\": \"use\", \"steps\": [\
        {{\"tool\": \"artifacts\", \"action\": \"download\", \"source\": \"out/big.bin\"}},\
        {{\"tool\": \"shell\", \"cmd\": \"{make} > want.bin && cmp want.bin out/big.bin && echo same-bytes\"}}],\
        \"environments\": [{{\"system\": \"any\", \"agents_group\": \"all\", \"config\": \"default\"}}]}}]}}"
    );
    admin.stage(bid, "download", &download).await;
    let flow = run_flow(&admin, bid, "ci").await;
    for r in flow["runs"].as_array().unwrap() {
        let jobs = admin.run_jobs(r["id"].as_i64().unwrap()).await;
        assert_eq!(r["jobs_error"], 0, "{jobs:?}");
    }
    let down_run = flow["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage_name"] == "download")
        .unwrap()
        .clone();
    let dj = admin.run_jobs(down_run["id"].as_i64().unwrap()).await;
    let log = admin.job_log(dj[0]["id"].as_i64().unwrap()).await;
    assert!(log.iter().any(|l| l == "same-bytes"), "{log:?}");

    // Through the API, byte for byte.
    let fid = flow["id"].as_i64().unwrap();
    let want: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(6_000_000)
        .collect();
    let got = admin
        .http
        .get(format!("{}/artifacts/public/f/{fid}/out/big.bin", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.headers()["content-length"], "6000000");
    assert!(got.bytes().await.unwrap().as_ref() == want.as_slice());

    // In the bucket under the prefix, not in the data dir.
    let keys = moto.keys("kraken-it", "ci/blobs/artifacts/").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("/out/big.bin")), "{keys:?}");
    assert!(!s.data_dir.join("artifacts").exists());

    // Tool packages too.
    let meta = json!({"name": "zipped", "location": ".", "entry": "main", "parameters": {"properties": {}}});
    let zip: &[u8] = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let form = reqwest::multipart::Form::new()
        .text("meta", meta.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(zip.to_vec()).file_name("tool.zip"),
        );
    let r = admin
        .http
        .post(format!("{}/api/tools/zipped/zip", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let tools = moto.keys("kraken-it", "ci/blobs/tools/").await;
    assert!(
        tools.len() == 1 && tools[0].ends_with("/tool.zip"),
        "{tools:?}"
    );

    // An object that went missing from the bucket: 404, saying so.
    let small = keys.iter().find(|k| k.ends_with("small.txt")).unwrap();
    let store = kraken_core::storage::Storage::open(
        Some(&moto.storage_url("kraken-it", "ci/blobs")),
        &s.data_dir,
    )
    .unwrap();
    store
        .delete(small.strip_prefix("ci/blobs/").unwrap())
        .await
        .unwrap();
    assert_eq!(moto.keys("kraken-it", "ci/blobs/artifacts/").await.len(), 1);
    let gone = admin
        .http
        .get(format!("{}/artifacts/public/f/{fid}/out/small.txt", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    let body = gone.text().await.unwrap();
    assert!(body.contains("gone from storage"), "{body}");
}

/// Every field of a reported result is stored as reported, in the reported
/// order, on either database (PostgreSQL inserts a report as one statement
/// of arrays, SQLite in batches of rows): values, command line, message,
/// failure type, output and duration, and an absent field stays absent.
#[tokio::test]
async fn reported_results_keep_every_field_and_their_order() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let a = "agent-fields";
    let (ca, bid) = pytest_branch(&s, &admin, a).await;
    let f = admin.flow(bid).await;
    let job = take_job(&ca, a).await;
    // 450 results: more than one batch of rows on SQLite.
    let mut tests: Vec<Value> = (0..450)
        .map(|i| json!({"test": format!("case-{i:03}"), "cmd": format!("run {i}"), "status": 1}))
        .collect();
    tests[7] = json!({"test": "case-007", "cmd": "pytest -k seven", "status": 2,
        "message": "assert 1 == 2", "type": "AssertionError", "output": "line 1\nline 2",
        "duration": 1.25, "values": {"speed": {"value": 3.5, "iterations": 2}}});
    finish_job(
        &ca,
        a,
        job,
        json!({"status": "done", "duration": 1, "test-results": tests}),
    )
    .await;
    let f = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let run = f["runs"][0]["id"].as_i64().unwrap();
    let r = admin
        .get(&format!(
            "/api/runs/{run}/results?sort_field=name&limit=500"
        ))
        .await;
    let items = r.expect(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 450);
    let seven = items
        .iter()
        .find(|i| i["test_case_name"] == "case-007")
        .unwrap();
    assert_eq!(seven["result"], 2);
    assert_eq!(seven["cmd_line"], "pytest -k seven");
    assert_eq!(seven["message"], "assert 1 == 2");
    assert_eq!(seven["failure_type"], "AssertionError");
    assert_eq!(seven["output"], "line 1\nline 2");
    assert_eq!(seven["duration"], 1.25);
    assert_eq!(
        seven["values"],
        json!({"speed": {"value": 3.5, "iterations": 2}})
    );
    let plain = items
        .iter()
        .find(|i| i["test_case_name"] == "case-100")
        .unwrap();
    assert_eq!(plain["cmd_line"], "run 100");
    assert!(plain["message"].is_null(), "{plain}");
    assert!(plain["output"].is_null(), "{plain}");
    assert!(plain["duration"].is_null(), "{plain}");
    assert!(plain["values"].is_null(), "{plain}");
    // Ids follow the reported order.
    let mut by_id: Vec<(i64, String)> = items
        .iter()
        .map(|i| {
            (
                i["id"].as_i64().unwrap(),
                i["test_case_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_id.sort();
    let names: Vec<String> = by_id.into_iter().map(|(_, n)| n).collect();
    let expected: Vec<String> = (0..450).map(|i| format!("case-{i:03}")).collect();
    assert_eq!(names, expected);
}
