//! What to connect to: `--server` (with `--token`), `--db`, or the login
//! stored by `kraken login`, in that order.

use std::fmt;

use kraken_core::credentials::Credentials;

/// Where the dashboard gets its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A Kraken server over HTTP.
    Server {
        /// Base URL.
        url: String,
        /// Bearer token.
        token: Option<String>,
    },
    /// A database opened in this process (the engine and an agent run here).
    Db(String),
}

impl fmt::Debug for Target {
    // The token stays out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Server { url, token } => f
                .debug_struct("Server")
                .field("url", url)
                .field("token", &token.as_ref().map(|_| "***"))
                .finish(),
            Target::Db(url) => f.debug_tuple("Db").field(url).finish(),
        }
    }
}

/// Where a setting came from, to let a flag win over the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// An environment variable.
    Env,
    /// The command line.
    Flag,
}

/// The settings that choose the target.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// `--server` / `KRAKEN_SERVER`.
    pub server: Option<(String, Source)>,
    /// `--token` / `KRAKEN_TOKEN`.
    pub token: Option<String>,
    /// `--db` / `KRAKEN_DB`.
    pub db: Option<(String, Source)>,
}

/// Pick the target: an explicit server or database (a flag beats an
/// environment variable; two of the same kind are an error), else the stored
/// login. The stored token is used for the stored server only.
pub fn resolve(choice: Choice, stored: Option<Credentials>) -> Result<Target, String> {
    let server = choice.server.filter(|(s, _)| !s.trim().is_empty());
    let db = choice.db.filter(|(d, _)| !d.trim().is_empty());
    let token = choice.token.filter(|t| !t.is_empty());
    let use_db = match (&server, &db) {
        (Some((_, s)), Some((_, d))) if s == d => {
            return Err(
                "both a server and a database are given: use either --server or --db".into(),
            );
        }
        (Some((_, s)), Some((_, d))) => d > s,
        (None, Some(_)) => true,
        _ => false,
    };
    if use_db && let Some((url, _)) = db {
        return Ok(Target::Db(url));
    }
    if let Some((url, _)) = server {
        let token = token.or_else(|| {
            stored
                .filter(|c| same_server(&c.server, &url))
                .map(|c| c.token)
        });
        return Ok(Target::Server { url, token });
    }
    if let Some(c) = stored {
        return Ok(Target::Server {
            url: c.server,
            token: token.or(Some(c.token)),
        });
    }
    Err("nothing to connect to: give --server URL or --db URL, or run `kraken login` first".into())
}

fn same_server(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_end_matches('/')
            .trim_end_matches("/api")
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            server: "http://ci:8080".into(),
            token: "stored".into(),
            user: "ann".into(),
        }
    }

    #[test]
    fn explicit_beats_stored_and_flags_beat_env() {
        let t = resolve(
            Choice {
                server: Some(("http://ci:8080/".into(), Source::Flag)),
                ..Choice::default()
            },
            Some(creds()),
        );
        assert_eq!(
            t,
            Ok(Target::Server {
                url: "http://ci:8080/".into(),
                token: Some("stored".into())
            })
        );
        let t = resolve(
            Choice {
                server: Some(("http://other".into(), Source::Flag)),
                ..Choice::default()
            },
            Some(creds()),
        );
        assert_eq!(
            t,
            Ok(Target::Server {
                url: "http://other".into(),
                token: None
            })
        );
        let t = resolve(
            Choice {
                server: Some(("http://env".into(), Source::Env)),
                db: Some(("sqlite://x.db".into(), Source::Flag)),
                token: None,
            },
            None,
        );
        assert_eq!(t, Ok(Target::Db("sqlite://x.db".into())));
        let both = resolve(
            Choice {
                server: Some(("http://a".into(), Source::Flag)),
                db: Some(("sqlite://x.db".into(), Source::Flag)),
                token: None,
            },
            None,
        );
        assert!(both.is_err());
    }

    #[test]
    fn stored_login_is_the_default_and_nothing_is_an_error() {
        assert_eq!(
            resolve(Choice::default(), Some(creds())),
            Ok(Target::Server {
                url: "http://ci:8080".into(),
                token: Some("stored".into())
            })
        );
        let e = resolve(Choice::default(), None).unwrap_err();
        assert!(e.contains("kraken login"), "{e}");
    }
}
