//! Command-line flags ([`Args`], as clap parses them) and the resolved
//! [`Plan`] a run follows: `--smoke` shrinks every size, and a size given
//! explicitly wins over both the smoke and the full defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Drive a Kraken-compatible CI server over HTTP with realistic work and
/// print a table of figures. Point it at any server that speaks the Kraken
/// REST API and `/backend` agent protocol, or let it start a fresh
/// `kraken-server` with `--spawn-server`.
///
/// Every workload namespaces what it creates (projects `bench-<workload>-<tag>`)
/// and deletes it at the end. Exit codes: 0 all workloads ran cleanly,
/// 1 a workload failed or saw errors, 2 usage or connection error.
#[derive(Debug, Parser)]
#[command(name = "kraken-bench", version)]
pub struct Args {
    /// Base URL of the server to benchmark.
    #[arg(
        long,
        env = "KRAKEN_BENCH_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,

    /// User to log in as (needs superadmin rights: workloads create
    /// projects, agents groups and authorize agents).
    #[arg(long, env = "KRAKEN_BENCH_USER", default_value = "admin")]
    pub user: String,

    /// Password of --user.
    #[arg(
        long,
        env = "KRAKEN_BENCH_PASSWORD",
        default_value = "admin",
        hide_env_values = true
    )]
    pub password: String,

    /// Start a fresh kraken-server on 127.0.0.1 with a temporary data
    /// directory, benchmark it, and stop it at the end (ignores --server).
    #[arg(long, conflicts_with = "pid")]
    pub spawn_server: bool,

    /// The kraken-server binary for --spawn-server (default: the one next
    /// to this executable).
    #[arg(long, requires = "spawn_server")]
    pub server_bin: Option<PathBuf>,

    /// Built-in agents of the spawned server.
    #[arg(long, default_value_t = 2)]
    pub agents: usize,

    /// Process id of a local server, to report its memory (RSS).
    #[arg(long)]
    pub pid: Option<u32>,

    /// Run only these workloads (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Workload>,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Shrink every size so the whole run takes seconds (for CI: checks
    /// that every workload still works, says nothing about speed).
    #[arg(long)]
    pub smoke: bool,

    /// Use only what the original Kraken server has: no SSE log stream,
    /// no `wait` long-poll in `get-job` (compare servers on equal terms).
    #[arg(long)]
    pub plain_api: bool,

    /// reads: do not time a bare axum handler for comparison (it is timed
    /// when the server runs on this machine: spawned, or a loopback URL).
    #[arg(long)]
    pub no_bare_axum: bool,

    /// e2e: also run the flows with the `docker` executor on this image (it
    /// must be on the server's machine and have /bin/sh), to time a job
    /// from its creation to its first step in a container.
    #[arg(long, value_name = "IMAGE")]
    pub docker_image: Option<String>,

    /// e2e: also run the flows on the original Python agent (`kkagent` at
    /// this path, installed as tests/fixtures/original-agent/README.md
    /// says; needs root to link /opt/kraken/kktool), started by the bench
    /// on the server's machine, to time its job start.
    #[arg(long, value_name = "KKAGENT")]
    pub original_agent: Option<std::path::PathBuf>,

    /// Longest any single wait may take, in seconds (a flow to complete,
    /// a log line to appear, ...) [default: 300; smoke: 60].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// reads: concurrent keep-alive connections [default: 32; smoke: 4].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub connections: Option<usize>,

    /// reads: seconds of load per endpoint [default: 10; smoke: 1].
    #[arg(long, value_name = "SECS", help_heading = "Sizes")]
    pub reads_secs: Option<f64>,

    /// reads: flows present on the branch whose flows are read [default: 50; smoke: 5].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub reads_flows: Option<usize>,

    /// create: flows created in each mode (sequential, concurrent); aged: flows timed after the history [default: 200; smoke: 10].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub create_flows: Option<usize>,

    /// create: requests in flight in the concurrent mode; aged: while the history is created [default: 8; smoke: 4].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub create_concurrency: Option<usize>,

    /// aged: flows created on the branch before the sequential creations are timed [default: 5000; smoke: 20].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub aged_flows: Option<usize>,

    /// e2e: one-job echo flows, run one after another [default: 100; smoke: 3].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub e2e_flows: Option<usize>,

    /// throughput: flows created at once [default: 20; smoke: 2].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub throughput_flows: Option<usize>,

    /// throughput: trivial jobs per flow [default: 10; smoke: 2].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub throughput_jobs: Option<usize>,

    /// logs: lines the job prints [default: 1000000; smoke: 2000].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub log_lines: Option<u64>,

    /// agents: simulated agents polling /backend at once [default: 200; smoke: 10].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub sim_agents: Option<usize>,

    /// agents: seconds the simulated agents poll [default: 30; smoke: 2].
    #[arg(long, value_name = "SECS", help_heading = "Sizes")]
    pub agents_secs: Option<f64>,

    /// results: test results in one run [default: 10000; smoke: 200].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub tests: Option<usize>,

    /// results: CI flows of history before the measured one [default: 10; smoke: 2].
    #[arg(long, value_name = "N", help_heading = "Sizes")]
    pub history: Option<usize>,
}

/// A workload: one kind of realistic work, with its own namespaced data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// API reads under concurrency: requests/s and latency.
    Reads,
    /// Flow creation, sequential and concurrent: flows/s.
    Create,
    /// Flow creation on a branch that already has thousands of flows.
    Aged,
    /// One-job echo flows end to end: created → first log line, → completed.
    E2e,
    /// Flows completed per second with N trivial jobs each.
    Throughput,
    /// Simulated agents polling /backend at once: errors and jobs handed out.
    Agents,
    /// One run reporting many test results: ingestion and analysis time.
    Results,
    /// A job printing many lines: lines/s and time until the last is readable.
    Logs,
}

impl Workload {
    /// Every workload, in the order a full run does them (the heaviest,
    /// which leaves the most data behind, last).
    pub const ALL: [Workload; 8] = [
        Workload::Reads,
        Workload::Create,
        Workload::Aged,
        Workload::E2e,
        Workload::Throughput,
        Workload::Agents,
        Workload::Results,
        Workload::Logs,
    ];

    /// The name used in flags, project names and output.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Reads => "reads",
            Workload::Create => "create",
            Workload::Aged => "aged",
            Workload::E2e => "e2e",
            Workload::Throughput => "throughput",
            Workload::Agents => "agents",
            Workload::Results => "results",
            Workload::Logs => "logs",
        }
    }
}

/// The sizes of every workload, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// reads: concurrent connections.
    pub connections: usize,
    /// reads: seconds of load per endpoint.
    pub reads_secs: f64,
    /// reads: flows present on the branch.
    pub reads_flows: usize,
    /// create: flows per mode.
    pub create_flows: usize,
    /// create: requests in flight in the concurrent mode.
    pub create_concurrency: usize,
    /// aged: flows of history before the timed creations.
    pub aged_flows: usize,
    /// e2e: flows.
    pub e2e_flows: usize,
    /// throughput: flows.
    pub throughput_flows: usize,
    /// throughput: jobs per flow.
    pub throughput_jobs: usize,
    /// logs: lines printed by the job.
    pub log_lines: u64,
    /// agents: simulated agents.
    pub sim_agents: usize,
    /// agents: seconds of polling.
    pub agents_secs: f64,
    /// results: test results per run.
    pub tests: usize,
    /// results: flows of history.
    pub history: usize,
}

impl Sizes {
    /// The sizes of the issue (the full benchmark).
    pub fn full() -> Sizes {
        Sizes {
            connections: 32,
            reads_secs: 10.0,
            reads_flows: 50,
            create_flows: 200,
            create_concurrency: 8,
            aged_flows: 5000,
            e2e_flows: 100,
            throughput_flows: 20,
            throughput_jobs: 10,
            log_lines: 1_000_000,
            sim_agents: 200,
            agents_secs: 30.0,
            tests: 10_000,
            history: 10,
        }
    }

    /// Sizes for a run of seconds.
    pub fn smoke() -> Sizes {
        Sizes {
            connections: 4,
            reads_secs: 1.0,
            reads_flows: 5,
            create_flows: 10,
            create_concurrency: 4,
            aged_flows: 20,
            e2e_flows: 3,
            throughput_flows: 2,
            throughput_jobs: 2,
            log_lines: 2_000,
            sim_agents: 10,
            agents_secs: 2.0,
            tests: 200,
            history: 2,
        }
    }
}

/// What to run against which server, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URL without a trailing slash (ignored with `spawn`).
    pub server: String,
    /// Login user.
    pub user: String,
    /// Login password.
    pub password: String,
    /// Start a server: `Some(binary)` (`None` inside: next to this executable).
    pub spawn: Option<Option<PathBuf>>,
    /// Built-in agents of a spawned server.
    pub agents: usize,
    /// Pid of a local server, for its RSS.
    pub pid: Option<u32>,
    /// Workloads to run, in order.
    pub workloads: Vec<Workload>,
    /// JSON output.
    pub json: bool,
    /// Smoke sizes.
    pub smoke: bool,
    /// Only the original's API (no SSE, no long-poll).
    pub plain_api: bool,
    /// reads: time a bare axum handler too.
    pub bare_axum: bool,
    /// e2e: an image for docker-executor flows too.
    pub docker_image: Option<String>,
    /// e2e: the original agent's `kkagent`, to run the flows on it too.
    pub original_agent: Option<std::path::PathBuf>,
    /// Longest single wait.
    pub timeout: Duration,
    /// Sizes.
    pub sizes: Sizes,
}

impl Args {
    /// Validate the flags and resolve every size.
    pub fn plan(self) -> Result<Plan, String> {
        let server = self.server.trim_end_matches('/').to_string();
        let is_http = server.starts_with("http://") || server.starts_with("https://");
        if !self.spawn_server && !is_http {
            return Err(format!(
                "--server '{}' is not an http:// or https:// URL",
                self.server
            ));
        }
        let base = if self.smoke {
            Sizes::smoke()
        } else {
            Sizes::full()
        };
        let sizes = Sizes {
            connections: self.connections.unwrap_or(base.connections),
            reads_secs: self.reads_secs.unwrap_or(base.reads_secs),
            reads_flows: self.reads_flows.unwrap_or(base.reads_flows),
            create_flows: self.create_flows.unwrap_or(base.create_flows),
            create_concurrency: self.create_concurrency.unwrap_or(base.create_concurrency),
            aged_flows: self.aged_flows.unwrap_or(base.aged_flows),
            e2e_flows: self.e2e_flows.unwrap_or(base.e2e_flows),
            throughput_flows: self.throughput_flows.unwrap_or(base.throughput_flows),
            throughput_jobs: self.throughput_jobs.unwrap_or(base.throughput_jobs),
            log_lines: self.log_lines.unwrap_or(base.log_lines),
            sim_agents: self.sim_agents.unwrap_or(base.sim_agents),
            agents_secs: self.agents_secs.unwrap_or(base.agents_secs),
            tests: self.tests.unwrap_or(base.tests),
            history: self.history.unwrap_or(base.history),
        };
        let positive = [
            ("--connections", sizes.connections),
            ("--reads-flows", sizes.reads_flows),
            ("--create-flows", sizes.create_flows),
            ("--create-concurrency", sizes.create_concurrency),
            ("--e2e-flows", sizes.e2e_flows),
            ("--throughput-flows", sizes.throughput_flows),
            ("--throughput-jobs", sizes.throughput_jobs),
            ("--sim-agents", sizes.sim_agents),
            ("--tests", sizes.tests),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be at least 1"));
        }
        if sizes.log_lines == 0 {
            return Err("--log-lines must be at least 1".into());
        }
        for (flag, secs) in [
            ("--reads-secs", sizes.reads_secs),
            ("--agents-secs", sizes.agents_secs),
        ] {
            if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
                return Err(format!("{flag} must be between 0 and 3600 seconds"));
            }
        }
        let timeout = self.timeout.unwrap_or(if self.smoke { 60 } else { 300 });
        if timeout == 0 {
            return Err("--timeout must be at least 1 second".into());
        }
        let mut workloads: Vec<Workload> = if self.only.is_empty() {
            Workload::ALL.to_vec()
        } else {
            self.only
        };
        // Always the canonical order, each once.
        workloads.sort_by_key(|w| Workload::ALL.iter().position(|a| a == w));
        workloads.dedup();
        let bare_axum = !self.no_bare_axum && (self.spawn_server || is_loopback(&server));
        Ok(Plan {
            server,
            user: self.user,
            password: self.password,
            spawn: self.spawn_server.then_some(self.server_bin),
            agents: self.agents,
            pid: self.pid,
            workloads,
            json: self.json,
            smoke: self.smoke,
            plain_api: self.plain_api,
            bare_axum,
            docker_image: self.docker_image,
            original_agent: self.original_agent,
            timeout: Duration::from_secs(timeout),
            sizes,
        })
    }
}

/// Whether `url`'s host is this machine's loopback.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let mut all = vec!["kraken-bench"];
        all.extend_from_slice(args);
        Args::try_parse_from(all).map_err(|e| e.to_string())?.plan()
    }

    #[test]
    fn the_bare_handler_is_timed_only_for_a_local_server() {
        assert!(plan(&["--spawn-server"]).unwrap().bare_axum);
        assert!(
            plan(&["--server", "http://127.0.0.1:8080"])
                .unwrap()
                .bare_axum
        );
        assert!(plan(&["--server", "http://localhost"]).unwrap().bare_axum);
        assert!(plan(&["--server", "http://[::1]:80/"]).unwrap().bare_axum);
        assert!(
            !plan(&["--server", "http://ci.example.com:8080"])
                .unwrap()
                .bare_axum
        );
        assert!(!plan(&["--server", "http://10.0.0.5"]).unwrap().bare_axum);
        assert!(
            !plan(&["--spawn-server", "--no-bare-axum"])
                .unwrap()
                .bare_axum
        );
    }

    #[test]
    fn explicit_sizes_win_over_smoke() {
        let p = plan(&["--smoke", "--e2e-flows", "7"]).unwrap();
        assert_eq!(p.sizes.e2e_flows, 7);
        assert_eq!(p.sizes.tests, Sizes::smoke().tests);
        assert_eq!(p.timeout, Duration::from_secs(60));
        let full = plan(&[]).unwrap();
        assert_eq!(full.sizes.log_lines, 1_000_000);
        assert_eq!(full.workloads, Workload::ALL.to_vec());
    }

    #[test]
    fn only_keeps_the_canonical_order() {
        let p = plan(&["--only", "logs,reads,logs"]).unwrap();
        assert_eq!(p.workloads, vec![Workload::Reads, Workload::Logs]);
        assert!(plan(&["--only", "nope"]).is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(plan(&["--server", "localhost:8080"]).is_err());
        assert!(plan(&["--connections", "0"]).is_err());
        assert!(plan(&["--reads-secs", "-1"]).is_err());
        assert!(plan(&["--spawn-server", "--pid", "1"]).is_err());
        let p = plan(&["--server", "http://h:1/", "--pid", "42"]).unwrap();
        assert_eq!(p.server, "http://h:1");
        assert_eq!(p.pid, Some(42));
    }
}
