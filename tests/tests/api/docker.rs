//! The `docker` executor and capability-aware scheduling, with a real
//! Docker daemon and an image built here (no registry is reachable): a job
//! whose environment says `"executor": "docker"` runs in a container of
//! its system's image, never on the host; a job no agent of its group can
//! run waits with a note and runs when such an agent arrives.

use std::time::Duration;

use serde_json::{Value, json};

use kraken_tests::{TestServer, manual_agent, required};

const WAIT: Duration = Duration::from_secs(120);
/// The image the tests run: busybox and a file only it has.
const IMAGE: &str = "kraken-test-busybox:3";

/// Whether a Docker daemon answers (see [`required`]).
fn docker_here() -> bool {
    let ok = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    required(ok, "a Docker daemon", "apt-get install docker.io; dockerd")
}

/// Build the test image from the host's static busybox when missing
/// (`docker import` of a root filesystem: no registry needed).
fn ensure_image() {
    static ONCE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = ONCE.lock().unwrap();
    if *done {
        return;
    }
    let have = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("a static busybox to build the test image (apt-get install busybox-static)");
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("tmp")).unwrap();
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        for applet in [
            "sh", "echo", "cat", "ls", "sleep", "kill", "env", "pwd", "touch", "id", "true",
            "false", "ps", "tar", "gzip", "mkdir", "rm", "nc",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::write(
            root.path().join("etc/kraken-image"),
            "only-in-the-test-image\n",
        )
        .unwrap();
        let tarball = root.path().with_extension("tar");
        let tar = std::process::Command::new("tar")
            .args(["-C", &root.path().display().to_string(), "-cf"])
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(tar.success(), "tar of the image's root");
        let import = std::process::Command::new("docker")
            .args(["import", &tarball.display().to_string(), IMAGE])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&tarball);
        assert!(import.status.success(), "docker import: {import:?}");
    }
    *done = true;
}

fn stage(system: &str, steps: &[Value], timeout: u64) -> String {
    let job = json!({
        "name": "in-docker",
        "timeout": timeout,
        "steps": steps,
        "environments": [{"system": system, "executor": "docker", "agents_group": "all", "config": "c"}],
    });
    // JSON is valid Starlark for these values (no true/false/null in them).
    format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": [{job}]}}\n"
    )
}

/// The containers of job `job` of the built-in agent of `s`.
fn containers_of_job(s: &TestServer, job: i64) -> String {
    let agent_dir = std::path::absolute(s.data_dir.join("agents").join("builtin-1")).unwrap();
    let o = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=kraken.job={job}")])
        .args([
            "--filter",
            &format!("label=kraken.agent-dir={}", agent_dir.display()),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[tokio::test]
async fn docker_jobs_run_in_a_container_of_their_image() {
    if !docker_here() {
        return;
    }
    ensure_image();
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let code = stage(
        IMAGE,
        &[
            json!({"tool": "shell", "cmd": "cat /etc/kraken-image; id -u; echo made > out.txt"}),
            // The shortest step timeout a schema may give.
            json!({"tool": "shell", "cmd": "sleep 300", "timeout": 30}),
            json!({"tool": "shell", "cmd": "echo after-timeout; ps; exit 4", "when": "always"}),
        ],
        120,
    );
    admin.stage(bid, "d", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    let job = &jobs[0];
    let jid = job["id"].as_i64().unwrap();
    let log = admin.job_log(jid).await.join("\n");
    // Only the image has this file (the host and its /.dockerenv do not).
    assert!(log.contains("only-in-the-test-image"), "{log}");
    assert!(
        log.contains("running in docker container kraken-job-"),
        "{log}"
    );
    // The agent's own user, not root of the image.
    let uid = nix_uid();
    assert!(
        log.lines().any(|l| l.trim() == uid.to_string()),
        "uid {uid}: {log}"
    );
    let steps = job["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], 2, "{job}");
    assert_eq!(steps[1]["result"]["reason"], "step-timeout", "{job}");
    assert_eq!(steps[2]["result"]["retcode"], 4, "{job}");
    assert!(log.contains("after-timeout"), "{log}");
    // The timed-out step's processes were killed in the container.
    assert!(
        !log.contains("sleep 300\n")
            || !log
                .split("after-timeout")
                .nth(1)
                .unwrap_or("")
                .contains("sleep 300"),
        "{log}"
    );
    // The container goes with the job (removed right after its last step
    // was reported).
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !containers_of_job(&s, jid).is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "container left for job {jid}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn nix_uid() -> u32 {
    let o = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

#[tokio::test]
async fn a_missing_image_fails_every_step_and_nothing_runs_on_the_host() {
    if !docker_here() {
        return;
    }
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    let marker = tempfile::tempdir().unwrap();
    let file = marker.path().join("ran-on-host");
    let code = stage(
        "kraken-no-such-image:404",
        &[json!({"tool": "shell", "cmd": format!("touch {}", file.display())})],
        60,
    );
    admin.stage(bid, "d", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    let step = &jobs[0]["steps"][0];
    assert_eq!(step["status"], 3, "{step}");
    assert!(
        step["result"]["msg"].as_str().unwrap().contains(
            "image 'kraken-no-such-image:404' is not on this machine and cannot be pulled"
        ),
        "{step}"
    );
    assert!(!file.exists(), "the step ran on the host");
}

/// A docker job in a group whose agents cannot run docker waits with a
/// note (never on the bare host), and runs once an agent that reports
/// docker is there.
#[tokio::test]
async fn jobs_wait_for_an_agent_that_has_their_executor() {
    let s = TestServer::start_with_agents(0).await;
    let admin = s.admin().await;
    let bare = manual_agent(&s, &admin, "bare-1", json!({"system": "debian-12"})).await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin
        .stage(
            bid,
            "d",
            &stage("alpine:3", &[json!({"tool": "shell", "cmd": "true"})], 60),
        )
        .await;
    let f = admin.flow(bid).await;
    let rid = f["runs"][0]["id"].as_i64().unwrap();
    // The bare agent asks for work: it gets none.
    let gj = bare
        .post(
            "/backend",
            json!({"address": "bare-1", "msg": "get-job", "wait": 2}),
        )
        .await;
    assert!(gj.expect(200)["job"].get("id").is_none(), "{}", gj.body);
    let jobs = admin
        .wait_for(
            &format!("/api/runs/{rid}/jobs"),
            Duration::from_secs(20),
            |b| b["items"][0]["notes"] == "no agent of group 'all' can run executor 'docker'",
        )
        .await;
    assert_eq!(jobs["items"][0]["state"], 2, "queued: {jobs}");
    // An agent that reports docker comes: the job is its.
    let docker = manual_agent(
        &s,
        &admin,
        "docker-1",
        json!({"system": "debian-12", "docker": "28.2.2"}),
    )
    .await;
    let gj = docker
        .post(
            "/backend",
            json!({"address": "docker-1", "msg": "get-job", "wait": 20}),
        )
        .await;
    let job = gj.expect(200)["job"].clone();
    assert_eq!(job["executor"], "docker", "{job}");
    assert_eq!(job["system"], "alpine:3");
    let jid = job["id"].as_i64().unwrap();
    let j = admin.get(&format!("/api/jobs/{jid}")).await;
    assert_eq!(
        j.expect(200)["notes"],
        Value::Null,
        "the note goes once it runs"
    );
}

/// The address of the host on Docker's default bridge (its gateway). Some
/// daemons (Debian's 20.10 among them) give the bridge's subnet and no
/// gateway: the bridge then has the subnet's first address.
fn bridge_gateway() -> String {
    let o = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{json (index .IPAM.Config 0)}}",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "docker network inspect: {o:?}");
    let config: Value = serde_json::from_slice(&o.stdout).unwrap();
    if let Some(gateway) = config["Gateway"].as_str().filter(|g| !g.is_empty()) {
        return gateway.to_string();
    }
    let subnet = config["Subnet"].as_str().unwrap_or_default();
    let net: std::net::Ipv4Addr = subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no gateway nor IPv4 subnet on Docker's bridge: {config}"));
    std::net::Ipv4Addr::from(u32::from(net) + 1).to_string()
}

/// `"network": "none"` gives a job's container no network at all (only
/// `lo`; a port the test opens on the host's bridge address is out of
/// reach), while the default bridge reaches it.
#[tokio::test]
async fn the_environment_network_decides_what_a_container_reaches() {
    if !docker_here() {
        return;
    }
    ensure_image();
    let gateway = bridge_gateway();
    let listener = tokio::net::TcpListener::bind((gateway.as_str(), 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        while let Ok((sock, _)) = listener.accept().await {
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(sock);
            let _ = r.read_line(&mut line).await;
            let _ = seen_tx.send(line.trim().to_string());
        }
    });
    let probe = |who: &str| {
        json!({"tool": "shell", "cmd": format!(
            "ls /sys/class/net; if echo from-{who} | nc -w 5 {gateway} {port}; then echo reached-host; else echo no-route; fi"
        )})
    };
    let job = |name: &str, network: Option<&str>| {
        let mut env =
            json!({"system": IMAGE, "executor": "docker", "agents_group": "all", "config": "c"});
        if let Some(n) = network {
            env["network"] = json!(n);
        }
        json!({"name": name, "timeout": 120, "steps": [probe(name)], "environments": [env]})
    };
    let jobs = json!([job("isolated", Some("none")), job("bridged", None)]);
    let code = format!(
        "def stage(ctx):\n    return {{\"parent\": \"root\", \"triggers\": {{\"parent\": True}}, \"jobs\": {jobs}}}\n"
    );
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin.stage(bid, "net", &code).await;
    let f = admin.flow(bid).await;
    let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
    let jobs = admin
        .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
        .await;
    let log_of = |name: &str| {
        let job = jobs.iter().find(|j| j["name"] == name).unwrap();
        assert_eq!(job["completion_status"], 0, "{job}");
        job["id"].as_i64().unwrap()
    };
    let isolated = admin.job_log(log_of("isolated")).await;
    let bridged = admin.job_log(log_of("bridged")).await;
    let has = |log: &[String], line: &str| log.iter().any(|l| l == line);
    assert!(has(&isolated, "lo"), "{isolated:?}");
    assert!(!has(&isolated, "eth0"), "no interface but lo: {isolated:?}");
    assert!(has(&isolated, "no-route"), "{isolated:?}");
    assert!(has(&bridged, "eth0"), "{bridged:?}");
    assert!(has(&bridged, "reached-host"), "{bridged:?}");
    // Only the bridged job's line arrived.
    assert_eq!(seen_rx.recv().await.as_deref(), Some("from-bridged"));
    assert!(seen_rx.try_recv().is_err(), "a second connection came");
}

/// The `cache` tool in a container: what a docker job saves (packed with
/// the image's `tar`) the next flow's job restores in its container.
#[tokio::test]
async fn a_docker_job_saves_and_restores_its_cache() {
    if !docker_here() {
        return;
    }
    ensure_image();
    let steps = [
        json!({"tool": "cache", "action": "restore", "keys": ["k"]}),
        json!({"tool": "shell", "cmd": "cat deps/d.txt 2>/dev/null || echo nothing-yet; mkdir -p deps; cat /etc/kraken-image > deps/d.txt"}),
        json!({"tool": "cache", "action": "save", "key": "k", "paths": ["deps"]}),
    ];
    let code = stage(IMAGE, &steps, 120);
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let pid = admin.project("p").await;
    let bid = admin.branch(pid, "Main").await;
    admin.stage(bid, "d", &code).await;
    let mut logs = Vec::new();
    for _ in 0..2 {
        let f = admin.flow(bid).await;
        let done = admin.wait_flow(f["id"].as_i64().unwrap(), WAIT).await;
        let job = admin
            .run_jobs(done["runs"][0]["id"].as_i64().unwrap())
            .await
            .remove(0);
        assert_eq!(job["completion_status"], 0, "{job}");
        logs.push(admin.job_log(job["id"].as_i64().unwrap()).await);
    }
    let has = |log: &[String], line: &str| log.iter().any(|l| l == line);
    assert!(has(&logs[0], "nothing-yet"), "{:?}", logs[0]);
    assert!(has(&logs[1], "only-in-the-test-image"), "{:?}", logs[1]);
    assert!(!has(&logs[1], "nothing-yet"), "{:?}", logs[1]);
}
