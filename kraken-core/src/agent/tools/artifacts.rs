//! The `artifacts` tool: uploads files to, or downloads them from, the
//! server's artifact storage ([`ArtifactStore`](super::ArtifactStore)).
//!
//! Fields: `action` (`upload`, the default, or `download`), `source` (a
//! path or a list of them), `destination` (default `.`), `cwd`, `public`
//! (bool) and `report_entry` (a file of the upload that is the entry page
//! of a report; it makes the upload public).
//!
//! Upload: each source is a path or a glob (`*` within a directory, `**`
//! across directories) relative to `cwd`; a directory uploads all its files,
//! recursively. A file is stored as `destination` joined with its path
//! relative to `cwd` (or, for a file outside `cwd`, relative to its
//! source's directory), normalized and `/`-separated; a path leaving the
//! artifact root with `..` is an error. As in the original, a missing
//! plain path is an error and a glob matching nothing only a warning; no
//! file at all is an error. Reported: `artifacts: [{path, size,
//! report_entry?}]`, `report_entry` (the stored path) on the entry page.
//!
//! Download: each source is fetched into `cwd`/`destination` (created
//! when missing); a source that yields no file is an error.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::json;

use super::{Fields, StepOutcome, StepRun, job_limits, log, step_cwd, stopped};

/// Whether a path has glob characters.
fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `p` with `.` and `..` resolved without looking at the file system.
pub(crate) fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// A `/`-separated relative artifact path: `.` and empty parts dropped, a
/// leading `/` meaning the root of the run's artifacts, `..` resolved; an
/// error when it leaves the root.
pub(crate) fn normalize_rel(s: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in s.split(['/', '\\']) {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("'{s}' leads outside the artifacts"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Files matching `pattern` (relative to `cwd`, or absolute), sorted.
/// Directories are not listed.
pub(crate) fn glob_files(cwd: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = full_pattern(cwd, pattern)?;
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let mut out: Vec<PathBuf> = glob::glob_with(&full, opts)
        .map_err(|e| format!("bad glob pattern '{pattern}': {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

fn full_pattern(cwd: &Path, pattern: &str) -> Result<String, String> {
    if Path::new(pattern).is_absolute() {
        return Ok(pattern.to_string());
    }
    let cwd = cwd
        .to_str()
        .ok_or_else(|| format!("the path {} is not UTF-8", cwd.display()))?;
    Ok(format!(
        "{}/{pattern}",
        glob::Pattern::escape(cwd.trim_end_matches('/'))
    ))
}

/// All files under `dir`, recursively (symlinks to directories are not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let is_real_dir = std::fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_real_dir {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The files of one upload source, each with its path relative to `cwd`
/// (or to the source's own directory when outside `cwd`).
fn source_files(cwd: &Path, src: &str) -> Result<Vec<(PathBuf, String)>, String> {
    let cwd_n = lexical_normalize(cwd);
    let joined = lexical_normalize(&cwd.join(src));
    let (matches, base) = if has_glob(src) {
        let full = full_pattern(cwd, src)?;
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let matches: Vec<PathBuf> = glob::glob_with(&full, opts)
            .map_err(|e| format!("bad glob pattern '{src}': {e}"))?
            .filter_map(Result::ok)
            .collect();
        // The base of a glob: its components before the first wildcard.
        let base: PathBuf = joined
            .components()
            .take_while(|c| !has_glob(&c.as_os_str().to_string_lossy()))
            .collect();
        (matches, base)
    } else {
        if !joined.exists() {
            return Ok(Vec::new());
        }
        let base = joined.parent().map(Path::to_path_buf).unwrap_or_default();
        (vec![joined], base)
    };
    let mut files = Vec::new();
    for m in matches {
        if m.is_dir() {
            walk(&m, &mut files)?;
        } else if m.is_file() {
            files.push(m);
        }
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let n = lexical_normalize(&f);
            let rel = match n.strip_prefix(&cwd_n).or_else(|_| n.strip_prefix(&base)) {
                Ok(r) => rel_string(r),
                Err(_) => n
                    .file_name()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            (f, rel)
        })
        .filter(|(_, rel)| !rel.is_empty())
        .collect())
}

/// Run an `artifacts` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let action = f.str("action")?.unwrap_or("upload");
    let sources = f.str_list("source")?;
    if sources.is_empty() {
        return Err("field 'source' is missing or empty".into());
    }
    let destination = f.str("destination")?.unwrap_or(".");
    let cwd = step_cwd(run)?;
    match action {
        "upload" => upload(run, &cwd, &sources, destination).await,
        "download" => download(run, &cwd, &sources, destination).await,
        other => Err(format!(
            "unknown artifacts action '{other}' (it is 'upload' or 'download')"
        )),
    }
}

async fn upload(
    run: &StepRun<'_>,
    cwd: &Path,
    sources: &[String],
    destination: &str,
) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let report_entry = f.str("report_entry")?.filter(|e| !e.trim().is_empty());
    let public = f.bool("public")?.unwrap_or(false) || report_entry.is_some();
    let root = normalize_rel(destination).map_err(|e| format!("field 'destination': {e}"))?;

    // Stored path -> (local file, path relative to cwd).
    let mut files: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    for src in sources {
        let found = source_files(cwd, src)?;
        if found.is_empty() {
            if has_glob(src) {
                log(run, format!("warning: no files match '{src}'")).await;
            } else {
                return Err(format!(
                    "file '{src}' not found for upload (in {})",
                    cwd.display()
                ));
            }
        }
        for (local, rel) in found {
            let dest = normalize_rel(&format!("{root}/{rel}"))?;
            files.entry(dest).or_insert((local, rel));
        }
    }
    if files.is_empty() {
        return Err(format!(
            "no files to upload: nothing matches {} in {}",
            sources.join(", "),
            cwd.display()
        ));
    }

    let entry = report_entry.map(normalize_rel).transpose()?;
    let mut outcome = StepOutcome::done();
    let mut entry_found = false;
    let mut limits = job_limits(run);
    for (dest, (local, rel)) in &files {
        let size = match limits
            .guard(run.artifacts.upload(local, dest, public))
            .await
        {
            Err(stop) => {
                return Ok(StepOutcome {
                    artifacts: outcome.artifacts,
                    ..stopped(stop, None)
                });
            }
            Ok(Err(e)) => {
                return Ok(StepOutcome {
                    artifacts: outcome.artifacts,
                    ..StepOutcome::error(
                        "exception",
                        format!("cannot upload {} as {dest}: {e}", local.display()),
                    )
                });
            }
            Ok(Ok(size)) => size,
        };
        log(run, format!("uploaded {dest} ({size} bytes)")).await;
        let mut a = json!({"path": dest, "size": size});
        if entry.as_deref().is_some_and(|e| e == dest || e == rel) {
            a["report_entry"] = json!(dest);
            entry_found = true;
        }
        outcome.artifacts.push(a);
    }
    if let (Some(e), false) = (report_entry, entry_found) {
        log(
            run,
            format!("warning: report entry '{e}' is not among the uploaded files"),
        )
        .await;
    }
    if !public {
        log(run, PRIVATE_NOTE.to_string()).await;
    }
    Ok(outcome)
}

/// Where a private artifact can be found, and by whom (said in the step's log).
pub(crate) const PRIVATE_NOTE: &str = "these artifacts are private: stages that run later \
    in this flow (child stages) get them with an `artifacts` step (`action: download`); they \
    are not listed in the flow's artifacts nor downloadable over the API (set `public: True` \
    to share them)";

async fn download(
    run: &StepRun<'_>,
    cwd: &Path,
    sources: &[String],
    destination: &str,
) -> Result<StepOutcome, String> {
    let dest_dir = cwd.join(destination);
    std::fs::create_dir_all(&dest_dir)
        .map_err(|e| format!("cannot create {}: {e}", dest_dir.display()))?;
    let mut limits = job_limits(run);
    for src in sources {
        log(run, format!("downloading {src} to {destination}")).await;
        let files = match limits.guard(run.artifacts.download(src, &dest_dir)).await {
            Err(stop) => return Ok(stopped(stop, None)),
            Ok(Err(e)) => return Err(format!("cannot download '{src}': {e}")),
            Ok(Ok(files)) => files,
        };
        if files.is_empty() {
            return Err(format!("artifact '{src}' not found"));
        }
        for file in files {
            let shown = file.strip_prefix(cwd).unwrap_or(&file);
            log(run, format!("downloaded {}", shown.display())).await;
        }
    }
    Ok(StepOutcome::done())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_are_normalized() {
        assert_eq!(normalize_rel(".").unwrap(), "");
        assert_eq!(normalize_rel("/").unwrap(), "");
        assert_eq!(normalize_rel("./a//b/../c/").unwrap(), "a/c");
        assert!(normalize_rel("a/../../x").is_err());
    }

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(
            lexical_normalize(Path::new("/j/./w/../x")),
            PathBuf::from("/j/x")
        );
        assert_eq!(
            lexical_normalize(Path::new("a/../../b")),
            PathBuf::from("../b")
        );
    }
}
