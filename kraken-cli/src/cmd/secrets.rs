//! `kraken secrets`: project secrets.

use std::io::Read;

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::SecretsCmd;
use crate::cmd::read_file;
use crate::out::{Out, usage};
use crate::resolve::project_id;

/// Runs one `kraken secrets` verb.
pub async fn run(k: &Kraken, out: &Out, c: &SecretsCmd) -> anyhow::Result<()> {
    match c {
        SecretsCmd::List { project } => {
            let p = k.get_project(project_id(k, project).await?, false).await?;
            out.list(&List::all(p.secrets), &["ID", "NAME", "KIND"], |s| {
                vec![s.id.to_string(), s.name.clone(), s.kind.clone()]
            })
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
            out.value(&s, s.id)
        }
        SecretsCmd::Delete { secret } => {
            k.delete_secret(*secret).await?;
            Ok(())
        }
    }
}
