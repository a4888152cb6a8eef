//! `kraken users`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use kraken_core::Kraken;
use kraken_core::model::*;

use crate::args::UsersCmd;
use crate::out::{Out, usage};
use crate::resolve::project_id;

/// Runs one `kraken users` verb.
pub async fn run(k: &Kraken, out: &Out, c: &UsersCmd) -> anyhow::Result<()> {
    match c {
        UsersCmd::List => {
            let l = k.get_users(&Paging::default()).await?;
            out.list(&l, &["ID", "NAME", "ENABLED", "SUPERADMIN"], |u| {
                vec![
                    u.id.to_string(),
                    u.name.clone(),
                    u.enabled.to_string(),
                    u.superadmin.to_string(),
                ]
            })
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
            out.value(&u, u.id)
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
            out.json_only(&u)
        }
    }
}
