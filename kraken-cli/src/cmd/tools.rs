//! `kraken tools`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::ToolsCmd;
use crate::cmd::read_file;
use crate::out::{Out, opt, usage};

/// Runs one `kraken tools` verb.
pub async fn run(k: &Kraken, out: &Out, c: &ToolsCmd) -> anyhow::Result<()> {
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
