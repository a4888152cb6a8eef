//! Size limits of what callers send: every text field of every request body,
//! and the request bodies themselves. One place, so the README's table, the
//! API layer (which enforces them, for in-process handles too) and the
//! server's body limit agree.
//!
//! Lengths are counted in characters (Unicode scalar values). A value over its
//! limit is a 400 naming the field and the limit, e.g.
//! `name is too long: 300 characters, the limit is 255`.

use crate::error::{Error, Result};
use crate::model::{
    AgentChanges, BranchChanges, CommentInput, EnvVar, GroupInput, JsonMap, Login, NewBranch,
    NewFlow, NewProject, NewRun, NewUser, PasswordChange, ProjectChanges, SecretInput, StageInput,
    StageSchemaCode, ToolInput,
};

/// Names: users, projects, branches (and their git branch), stages, groups,
/// secrets, environment variables, tools, flow arguments; also short
/// identifiers (secret kind, login method, tool version or tag).
pub const NAME: usize = 255;
/// Descriptions (projects, stages, tools) and agent comments.
pub const DESCRIPTION: usize = 4 * 1024;
/// Workflow schema code of a stage.
pub const SCHEMA_CODE: usize = 256 * 1024;
/// Agent addresses (what an agent calls itself in the backend protocol).
pub const ADDRESS: usize = 255;
/// Passwords.
pub const PASSWORD: usize = 1024;
/// URLs and paths (repository URL, schema file, tool location).
pub const URL: usize = 2048;
/// Secret values (an SSH private key, a token) and webhook secrets.
pub const SECRET: usize = 64 * 1024;
/// Other free text: test case comments, environment variable values, flow
/// and run argument values.
pub const TEXT: usize = 64 * 1024;
/// A JSON request body of the REST API.
pub const REQUEST_BODY: usize = 1024 * 1024;
/// An upload (tool package zip, artifact) or an agent's backend message.
pub const UPLOAD_BODY: usize = 64 * 1024 * 1024;

/// Refuse `value` when it is longer than `max` characters.
pub fn check(field: &str, value: &str, max: usize) -> Result<()> {
    // Bytes bound characters from above: most values need no counting.
    if value.len() <= max {
        return Ok(());
    }
    let n = value.chars().count();
    if n <= max {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "{field} is too long: {n} characters, the limit is {max}"
    )))
}

/// [`check`] for an optional field.
pub fn check_opt(field: &str, value: Option<&String>, max: usize) -> Result<()> {
    match value {
        Some(v) => check(field, v, max),
        None => Ok(()),
    }
}

/// Flow or run arguments: names bounded by [`NAME`], text values by [`TEXT`].
pub fn check_args(prefix: &str, args: &JsonMap) -> Result<()> {
    for (k, v) in args {
        check(&format!("argument name in {prefix}"), k, NAME)?;
        if let Some(s) = v.as_str() {
            check(&format!("{prefix}.{k}"), s, TEXT)?;
        }
    }
    Ok(())
}

/// A request body whose text fields are bounded.
pub trait Bounded {
    /// Refuse the first field over its limit.
    fn check_limits(&self) -> Result<()>;
}

macro_rules! bounded {
    ($ty:ty { $($field:ident: $max:expr),* $(,)? }) => {
        impl Bounded for $ty {
            fn check_limits(&self) -> Result<()> {
                $(check_opt(stringify!($field), self.$field.as_ref(), $max)?;)*
                Ok(())
            }
        }
    };
}

bounded!(Login {
    user: NAME,
    password: PASSWORD,
    method: NAME,
    oidc_provider: NAME
});
bounded!(NewUser {
    name: NAME,
    password: PASSWORD
});
bounded!(PasswordChange {
    password_old: PASSWORD,
    password_new: PASSWORD
});
bounded!(NewProject {
    name: NAME,
    description: DESCRIPTION
});
bounded!(SecretInput {
    name: NAME,
    kind: NAME,
    username: NAME,
    key: SECRET,
    secret: SECRET
});
bounded!(NewBranch {
    name: NAME,
    branch_name: NAME,
    forking_model: NAME
});
bounded!(BranchChanges {
    name: NAME,
    branch_name: NAME
});
bounded!(EnvVar {
    name: NAME,
    value: TEXT
});
bounded!(StageInput {
    name: NAME,
    description: DESCRIPTION,
    schema_code: SCHEMA_CODE,
    repo_url: URL,
    repo_branch: NAME,
    repo_access_token: NAME,
    repo_refresh_interval: NAME,
    schema_file: URL,
    git_clone_params: DESCRIPTION,
});
bounded!(StageSchemaCode {
    schema_code: SCHEMA_CODE
});
bounded!(AgentChanges {
    comment: DESCRIPTION
});
bounded!(ToolInput {
    name: NAME,
    description: DESCRIPTION,
    location: URL,
    entry: URL,
    version: NAME,
    url: URL,
    tag: NAME,
    tool_file: URL,
});
bounded!(CommentInput {
    text: TEXT,
    author: NAME
});

impl Bounded for ProjectChanges {
    fn check_limits(&self) -> Result<()> {
        check_opt("name", self.name.as_ref(), NAME)?;
        check_opt("description", self.description.as_ref(), DESCRIPTION)?;
        if let Some(w) = &self.webhooks {
            for (field, v) in [
                ("webhooks.github_secret", &w.github_secret),
                ("webhooks.gitea_secret", &w.gitea_secret),
                ("webhooks.gitlab_secret", &w.gitlab_secret),
                ("webhooks.radicle_secret", &w.radicle_secret),
            ] {
                check_opt(field, v.as_ref(), SECRET)?;
            }
        }
        Ok(())
    }
}

impl Bounded for GroupInput {
    fn check_limits(&self) -> Result<()> {
        check_opt("name", self.name.as_ref(), NAME)
    }
}

impl Bounded for NewFlow {
    fn check_limits(&self) -> Result<()> {
        for (stage, args) in self.args.iter().flatten() {
            check("stage name in args", stage, NAME)?;
            check_args(&format!("args.{stage}"), args)?;
        }
        Ok(())
    }
}

impl Bounded for NewRun {
    fn check_limits(&self) -> Result<()> {
        match &self.args {
            Some(args) => check_args("args", args),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_field_and_the_limit() {
        assert!(check("name", &"x".repeat(NAME), NAME).is_ok());
        // Multi-byte characters count once.
        assert!(check("name", &"é".repeat(NAME), NAME).is_ok());
        let e = check("name", &"x".repeat(NAME + 1), NAME).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "name is too long: 256 characters, the limit is 255"
        );
        let input = StageInput {
            name: Some("s".into()),
            schema_code: Some("#".repeat(SCHEMA_CODE + 1)),
            ..Default::default()
        };
        let e = input.check_limits().unwrap_err();
        assert!(e.to_string().starts_with("schema_code is too long"), "{e}");
    }
}
