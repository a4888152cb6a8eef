//! The `cache` tool: saves files under a key, and restores them in later
//! jobs of the same stage and job name (the original's `kraken_cache.py`;
//! the server keeps them, see `api::cache`).
//!
//! Fields: `action` (`save` or `restore`), `key` (save: the key; restore:
//! one key), `keys` (restore: the keys, each restored in turn), `paths`
//! (save: files or directories, relative to `cwd` or absolute, with `~`,
//! `$VAR` and `${VAR}` expanded as the original's `expandvars` does:
//! unknown variables stay as written), `cwd`; `expiry` is accepted and, as
//! in the original, has no effect (entries live 10 days).
//!
//! Save: each path is packed with `tar -czf` where the job's commands run
//! (on the host, or in the job's container) from its parent directory,
//! into the job's scratch directory, and streamed to the server as
//! `<path with / as _>.tar.gz`; a `meta.json` naming each archive's path
//! completes the entry. A missing path fails the step, as in the original.
//! Restore: per key, the newest entry (the highest job id) is fetched and
//! each archive extracted into its path's parent directory (created when
//! missing); a key with no entry restores nothing and the step still
//! passes, as in the original. An archive that cannot be extracted is
//! reported in the log and skipped.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::{
    Fields, StepOutcome, StepRun, job_limits, log, process, run_cmd, scratch_dir, step_cwd, stopped,
};

/// Run a `cache` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    match f.req_str("action")? {
        "save" => save(run).await,
        "restore" => restore(run).await,
        other => Err(format!(
            "unknown cache action '{other}' (it is 'save' or 'restore')"
        )),
    }
}

/// `path` with a leading `~` and `$VAR`/`${VAR}` expanded from the step's
/// environment (then, on the host, the agent's); unknown ones are kept.
fn expand(path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let path = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => match lookup("HOME") {
            Some(home) => format!("{home}{rest}"),
            None => path.to_string(),
        },
        _ => path.to_string(),
    };
    let mut out = String::new();
    let mut rest = path.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(end) => (&b[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match Some(name).filter(|n| !n.is_empty()).and_then(lookup) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Expand `path` for this step.
fn expand_for(run: &StepRun<'_>, path: &str) -> String {
    let local = matches!(run.executor, crate::agent::docker::Executor::Local);
    let lookup = |name: &str| {
        run.env.get(name).cloned().or_else(|| {
            if local {
                std::env::var(name).ok()
            } else {
                None
            }
        })
    };
    expand(path, &lookup)
}

/// A path's parent directory (`.` for a bare name) and last component.
fn split_path(path: &str) -> Result<(String, String), String> {
    let trimmed = path.trim_end_matches('/');
    let p = Path::new(trimmed);
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .ok_or_else(|| {
            format!(
                "cache path '{path}' names no file or directory (give e.g. 'build' or '../deps')"
            )
        })?;
    let parent = match p.parent().map(|d| d.to_string_lossy().into_owned()) {
        Some(d) if d.is_empty() => ".".to_string(),
        Some(d) => d,
        None => ".".to_string(),
    };
    Ok((parent, name))
}

/// The archive name of a path, as the original names it: the path without
/// leading and trailing `/`, `/` as `_`, then `.tar.gz` (other characters
/// than letters, digits, `.`, `-`, `_` as `_` too).
fn archive_name(path: &str) -> String {
    let base: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{base}.tar.gz")
}

/// Run `script` with `sh -c` in `cwd` where the job's commands run; `None`
/// when it passed, else the outcome that ends the step or a failure text.
async fn sh(
    run: &StepRun<'_>,
    cwd: &Path,
    script: &str,
    env: Vec<(String, String)>,
) -> Result<Option<Result<StepOutcome, i64>>, String> {
    let cmd = process::Cmd {
        env,
        ..process::Cmd::new("/bin/sh", cwd).arg("-c").arg(script)
    };
    let limits = job_limits(run);
    match run_cmd(run, &cmd, &limits).await? {
        process::Exit::Code(0) => Ok(None),
        process::Exit::Code(c) => Ok(Some(Err(c))),
        process::Exit::Stopped(s) => Ok(Some(Ok(stopped(s, None)))),
    }
}

/// The exit code of the packing script for a path that does not exist.
const MISSING: i64 = 3;

async fn save(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let key = match f.str("key")? {
        Some(k) if !k.trim().is_empty() => k.to_string(),
        _ => match f.str_list("keys")?.as_slice() {
            [k] => k.clone(),
            _ => return Err("a cache save needs 'key': the key to save under".into()),
        },
    };
    let paths = f.str_list("paths")?;
    if paths.is_empty() {
        return Err("a cache save needs 'paths': the files or directories to save".into());
    }
    let cwd = step_cwd(run)?;
    let scratch = scratch_dir(run)?;
    let mut meta = BTreeMap::new();
    let mut names = HashSet::new();
    let mut limits = job_limits(run);
    for path in &paths {
        let expanded = expand_for(run, path);
        let (parent, base) = split_path(&expanded)?;
        let mut name = archive_name(&expanded);
        let mut n = 1;
        while !names.insert(name.clone()) {
            n += 1;
            name = format!(
                "{}-{n}.tar.gz",
                archive_name(&expanded).trim_end_matches(".tar.gz")
            );
        }
        let tgz = process::TempFile::reserve(&scratch, "kk-cache-", ".tar.gz");
        let script = "if [ ! -e \"$KK_CACHE_DIR/$KK_CACHE_NAME\" ]; then \
                        echo \"path '$KK_CACHE_PATH' does not exist\" >&2; exit 3; fi; \
                      cd \"$KK_CACHE_DIR\" && tar -czf \"$KK_CACHE_TGZ\" \"./$KK_CACHE_NAME\"";
        let env = vec![
            ("KK_CACHE_PATH".to_string(), path.clone()),
            ("KK_CACHE_DIR".to_string(), parent.clone()),
            ("KK_CACHE_NAME".to_string(), base.clone()),
            (
                "KK_CACHE_TGZ".to_string(),
                tgz.path().to_string_lossy().into_owned(),
            ),
        ];
        log(run, format!("packing {path}")).await;
        match sh(run, &cwd, script, env).await? {
            None => {}
            Some(Ok(stop)) => return Ok(stop),
            Some(Err(code)) => {
                // 3: the script found no such path (tar itself exits 1 or 2).
                let msg = if code == MISSING {
                    format!("path '{path}' does not exist")
                } else {
                    format!("cannot pack '{path}' for the cache: tar exited with {code}")
                };
                return Ok(StepOutcome {
                    retcode: Some(code),
                    ..StepOutcome::error("retcode", msg)
                });
            }
        }
        let size = match limits
            .guard(run.artifacts.cache_save(&key, &name, tgz.path()))
            .await
        {
            Err(stop) => return Ok(stopped(stop, None)),
            Ok(Err(e)) => return Err(format!("cannot save '{path}' to the cache: {e}")),
            Ok(Ok(s)) => s,
        };
        log(run, format!("saved {path} as {name} ({size} bytes)")).await;
        meta.insert(name, path.clone());
    }
    let text = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
    let meta_file = process::TempFile::create(&scratch, "kk-cache-", ".json", &text)?;
    match limits
        .guard(
            run.artifacts
                .cache_save(&key, super::CACHE_META, meta_file.path()),
        )
        .await
    {
        Err(stop) => return Ok(stopped(stop, None)),
        Ok(Err(e)) => return Err(format!("cannot complete the cache entry of '{key}': {e}")),
        Ok(Ok(_)) => {}
    }
    log(
        run,
        format!("cache key '{key}': saved {} path(s)", meta.len()),
    )
    .await;
    Ok(StepOutcome::done())
}

async fn restore(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let mut keys = f.str_list("keys")?;
    if let Some(k) = f.str("key")?.filter(|k| !k.trim().is_empty())
        && !keys.iter().any(|x| x == k)
    {
        keys.push(k.to_string());
    }
    if keys.is_empty() {
        return Err("a cache restore needs 'keys' (or 'key'): the keys to restore".into());
    }
    let cwd = step_cwd(run)?;
    let scratch = scratch_dir(run)?;
    let mut limits = job_limits(run);
    for key in &keys {
        let entry = match limits.guard(run.artifacts.cache_lookup(key)).await {
            Err(stop) => return Ok(stopped(stop, None)),
            Ok(Err(e)) => return Err(format!("cannot look up cache key '{key}': {e}")),
            Ok(Ok(e)) => e,
        };
        let Some(entry) = entry else {
            log(run, format!("no cache for key '{key}'")).await;
            continue;
        };
        log(
            run,
            format!("cache key '{key}': restoring what job {} saved", entry.id),
        )
        .await;
        for (name, path) in &entry.files {
            let tgz = process::TempFile::reserve(&scratch, "kk-cache-", ".tar.gz");
            match limits
                .guard(run.artifacts.cache_fetch(key, entry.id, name, tgz.path()))
                .await
            {
                Err(stop) => return Ok(stopped(stop, None)),
                // A cache is an optimisation: an entry replaced (and purged)
                // by a newer save while this job restored it is skipped.
                Ok(Err(e)) => {
                    log(
                        run,
                        format!("cannot fetch {name} of cache key '{key}' (replaced meanwhile?): {e}; skipped"),
                    )
                    .await;
                    break;
                }
                Ok(Ok(_)) => {}
            }
            let expanded = expand_for(run, path);
            let (parent, _) = split_path(&expanded)?;
            let env = vec![
                ("KK_CACHE_DIR".to_string(), parent),
                (
                    "KK_CACHE_TGZ".to_string(),
                    tgz.path().to_string_lossy().into_owned(),
                ),
            ];
            let script =
                "mkdir -p \"$KK_CACHE_DIR\" && tar -xzf \"$KK_CACHE_TGZ\" -C \"$KK_CACHE_DIR\"";
            match sh(run, &cwd, script, env).await? {
                None => log(run, format!("restored {path}")).await,
                Some(Ok(stop)) => return Ok(stop),
                Some(Err(code)) => log(
                    run,
                    format!(
                        "warning: cannot extract {name} into '{path}' (exit code {code}); skipped"
                    ),
                )
                .await,
            }
        }
    }
    Ok(StepOutcome::done())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_expand_as_expandvars_does() {
        let env: BTreeMap<&str, &str> = [("HOME", "/home/k"), ("V", "x")].into();
        let lookup = |n: &str| env.get(n).map(|v| v.to_string());
        assert_eq!(expand("~/a", &lookup), "/home/k/a");
        assert_eq!(expand("~x/a", &lookup), "~x/a");
        assert_eq!(
            expand("$V/${V}y/$NOPE/${NOPE}", &lookup),
            "x/xy/$NOPE/${NOPE}"
        );
        assert_eq!(expand("a$", &lookup), "a$");
        assert_eq!(expand("a${V", &lookup), "a${V");
    }

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(split_path("aaa").unwrap(), (".".into(), "aaa".into()));
        assert_eq!(split_path("aaa/").unwrap(), (".".into(), "aaa".into()));
        assert_eq!(
            split_path("../../../bbb").unwrap(),
            ("../../..".into(), "bbb".into())
        );
        assert_eq!(
            split_path("/tmp/ccc").unwrap(),
            ("/tmp".into(), "ccc".into())
        );
        assert!(split_path("..").is_err());
        assert!(split_path("/").is_err());
        assert_eq!(archive_name("/tmp/ccc"), "tmp_ccc.tar.gz");
        assert_eq!(archive_name("../../../bbb"), ".._.._.._bbb.tar.gz");
    }
}
