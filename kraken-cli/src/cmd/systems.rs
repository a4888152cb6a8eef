//! `kraken systems`: the systems jobs run on.

use kraken_core::Kraken;

use crate::args::SystemsCmd;
use crate::out::Out;

/// Runs one `kraken systems` verb.
pub async fn run(k: &Kraken, out: &Out, c: &SystemsCmd) -> anyhow::Result<()> {
    match c {
        SystemsCmd::List => {
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
    }
    Ok(())
}
