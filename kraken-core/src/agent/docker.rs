//! The `docker` executor: a job whose environment says `"executor":
//! "docker"` runs its steps in a container of the image named by its
//! `system` (the original's semantics), never on the agent's host.
//!
//! It drives the `docker` command line rather than the Engine API through
//! a client crate: the agent already runs every step as a child process
//! with its output streamed, its process group killed on a timeout and
//! its exit code reported (see [`super::tools::process`]); `docker exec`
//! is such a process, so all of that holds in a container unchanged, and
//! the agent needs no HTTP client for a Unix socket, no TLS set-up and no
//! API-version negotiation. `docker` is found in `PATH` and talks to the
//! daemon its environment names (`DOCKER_HOST`), as a user's shell would.
//!
//! One container per job: started before the first step (`docker run -d`
//! with a shell loop as process 1, the job's work directory and its scratch
//! directory mounted at the same paths, the agent's user and group, the
//! network its environment names: `"network": "none"`, `"host"`, ... or
//! Docker's default bridge), each step's commands run
//! in it with `docker exec` (working directory and the step's environment
//! passed along), a step stopped by a timeout or a cancel has every
//! process of the container killed, and the container is removed when
//! the job ends (also when the agent finds one left by an agent that
//! died). The image must be on the machine or pullable; otherwise every
//! step fails saying so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tools::process::Cmd;

/// How long a `docker` command that is not a step may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the version probe may take (a daemon that does not answer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Run `docker args`; its trimmed standard output, or why it failed.
async fn docker(args: &[&str], limit: Duration) -> Result<String, String> {
    let shown = format!("docker {}", args.join(" "));
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new("docker")
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("`{shown}` did not finish in {} s", limit.as_secs()))?
    .map_err(|e| format!("cannot run `docker` (is it installed and in PATH?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim().lines().last().unwrap_or("").to_string();
        Err(format!("`{shown}` failed: {err}"))
    }
}

/// The version of the Docker daemon, when one answers: what the agent
/// reports in its host info (`"docker": "28.2.2"`), as the original's does.
pub async fn docker_version() -> Option<String> {
    docker(
        &["version", "--format", "{{.Server.Version}}"],
        PROBE_TIMEOUT,
    )
    .await
    .ok()
    .filter(|v| !v.is_empty())
}

/// Where a job runs its steps.
#[derive(Debug, Default)]
pub enum Executor {
    /// On the agent's host.
    #[default]
    Local,
    /// In this job's container.
    Docker(Container),
    /// The job's executor could not be set up: every step fails with this.
    Broken(String),
}

/// A job's container.
#[derive(Debug)]
pub struct Container {
    name: String,
    image: String,
}

/// The label on every container of the agent working in a work directory.
fn owner_label(work_dir: &Path) -> String {
    format!(
        "kraken.agent-dir={}",
        std::path::absolute(work_dir)
            .unwrap_or_else(|_| work_dir.to_path_buf())
            .display()
    )
}

/// Remove the containers left by this agent's earlier jobs (its process
/// died before removing them).
pub async fn remove_leftovers(work_dir: &Path) {
    let label = owner_label(work_dir);
    if let Ok(ids) = docker(
        &["ps", "-aq", "--filter", &format!("label={label}")],
        DOCKER_TIMEOUT,
    )
    .await
    {
        for id in ids.lines().filter(|l| !l.is_empty()) {
            tracing::info!(container = id, "removing a container of an earlier job");
            let _ = docker(&["rm", "-f", id], DOCKER_TIMEOUT).await;
        }
    }
}

impl Container {
    /// Start the container of job `job_id` from `image`, with `mounts`
    /// (directories mounted at the same path), the agent's identity and
    /// `network` (`docker run --network`; `None`: Docker's default bridge).
    pub async fn start(
        job_id: i64,
        image: &str,
        work_dir: &Path,
        mounts: &[PathBuf],
        network: Option<&str>,
    ) -> Result<Container, String> {
        if image.is_empty() || image == "any" {
            return Err(format!(
                "a docker job needs an image as its system, not '{image}'"
            ));
        }
        if docker(
            &["image", "inspect", "--format", "{{.Id}}", image],
            DOCKER_TIMEOUT,
        )
        .await
        .is_err()
        {
            docker(&["pull", "--quiet", image], Duration::from_secs(1800))
                .await
                .map_err(|e| {
                    format!("image '{image}' is not on this machine and cannot be pulled: {e}")
                })?;
        }
        let suffix: u32 = rand::random();
        let name = format!("kraken-job-{job_id}-{suffix:08x}");
        let user = format!(
            "{}:{}",
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw()
        );
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            owner_label(work_dir),
            "--label".into(),
            format!("kraken.job={job_id}"),
            "--user".into(),
            user,
        ];
        if let Some(net) = network {
            args.push("--network".into());
            args.push(net.into());
        }
        for m in mounts {
            let abs = std::path::absolute(m).map_err(|e| format!("{}: {e}", m.display()))?;
            args.push("-v".into());
            args.push(format!("{0}:{0}", abs.display()));
        }
        args.extend([
            "--entrypoint".into(),
            "/bin/sh".into(),
            image.into(),
            "-c".into(),
            // The keeper is process 1, which `kill -9 -1` spares.
            "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done".into(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&argv, DOCKER_TIMEOUT)
            .await
            .map_err(|e| match network {
                Some(net) => format!(
                    "cannot start a container of image '{image}' on network '{net}' (the image \
                 needs /bin/sh, the network must exist on the agent's machine): {e}"
                ),
                None => {
                    format!("cannot start a container of image '{image}' (it needs /bin/sh): {e}")
                }
            })?;
        Ok(Container {
            name,
            image: image.to_string(),
        })
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image it runs.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// `cmd` run in the container: `docker exec` with its working directory
    /// and its environment (the names only: the values go through the
    /// `docker` client's own environment, never its command line).
    pub fn exec(&self, cmd: &Cmd) -> Cmd {
        let cwd = std::path::absolute(&cmd.cwd).unwrap_or_else(|_| cmd.cwd.clone());
        let mut args = vec![
            "exec".to_string(),
            "-w".to_string(),
            cwd.display().to_string(),
        ];
        for (k, _) in &cmd.env {
            args.push("-e".into());
            args.push(k.clone());
        }
        args.push(self.name.clone());
        args.push(cmd.program.clone());
        args.extend(cmd.args.iter().cloned());
        Cmd {
            program: "docker".into(),
            args,
            cwd: cmd.cwd.clone(),
            env: cmd.env.clone(),
            mask: cmd.mask.clone(),
        }
    }

    /// Kill every process of the container but process 1 (a step stopped
    /// by a timeout or a cancel: killing the `docker exec` client does not
    /// reach them).
    pub async fn kill_processes(&self) {
        let _ = docker(
            &["exec", &self.name, "/bin/sh", "-c", "kill -9 -1"],
            Duration::from_secs(20),
        )
        .await;
    }

    /// Remove the container and everything still running in it.
    pub async fn remove(self) {
        if let Err(e) = docker(&["rm", "-f", &self.name], DOCKER_TIMEOUT).await {
            tracing::warn!(container = %self.name, error = %e, "cannot remove a job's container");
        }
    }
}
