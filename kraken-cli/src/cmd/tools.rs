//! `kraken tools`.

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::ToolsCmd;
use crate::cmd::read_file;
use crate::out::{Out, opt, usage};

/// Runs one `kraken tools` verb.
pub async fn run(k: &Kraken, out: &Out, c: &ToolsCmd) -> anyhow::Result<()> {
    let headers = &["ID", "NAME", "VERSION", "LOCATION", "DESCRIPTION"];
    let row = |t: &Tool| {
        vec![
            t.id.to_string(),
            t.name.clone(),
            opt(&t.version),
            opt(&t.location),
            opt(&t.description),
        ]
    };
    match c {
        ToolsCmd::List => {
            let l = k.get_tools(&Paging::default()).await?;
            out.list(&l, headers, row)
        }
        ToolsCmd::Versions { name } => {
            let l = k.get_tool_versions(name, &Paging::default()).await?;
            out.list(&l, headers, row)
        }
        ToolsCmd::Register { file } => {
            let input: ToolInput = serde_json::from_str(&read_file(file)?)
                .map_err(|e| usage(format!("{} is not a tool.json: {e}", file.display())))?;
            let t = k.create_or_update_tool(&input).await?;
            out.value(&t, format!("{} {}", t.id, opt(&t.version)))
        }
        ToolsCmd::Load {
            url,
            tag,
            tool_file,
        } => {
            let input = ToolInput {
                url: Some(url.clone()),
                tag: tag.clone(),
                tool_file: Some(tool_file.clone()),
                ..ToolInput::default()
            };
            let t = k.create_or_update_tool(&input).await?;
            out.value(&t, format!("{} {} {}", t.id, t.name, opt(&t.version)))
        }
        ToolsCmd::Delete { tool } => {
            k.delete_tool(*tool).await?;
            Ok(())
        }
    }
}
