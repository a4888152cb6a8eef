//! `kraken`: the Kraken CI command line.
//!
//! One backend is chosen per invocation: a server over HTTP (`--server` or
//! the stored login) or a database in process (`--db`). The commands only
//! see the `Kraken` handle.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{CommandFactory, Parser};
use futures_util::StreamExt;
use kraken_core::api::FollowEvent;
use kraken_core::api::logs::LogPaging;
use kraken_core::credentials::Credentials;
use kraken_core::model::*;
use kraken_core::store::results::{IssueFilter, TcrFilter};
use kraken_core::{Error, Kraken};
use serde_json::{Map, Value, json};

mod args;
mod out;

use args::*;
use out::{Exit, Out, failed, opt, timed_out, usage};

fn main() -> ExitCode {
    // Before anything else (the runtime's threads included): this may be a
    // schema worker process (see kraken_core::schema::sandbox).
    kraken_core::schema::sandbox::run_worker_if_requested();
    cli_main()
}

#[tokio::main]
async fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KRAKEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let (code, msg) = exit_of(&e);
            if let Some(m) = msg {
                eprintln!("kraken: {m}");
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code and message of an error.
fn exit_of(e: &anyhow::Error) -> (u8, Option<String>) {
    if let Some(x) = e.downcast_ref::<Exit>() {
        return (x.code, x.message.clone());
    }
    if let Some(k) = e.downcast_ref::<Error>() {
        return match k {
            Error::NotFound(m) => (3, Some(m.clone())),
            Error::Unauthorized(m) => (
                2,
                Some(format!("{m} (log in again: `kraken login --server URL`)")),
            ),
            other => (2, Some(other.to_string())),
        };
    }
    (2, Some(format!("{e:#}")))
}

async fn connect(cli: &Cli) -> anyhow::Result<Kraken> {
    if let Some(db) = &cli.db {
        return Ok(Kraken::open(db).await?);
    }
    let stored = Credentials::load()?;
    let server = cli
        .server
        .clone()
        .or_else(|| stored.as_ref().map(|c| c.server.clone()))
        .ok_or_else(|| {
            usage(
                "not logged in: run `kraken login --server URL`, or pass --server URL or --db URL",
            )
        })?;
    let token = cli
        .token
        .clone()
        .or_else(|| {
            stored
                .as_ref()
                .filter(|c| same_server(&c.server, &server))
                .map(|c| c.token.clone())
        })
        .ok_or_else(|| {
            usage(format!(
                "not logged in to {server}: run `kraken login --server {server}`"
            ))
        })?;
    Ok(Kraken::connect(&server, Some(token))?)
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = Out::new(cli.json);
    match &cli.command {
        Command::Login { user, password } => {
            return login(&cli, &out, user, password.clone()).await;
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "kraken", &mut buf);
            out.line(String::from_utf8_lossy(&buf).trim_end())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Agent(a) => return agent(&cli, a).await,
        Command::Schema(s) => return schema(&out, s),
        _ => {}
    }
    let k = connect(&cli).await?;
    match &cli.command {
        Command::Logout => {
            if let Some(t) = cli
                .token
                .clone()
                .or_else(|| Credentials::load().ok().flatten().map(|c| c.token))
                && !k.is_local()
            {
                // An already dead session is fine: the goal is to be logged out.
                let _ = k.logout(&t).await;
            }
            Credentials::remove()?;
            eprintln!("logged out");
        }
        Command::Version => {
            let v = k.get_server_version().await?;
            if out.json {
                out.json(&v)?;
            } else {
                out.line(&v.version)?;
            }
        }
        Command::Projects(c) => projects(&k, &out, c).await?,
        Command::Branches(c) => branches(&k, &out, c).await?,
        Command::Stages(c) => stages(&k, &out, c).await?,
        Command::Flows(c) => return flows(&k, &out, c).await,
        Command::Runs(c) => return runs(&k, &out, c).await,
        Command::Jobs(c) => jobs(&k, &out, c).await?,
        Command::Logs(a) => return logs(&k, &out, a).await,
        Command::Results(c) => results(&k, &out, c).await?,
        Command::Agents(c) => agents(&k, &out, c).await?,
        Command::Groups(c) => groups(&k, &out, c).await?,
        Command::Secrets(c) => secrets(&k, &out, c).await?,
        Command::Users(c) => users(&k, &out, c).await?,
        Command::Tools(c) => tools(&k, &out, c).await?,
        Command::Settings(c) => settings(&k, &out, c).await?,
        Command::Systems(SystemsCmd::List) => {
            let l = k.get_systems().await?;
            if out.json {
                out.json(&l)?;
            } else {
                out.table(
                    &["ID", "NAME", "EXECUTOR"],
                    l.items
                        .iter()
                        .map(|s| vec![s.id.to_string(), s.name.clone(), s.executor.clone()])
                        .collect(),
                )?;
            }
        }
        Command::Login { .. }
        | Command::Completions { .. }
        | Command::Agent(_)
        | Command::Schema(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ login, agent

async fn login(
    cli: &Cli,
    out: &Out,
    user: &str,
    password: Option<String>,
) -> anyhow::Result<ExitCode> {
    let stored = Credentials::load().ok().flatten();
    let server = cli
        .server
        .clone()
        .or_else(|| stored.map(|c| c.server))
        .ok_or_else(|| usage("which server? run `kraken login --server URL`"))?;
    let password = match password {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => dialoguer::Password::new()
            .with_prompt(format!("Password of {user} at {server}"))
            .interact()
            .map_err(|e| usage(format!("cannot read the password: {e}")))?,
        None => {
            return Err(usage(
                "no password: pass --password (or KRAKEN_PASSWORD) when not on a terminal",
            ));
        }
    };
    let (_, session) = Kraken::login(&server, user, &password).await?;
    let path = Credentials {
        server: server.clone(),
        token: session.token,
        user: user.to_string(),
    }
    .save()?;
    if out.json {
        out.json(&json!({"server": server, "user": user, "credentials": path}))?;
    } else {
        eprintln!(
            "logged in to {server} as {user} (session stored in {})",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".to_string())
}

async fn agent(cli: &Cli, a: &AgentArgs) -> anyhow::Result<ExitCode> {
    let server = cli
        .server
        .clone()
        .or_else(|| Credentials::load().ok().flatten().map(|c| c.server))
        .ok_or_else(|| usage("which server? pass --server URL"))?;
    let transport = kraken_core::agent::Http::new(&server)?;
    let address = a.address.clone().unwrap_or_else(hostname);
    let mut cfg = kraken_core::agent::AgentConfig::new(&address, &a.work_dir);
    if let Some(s) = &a.system {
        cfg.system = s.clone();
    }
    cfg.one_job = a.one_job;
    let agent = kraken_core::agent::Agent::new(Arc::new(transport), cfg);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    eprintln!("kraken agent '{address}' working for {server}");
    agent.run(stop).await;
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ naming

async fn project_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    let all = k.get_projects().await?;
    all.items
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.id)
        .ok_or_else(|| Error::NotFound(format!("no project named '{name}'")).into())
}

/// A branch by id or `PROJECT/BRANCH`.
async fn branch_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    let (p, b) = name.split_once('/').ok_or_else(|| {
        usage(format!(
            "name a branch by id or PROJECT/BRANCH, not '{name}'"
        ))
    })?;
    let pid = project_id(k, p).await?;
    let project = k.get_project(pid, false).await?;
    project
        .branches
        .iter()
        .find(|x| x.name == b)
        .map(|x| x.id)
        .ok_or_else(|| Error::NotFound(format!("no branch named '{b}' in project '{p}'")).into())
}

/// A stage by id or `PROJECT/BRANCH/STAGE`.
async fn stage_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    let (branch, stage) = name
        .rsplit_once('/')
        .filter(|(b, _)| b.contains('/'))
        .ok_or_else(|| {
            usage(format!(
                "name a stage by id or PROJECT/BRANCH/STAGE, not '{name}'"
            ))
        })?;
    let bid = branch_id(k, branch).await?;
    let b = k.get_branch(bid).await?;
    b.stages
        .unwrap_or_default()
        .iter()
        .find(|s| s.name == stage)
        .map(|s| s.id)
        .ok_or_else(|| {
            Error::NotFound(format!("no stage named '{stage}' in branch '{branch}'")).into()
        })
}

/// A stage of a flow's branch by id or name.
fn stage_in_flow(flow: &Flow, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    flow.stages
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.id)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no stage named '{name}' in the branch of flow {}",
                flow.id
            ))
            .into()
        })
}

fn key_values(items: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for kv in items {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| usage(format!("'{kv}' is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(usage(format!("'{kv}' has an empty key")));
        }
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}

// ------------------------------------------------------------------ projects, branches, stages

async fn projects(k: &Kraken, out: &Out, c: &ProjectsCmd) -> anyhow::Result<()> {
    match c {
        ProjectsCmd::List => {
            let l = k.get_projects().await?;
            if out.json {
                return out.json(&l);
            }
            out.table(
                &["ID", "NAME", "BRANCHES", "DESCRIPTION"],
                l.items
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            p.branches
                                .iter()
                                .map(|b| b.name.clone())
                                .collect::<Vec<_>>()
                                .join(", "),
                            opt(&p.description),
                        ]
                    })
                    .collect(),
            )
        }
        ProjectsCmd::Show { project } => {
            let p = k.get_project(project_id(k, project).await?, false).await?;
            if out.json {
                return out.json(&p);
            }
            out.fields(&[
                ("id", p.id.to_string()),
                ("name", p.name.clone()),
                ("description", opt(&p.description)),
                ("created", p.created.to_string()),
                (
                    "branches",
                    p.branches
                        .iter()
                        .map(|b| format!("{} ({})", b.name, b.id))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                (
                    "secrets",
                    p.secrets
                        .iter()
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ])
        }
        ProjectsCmd::Create { name, description } => {
            let p = k
                .create_project(&NewProject {
                    name: Some(name.clone()),
                    description: description.clone(),
                })
                .await?;
            if out.json {
                out.json(&p)
            } else {
                out.line(p.id)
            }
        }
        ProjectsCmd::Update {
            project,
            name,
            description,
        } => {
            let id = project_id(k, project).await?;
            let p = k
                .update_project(
                    id,
                    &ProjectChanges {
                        name: name.clone(),
                        description: description.clone(),
                        webhooks: None,
                    },
                )
                .await?;
            if out.json {
                out.json(&p)
            } else {
                out.line(p.id)
            }
        }
        ProjectsCmd::Delete { project } => {
            k.delete_project(project_id(k, project).await?).await?;
            Ok(())
        }
    }
}

fn branch_rows(items: &[Branch]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.name.clone(),
                opt(&b.branch_name),
                b.project_name.clone(),
            ]
        })
        .collect()
}

async fn branches(k: &Kraken, out: &Out, c: &BranchesCmd) -> anyhow::Result<()> {
    match c {
        BranchesCmd::List { project } => {
            let p = k.get_project(project_id(k, project).await?, false).await?;
            if out.json {
                return out.json(&List::all(p.branches));
            }
            out.table(
                &["ID", "NAME", "GIT BRANCH", "PROJECT"],
                branch_rows(&p.branches),
            )
        }
        BranchesCmd::Show { branch } => {
            let b = k.get_branch(branch_id(k, branch).await?).await?;
            if out.json {
                return out.json(&b);
            }
            out.fields(&[
                ("id", b.id.to_string()),
                ("name", b.name.clone()),
                ("git branch", opt(&b.branch_name)),
                ("project", format!("{} ({})", b.project_name, b.project_id)),
                (
                    "env",
                    b.env_vars
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                (
                    "stages",
                    b.stages
                        .unwrap_or_default()
                        .iter()
                        .map(|s| format!("{} ({})", s.name, s.id))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ])
        }
        BranchesCmd::Create {
            project,
            name,
            branch_name,
            fork,
            continue_numbering,
        } => {
            let pid = project_id(k, project).await?;
            let source = match fork {
                Some(f) => Some(branch_id(k, f).await?),
                None => None,
            };
            let b = k
                .create_branch(
                    pid,
                    &NewBranch {
                        name: Some(name.clone()),
                        branch_name: branch_name.clone(),
                        id: source,
                        forking_model: continue_numbering.then(|| "model-1".to_string()),
                    },
                )
                .await?;
            if out.json {
                out.json(&b)
            } else {
                out.line(b.id)
            }
        }
        BranchesCmd::Update {
            branch,
            name,
            branch_name,
        } => {
            let b = k
                .update_branch(
                    branch_id(k, branch).await?,
                    &BranchChanges {
                        name: name.clone(),
                        branch_name: branch_name.clone(),
                    },
                )
                .await?;
            if out.json {
                out.json(&b)
            } else {
                out.line(b.id)
            }
        }
        BranchesCmd::Delete { branch } => {
            k.delete_branch(branch_id(k, branch).await?).await?;
            Ok(())
        }
        BranchesCmd::Sequences { branch } => {
            let l = k.get_branch_sequences(branch_id(k, branch).await?).await?;
            if out.json {
                return out.json(&l);
            }
            let kind = |x: i64| {
                ["flow", "ci flow", "dev flow", "run", "ci run", "dev run"]
                    .get(x as usize)
                    .copied()
                    .unwrap_or("?")
            };
            out.table(
                &["ID", "KIND", "STAGE", "VALUE"],
                l.items
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.to_string(),
                            kind(s.kind).into(),
                            opt(&s.stage_name),
                            s.value.to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        BranchesCmd::SetEnv {
            branch,
            name,
            value,
        } => {
            k.create_branch_env_var(
                branch_id(k, branch).await?,
                &EnvVar {
                    name: Some(name.clone()),
                    value: Some(value.clone()),
                },
            )
            .await?;
            Ok(())
        }
        BranchesCmd::UnsetEnv { branch, name } => {
            k.delete_branch_env_var(branch_id(k, branch).await?, name)
                .await?;
            Ok(())
        }
        BranchesCmd::Stats { branch } => {
            let s = k.get_branch_stats(branch_id(k, branch).await?).await?;
            if out.json {
                return out.json(&s);
            }
            let row = |kind: &str, x: &BranchStatsByKind| {
                vec![
                    kind.to_string(),
                    x.flows_total.to_string(),
                    x.flows_last_month.to_string(),
                    x.flows_last_week.to_string(),
                    opt(&x.avg_duration_last_month),
                    opt(&x.avg_duration_last_week),
                ]
            };
            out.table(
                &[
                    "KIND",
                    "FLOWS",
                    "LAST MONTH",
                    "LAST WEEK",
                    "AVG MONTH",
                    "AVG WEEK",
                ],
                vec![row("ci", &s.ci), row("dev", &s.dev)],
            )
        }
    }
}

async fn stages(k: &Kraken, out: &Out, c: &StagesCmd) -> anyhow::Result<()> {
    match c {
        StagesCmd::List { branch } => {
            let b = k.get_branch(branch_id(k, branch).await?).await?;
            let stages = b.stages.unwrap_or_default();
            if out.json {
                return out.json(&List::all(stages));
            }
            out.table(
                &["ID", "NAME", "PARENT", "ENABLED", "JOBS"],
                stages
                    .iter()
                    .map(|s| {
                        let sc = s.schema.clone().unwrap_or(Value::Null);
                        vec![
                            s.id.to_string(),
                            s.name.clone(),
                            sc.get("parent")
                                .and_then(Value::as_str)
                                .unwrap_or("root")
                                .to_string(),
                            s.enabled.to_string(),
                            sc.get("jobs")
                                .and_then(Value::as_array)
                                .map_or(0, Vec::len)
                                .to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        StagesCmd::Show { stage } => {
            let s = k.get_stage(stage_id(k, stage).await?).await?;
            if out.json {
                return out.json(&s);
            }
            out.fields(&[
                ("id", s.id.to_string()),
                ("name", s.name.clone()),
                ("enabled", s.enabled.to_string()),
            ])?;
            out.line("schema:")?;
            out.line(serde_json::to_string_pretty(
                &s.schema.unwrap_or(Value::Null),
            )?)
        }
        StagesCmd::Create { branch, name, file } => {
            let code = match file {
                Some(f) => Some(read_file(f)?),
                None => None,
            };
            let s = k
                .create_stage(
                    branch_id(k, branch).await?,
                    &StageInput {
                        name: Some(name.clone()),
                        schema_code: code,
                        ..Default::default()
                    },
                )
                .await?;
            if out.json {
                out.json(&s)
            } else {
                out.line(s.id)
            }
        }
        StagesCmd::Update {
            stage,
            file,
            name,
            enable,
            disable,
        } => {
            let id = stage_id(k, stage).await?;
            let current = k.get_stage(id).await?;
            let input = StageInput {
                name: Some(name.clone().unwrap_or(current.name)),
                schema_code: match file {
                    Some(f) => Some(read_file(f)?),
                    None => None,
                },
                enabled: if *enable {
                    Some(true)
                } else if *disable {
                    Some(false)
                } else {
                    None
                },
                ..Default::default()
            };
            let s = k.update_stage(id, &input).await?;
            if out.json {
                out.json(&s)
            } else {
                out.line(s.id)
            }
        }
        StagesCmd::Delete { stage } => {
            k.delete_stage(stage_id(k, stage).await?).await?;
            Ok(())
        }
        StagesCmd::Preview { stage, file } => {
            let p = k
                .get_stage_schema_as_json(
                    stage_id(k, stage).await?,
                    &StageSchemaCode {
                        schema_code: Some(read_file(file)?),
                    },
                )
                .await?;
            if out.json {
                return out.json(&p);
            }
            match (p.schema, p.error) {
                (Some(s), _) => out.line(s),
                (None, Some(e)) => Err(usage(e)),
                (None, None) => Ok(()),
            }
        }
        StagesCmd::Schedule { stage } => {
            let s = k.get_stage_schedule(stage_id(k, stage).await?).await?;
            if out.json {
                return out.json(&s);
            }
            out.table(
                &["TRIGGER", "NEXT RUN"],
                s.schedules
                    .iter()
                    .map(|x| vec![x.name.clone(), opt(&x.next_run_time)])
                    .collect(),
            )
        }
    }
}

// ------------------------------------------------------------------ flows, runs, jobs

/// Whether a finished flow failed: failed jobs, regressions, or a run that
/// could not start its jobs.
fn flow_failed(f: &Flow) -> Option<String> {
    for r in &f.runs {
        if r.jobs_error > 0 {
            return Some(format!(
                "flow {}: stage {} has {} failed job(s)",
                f.id, r.stage_name, r.jobs_error
            ));
        }
        if r.regr_cnt > 0 {
            return Some(format!(
                "flow {}: stage {} has {} regression(s)",
                f.id, r.stage_name, r.regr_cnt
            ));
        }
        if r.jobs_total == 0 && r.state != "manual" && r.note.is_some() {
            return Some(format!(
                "flow {}: stage {}: {}",
                f.id,
                r.stage_name,
                r.note.clone().unwrap_or_default()
            ));
        }
    }
    None
}

fn flow_done(f: &Flow) -> bool {
    f.state == "completed"
        && f.runs
            .iter()
            .all(|r| r.state == "processed" || r.state == "manual")
}

fn state_word(f: &Flow) -> String {
    if !flow_done(f) {
        return f.state.clone();
    }
    if flow_failed(f).is_some() {
        "failed".into()
    } else {
        "passed".into()
    }
}

async fn wait_flow(
    k: &Kraken,
    out: &Out,
    id: i64,
    timeout: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let progress = std::io::stderr().is_terminal() && !out.json;
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let f = loop {
        let f = k.get_flow(id).await?;
        if flow_done(&f) {
            break f;
        }
        if let Some(b) = &bar {
            let runs: Vec<String> = f
                .runs
                .iter()
                .map(|r| {
                    format!(
                        "{} {} ({}/{} jobs)",
                        r.stage_name,
                        r.state,
                        r.jobs_total - r.jobs_waiting - r.jobs_executing,
                        r.jobs_total
                    )
                })
                .collect();
            b.set_message(format!("flow {id} {}: {}", f.label, runs.join(", ")));
        }
        if let Some(t) = timeout
            && start.elapsed() > Duration::from_secs(t)
        {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(timed_out(format!("flow {id} is not done after {t}s")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if out.json {
        out.json(&f)?;
    }
    match flow_failed(&f) {
        Some(why) => Err(failed(why)),
        None => {
            if progress {
                eprintln!("flow {id} ({}) passed in {}", f.label, f.duration);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_rows(runs: &[Run]) -> Vec<Vec<String>> {
    runs.iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.stage_name.clone(),
                r.state.clone(),
                format!("{}/{}", r.jobs_error, r.jobs_total),
                format!("{}/{}", r.tests_passed, r.tests_total),
                format!("{}/{}/{}", r.new_cnt, r.regr_cnt, r.fix_cnt),
                r.duration.clone(),
            ]
        })
        .collect()
}

const RUN_HEADERS: &[&str] = &[
    "RUN",
    "STAGE",
    "STATE",
    "FAILED/JOBS",
    "PASSED/TESTS",
    "NEW/REGR/FIX",
    "DURATION",
];

async fn flows(k: &Kraken, out: &Out, c: &FlowsCmd) -> anyhow::Result<ExitCode> {
    match c {
        FlowsCmd::List {
            branch,
            kind,
            limit,
        } => {
            let l = k
                .get_flows(branch_id(k, branch).await?, kind, None, Some(*limit), None)
                .await?;
            if out.json {
                out.json(&l)?;
            } else {
                out.table(
                    &["ID", "LABEL", "KIND", "STATE", "CREATED", "DURATION"],
                    l.items
                        .iter()
                        .map(|f| {
                            vec![
                                f.id.to_string(),
                                f.label.clone(),
                                f.kind.clone(),
                                state_word(f),
                                f.created.to_string(),
                                f.duration.clone(),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        FlowsCmd::Show { flow } => {
            let f = k.get_flow(*flow).await?;
            if out.json {
                out.json(&f)?;
            } else {
                out.fields(&[
                    ("id", f.id.to_string()),
                    ("label", f.label.clone()),
                    ("kind", f.kind.clone()),
                    ("state", state_word(&f)),
                    (
                        "branch",
                        format!("{} ({})", opt(&f.base_branch_name), opt(&f.branch_id)),
                    ),
                    ("created", f.created.to_string()),
                    ("duration", f.duration.clone()),
                ])?;
                out.table(RUN_HEADERS, run_rows(&f.runs))?;
            }
        }
        FlowsCmd::Create {
            branch,
            kind,
            args,
            stage_args,
            wait,
            wait_args,
        } => {
            if kind != "ci" && kind != "dev" {
                return Err(usage(format!("--kind must be ci or dev, not '{kind}'")));
            }
            let bid = branch_id(k, branch).await?;
            let mut all: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            if !args.is_empty() {
                all.insert("Common".into(), key_values(args)?);
            }
            for sa in stage_args {
                let (stage, kv) = sa
                    .split_once(':')
                    .ok_or_else(|| usage(format!("'{sa}' is not STAGE:KEY=VALUE")))?;
                all.entry(stage.to_string())
                    .or_default()
                    .extend(key_values(&[kv.to_string()])?);
            }
            let f = k
                .create_flow(
                    bid,
                    kind,
                    &NewFlow {
                        args: (!all.is_empty()).then_some(all),
                    },
                )
                .await?;
            if *wait {
                if !out.json {
                    out.line(f.id)?;
                }
                return wait_flow(k, out, f.id, wait_args.timeout).await;
            }
            if out.json {
                out.json(&f)?;
            } else {
                out.line(f.id)?;
            }
        }
        FlowsCmd::Wait { flow, wait_args } => {
            return wait_flow(k, out, *flow, wait_args.timeout).await;
        }
        FlowsCmd::Artifacts { flow } => {
            let l = k.get_flow_artifacts(*flow).await?;
            if out.json {
                out.json(&l)?;
            } else {
                out.table(
                    &["PATH", "SIZE", "STAGE", "RUN"],
                    l.items
                        .iter()
                        .map(|a| {
                            vec![
                                a.path.clone(),
                                a.size.to_string(),
                                a.stage.clone(),
                                a.run_id.to_string(),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        FlowsCmd::Download { flow, path, output } => {
            let (bytes, name) = k.read_artifact("f", *flow, path).await?;
            match output.as_ref().map(|p| p.to_string_lossy().to_string()) {
                Some(ref o) if o == "-" => {
                    use std::io::Write;
                    let mut so = std::io::stdout().lock();
                    if let Err(e) = so.write_all(&bytes).and_then(|()| so.flush())
                        && e.kind() != std::io::ErrorKind::BrokenPipe
                    {
                        return Err(usage(format!("cannot write to stdout: {e}")));
                    }
                }
                other => {
                    let target = other.unwrap_or(name);
                    std::fs::write(&target, &bytes)
                        .with_context(|| format!("cannot write {target}"))?;
                    eprintln!("saved {target} ({} bytes)", bytes.len());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

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

async fn runs(k: &Kraken, out: &Out, c: &RunsCmd) -> anyhow::Result<ExitCode> {
    match c {
        RunsCmd::Show { run } => {
            let r = k.get_run(*run).await?;
            if out.json {
                out.json(&r)?;
            } else {
                out.table(RUN_HEADERS, run_rows(std::slice::from_ref(&r)))?;
                if let Some(n) = &r.note {
                    out.line(format!("note: {n}"))?;
                }
            }
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
            if out.json {
                out.json(&r)?;
            } else {
                out.line(r.id)?;
            }
        }
        RunsCmd::Start { run } => {
            let r = k.run_run_jobs(*run).await?;
            if out.json {
                out.json(&r)?;
            } else {
                out.line(r.id)?;
            }
        }
        RunsCmd::Cancel { run } => {
            k.cancel_run(*run).await?;
        }
        RunsCmd::Jobs { run, all } => {
            let l = k.get_run_jobs(*run, &Paging::default(), *all).await?;
            if out.json {
                out.json(&l)?;
            } else {
                out.table(
                    &["JOB", "NAME", "STATE", "STATUS", "AGENT", "DURATION"],
                    l.items.iter().map(job_row).collect(),
                )?;
            }
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
            if out.json {
                out.json(&l)?;
            } else {
                out.table(
                    &[
                        "ID",
                        "TEST",
                        "RESULT",
                        "CHANGE",
                        "AGE",
                        "INSTABILITY",
                        "JOB",
                    ],
                    l.items
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.test_case_name.clone(),
                                tc_result::name(t.result).to_string(),
                                tc_change::name(t.change).to_string(),
                                t.age.to_string(),
                                t.instability.to_string(),
                                t.job_name.clone(),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
        RunsCmd::Issues { run } => {
            let l = k
                .get_run_issues(*run, &IssueFilter::default(), &Paging::default())
                .await?;
            if out.json {
                out.json(&l)?;
            } else {
                let t = |x: i64| {
                    ["error", "warning", "convention", "refactor"]
                        .get(x as usize)
                        .copied()
                        .unwrap_or("?")
                };
                out.table(
                    &["TYPE", "LOCATION", "SYMBOL", "MESSAGE", "AGE"],
                    l.items
                        .iter()
                        .map(|i| {
                            vec![
                                t(i.issue_type).into(),
                                format!("{}:{}", opt(&i.path), opt(&i.line)),
                                opt(&i.symbol),
                                opt(&i.message),
                                i.age.to_string(),
                            ]
                        })
                        .collect(),
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn job_state_word(j: &Job) -> String {
    match j.state {
        job_state::COMPLETED => match j.completion_status {
            Some(completion::ALL_OK) => "passed".into(),
            Some(s) => format!("failed ({})", completion::describe(s)),
            None => "completed".into(),
        },
        job_state::ASSIGNED => "running".into(),
        job_state::EXECUTING_FINISHED => "finishing".into(),
        _ => "queued".into(),
    }
}

fn job_row(j: &Job) -> Vec<String> {
    vec![
        j.id.to_string(),
        j.name.clone(),
        job_state_word(j),
        opt(&j.completion_status),
        j.agent_name.clone(),
        j.duration.clone(),
    ]
}

async fn jobs(k: &Kraken, out: &Out, c: &JobsCmd) -> anyhow::Result<()> {
    match c {
        JobsCmd::Show { job } => {
            let j = k.get_job(*job).await?;
            if out.json {
                return out.json(&j);
            }
            out.table(
                &["JOB", "NAME", "STATE", "STATUS", "AGENT", "DURATION"],
                vec![job_row(&j)],
            )?;
            let status = |s: Option<i64>| match s {
                Some(step_status::DONE) => "done",
                Some(step_status::ERROR) => "error",
                Some(step_status::SKIPPED) => "skipped",
                Some(step_status::IN_PROGRESS) => "running",
                _ => "",
            };
            out.table(
                &["STEP", "TOOL", "NAME", "STATUS"],
                j.steps
                    .iter()
                    .map(|s| {
                        vec![
                            s.index.to_string(),
                            s.tool.clone(),
                            s.name.clone(),
                            status(s.status).into(),
                        ]
                    })
                    .collect(),
            )?;
            if let Some(n) = &j.notes {
                out.line(format!("notes: {n}"))?;
            }
            Ok(())
        }
        JobsCmd::Rerun { job } => {
            let j = k.job_rerun(*job).await?;
            if out.json {
                out.json(&j)
            } else {
                out.line(j.id)
            }
        }
        JobsCmd::Cancel { job } => {
            k.delete_job(*job).await?;
            Ok(())
        }
    }
}

// ------------------------------------------------------------------ logs

async fn print_lines(k: &Kraken, out: &Out, job: i64, step: Option<i64>) -> anyhow::Result<()> {
    let mut start = 0;
    loop {
        let paging = LogPaging {
            start: Some(start),
            limit: Some(10_000),
            order: None,
        };
        let page = match step {
            Some(s) => k.get_step_logs(job, s, &paging, None).await?,
            None => k.get_job_logs(job, &paging, false, None).await?,
        };
        for l in &page.items {
            if out.json {
                out.json_line(l)?;
            } else {
                out.line(&l.message)?;
            }
        }
        start += page.items.len() as i64;
        if page.items.is_empty() || start >= page.total {
            return Ok(());
        }
    }
}

async fn logs(k: &Kraken, out: &Out, a: &LogsArgs) -> anyhow::Result<ExitCode> {
    if let Some(flow) = a.flow {
        let f = k.get_flow(flow).await?;
        let mut any = false;
        for r in &f.runs {
            for j in k.get_run_jobs(r.id, &Paging::default(), false).await?.items {
                if j.completion_status.is_none_or(|s| s == completion::ALL_OK) {
                    continue;
                }
                any = true;
                let failed_steps: Vec<&Step> = j
                    .steps
                    .iter()
                    .filter(|s| s.status == Some(step_status::ERROR))
                    .collect();
                if !out.json {
                    out.line(format!(
                        "== {} / job {} ({}): {}",
                        r.stage_name,
                        j.name,
                        j.id,
                        job_state_word(&j)
                    ))?;
                    if let Some(n) = &j.notes {
                        out.line(format!("   {n}"))?;
                    }
                }
                for s in failed_steps {
                    if !out.json {
                        out.line(format!("-- step {}: {}", s.index, s.name))?;
                    }
                    print_lines(k, out, j.id, Some(s.index)).await?;
                }
            }
        }
        if !any && !out.json {
            eprintln!("flow {flow} has no failed job");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let job = a
        .job
        .ok_or_else(|| usage("name a job (or --flow ID --failed)"))?;
    if !a.follow {
        print_lines(k, out, job, a.step).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut stream = k.follow_job(job, 0);
    let mut status = None;
    while let Some(ev) = stream.next().await {
        match ev? {
            FollowEvent::Line(l) => {
                // Agent lines about the job itself are internals, as in job logs.
                if l.tool.is_empty() || a.step.is_some_and(|s| s != l.step) {
                    continue;
                }
                if out.json {
                    out.json_line(&l)?;
                } else {
                    out.line(&l.message)?;
                }
            }
            FollowEvent::State { .. } => {}
            FollowEvent::End { completion_status } => {
                status = completion_status;
                break;
            }
        }
    }
    match status {
        Some(completion::ALL_OK) => Ok(ExitCode::SUCCESS),
        Some(s) => Err(failed(format!(
            "job {job} failed: {}",
            completion::describe(s)
        ))),
        None => Ok(ExitCode::SUCCESS),
    }
}

// ------------------------------------------------------------------ results, agents, groups, secrets, users, tools, settings

async fn results(k: &Kraken, out: &Out, c: &ResultsCmd) -> anyhow::Result<()> {
    match c {
        ResultsCmd::Show { result } => {
            let t = k.get_result(*result).await?;
            if out.json {
                return out.json(&t);
            }
            out.fields(&[
                ("test", t.test_case_name.clone()),
                ("result", tc_result::name(t.result).into()),
                ("change", tc_change::name(t.change).into()),
                ("age", t.age.to_string()),
                ("instability", t.instability.to_string()),
                ("relevancy", t.relevancy.to_string()),
                ("job", format!("{} ({})", t.job_name, t.job_id)),
            ])?;
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
        }
        ResultsCmd::History { result } => {
            let l = k.get_result_history(*result, &Paging::default()).await?;
            if out.json {
                return out.json(&l);
            }
            out.table(
                &["ID", "FLOW", "RESULT", "CHANGE", "AGE"],
                l.items
                    .iter()
                    .map(|t| {
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
                    .collect(),
            )
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
            if out.json { out.json(&t) } else { Ok(()) }
        }
    }
}

async fn group_id(k: &Kraken, name: &str) -> anyhow::Result<i64> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(id);
    }
    k.get_groups(&Paging::default())
        .await?
        .items
        .iter()
        .find(|g| g.name == name)
        .map(|g| g.id)
        .ok_or_else(|| Error::NotFound(format!("no agents group named '{name}'")).into())
}

async fn agents(k: &Kraken, out: &Out, c: &AgentsCmd) -> anyhow::Result<()> {
    match c {
        AgentsCmd::List { unauthorized } => {
            let l = k
                .get_agents(
                    *unauthorized,
                    &Paging {
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .await?;
            if out.json {
                return out.json(&l);
            }
            out.table(
                &[
                    "ID",
                    "NAME",
                    "ADDRESS",
                    "AUTHORIZED",
                    "STATE",
                    "GROUPS",
                    "JOB",
                    "LAST SEEN",
                ],
                l.items
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.to_string(),
                            a.name.clone(),
                            a.address.clone(),
                            a.authorized.to_string(),
                            if a.disabled {
                                "disabled".into()
                            } else if a.state == agent_state::ACTIVE {
                                "active".into()
                            } else {
                                "inactive".into()
                            },
                            a.groups
                                .iter()
                                .map(|g| g.name.clone())
                                .collect::<Vec<_>>()
                                .join(","),
                            a.job.as_ref().map(|j| j.id.to_string()).unwrap_or_default(),
                            opt(&a.last_seen),
                        ]
                    })
                    .collect(),
            )
        }
        AgentsCmd::Show { agent } => {
            let a = k.get_agent(*agent).await?;
            out.json(&a)
        }
        AgentsCmd::Authorize { agents } | AgentsCmd::Deauthorize { agents } => {
            if agents.is_empty() {
                return Err(usage("name at least one agent id"));
            }
            let authorized = matches!(c, AgentsCmd::Authorize { .. });
            let items: Vec<AgentAuthorization> = agents
                .iter()
                .map(|id| AgentAuthorization {
                    id: Some(*id),
                    authorized: Some(authorized),
                })
                .collect();
            k.update_agents(&items).await?;
            Ok(())
        }
        AgentsCmd::Update {
            agent,
            groups,
            disable,
            enable,
        } => {
            let mut ids = Vec::new();
            for g in groups {
                ids.push(GroupId {
                    id: group_id(k, g).await?,
                });
            }
            let input = AgentChanges {
                groups: (!groups.is_empty()).then_some(ids),
                disabled: if *disable {
                    Some(true)
                } else if *enable {
                    Some(false)
                } else {
                    None
                },
                ..Default::default()
            };
            let a = k.update_agent(*agent, &input).await?;
            if out.json { out.json(&a) } else { Ok(()) }
        }
        AgentsCmd::Delete { agent } => {
            k.delete_agent(*agent).await?;
            Ok(())
        }
    }
}

async fn groups(k: &Kraken, out: &Out, c: &GroupsCmd) -> anyhow::Result<()> {
    match c {
        GroupsCmd::List => {
            let l = k.get_groups(&Paging::default()).await?;
            if out.json {
                return out.json(&l);
            }
            out.table(
                &["ID", "NAME", "PROJECT", "AGENTS"],
                l.items
                    .iter()
                    .map(|g| {
                        vec![
                            g.id.to_string(),
                            g.name.clone(),
                            opt(&g.project_name),
                            g.agents_count.to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        GroupsCmd::Create { name, project } => {
            let pid = match project {
                Some(p) => Some(project_id(k, p).await?),
                None => None,
            };
            let g = k
                .create_group(&GroupInput {
                    name: Some(name.clone()),
                    project_id: pid,
                    deployment: None,
                })
                .await?;
            if out.json {
                out.json(&g)
            } else {
                out.line(g.id)
            }
        }
        GroupsCmd::Update { group, name } => {
            let g = k
                .update_group(
                    group_id(k, group).await?,
                    &GroupInput {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                )
                .await?;
            if out.json { out.json(&g) } else { Ok(()) }
        }
        GroupsCmd::Delete { group } => {
            k.delete_group(group_id(k, group).await?).await?;
            Ok(())
        }
    }
}

async fn secrets(k: &Kraken, out: &Out, c: &SecretsCmd) -> anyhow::Result<()> {
    match c {
        SecretsCmd::List { project } => {
            let p = k.get_project(project_id(k, project).await?, false).await?;
            if out.json {
                return out.json(&List::all(p.secrets));
            }
            out.table(
                &["ID", "NAME", "KIND"],
                p.secrets
                    .iter()
                    .map(|s| vec![s.id.to_string(), s.name.clone(), s.kind.clone()])
                    .collect(),
            )
        }
        SecretsCmd::Create {
            project,
            name,
            value,
            ssh_user,
            key_file,
        } => {
            let pid = project_id(k, project).await?;
            let input = match (ssh_user, key_file) {
                (Some(u), Some(f)) => SecretInput {
                    name: Some(name.clone()),
                    kind: Some("ssh-key".into()),
                    username: Some(u.clone()),
                    key: Some(read_file(f)?),
                    secret: None,
                },
                _ => {
                    let v = match value {
                        Some(v) => v.clone(),
                        None => {
                            let mut s = String::new();
                            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                                usage(format!("cannot read the secret from stdin: {e}"))
                            })?;
                            s.trim_end_matches('\n').to_string()
                        }
                    };
                    SecretInput {
                        name: Some(name.clone()),
                        kind: Some("simple".into()),
                        secret: Some(v),
                        ..Default::default()
                    }
                }
            };
            let s = k.create_secret(pid, &input).await?;
            if out.json {
                out.json(&s)
            } else {
                out.line(s.id)
            }
        }
        SecretsCmd::Delete { secret } => {
            k.delete_secret(*secret).await?;
            Ok(())
        }
    }
}

async fn users(k: &Kraken, out: &Out, c: &UsersCmd) -> anyhow::Result<()> {
    match c {
        UsersCmd::List => {
            let l = k.get_users(&Paging::default()).await?;
            if out.json {
                return out.json(&l);
            }
            out.table(
                &["ID", "NAME", "ENABLED", "SUPERADMIN"],
                l.items
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.to_string(),
                            u.name.clone(),
                            u.enabled.to_string(),
                            u.superadmin.to_string(),
                        ]
                    })
                    .collect(),
            )
        }
        UsersCmd::Create { name, password } => {
            let password = match password {
                Some(p) => p.clone(),
                None if std::io::stdin().is_terminal() => dialoguer::Password::new()
                    .with_prompt(format!("Password for {name}"))
                    .with_confirmation("Again", "the passwords differ")
                    .interact()
                    .map_err(|e| usage(format!("cannot read the password: {e}")))?,
                None => {
                    return Err(usage(
                        "no password: pass --password (or KRAKEN_NEW_PASSWORD)",
                    ));
                }
            };
            let u = k
                .create_user(&NewUser {
                    name: Some(name.clone()),
                    password: Some(password),
                })
                .await?;
            if out.json {
                out.json(&u)
            } else {
                out.line(u.id)
            }
        }
        UsersCmd::Show { user } => {
            let u = k.get_user(*user).await?;
            out.json(&u)
        }
        UsersCmd::Update {
            user,
            roles,
            superadmin,
            enabled,
        } => {
            let mut projects = BTreeMap::new();
            for r in roles {
                let (p, role) = r
                    .split_once('=')
                    .ok_or_else(|| usage(format!("'{r}' is not PROJECT=ROLE")))?;
                let role = match role {
                    "none" => None,
                    other => Some(Role::parse(other).ok_or_else(|| {
                        usage(format!(
                            "unknown role '{other}': use viewer, pwrusr, admin or none"
                        ))
                    })?),
                };
                projects.insert(project_id(k, p).await?.to_string(), role);
            }
            let u = k
                .change_user_details(
                    *user,
                    &UserChanges {
                        enabled: *enabled,
                        superadmin: *superadmin,
                        projects: (!projects.is_empty()).then_some(projects),
                    },
                )
                .await?;
            if out.json { out.json(&u) } else { Ok(()) }
        }
    }
}

async fn tools(k: &Kraken, out: &Out, c: &ToolsCmd) -> anyhow::Result<()> {
    let rows = |l: &List<Tool>| {
        l.items
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.name.clone(),
                    opt(&t.version),
                    opt(&t.location),
                    opt(&t.description),
                ]
            })
            .collect()
    };
    match c {
        ToolsCmd::List => {
            let l = k.get_tools(&Paging::default()).await?;
            if out.json {
                out.json(&l)
            } else {
                out.table(
                    &["ID", "NAME", "VERSION", "LOCATION", "DESCRIPTION"],
                    rows(&l),
                )
            }
        }
        ToolsCmd::Versions { name } => {
            let l = k.get_tool_versions(name, &Paging::default()).await?;
            if out.json {
                out.json(&l)
            } else {
                out.table(
                    &["ID", "NAME", "VERSION", "LOCATION", "DESCRIPTION"],
                    rows(&l),
                )
            }
        }
        ToolsCmd::Register { file } => {
            let input: ToolInput = serde_json::from_str(&read_file(file)?)
                .map_err(|e| usage(format!("{} is not a tool.json: {e}", file.display())))?;
            let t = k.create_or_update_tool(&input).await?;
            if out.json {
                out.json(&t)
            } else {
                out.line(format!("{} {}", t.id, opt(&t.version)))
            }
        }
        ToolsCmd::Delete { tool } => {
            k.delete_tool(*tool).await?;
            Ok(())
        }
    }
}

async fn settings(k: &Kraken, out: &Out, c: &SettingsCmd) -> anyhow::Result<()> {
    match c {
        SettingsCmd::Show => {
            let s = k.get_settings().await?;
            if out.json {
                return out.json(&s);
            }
            let mut rows = Vec::new();
            for (g, vals) in s.as_object().into_iter().flatten() {
                for (n, v) in vals.as_object().into_iter().flatten() {
                    rows.push(vec![
                        format!("{g}.{n}"),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    ]);
                }
            }
            out.table(&["SETTING", "VALUE"], rows)
        }
        SettingsCmd::Set { values } => {
            let mut changes = Map::new();
            for kv in values {
                let (key, v) = kv
                    .split_once('=')
                    .ok_or_else(|| usage(format!("'{kv}' is not GROUP.NAME=VALUE")))?;
                let (g, n) = key
                    .split_once('.')
                    .ok_or_else(|| usage(format!("'{key}' is not GROUP.NAME")))?;
                let value = match v {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => v
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| Value::String(v.to_string())),
                };
                let grp = changes.entry(g.to_string()).or_insert_with(|| json!({}));
                if let Some(o) = grp.as_object_mut() {
                    o.insert(n.to_string(), value);
                }
            }
            let s = k.update_settings(&Value::Object(changes)).await?;
            if out.json { out.json(&s) } else { Ok(()) }
        }
    }
}

// ------------------------------------------------------------------ schema (offline)

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// A context with every top-level key of the server's, neutral values.
fn default_ctx() -> Value {
    json!({
        "args": {}, "project": {"id": 1, "name": "project", "data": {}},
        "branch": {"id": 1, "name": "master", "branch_name": "master", "data": {}, "data_ci": {}, "data_dev": {}},
        "branch_name": "master", "env": {}, "secrets": {},
        "stage": {"id": 1, "name": "stage"},
        "flow": {"id": 1, "kind": "ci", "label": "1.", "seq": {"shared": 1, "own": 1}, "data": {}, "args": {}},
        "run": {"id": 1, "label": null, "seq": {"shared": 1, "own": 1}},
        "is_ci": true, "is_dev": false, "run_label": null, "flow_label": null, "job": null, "step": null,
        "prev_ok": true, "was_any_error": false, "was_no_error": true, "always": true, "never": false
    })
}

fn schema(out: &Out, c: &SchemaCmd) -> anyhow::Result<ExitCode> {
    use kraken_core::schema;
    match c {
        SchemaCmd::Dump => {
            let v: Value = serde_json::from_str(kraken_core::api::WORKFLOW_SCHEMA)?;
            out.json(&v)?;
        }
        SchemaCmd::Check { file, ctx } => {
            let code = read_file(file)?;
            let mut context = default_ctx();
            if let Some(c) = ctx {
                let over: Value = serde_json::from_str(c)
                    .map_err(|e| usage(format!("--ctx is not JSON: {e}")))?;
                merge(&mut context, over);
            }
            let mut s = schema::evaluate(&code, &context, &schema::Limits::default())
                .map_err(|e| usage(format!("{}: {e}", file.display())))?;
            let validator = schema::WorkflowValidator::builtin().map_err(usage)?;
            validator
                .validate(&s)
                .map_err(|e| usage(format!("{}: {e}", file.display())))?;
            schema::apply_defaults(&mut s);
            if out.json {
                out.json(&s)?;
            } else {
                let mut rows = Vec::new();
                for job in s
                    .get("jobs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let envs: Vec<String> = job
                        .get("environments")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            format!(
                                "{}@{}",
                                e.get("system")
                                    .map(|v| v
                                        .as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| v.to_string()))
                                    .unwrap_or_default(),
                                e.get("agents_group").and_then(Value::as_str).unwrap_or("")
                            )
                        })
                        .collect();
                    let steps: Vec<String> = job
                        .get("steps")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|st| {
                            let tool = st.get("tool").and_then(Value::as_str).unwrap_or("?");
                            let what = st
                                .get("cmd")
                                .or_else(|| st.get("checkout"))
                                .or_else(|| st.get("source"))
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            if what.is_empty() {
                                tool.to_string()
                            } else {
                                format!("{tool}: {what}")
                            }
                        })
                        .collect();
                    rows.push(vec![
                        job.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        envs.join(", "),
                        steps.join("\n"),
                    ]);
                }
                out.line(format!(
                    "parent: {}",
                    s.get("parent").and_then(Value::as_str).unwrap_or("root")
                ))?;
                out.table(&["JOB", "ENVIRONMENTS", "STEPS"], rows)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
