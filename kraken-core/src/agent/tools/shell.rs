//! The `shell` tool: runs `cmd` with `/bin/sh -c` (or `<shell_exe> -c`),
//! or a multi-line `script` with `/bin/bash` (or `shell_exe`).
//!
//! Fields: `cmd`, `script` (wins over `cmd`, as in the original; it is
//! written to a temporary file in the job directory with `set -e` in front,
//! like the original does, and run as `<shell> <file>`), `cwd`, `env` (added
//! on top of the branch's environment), `timeout` (seconds, default 60),
//! `background` (start the command in its own process group, register it
//! so the agent kills it when the job ends, and report `done` at once),
//! `shell_exe` (a shell program, possibly with arguments such as
//! `bash -x`), `ssh-key` (`{username, key}` injected by the server: the key
//! goes to a private temporary file named in `GIT_SSH_COMMAND`; the
//! original loaded it into an ssh-agent instead, so only git over ssh
//! sees it here).
//!
//! `user` is ignored: this agent runs every step as the user it runs as
//! and does not switch users.

use super::git::SshKey;
use super::process::{Cmd, TempFile, spawn_background};
use super::{
    Fields, StepOutcome, StepRun, exit_outcome, log, run_cmd, step_cwd, step_env, step_limits,
};

/// Default step timeout of `shell` (seconds), as in the original agent.
const DEFAULT_TIMEOUT: u64 = 60;

/// Run a `shell` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let cwd = step_cwd(run)?;
    let background = f.bool("background")?.unwrap_or(false);
    let shell_exe: Option<Vec<String>> = f
        .str("shell_exe")?
        .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|v| !v.is_empty());
    let mut extra_env = f.str_map("env")?;
    let mut keep: Vec<TempFile> = Vec::new();
    if let Some(v) = f.get("ssh-key") {
        let key = SshKey::from_field(v, &super::scratch_dir(run)?)?;
        extra_env.push(("GIT_SSH_COMMAND".into(), key.ssh_command()));
        keep.push(key.into_file());
    }

    let (mut cmd, shown, what) = if let Some(script) = f.str("script")? {
        let mut content = String::from("set -e\n");
        content.push_str(script);
        if !content.ends_with('\n') {
            content.push('\n');
        }
        let dir = super::scratch_dir(run)?;
        let file = TempFile::create(&dir, "kk-script-", ".sh", content.as_bytes())?;
        let mut argv = shell_exe.unwrap_or_else(|| vec!["/bin/bash".to_string()]);
        let program = argv.remove(0);
        let lines = script.lines().count();
        let shown = format!(
            "{} <script of {lines} line{}>",
            std::iter::once(program.as_str())
                .chain(argv.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            if lines == 1 { "" } else { "s" }
        );
        argv.push(file.path().to_string_lossy().into_owned());
        keep.push(file);
        let cmd = Cmd {
            program,
            args: argv,
            ..Cmd::new("", &cwd)
        };
        (cmd, shown, "script")
    } else if let Some(text) = f.str("cmd")? {
        let mut argv = shell_exe.unwrap_or_else(|| vec!["/bin/sh".to_string()]);
        let program = argv.remove(0);
        argv.push("-c".into());
        argv.push(text.to_string());
        let cmd = Cmd {
            program,
            args: argv,
            ..Cmd::new("", &cwd)
        };
        (cmd, text.to_string(), "cmd")
    } else {
        return Err("a shell step needs 'cmd' or 'script'".into());
    };
    cmd.env = step_env(run, extra_env);

    if background {
        let until = tokio::time::Instant::from_std(run.deadline);
        log(run, format!("$ {shown} &")).await;
        let cmd = super::in_executor(run, &cmd)?;
        let pgid = spawn_background(&cmd, &run.output, run.background, until, keep)?;
        log(
            run,
            format!("started in the background, process group {pgid}"),
        )
        .await;
        return Ok(StepOutcome::done());
    }

    let limits = step_limits(run, Some(DEFAULT_TIMEOUT))?;
    log(run, format!("$ {shown}")).await;
    let exit = run_cmd(run, &cmd, &limits).await?;
    drop(keep);
    Ok(exit_outcome(exit, what, &limits))
}
