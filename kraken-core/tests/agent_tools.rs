//! The agent's step tools against real processes, real git and real files.
//!
//! The only double is the artifact store (the real one is the server): a
//! directory.
#![cfg(feature = "local")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use kraken_core::agent::tools::{
    ArtifactStore, BackgroundProcs, CACHE_META, CacheEntry, StepOutcome, StepRun, run_step,
};
use kraken_core::model::tc_result;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// An artifact store in a directory; remembers what was uploaded public.
#[derive(Default)]
struct DirStore {
    root: PathBuf,
    public: std::sync::Mutex<Vec<(String, bool)>>,
    /// Packages of custom tools, by id.
    tools: std::sync::Mutex<std::collections::HashMap<i64, Vec<u8>>>,
}

fn copy_tree(from: &Path, to: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if from.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(from)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            copy_tree(&e.path(), &to.join(e.file_name()), out)?;
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(from, to).map_err(|e| e.to_string())?;
        out.push(to.to_path_buf());
    }
    Ok(())
}

impl ArtifactStore for DirStore {
    fn upload<'a>(
        &'a self,
        local: &'a Path,
        dest: &'a str,
        public: bool,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            assert!(!dest.starts_with('/') && !dest.contains(".."), "{dest}");
            let to = self.root.join(dest);
            std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
            let size = std::fs::copy(local, &to).map_err(|e| e.to_string())?;
            self.public.lock().unwrap().push((dest.to_string(), public));
            Ok(size)
        })
    }

    fn download<'a>(
        &'a self,
        source: &'a str,
        dest_dir: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<PathBuf>, String>> {
        Box::pin(async move {
            let from = self.root.join(source);
            let mut out = Vec::new();
            if from.exists() {
                copy_tree(&from, &dest_dir.join(source), &mut out)?;
            }
            Ok(out)
        })
    }

    fn tool_package(&self, tool_id: i64) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            self.tools
                .lock()
                .unwrap()
                .get(&tool_id)
                .cloned()
                .ok_or_else(|| format!("no tool {tool_id}"))
        })
    }

    // The cache: one entry (id 1) per key, in `<root>/.cache/<key>/1/`.
    fn cache_save<'a>(
        &'a self,
        key: &'a str,
        name: &'a str,
        local: &'a Path,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let dir = self.root.join(".cache").join(key).join("1");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::copy(local, dir.join(name)).map_err(|e| e.to_string())
        })
    }

    fn cache_lookup<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CacheEntry>, String>> {
        Box::pin(async move {
            let meta = self
                .root
                .join(".cache")
                .join(key)
                .join("1")
                .join(CACHE_META);
            let Ok(text) = std::fs::read_to_string(meta) else {
                return Ok(None);
            };
            let files = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            Ok(Some(CacheEntry { id: 1, files }))
        })
    }

    fn cache_fetch<'a>(
        &'a self,
        key: &'a str,
        entry: i64,
        name: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let from = self
                .root
                .join(".cache")
                .join(key)
                .join(entry.to_string())
                .join(name);
            std::fs::copy(from, dest).map_err(|e| e.to_string())
        })
    }
}

/// A job directory, an artifact store and the job's cancel switch.
struct Job {
    dir: tempfile::TempDir,
    job_dir: PathBuf,
    store: DirStore,
    env: BTreeMap<String, String>,
    background: BackgroundProcs,
    cancel: watch::Sender<bool>,
    deadline: Instant,
    executor: kraken_core::agent::docker::Executor,
}

impl Job {
    fn new() -> Job {
        // Laid out as an agent's work dir: <work>/jobs/<id>, with the job's
        // scratch dir (<id>.tmp) and the tool cache (<work>/tools) beside.
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        std::fs::create_dir_all(&store_dir).unwrap();
        let job_dir = dir.path().join("jobs").join("1");
        std::fs::create_dir_all(&job_dir).unwrap();
        Job {
            store: DirStore {
                root: store_dir,
                ..DirStore::default()
            },
            dir,
            job_dir,
            env: BTreeMap::new(),
            background: BackgroundProcs::default(),
            cancel: watch::channel(false).0,
            deadline: Instant::now() + Duration::from_secs(60),
            executor: kraken_core::agent::docker::Executor::Local,
        }
    }

    fn path(&self) -> &Path {
        &self.job_dir
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    /// Run a step; returns its outcome and its output lines.
    async fn run(&self, tool: &str, fields: Value) -> (StepOutcome, Vec<String>) {
        let fields = fields.as_object().cloned().unwrap_or_default();
        let (tx, mut rx) = mpsc::channel(256);
        let collector = tokio::spawn(async move {
            let mut lines = Vec::new();
            while let Some(l) = rx.recv().await {
                lines.push(l);
            }
            lines
        });
        let outcome = run_step(StepRun {
            tool,
            fields: &fields,
            job_dir: self.path(),
            env: &self.env,
            deadline: self.deadline,
            cancel: self.cancel.subscribe(),
            output: tx,
            artifacts: &self.store,
            background: &self.background,
            executor: &self.executor,
        })
        .await;
        let lines = collector.await.unwrap();
        (outcome, lines)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store.root);
        for p in self.background.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The output lines of the step's command, without the tool's own log lines.
fn cmd_output(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.starts_with("$ "))
        .collect()
}

/// Whether `pid` is gone (or a zombie nobody reaps, which is as dead).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            matches!(state, Some('Z' | 'X'))
        }
    }
}

fn read_pid(job: &Job, rel: &str) -> i32 {
    job.read(rel).trim().parse().unwrap()
}

async fn wait_for_file(path: &Path) {
    for _ in 0..200 {
        if std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n')) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was not written", path.display());
}

async fn wait_dead(pid: i32) -> bool {
    for _ in 0..100 {
        if is_dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn shell_cmd_streams_output_in_order_and_reports_exit_codes() {
    let job = Job::new();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "echo one; echo two >&2; echo three; printf 'no newline'"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.to_result(), json!({"status": "done", "retcode": 0}));
    assert_eq!(
        lines[0],
        "$ echo one; echo two >&2; echo three; printf 'no newline'"
    );
    assert_eq!(cmd_output(&lines), ["one", "two", "three", "no newline"]);

    let (o, lines) = job
        .run("shell", json!({"cmd": "echo failing; exit 3"}))
        .await;
    assert!(!o.ok);
    assert_eq!(o.reason.as_deref(), Some("retcode"));
    assert_eq!(o.retcode, Some(3));
    assert_eq!(
        o.to_result(),
        json!({"status": "error", "reason": "retcode", "retcode": 3,
               "msg": "cmd exited with non-zero retcode: 3"})
    );
    assert_eq!(cmd_output(&lines), ["failing"]);
}

#[tokio::test]
async fn shell_output_lines_arrive_as_they_come() {
    let job = Job::new();
    let fields = json!({"cmd": "echo first; sleep 2; echo second"})
        .as_object()
        .cloned()
        .unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let started = Instant::now();
    let step = run_step(StepRun {
        tool: "shell",
        fields: &fields,
        job_dir: job.path(),
        env: &job.env,
        deadline: job.deadline,
        cancel: job.cancel.subscribe(),
        output: tx,
        artifacts: &job.store,
        background: &job.background,
        executor: &job.executor,
    });
    let watch_lines = async {
        let mut first_at = None;
        while let Some(l) = rx.recv().await {
            if l == "first" {
                first_at = Some(started.elapsed());
            }
        }
        first_at
    };
    let (o, first_at) = tokio::join!(step, watch_lines);
    assert!(o.ok, "{o:?}");
    let first_at = first_at.expect("no line 'first'");
    assert!(first_at < Duration::from_millis(1500), "{first_at:?}");
}

#[tokio::test]
async fn shell_many_lines_long_lines_and_bad_utf8() {
    let job = Job::new();
    let (o, lines) = job.run("shell", json!({"cmd": "seq 1 100000"})).await;
    assert!(o.ok, "{o:?}");
    let out = cmd_output(&lines);
    assert_eq!(out.len(), 100_000);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, l)| l.parse::<usize>().ok() == Some(i + 1))
    );

    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "head -c 200000 /dev/zero | tr '\\0' x; echo; printf 'bad \\377 byte\\n'"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    let out = cmd_output(&lines);
    let (long, rest) = out.split_at(out.len() - 1);
    assert!(long.len() >= 4, "{}", long.len());
    assert!(
        long.iter()
            .all(|l| l.len() <= 64 * 1024 && l.bytes().all(|b| b == b'x'))
    );
    assert_eq!(long.iter().map(|l| l.len()).sum::<usize>(), 200_000);
    assert_eq!(rest, ["bad \u{fffd} byte"]);
}

#[tokio::test]
async fn shell_script_with_many_lines_and_set_e() {
    let job = Job::new();
    let (o, lines) = job
        .run(
            "shell",
            json!({"script": "A=1\nB=2\necho \"sum $((A + B))\"\nif [ -n \"$BASH_VERSION\" ]; then echo bash; fi\n"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(lines[0], "$ /bin/bash <script of 4 lines>");
    assert_eq!(cmd_output(&lines), ["sum 3", "bash"]);

    let (o, lines) = job
        .run(
            "shell",
            json!({"script": "echo before\nfalse\necho never", "shell_exe": "/bin/sh"}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("retcode"));
    assert_eq!(o.retcode, Some(1));
    assert_eq!(cmd_output(&lines), ["before"]);
    // The script files are gone.
    let left: Vec<_> = std::fs::read_dir(job.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn shell_env_and_cwd() {
    let mut job = Job::new();
    job.env.insert("BRANCH_VAR".into(), "from-branch".into());
    job.env.insert("BOTH".into(), "branch".into());
    std::fs::create_dir_all(job.path().join("sub/dir")).unwrap();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "pwd; echo $BRANCH_VAR $STEP_VAR $BOTH",
                   "cwd": "sub/dir", "env": {"STEP_VAR": "from-step", "BOTH": "step"},
                   "user": "somebody"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    let out = cmd_output(&lines);
    let pwd = PathBuf::from(out[0]).canonicalize().unwrap();
    assert_eq!(pwd, job.path().join("sub/dir").canonicalize().unwrap());
    assert_eq!(out[1], "from-branch from-step step");

    let (o, _) = job
        .run("shell", json!({"cmd": "true", "cwd": "missing"}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    let msg = o.msg.unwrap();
    assert!(
        msg.contains("'missing'") && msg.contains("does not exist"),
        "{msg}"
    );

    let (o, _) = job.run("shell", json!({"cwd": "."})).await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("'cmd' or 'script'"));
}

#[tokio::test]
async fn ssh_keys_go_to_a_private_file_for_git() {
    let job = Job::new();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "set -- $GIT_SSH_COMMAND; echo \"$1 $2\"; stat -c %a \"$3\"; cat \"$3\"; echo \"$3\" > key.path",
                   "ssh-key": {"username": "git", "key": "-----BEGIN KEY-----\nabc\n-----END KEY-----"}}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(
        cmd_output(&lines),
        [
            "ssh -i",
            "600",
            "-----BEGIN KEY-----",
            "abc",
            "-----END KEY-----"
        ]
    );
    let key_path = job.read("key.path");
    assert!(!Path::new(key_path.trim()).exists(), "key file left behind");

    let (o, _) = job
        .run(
            "git",
            json!({"checkout": "/nowhere/r.git", "ssh-key": "deploy-key"}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("'ssh-key' must be an object"));
}

#[tokio::test]
async fn step_timeout_kills_the_whole_group() {
    let job = Job::new();
    let started = Instant::now();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "sleep 1000 & echo $! > child.pid; echo $$ > sh.pid; echo started; wait",
                   "timeout": 1}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(o.reason.as_deref(), Some("step-timeout"), "{o:?}");
    assert_eq!(o.msg.as_deref(), Some("step timeout of 1 s exceeded"));
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(cmd_output(&lines), ["started"]);
    assert!(
        wait_dead(read_pid(&job, "child.pid")).await,
        "grandchild alive"
    );
    assert!(wait_dead(read_pid(&job, "sh.pid")).await, "shell alive");
}

#[tokio::test]
async fn processes_ignoring_sigterm_get_sigkill() {
    let job = Job::new();
    let started = Instant::now();
    let (o, _) = job
        .run(
            "shell",
            json!({"cmd": "trap '' TERM; sh -c 'echo $$ > stubborn.pid; exec sleep 1000' & wait",
                   "timeout": 1}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(o.reason.as_deref(), Some("step-timeout"), "{o:?}");
    // 1 s timeout + 2 s grace before SIGKILL.
    assert!(took < Duration::from_millis(4500), "{took:?}");
    assert!(wait_dead(read_pid(&job, "stubborn.pid")).await);
}

#[tokio::test]
async fn processes_escaping_the_group_do_not_hang_the_step() {
    if std::process::Command::new("setsid")
        .arg("true")
        .status()
        .is_err()
    {
        println!("note: skipping: no setsid command");
        return;
    }
    let job = Job::new();
    let started = Instant::now();
    // The escaped sleep keeps the output pipe open and is not in the
    // step's process group.
    let (o, _) = job
        .run(
            "shell",
            json!({"cmd": "setsid sleep 1000 & echo $! > escaped.pid; wait", "timeout": 1}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("step-timeout"), "{o:?}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    let pid = read_pid(&job, "escaped.pid");
    assert!(!is_dead(pid));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[tokio::test]
async fn job_deadline_stops_a_step() {
    let mut job = Job::new();
    job.deadline = Instant::now() + Duration::from_millis(800);
    let started = Instant::now();
    let (o, _) = job
        .run("shell", json!({"cmd": "echo $$ > sh.pid; sleep 1000"}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("job-timeout"), "{o:?}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(wait_dead(read_pid(&job, "sh.pid")).await);

    // A deadline already passed: nothing runs.
    let (o, lines) = job.run("shell", json!({"cmd": "touch ran"})).await;
    assert_eq!(o.reason.as_deref(), Some("job-timeout"));
    assert!(lines.is_empty() && !job.path().join("ran").exists());
}

#[tokio::test]
async fn cancel_stops_a_step_quickly() {
    let job = Job::new();
    let cancel = job.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.send_replace(true);
    });
    let started = Instant::now();
    let (o, _) = job
        .run(
            "shell",
            json!({"cmd": "sleep 1000 & echo $! > child.pid; wait", "attempts": 5}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("canceled"), "{o:?}");
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert!(wait_dead(read_pid(&job, "child.pid")).await);
}

#[tokio::test]
async fn attempts_retry_a_failing_step() {
    let counter = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo try $n; [ $n -ge 3 ]";
    let job = Job::new();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": counter, "attempts": 3, "sleep_time_after_attempt": 0}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(job.read("count").trim(), "3");
    assert!(lines.iter().any(|l| l.starts_with("attempt 1 of 3 failed")));
    assert_eq!(
        cmd_output(&lines)
            .into_iter()
            .filter(|l| l.starts_with("try"))
            .collect::<Vec<_>>(),
        ["try 1", "try 2", "try 3"]
    );

    let job = Job::new();
    let (o, _) = job
        .run("shell", json!({"cmd": counter, "attempts": 2}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("retcode"));
    assert_eq!(job.read("count").trim(), "2");
}

#[tokio::test]
async fn background_steps_run_until_their_group_is_killed() {
    let job = Job::new();
    let started = Instant::now();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "echo $$ > bg.pid; exec sleep 1000", "background": true}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("started in the background"))
    );
    wait_for_file(&job.path().join("bg.pid")).await;
    let pid = read_pid(&job, "bg.pid");
    assert_eq!(*job.background.pgids.lock().unwrap(), vec![pid]);
    assert!(!is_dead(pid));
    job.background.kill_all(Duration::from_millis(100)).await;
    assert!(wait_dead(pid).await);
    assert!(job.background.pgids.lock().unwrap().is_empty());
}

#[tokio::test]
async fn processes_left_running_do_not_block_the_step() {
    let job = Job::new();
    let started = Instant::now();
    let (o, lines) = job
        .run(
            "shell",
            json!({"cmd": "sleep 1000 & echo $! > left.pid; echo done"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(cmd_output(&lines), ["done"]);
    let pid = read_pid(&job, "left.pid");
    assert!(!is_dead(pid));
    assert_eq!(job.background.pgids.lock().unwrap().len(), 1);
    job.background.kill_all(Duration::from_millis(100)).await;
    assert!(wait_dead(pid).await);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A bare repository with `main` (a.txt) and `feature` (a.txt, b.txt).
fn make_repo(root: &Path) -> (PathBuf, String) {
    let origin = root.join("origin.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(root, &["init", "-q", "--bare", origin.to_str().unwrap()]);
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("a.txt"), "a\n").unwrap();
    git(&work, &["add", "a.txt"]);
    git(&work, &["commit", "-q", "-m", "first"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("b.txt"), "b\n").unwrap();
    git(&work, &["add", "b.txt"]);
    git(&work, &["commit", "-q", "-m", "second"]);
    git(
        &work,
        &["push", "-q", origin.to_str().unwrap(), "main", "feature"],
    );
    (origin, first)
}

#[tokio::test]
async fn git_clones_a_branch_a_commit_or_the_default_branch() {
    let repos = tempfile::tempdir().unwrap();
    let (origin, first) = make_repo(repos.path());
    let url = origin.to_str().unwrap();
    let job = Job::new();

    let (o, lines) = job
        .run(
            "git",
            json!({"checkout": url, "branch": "feature", "destination": "dest",
                   "git_cfg": {"core.autocrlf": "false"}}),
        )
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert_eq!(
        lines[0],
        format!("$ git -c core.autocrlf=false clone {url} dest")
    );
    assert!(job.path().join("dest/b.txt").exists());

    // A commit.
    let (o, lines) = job
        .run(
            "git",
            json!({"checkout": url, "branch": first, "destination": "at-commit"}),
        )
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert!(job.path().join("at-commit/a.txt").exists());
    assert!(!job.path().join("at-commit/b.txt").exists());
    assert_eq!(
        git(&job.path().join("at-commit"), &["rev-parse", "HEAD"]),
        first
    );

    // The commit of a trigger from this very repository wins.
    let (o, lines) = job
        .run(
            "git",
            json!({"checkout": url, "branch": "feature", "destination": "triggered",
                   "http_url": "https://example.invalid/r", "trigger_data":
                   {"repo": "https://example.invalid/r", "after": first}}),
        )
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert_eq!(
        git(&job.path().join("triggered"), &["rev-parse", "HEAD"]),
        first
    );

    // No branch and no master: the default branch, in a directory named
    // after the repository.
    let (o, lines) = job.run("git", json!({"checkout": url})).await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert!(job.path().join("origin/a.txt").exists());
    assert!(lines.iter().any(|l| l.contains("no branch 'master'")));

    // A branch that does not exist.
    let (o, _) = job
        .run(
            "git",
            json!({"checkout": url, "branch": "nope", "destination": "nope"}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("retcode"), "{o:?}");
    assert!(o.msg.unwrap().starts_with("git checkout"));
}

#[tokio::test]
async fn git_masks_the_access_token() {
    let job = Job::new();
    let (o, lines) = job
        .run(
            "git",
            json!({"checkout": "http://127.0.0.1:9/x/repo.git", "access-token": "S3CR3T-TOKEN",
                   "timeout": 20}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("retcode"), "{o:?} {lines:?}");
    assert_eq!(
        lines[0],
        "$ git clone http://******@127.0.0.1:9/x/repo.git repo"
    );
    assert!(lines.iter().all(|l| !l.contains("S3CR3T")), "{lines:?}");
}

#[tokio::test]
async fn artifacts_upload_globs_directories_and_download() {
    let job = Job::new();
    job.write("w/a.txt", "aaa");
    job.write("w/sub/b.txt", "bb");
    job.write("w/sub/deep/c.log", "c");
    job.write("w/report/index.html", "<html/>");
    job.write("w/report/css/x.css", "x{}");
    let (o, lines) = job
        .run(
            "artifacts",
            json!({"source": ["*.txt", "sub/**/*.log", "report"], "cwd": "w",
                   "destination": "out", "report_entry": "report/index.html"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(
        o.artifacts,
        vec![
            json!({"path": "out/a.txt", "size": 3}),
            json!({"path": "out/report/css/x.css", "size": 3}),
            json!({"path": "out/report/index.html", "size": 7, "report_entry": "out/report/index.html"}),
            json!({"path": "out/sub/deep/c.log", "size": 1}),
        ]
    );
    assert!(lines.contains(&"uploaded out/a.txt (3 bytes)".to_string()));
    assert!(job.store.public.lock().unwrap().iter().all(|(_, p)| *p));
    assert_eq!(
        std::fs::read_to_string(job.store.root.join("out/sub/deep/c.log")).unwrap(),
        "c"
    );

    // Public uploads say nothing about privacy.
    assert!(!lines.iter().any(|l| l.contains("private")), "{lines:?}");

    // `**` across directories, a file outside cwd, private by default.
    let (o, _) = job
        .run(
            "artifacts",
            json!({"source": ["**/*.txt", "../outside.txt"], "cwd": "w"}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("'../outside.txt' not found"));
    job.write("outside.txt", "o");
    let (o, lines) = job
        .run(
            "artifacts",
            json!({"source": ["**/*.txt", "../outside.txt"], "cwd": "w", "destination": "/"}),
        )
        .await;
    // A private upload says where its artifacts can be found, and by whom.
    assert!(
        lines.iter().any(|l| l.contains("private")
            && l.contains("child stages")
            && l.contains("public: True")),
        "{lines:?}"
    );
    let paths: Vec<&str> = o
        .artifacts
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt", "outside.txt", "sub/b.txt"]);
    assert!(
        job.store
            .public
            .lock()
            .unwrap()
            .iter()
            .any(|(d, p)| d == "sub/b.txt" && !p)
    );

    // Nothing matched; leaving the artifact root.
    let (o, lines) = job
        .run("artifacts", json!({"source": "*.none", "cwd": "w"}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("no files to upload"));
    assert!(lines.iter().any(|l| l.contains("no files match '*.none'")));
    let (o, _) = job
        .run(
            "artifacts",
            json!({"source": "a.txt", "cwd": "w", "destination": "../x"}),
        )
        .await;
    assert!(o.msg.unwrap().contains("outside"));

    // Download into a new directory.
    let (o, lines) = job
        .run(
            "artifacts",
            json!({"action": "download", "source": "out/report", "destination": "dl"}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(job.read("dl/out/report/index.html"), "<html/>");
    assert_eq!(job.read("dl/out/report/css/x.css"), "x{}");
    assert!(
        lines
            .iter()
            .any(|l| l == "downloaded dl/out/report/index.html")
    );
    let (o, _) = job
        .run(
            "artifacts",
            json!({"action": "download", "source": "missing"}),
        )
        .await;
    assert_eq!(o.msg.as_deref(), Some("artifact 'missing' not found"));
}

const JUNIT: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
    <testcase classname="tests.test_x" name="test_ok" time="0.01"/>
    <testcase classname="tests.test_x" name="test_bad"><failure message="assert 1 == 2">trace</failure></testcase>
    <testcase classname="tests.test_x" name="test_broken"><error message="boom"/></testcase>
    <testcase classname="tests.test_x" name="test_later"><skipped message="todo"/></testcase>
  </testsuite>
</testsuites>
"#;

#[tokio::test]
async fn junit_collect_reports_every_test_case() {
    let job = Job::new();
    job.write("results/a.xml", JUNIT);
    job.write(
        "results/more/b.xml",
        r#"<testsuite name="b"><testcase name="plain"/></testsuite>"#,
    );
    let (o, lines) = job.run("junit_collect", json!({"cwd": "results"})).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(
        o.test_results,
        vec![
            json!({"cmd": "", "test": "tests.test_x::test_ok", "status": tc_result::PASSED, "duration": 0.01}),
            json!({"cmd": "", "test": "tests.test_x::test_bad", "status": tc_result::FAILED,
                   "message": "assert 1 == 2", "output": "trace"}),
            json!({"cmd": "", "test": "tests.test_x::test_broken", "status": tc_result::ERROR, "message": "boom"}),
            json!({"cmd": "", "test": "tests.test_x::test_later", "status": tc_result::DISABLED, "message": "todo"}),
            json!({"cmd": "", "test": "plain", "status": tc_result::PASSED}),
        ]
    );
    assert!(lines.contains(&"total: 5 tests: passed 2, failed 1, error 1, skipped 1".to_string()));

    let (o, _) = job
        .run("junit_collect", json!({"file_glob": "results/*.xml"}))
        .await;
    assert_eq!(o.test_results.len(), 4);

    job.write("bad/broken.xml", "<testsuite><testcase>");
    let (o, _) = job
        .run("junit_collect", json!({"file_glob": "bad/*.xml"}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("broken.xml"));

    let (o, _) = job
        .run("junit_collect", json!({"file_glob": "nothing/*.xml"}))
        .await;
    assert!(o.msg.unwrap().contains("no JUnit files match"));
}

#[tokio::test]
async fn pytest_reports_per_test_results() {
    let has_pytest = std::process::Command::new("python3")
        .args(["-c", "import pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pytest {
        println!("note: skipping the pytest tool test: python3 cannot import pytest");
        return;
    }
    let job = Job::new();
    job.write(
        "py/tests/test_x.py",
        "import pytest\nimport helper\n\ndef test_ok():\n    assert helper.VALUE == 1\n\n\
         def test_bad():\n    assert 1 == 2\n\n@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n",
    );
    job.write("py/lib/helper.py", "VALUE = 1\n");
    let (o, lines) = job
        .run(
            "pytest",
            json!({"cwd": "py", "params": "-p no:cacheprovider tests", "pythonpath": "lib"}),
        )
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    let results: BTreeMap<&str, i64> = o
        .test_results
        .iter()
        .map(|r| (r["test"].as_str().unwrap(), r["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        results,
        BTreeMap::from([
            ("tests.test_x::test_ok", tc_result::PASSED),
            ("tests.test_x::test_bad", tc_result::FAILED),
            ("tests.test_x::test_later", tc_result::DISABLED),
        ])
    );

    // A usage error: no XML results, the step fails.
    let (o, _) = job
        .run("pytest", json!({"cwd": "py", "params": "--no-such-option"}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("retcode"), "{o:?}");
}

#[tokio::test]
async fn data_from_a_file_or_a_value() {
    let job = Job::new();
    job.write("d/data.json", r#"{"version": 3, "tags": ["a"]}"#);
    let (o, _) = job
        .run("data", json!({"file": "data.json", "cwd": "d"}))
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.data, Some(json!({"version": 3, "tags": ["a"]})));
    assert_eq!(o.to_result()["data"], json!({"version": 3, "tags": ["a"]}));

    let (o, _) = job.run("data", json!({"value": "{\"a\": [1, 2]}"})).await;
    assert_eq!(o.data, Some(json!({"a": [1, 2]})));
    let (o, _) = job.run("data", json!({"value": {"b": true}})).await;
    assert_eq!(o.data, Some(json!({"b": true})));
    let (o, _) = job
        .run("data", json!({"value": ".a += 1", "operation": "jq"}))
        .await;
    assert_eq!(o.data, Some(json!(".a += 1")));

    job.write("bad.json", "{nope");
    let (o, _) = job.run("data", json!({"file": "bad.json"})).await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("bad.json is not valid JSON"));
    let (o, _) = job.run("data", json!({"file": "none.json"})).await;
    assert!(o.msg.unwrap().contains("cannot read data file"));
    let (o, _) = job.run("data", json!({})).await;
    assert!(o.msg.unwrap().contains("'value' or 'file'"));
}

#[tokio::test]
async fn unknown_tools_and_bad_fields_are_exceptions() {
    let job = Job::new();
    let (o, _) = job.run("hammer", json!({})).await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("tool 'hammer' is not supported"));

    let (o, _) = job
        .run("shell", json!({"cmd": "true", "timeout": "soon"}))
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("'timeout'"));
}

/// Whether a program a test runs is here. `.ci/run` installs them all and
/// sets `KRAKEN_REQUIRE_TOOLS=1`, so in CI a missing one fails the test;
/// elsewhere the test says on stderr that it did not run and why.
fn need(program: &str, how: &str) -> bool {
    kraken_core::agent::tools::process::find_in_path(program, std::env::var_os("PATH").as_deref())
        .is_some()
        || {
            assert!(
                std::env::var_os("KRAKEN_REQUIRE_TOOLS").is_none(),
                "this test runs `{program}`: install it ({how})"
            );
            eprintln!("NOT RUN: this test runs `{program}`, which is not in PATH ({how})");
            false
        }
}

#[tokio::test]
async fn rndtest_gives_the_same_tests_with_random_results_and_values() {
    let job = Job::new();
    let (o, lines) = job
        .run("rndtest", json!({"count": "12", "override_result": 3}))
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.test_results.len(), 12);
    assert!(lines.iter().any(|l| l.contains("12 random test results")));
    let manual = &o.test_results[2];
    assert_eq!(manual["test"], "test_0_special.manual");
    assert_eq!(manual["status"], 3, "override_result");
    for r in &o.test_results {
        let s = r["status"].as_i64().unwrap();
        assert!((0..=5).contains(&s), "{r}");
        if let Some(v) = r.get("values") {
            for fig in v.as_object().unwrap().values() {
                assert!(
                    fig["value"].is_number() && fig["iterations"].is_number(),
                    "{r}"
                );
            }
        }
    }
    let (again, _) = job.run("rndtest", json!({"count": 12})).await;
    let names = |o: &StepOutcome| -> Vec<String> {
        o.test_results
            .iter()
            .map(|r| r["test"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&o), names(&again), "the same tests every run");
    let (bad, _) = job.run("rndtest", json!({"count": 2})).await;
    assert!(bad.msg.unwrap().contains("at least 3"));
}

#[tokio::test]
async fn values_collect_reads_figures_from_files() {
    let job = Job::new();
    job.write("perf/render.json", r#"{"fps": 59.5, "frames": 1200}"#);
    job.write("perf/broken.json", "{");
    let (o, _) = job
        .run(
            "values_collect",
            json!({"cwd": "perf", "files": [
                {"name": "render.json", "namespace": "render"},
                {"name": "broken.json"},
                {"name": "missing.json"},
            ]}),
        )
        .await;
    assert!(o.ok, "{o:?}");
    let r = &o.test_results;
    assert_eq!(r[0]["test"], "render");
    assert_eq!(r[0]["status"], tc_result::PASSED);
    assert_eq!(r[0]["values"]["fps"]["value"], 59.5);
    assert_eq!(r[1]["test"], "broken.json");
    assert_eq!(r[1]["status"], tc_result::ERROR);
    assert!(r[1]["message"].as_str().unwrap().contains("cannot parse"));
    assert!(r[2]["message"].as_str().unwrap().contains("missing"));
    let (o, _) = job.run("values_collect", json!({})).await;
    assert!(o.msg.unwrap().contains("'files'"));
}

#[tokio::test]
async fn cloc_counts_lines_per_language() {
    if !need("cloc", "apt-get install cloc") {
        return;
    }
    let job = Job::new();
    job.write("src/a.py", "# comment\nimport os\n\nprint(os.name)\n");
    job.write("src/b.sh", "#!/bin/sh\necho hi\n");
    job.write("src/vendor/c.py", "x = 1\n");
    let (o, lines) = job
        .run("cloc", json!({"cwd": "src", "exclude-dir": "vendor"}))
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    let py = o
        .test_results
        .iter()
        .find(|r| r["test"] == "Python")
        .expect("a Python result");
    assert_eq!(py["values"]["code"]["value"], 2, "{py}");
    assert_eq!(py["values"]["comment"]["value"], 1);
    assert_eq!(py["values"]["blank"]["value"], 1);
    assert_eq!(py["values"]["files"]["value"], 1, "vendor is excluded");
    assert!(o.test_results.iter().any(|r| r["test"] == "SUM"));
    assert!(
        lines[0].starts_with("$ cloc . --json --exclude-dir vendor"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn gotest_reports_each_go_test() {
    if !need("go", "apt-get install golang-go") {
        return;
    }
    let job = Job::new();
    job.write("m/go.mod", "module example.com/m\n\ngo 1.19\n");
    job.write(
        "m/m_test.go",
        "package m\n\nimport \"testing\"\n\nfunc TestOk(t *testing.T) {}\n\nfunc TestBad(t *testing.T) { t.Fatal(\"boom\") }\n\nfunc TestSkip(t *testing.T) { t.Skip(\"later\") }\n",
    );
    // Go wants writable caches; the job's dir is.
    let cache = job.path().join("gocache");
    let mut job = job;
    job.env
        .insert("GOCACHE".into(), cache.display().to_string());
    job.env
        .insert("HOME".into(), job.path().display().to_string());
    job.env.insert("GOFLAGS".into(), "-mod=mod".into());
    job.env.insert("GOPROXY".into(), "off".into());
    let (o, lines) = job
        .run("gotest", json!({"cwd": "m", "params": "./..."}))
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    let by = |name: &str| {
        o.test_results
            .iter()
            .find(|r| r["test"] == format!("example.com/m::{name}"))
            .unwrap_or_else(|| panic!("{name} in {:?}", o.test_results))
            .clone()
    };
    assert_eq!(by("TestOk")["status"], tc_result::PASSED);
    assert_eq!(by("TestBad")["status"], tc_result::FAILED);
    assert!(by("TestBad")["output"].as_str().unwrap().contains("boom"));
    assert_eq!(by("TestSkip")["status"], tc_result::DISABLED);
    assert!(
        lines.iter().any(|l| l.contains("3 tests, 1 failed")),
        "{lines:?}"
    );
    // A build error is no test result: the step fails.
    job.write("m/m_test.go", "package m\n\nfunc broken( {\n");
    let (o, _) = job.run("gotest", json!({"cwd": "m"})).await;
    assert!(!o.ok);
    assert_eq!(o.reason.as_deref(), Some("retcode"));
}

#[tokio::test]
async fn pylint_reports_issues_with_links_to_the_repository() {
    if !need("pylint", "pip install pylint") {
        return;
    }
    let job = Job::new();
    job.write("repo/pkg/__init__.py", "");
    job.write(
        "repo/pkg/mod.py",
        "import os\n\ndef f( x ):\n    return 1\n",
    );
    let repo = job.path().join("repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &["remote", "add", "origin", "git@example.com:org/app.git"],
    );
    let (o, lines) = job
        .run(
            "pylint",
            json!({"cwd": "repo", "modules_or_packages": "pkg"}),
        )
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    let unused = o
        .issues
        .iter()
        .find(|i| i["symbol"] == "unused-import")
        .unwrap_or_else(|| panic!("{:?}", o.issues));
    assert_eq!(unused["path"], "pkg/mod.py");
    assert_eq!(unused["line"], 1);
    assert_eq!(unused["type"], "warning");
    // No remote branch contains HEAD (nothing pushed): master, as the original.
    assert_eq!(
        unused["url"],
        "https://example.com/org/app/blob/master/pkg/mod.py#L1"
    );
    assert!(
        lines.iter().any(|l| l.contains("pkg/mod.py:1")),
        "{lines:?}"
    );
    let (o, _) = job.run("pylint", json!({"cwd": "repo"})).await;
    assert!(o.msg.unwrap().contains("modules_or_packages"));
}

#[tokio::test]
async fn nglint_reports_eslint_messages_as_issues() {
    // `npx ng lint` needs an Angular workspace from the npm registry; a
    // stand-in `npx` prints what Angular's linter prints (ESLint's JSON).
    let mut job = Job::new();
    let bin = job.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let app = job.path().join("app");
    std::fs::create_dir_all(app.join("src")).unwrap();
    let report = format!(
        r#"[{{"filePath": "{}/src/main.ts", "messages": [{{"severity": 2, "line": 4, "column": 2, "message": "Unexpected any", "ruleId": "no-explicit-any"}}, {{"severity": 1, "line": 9, "column": 1, "message": "Missing return type", "messageId": "missingReturnType"}}]}}]"#,
        app.display()
    );
    job.write("bin/npx", &format!("#!/bin/sh\n[ \"$*\" = 'ng lint --format json --force --silent' ] || exit 9\ncat <<'EOF'\n{report}\nEOF\n"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("npx"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    job.env.insert("PATH".into(), path);
    let (o, lines) = job.run("nglint", json!({"cwd": "app"})).await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert_eq!(o.issues.len(), 2);
    assert_eq!(o.issues[0]["path"], "src/main.ts");
    assert_eq!(o.issues[0]["type"], "error");
    assert_eq!(o.issues[0]["symbol"], "no-explicit-any");
    assert_eq!(o.issues[1]["type"], "warning");
    assert_eq!(o.issues[1]["symbol"], "missingReturnType");
}

/// A tool module with the original agent's interface: results, issues and
/// data reported through the callbacks, prints in the log.
const TOOL_MODULE: &str = r#"
import logging
log = logging.getLogger(__name__)

def collect_tests(step):
    return ['t1', 't2']

def run_tests(step, report_result=None):
    print('running', step['tests'], 'with', step.get('flavour'))
    for t in step['tests']:
        report_result({'cmd': 'mytool', 'test': t, 'status': 1 if t == 't1' else 2})
    return 0, ''

def run_analysis(step, report_issue=None):
    report_issue({'path': 'a.py', 'line': 3, 'type': 'warning', 'symbol': 's', 'message': 'm'})
    return 0, ''

def run_data(step, report_data=None):
    report_data({'from': 'tool'})
    return 0, ''
"#;

#[tokio::test]
async fn local_tools_run_python_modules_with_the_original_interface() {
    let job = Job::new();
    let lib = job.dir.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("mytool.py"), TOOL_MODULE).unwrap();
    let (o, lines) = job
        .run(
            "local_tool",
            json!({"tool_location": lib.display().to_string(), "tool_entry": "mytool", "flavour": "x"}),
        )
        .await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert_eq!(o.test_results.len(), 2);
    assert_eq!(o.test_results[1]["status"], 2);
    assert_eq!(o.issues[0]["symbol"], "s");
    assert_eq!(o.data, Some(json!({"from": "tool"})));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("running ['t1', 't2'] with x")),
        "{lines:?}"
    );

    // A failing tool: its retcode and message.
    std::fs::write(
        lib.join("bad.py"),
        "def run(step):\n    return 7, 'no good'\n",
    )
    .unwrap();
    let (o, _) = job
        .run(
            "local_tool",
            json!({"tool_location": lib.display().to_string(), "tool_entry": "bad"}),
        )
        .await;
    assert_eq!(
        (o.reason.as_deref(), o.retcode),
        (Some("retcode"), Some(7)),
        "{o:?}"
    );
    assert_eq!(o.msg.as_deref(), Some("no good"));
    // A module that raises: an exception with its traceback.
    std::fs::write(
        lib.join("boom.py"),
        "def run(step):\n    raise ValueError('boom')\n",
    )
    .unwrap();
    let (o, _) = job
        .run(
            "local_tool",
            json!({"tool_location": lib.display().to_string(), "tool_entry": "boom"}),
        )
        .await;
    assert_eq!(o.reason.as_deref(), Some("exception"));
    assert!(o.msg.unwrap().contains("ValueError: boom"));
}

#[tokio::test]
async fn custom_tool_packages_are_fetched_once_per_version() {
    let job = Job::new();
    // A package as `POST /tools/{name}/zip` stores it.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("mytool.py"), TOOL_MODULE).unwrap();
    let zip = src.path().join("tool.zip");
    let made = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg(src.path().join("mytool.py"))
        .status()
        .unwrap();
    assert!(made.success());
    job.store
        .tools
        .lock()
        .unwrap()
        .insert(42, std::fs::read(&zip).unwrap());
    let step = json!({"tool_id": 42, "tool_version": "3", "tool_location": "blob:tools/tool-42/tool.zip", "tool_entry": "mytool"});
    let (o, lines) = job.run("mytool", step.clone()).await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert_eq!(o.test_results.len(), 2);
    assert!(
        lines.iter().any(|l| l.contains("fetching the package")),
        "{lines:?}"
    );
    // The same version again: from the agent's cache, not the server.
    job.store.tools.lock().unwrap().clear();
    let (o, lines) = job.run("mytool", step).await;
    assert!(o.ok, "{o:?} {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("fetching the package")),
        "{lines:?}"
    );
}

/// `cache` saves paths inside and outside the job dir (`..`, `$VAR`) and
/// restores them where they were; a missing path fails a save; a key never
/// saved restores nothing and passes.
#[tokio::test]
async fn cache_saves_and_restores_paths_where_they_were() {
    let mut job = Job::new();
    let outside = job.dir.path().join("outside");
    std::fs::create_dir_all(outside.join("deep")).unwrap();
    std::fs::write(outside.join("deep/o.txt"), "outside\n").unwrap();
    std::fs::create_dir_all(job.path().join("build")).unwrap();
    std::fs::write(job.path().join("build/b.bin"), [0u8, 1, 2, 255]).unwrap();
    job.env.insert("OUT_NAME".into(), "outside".into());

    let (o, log) = job
        .run(
            "cache",
            json!({"action": "save", "key": "k1", "paths": ["build", "../../${OUT_NAME}"]}),
        )
        .await;
    assert!(o.ok, "{o:?} {log:?}");
    let saved =
        std::fs::read_to_string(job.store.root.join(".cache/k1/1").join(CACHE_META)).unwrap();
    let meta: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(
        meta,
        json!({"build.tar.gz": "build", ".._.._outside.tar.gz": "../../${OUT_NAME}"})
    );

    std::fs::remove_dir_all(job.path().join("build")).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
    let (o, log) = job
        .run("cache", json!({"action": "restore", "keys": ["k1", "k2"]}))
        .await;
    assert!(o.ok, "{o:?} {log:?}");
    assert!(log.iter().any(|l| l == "no cache for key 'k2'"), "{log:?}");
    assert_eq!(
        std::fs::read(job.path().join("build/b.bin")).unwrap(),
        [0u8, 1, 2, 255]
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("deep/o.txt")).unwrap(),
        "outside\n"
    );

    let (o, log) = job
        .run(
            "cache",
            json!({"action": "save", "key": "k3", "paths": ["nope"]}),
        )
        .await;
    assert!(!o.ok, "{log:?}");
    assert_eq!(o.msg.as_deref(), Some("path 'nope' does not exist"));
    let (o, _) = job
        .run("cache", json!({"action": "save", "paths": ["x"]}))
        .await;
    assert!(o.msg.unwrap().contains("needs 'key'"));
    let (o, _) = job.run("cache", json!({"action": "drop"})).await;
    assert!(o.msg.unwrap().contains("unknown cache action 'drop'"));
}
