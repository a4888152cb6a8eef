//! `kraken systems`: the systems jobs run on.

use kraken_core::Kraken;

use crate::args::SystemsCmd;
use crate::out::Out;

/// Runs one `kraken systems` verb.
pub async fn run(k: &Kraken, out: &Out, c: &SystemsCmd) -> anyhow::Result<()> {
    match c {
        SystemsCmd::List => {
            let l = k.get_systems().await?;
            out.list(&l, &["ID", "NAME", "EXECUTOR"], |s| {
                vec![s.id.to_string(), s.name.clone(), s.executor.clone()]
            })
        }
    }
}
