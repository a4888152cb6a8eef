//! The S3 endpoint (`--s3-bind`) with a real S3 client (the `object_store`
//! crate's, not this server's code) and per-job credentials obtained as
//! the original agent obtains them: from the `minio_*` fields of a step
//! handed out over the original `/backend` protocol.

use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde_json::{Value, json};

use kraken_tests::{Client, TestServer};

const WAIT: Duration = Duration::from_secs(60);

fn s3(step: &Value, bucket: &str, secret: Option<&str>) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", step["minio_addr"].as_str().unwrap()))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(step["minio_access_key"].as_str().unwrap())
        .with_secret_access_key(
            secret.unwrap_or_else(|| step["minio_secret_key"].as_str().unwrap()),
        )
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap()
}

/// A job of a one-job flow on a new branch, fetched by an original-style
/// agent (address only) at 127.0.0.1; (branch, flow, run, job, agent).
async fn original_style_job(
    base: &str,
    admin: &Client,
    kind: &str,
    steps: Value,
) -> (i64, i64, i64, i64, Client) {
    admin
        .put(
            "/api/settings",
            json!({"general": {"allow_address_only_agents": true}}),
        )
        .await
        .expect(200);
    let agent = Client {
        base: base.to_string(),
        token: None,
        http: reqwest::Client::new(),
    };
    let hello =
        json!({"address": "127.0.0.1", "msg": "host-info", "info": {"system": "debian-12"}});
    agent.post("/backend", hello.clone()).await.expect(200);
    let aid = admin.get("/api/agents?unauthorized=true").await.body["items"][0]["id"]
        .as_i64()
        .unwrap();
    admin
        .patch("/api/agents", json!([{"id": aid, "authorized": true}]))
        .await
        .expect(200);
    agent.post("/backend", hello).await.expect(200);
    let pid = admin.project("s3").await;
    let bid = admin.branch(pid, "main").await;
    let job = json!({"name": "up", "steps": steps,
        "environments": [{"system": "any", "agents_group": "all", "config": "c"}]})
    .to_string()
    .replace(":true", ":True");
    admin
        .stage(
            bid,
            "up",
            &format!("def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{job}]}}\n"),
        )
        .await;
    let flow = admin
        .post(&format!("/api/branches/{bid}/flows/{kind}"), json!({}))
        .await
        .expect(201)
        .clone();
    let fid = flow["id"].as_i64().unwrap();
    let rid = flow["runs"][0]["id"].as_i64().unwrap();
    let gj = agent
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "get-job", "wait": 10}),
        )
        .await;
    let jid = gj.expect(200)["job"]["id"].as_i64().unwrap();
    (bid, fid, rid, jid, agent)
}

async fn bytes(store: &AmazonS3, key: &str) -> object_store::Result<Vec<u8>> {
    Ok(store.get(&Key::from(key)).await?.bytes().await?.to_vec())
}

#[tokio::test]
async fn a_job_reads_and_writes_its_own_objects_only_and_only_while_it_runs() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let (bid, fid, rid, jid, agent) = original_style_job(
        &s.url,
        &admin,
        "ci",
        json!([
            {"tool": "artifacts", "source": "big.bin", "public": true},
            {"tool": "cache", "action": "save", "key": "deps", "paths": ["d"]},
            {"tool": "git", "checkout": "https://example.com/a/b.git"},
        ]),
    )
    .await;
    let step = next_step(&agent).await;
    // The fields the original's tools read.
    assert_eq!(step["minio_bucket"], format!("{bid:08}"), "{step}");
    assert_eq!(step["minio_access_key"], format!("KKJOB{jid}"));
    let secret = step["minio_secret_key"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32);
    // The agent masks the secret in what the step prints.
    assert!(
        step["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == secret.as_str()),
        "{step}"
    );
    let art = s3(&step, &format!("{bid:08}"), None);

    // Its own run's artifacts: a small one, and one sent in parts.
    art.put(
        &Key::from(format!("{fid}/{rid}/small.txt")),
        PutPayload::from_static(b"hello"),
    )
    .await
    .unwrap();
    assert_eq!(
        bytes(&art, &format!("{fid}/{rid}/small.txt"))
            .await
            .unwrap(),
        b"hello"
    );
    let big: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let upload = art
        .put_multipart(&Key::from(format!("{fid}/{rid}/big.bin")))
        .await
        .unwrap();
    let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    w.write(&big);
    w.finish().await.unwrap();
    assert_eq!(
        bytes(&art, &format!("{fid}/{rid}/big.bin")).await.unwrap(),
        big
    );
    let head = art
        .head(&Key::from(format!("{fid}/{rid}/big.bin")))
        .await
        .unwrap();
    assert_eq!(head.size, big.len() as u64);
    // A ranged read.
    let part = art
        .get_range(&Key::from(format!("{fid}/{rid}/big.bin")), 100..200)
        .await
        .unwrap();
    assert_eq!(&part[..], &big[100..200]);
    // Listing: under the flow, with a delimiter as the original's agent lists.
    let listed: Vec<String> = art
        .list(Some(&Key::from(format!("{fid}"))))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        listed,
        [
            format!("{fid}/{rid}/big.bin"),
            format!("{fid}/{rid}/small.txt")
        ]
    );
    let dirs = art
        .list_with_delimiter(Some(&Key::from(format!("{fid}"))))
        .await
        .unwrap();
    assert_eq!(
        dirs.common_prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [format!("{fid}/{rid}")]
    );
    // Reported by the agent, the artifact is this server's: downloaded
    // through /artifacts byte-identical.
    agent
        .post("/backend", json!({"address": "127.0.0.1", "msg": "step-result2", "job_id": jid, "step_idx": 0,
            "result": {"status": "done", "duration": 1, "artifacts": [{"path": "big.bin", "size": big.len()}]}}))
        .await
        .expect(200);
    let got = admin
        .http
        .get(format!("{}/artifacts/public/f/{fid}/big.bin", s.url))
        .bearer_auth(admin.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), big);

    // Not its own: another run's place, another branch's bucket, a made-up one.
    let e = art
        .put(
            &Key::from(format!("{fid}/{}/x", rid + 1000)),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("AccessDenied"), "{e}");
    let e = bytes(&art, &format!("{}/1/x", fid + 1000))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("AccessDenied"), "{e}");
    for other in [format!("{:08}", bid + 1), "secrets".to_string()] {
        let e = s3(&step, &other, None)
            .put(&Key::from("x"), PutPayload::from_static(b"x"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("NoSuchBucket"), "{e}");
    }
    // A wrong secret is refused.
    let e = s3(&step, &format!("{bid:08}"), Some("not-the-secret"))
        .put(
            &Key::from(format!("{fid}/{rid}/w")),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");

    // Signature V2 (no signed body, no checked time) is refused, even
    // correctly signed with the job's key.
    {
        use base64::Engine;
        use hmac::Mac;
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let path = format!("/{bid:08}/{fid}/{rid}/small.txt");
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("GET\n\n\n{date}\n{path}").as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let r = reqwest::Client::new()
            .get(format!(
                "http://{}{path}",
                step["minio_addr"].as_str().unwrap()
            ))
            .header("Date", date)
            .header("Authorization", format!("AWS KKJOB{jid}:{sig}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let body = r.text().await.unwrap();
        assert!(body.contains("Signature Version 4"), "{body}");
    }

    // The cache: its own job's entry under its stage and job name.
    let step2 = next_step(&agent).await;
    let folder = step2["minio_folder"]["deps"].as_str().unwrap().to_string();
    assert!(folder.ends_with("-up/deps"), "{step2}");
    assert_eq!(step2["minio_secret_key"], secret.as_str());
    let cache = s3(&step2, &format!("{bid:08}-cache"), None);
    cache
        .put(
            &Key::from(format!("{folder}/{jid}/d.tar.gz")),
            PutPayload::from_static(b"tgz"),
        )
        .await
        .unwrap();
    let e = cache
        .put(
            &Key::from(format!("{folder}/{}/d.tar.gz", jid + 1)),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("AccessDenied"), "{e}");
    // Without its meta.json the entry is not there for a restore.
    assert!(
        cache
            .list_with_delimiter(Some(&Key::from(folder.clone())))
            .await
            .unwrap()
            .common_prefixes
            .is_empty()
    );
    cache
        .put(
            &Key::from(format!("{folder}/{jid}/meta.json")),
            PutPayload::from_static(b"{\"d.tar.gz\": \"d\"}"),
        )
        .await
        .unwrap();
    let entries = cache
        .list_with_delimiter(Some(&Key::from(folder.clone())))
        .await
        .unwrap();
    assert_eq!(
        entries
            .common_prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [format!("{folder}/{jid}")]
    );
    // The same entry as this project's cache tool keeps it.
    let stored = s
        .core()
        .storage()
        .list(&format!("cache/{bid:08}"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");

    // Git bundles: its git steps' repositories only.
    step_done(&agent, jid, 1).await;
    let step3 = next_step(&agent).await;
    assert_eq!(
        step3["minio_folder"], "https___example_com_a_b_git",
        "{step3}"
    );
    let git = s3(&step3, &format!("{bid:08}-git"), None);
    git.put(
        &Key::from("https___example_com_a_b_git/repo.bundle"),
        PutPayload::from_static(b"bundle"),
    )
    .await
    .unwrap();
    let e = git
        .put(
            &Key::from("https___example_com_evil_git/repo.bundle"),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("AccessDenied"), "{e}");

    // The job ends: its credentials are dead.
    step_done(&agent, jid, 2).await;
    let fin = agent
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "get-job-step"}),
        )
        .await;
    assert_eq!(fin.expect(200)["job_step"]["finish"], true);
    admin.wait_flow(fid, WAIT).await;
    let e = bytes(&art, &format!("{fid}/{rid}/small.txt"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("InvalidAccessKeyId"), "{e}");
}

#[tokio::test]
async fn agents_are_told_an_address_they_can_reach() {
    let dir = tempfile::tempdir().unwrap();
    let server = kraken_server::start(kraken_server::ServerConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        agents: 0,
        s3_bind: Some("0.0.0.0:0".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let port = server.s3_addr.unwrap().port();
    let admin = Client::login(&server.url(), "admin", "admin").await;
    // Listening on every address: the host of the server's URL.
    admin
        .put(
            "/api/settings",
            json!({"general": {"server_url": "https://ci.example.com:8443/kraken"}}),
        )
        .await
        .expect(200);
    let (_, _, _, _, agent) = original_style_job(
        &server.url(),
        &admin,
        "ci",
        json!([{"tool": "artifacts", "source": "a"}, {"tool": "shell", "cmd": "true"}, {"tool": "cache", "action": "restore", "keys": ["k"]}]),
    )
    .await;
    let first = next_step(&agent).await;
    assert_eq!(
        first["minio_addr"],
        format!("ci.example.com:{port}"),
        "{first}"
    );
    // A shell step talks to no storage: no credentials.
    step_done(&agent, first["job_id"].as_i64().unwrap(), 0).await;
    let second = next_step(&agent).await;
    assert_eq!(second["tool"], "shell");
    assert!(second.get("minio_secret_key").is_none(), "{second}");
    // The address set by hand wins.
    admin
        .put(
            "/api/settings",
            json!({"general": {"minio_addr": "minio.example.com:9000"}}),
        )
        .await
        .expect(200);
    step_done(&agent, first["job_id"].as_i64().unwrap(), 1).await;
    let third = next_step(&agent).await;
    assert_eq!(third["minio_addr"], "minio.example.com:9000", "{third}");
    assert_eq!(third["minio_secret_key"], first["minio_secret_key"]);
    assert!(
        third["minio_folders"]["k"]
            .as_str()
            .unwrap()
            .ends_with("-up/k"),
        "{third}"
    );
    server.shutdown().await.unwrap();
}

/// Report step `idx` of job `jid` done, as the original agent does.
async fn step_done(agent: &Client, jid: i64, idx: i64) {
    agent
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "step-result2", "job_id": jid, "step_idx": idx,
            "result": {"status": "done", "duration": 1}}),
        )
        .await
        .expect(200);
}

/// The next step handed to the original-style agent.
async fn next_step(agent: &Client) -> Value {
    agent
        .post(
            "/backend",
            json!({"address": "127.0.0.1", "msg": "get-job-step"}),
        )
        .await
        .expect(200)["job_step"]
        .clone()
}

#[tokio::test]
async fn pull_requests_keep_bundles_and_caches_apart_and_entries_follow_the_cache_rules() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let (bid, fid, rid, jid, agent) = original_style_job(
        &s.url,
        &admin,
        "dev",
        json!([
            {"tool": "git", "checkout": "https://example.com/a/b.git"},
            {"tool": "cache", "action": "save", "key": "deps", "paths": ["d"]},
            {"tool": "artifacts", "source": "x"},
        ]),
    )
    .await;
    let storage = s.core().storage().clone();
    // CI's bundle, cloned from by CI jobs.
    let folder = "https___example_com_a_b_git";
    storage
        .put_bytes(
            &format!("git/{bid:08}/{folder}/repo.bundle"),
            "ci-bundle".into(),
        )
        .await
        .unwrap();
    let step = next_step(&agent).await;
    let git = s3(&step, &format!("{bid:08}-git"), None);
    let key = format!("{folder}/repo.bundle");
    // The pull request reads CI's bundle while it has none of its own...
    assert_eq!(bytes(&git, &key).await.unwrap(), b"ci-bundle");
    // ...and what it stores is its own: CI's stays as it was.
    git.put(
        &Key::from(key.clone()),
        PutPayload::from_static(b"pr-bundle"),
    )
    .await
    .unwrap();
    assert_eq!(bytes(&git, &key).await.unwrap(), b"pr-bundle");
    let ci = storage
        .get(&format!("git/{bid:08}/{folder}/repo.bundle"))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert_eq!(ci, b"ci-bundle");

    // Cache entries: plain file names and a small meta.json mapping them.
    step_done(&agent, jid, 0).await;
    let step = next_step(&agent).await;
    let entry = format!("{}/{jid}", step["minio_folder"]["deps"].as_str().unwrap());
    let cache = s3(&step, &format!("{bid:08}-cache"), None);
    for (name, body, code) in [
        ("d.tar.gz", "tgz", None),
        ("d~x.tar.gz", "tgz", Some("InvalidArgument")),
        ("meta.json", "[1, 2]", Some("InvalidArgument")),
        ("meta.json", "{\"../x\": \"d\"}", Some("InvalidArgument")),
        ("meta.json", "{\"d.tar.gz\": \"d\"}", None),
    ] {
        let r = cache
            .put(
                &Key::from(format!("{entry}/{name}")),
                PutPayload::from(body.as_bytes().to_vec()),
            )
            .await;
        match code {
            None => {
                r.unwrap();
            }
            Some(code) => {
                let e = r.unwrap_err().to_string();
                assert!(e.contains(code), "{name} {body}: {e}");
            }
        }
    }
    let big_meta = format!("{{\"d.tar.gz\": \"{}\"}}", "d".repeat(2 * 1024 * 1024));
    let e = cache
        .put(
            &Key::from(format!("{entry}/meta.json")),
            PutPayload::from(big_meta.into_bytes()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("InvalidArgument"), "{e}");
    // A pull request's entry is its own too.
    assert_eq!(
        storage
            .list(&format!("cache/{bid:08}"))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        storage
            .list(&format!("cache-dev/{bid:08}"))
            .await
            .unwrap()
            .len(),
        2
    );

    // Listed artifact keys are as stored, odd characters and all.
    step_done(&agent, jid, 1).await;
    let step = next_step(&agent).await;
    let art = s3(&step, &format!("{bid:08}"), None);
    let odd = format!("{fid}/{rid}/a~b[1].txt");
    art.put(&Key::from(odd.clone()), PutPayload::from_static(b"odd"))
        .await
        .unwrap();
    let listed: Vec<String> = art
        .list(Some(&Key::from(format!("{fid}/"))))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, [Key::from(odd.clone()).to_string()]);
    assert_eq!(bytes(&art, &odd).await.unwrap(), b"odd");
    // A listing wider than the job's flow is refused, not filtered.
    let e = art.list_with_delimiter(None).await.unwrap_err().to_string();
    assert!(e.contains("AccessDenied"), "{e}");

    // Parts only for uploads made through the endpoint.
    let job = s.core().s3_job(Some(&format!("KKJOB{jid}"))).await.unwrap();
    let e = s
        .core()
        .s3_upload_part(
            &job,
            &format!("{bid:08}"),
            &format!("{fid}/{rid}/p"),
            &format!("{jid}.abcdef"),
            1,
            Box::pin(futures_util::stream::empty()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, kraken_core::api::s3::S3Failure::NoSuchUpload(_)),
        "{e}"
    );
}
