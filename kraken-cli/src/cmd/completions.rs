//! `kraken completions`: shell completions.

use clap::CommandFactory;

use crate::args::Cli;
use crate::out::Out;

/// Prints the completions of a shell.
pub fn run(out: &Out, shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kraken", &mut buf);
    out.line(String::from_utf8_lossy(&buf).trim_end())?;
    Ok(())
}
