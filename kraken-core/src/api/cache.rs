//! The server side of the `cache` step tool: what a job saves under a key
//! is restored by later jobs of the same stage and job name.
//!
//! Layout in the blob storage, as the original's `%08d-cache` bucket
//! (§5.14): `cache/<branch %08d>/<stage id>-<job name>/<key>/<job id>/...`,
//! an entry being one saving job's folder with a `tar.gz` per saved path and
//! a `meta.json` (`{"<tgz name>": "<path as the step gave it>"}`) written
//! last: an entry without one is a save still going on (or broken off) and
//! is never restored. A restore takes, per key, the entry of the highest
//! job id, as the original.
//!
//! Entries expire [`CACHE_EXPIRY`] after they were written (the original's
//! bucket had a 10-day lifecycle rule): a restore ignores them, and every
//! save purges its branch's expired entries and those of the same key that
//! a newer entry supersedes (a restore would never take them), so a key
//! holds one entry. [`Core::purge_cache`] purges every branch, for a
//! periodic sweep.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::Core;
use super::backend::AgentAuth;
use crate::error::{Error, Result};
use crate::model::limits;
use crate::storage::{Blob, ByteStream, Listed, StorageError};
use crate::store::jobs::JobRow;
use crate::store::results::JobPlace;

/// How long a cache entry is kept after it was written.
pub const CACHE_EXPIRY: Duration = Duration::from_secs(10 * 24 * 3600);

/// The file of an entry that lists its archives (written last).
pub const META: &str = "meta.json";

/// The root of every cache entry in the blob storage.
const ROOT: &str = "cache";

/// `s` as one path segment of a cache folder: characters other than
/// letters, digits, `.`, `-` and `_` become `_` (the original replaced the
/// spaces of job names). `what` names it in errors.
pub fn cache_segment(s: &str, what: &str) -> Result<String> {
    let seg: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if seg.is_empty() || seg.chars().all(|c| c == '.') {
        return Err(Error::bad_request(format!(
            "cache {what} '{s}' is not usable: give letters, digits, '.', '-' or '_'"
        )));
    }
    limits::check(&format!("cache {what}"), &seg, limits::NAME)?;
    Ok(seg)
}

/// A file name inside an entry: already one clean segment.
pub(crate) fn entry_file(name: &str) -> Result<&str> {
    let clean = cache_segment(name, "file name")?;
    if clean != name {
        return Err(Error::bad_request(format!(
            "cache file name '{name}' may only have letters, digits, '.', '-' and '_'"
        )));
    }
    Ok(name)
}

/// Where DEV flows' entries live: pull requests never write what CI
/// flows restore (they may read CI's entries when they have none).
const DEV_ROOT: &str = "cache-dev";

/// The folders a job looks up a key in, its own first: a CI job only
/// CI's, a DEV job DEV's then CI's.
fn lookup_folders(place: &JobPlace, job: &JobRow, key: &str) -> Result<Vec<String>> {
    let ci = key_folder_in(ROOT, place, job, key)?;
    Ok(if place.flow_kind == crate::model::flow_kind::DEV {
        vec![key_folder_in(DEV_ROOT, place, job, key)?, ci]
    } else {
        vec![ci]
    })
}

/// The folder a job saves a key in: `cache/<branch>/<stage>-<job name>/<key>`
/// (`cache-dev/...` for DEV flows).
fn key_folder(place: &JobPlace, job: &JobRow, key: &str) -> Result<String> {
    let root = if place.flow_kind == crate::model::flow_kind::DEV {
        DEV_ROOT
    } else {
        ROOT
    };
    key_folder_in(root, place, job, key)
}

fn key_folder_in(root: &str, place: &JobPlace, job: &JobRow, key: &str) -> Result<String> {
    Ok(format!(
        "{root}/{:08}/{}-{}/{}",
        place.branch_id,
        place.stage_id,
        cache_segment(&job.name, "job name")?,
        cache_segment(key, "key")?
    ))
}

/// Entries seen in a listing: folder of the key -> entry id -> its files.
type Entries = BTreeMap<String, BTreeMap<i64, Vec<Listed>>>;

/// Group listed blobs (`cache/<branch>/<job>/<key>/<entry>/<file>`) by key
/// folder and entry; anything else is left out.
fn entries(listed: Vec<Listed>) -> Entries {
    let mut out: Entries = BTreeMap::new();
    for l in listed {
        let parts: Vec<&str> = l.key.split('/').collect();
        let [root, _, _, _, entry, _] = parts[..] else {
            continue;
        };
        let Ok(id) = entry.parse::<i64>() else {
            continue;
        };
        if root != ROOT && root != DEV_ROOT {
            continue;
        }
        let folder = parts[..4].join("/");
        out.entry(folder)
            .or_default()
            .entry(id)
            .or_default()
            .push(l);
    }
    out
}

fn complete(files: &[Listed]) -> bool {
    files.iter().any(|f| f.key.ends_with(&format!("/{META}")))
}

/// Whether an entry expired at `now`: its newest file is older than [`CACHE_EXPIRY`].
fn expired(files: &[Listed], now: chrono::DateTime<chrono::Utc>) -> bool {
    let expiry = chrono::Duration::from_std(CACHE_EXPIRY).unwrap_or(chrono::Duration::MAX);
    files
        .iter()
        .map(|f| f.modified)
        .max()
        .is_some_and(|newest| now - newest > expiry)
}

/// The blobs a purge at `now` removes: expired entries, and entries of a
/// key below its newest complete, unexpired one.
pub fn doomed(listed: Vec<Listed>, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let mut out = Vec::new();
    for (_, by_id) in entries(listed) {
        let newest = by_id
            .iter()
            .rev()
            .find(|(_, files)| complete(files) && !expired(files, now))
            .map(|(id, _)| *id);
        for (id, files) in by_id {
            if expired(&files, now) || newest.is_some_and(|n| id < n) {
                out.extend(files.into_iter().map(|f| f.key));
            }
        }
    }
    out
}

/// Check an entry's `meta.json`: an object of file names (of the entry) to
/// the paths they were made from.
pub(crate) fn check_meta(bytes: &[u8]) -> Result<()> {
    let meta: HashMap<String, String> = serde_json::from_slice(bytes).map_err(|e| {
        Error::bad_request(format!(
            "cache {META} must be an object of file names to paths: {e}"
        ))
    })?;
    for file in meta.keys() {
        entry_file(file)?;
    }
    Ok(())
}

/// Read a small body whole (a `meta.json`), refusing more than `max` bytes.
pub(crate) async fn small_body(mut body: ByteStream, max: usize) -> Result<Bytes> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::bad_request(format!("the upload broke off: {e}")))?;
        if buf.len() + chunk.len() > max {
            return Err(Error::bad_request(format!(
                "a cache {META} is at most {max} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

impl Core {
    /// The job and its place, when `auth` is the agent running it.
    async fn cache_job(&self, auth: &AgentAuth, job_id: i64) -> Result<(JobRow, JobPlace)> {
        let agent = self.authenticated_agent(auth).await?;
        self.running_job(&agent, job_id).await
    }

    /// `PUT /backend/cache/{job}?key=K&name=N`: store file `name` of job
    /// `job_id`'s entry under `key`, streamed (at most
    /// [`limits::UPLOAD_BODY`] bytes). Its `meta.json` (a JSON object of
    /// file names to paths, sent last) completes the entry; then the
    /// branch's expired and superseded entries are purged.
    pub async fn agent_cache_put(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        key: &str,
        name: &str,
        body: ByteStream,
    ) -> Result<u64> {
        let (job, place) = self.cache_job(auth, job_id).await?;
        let folder = key_folder(&place, &job, key)?;
        let name = entry_file(name)?;
        let blob_key = format!("{folder}/{job_id}/{name}");
        if name != META {
            return self
                .blobs
                .put_stream(&blob_key, body, limits::UPLOAD_BODY as u64)
                .await
                .map_err(|e| match e {
                    StorageError::TooLarge { .. } => Error::bad_request(format!(
                        "cache file {name} is larger than {} MiB: cache less in one path",
                        limits::UPLOAD_BODY / (1024 * 1024)
                    )),
                    e => e.into(),
                });
        }
        let bytes = small_body(body, limits::REQUEST_BODY).await?;
        check_meta(&bytes)?;
        let size = self.blobs.put_bytes(&blob_key, bytes).await?;
        if let Err(e) = self
            .purge_cache(Some(place.branch_id), chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %e, branch = place.branch_id, "cannot purge old cache entries");
        }
        Ok(size)
    }

    /// `GET /backend/cache/{job}?key=K`: the entry a restore of `key` takes
    /// for job `job_id` (its stage and job name): `{"key", "entry": <job id>,
    /// "files": {"<tgz>": "<path>"}}`, `entry: null` when there is none.
    pub async fn agent_cache_entry(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        key: &str,
    ) -> Result<Value> {
        let (job, place) = self.cache_job(auth, job_id).await?;
        let now = chrono::Utc::now();
        let mut found = None;
        for folder in lookup_folders(&place, &job, key)? {
            let listed = self.blobs.list(&format!("{folder}/")).await?;
            let newest = entries(listed)
                .remove(&folder)
                .unwrap_or_default()
                .into_iter()
                .rev()
                .find(|(_, files)| complete(files) && !expired(files, now));
            if let Some((entry, _)) = newest {
                found = Some((folder, entry));
                break;
            }
        }
        let Some((folder, entry)) = found else {
            return Ok(json!({"key": key, "entry": null, "files": {}}));
        };
        let meta_key = format!("{folder}/{entry}/{META}");
        let bytes = match self.read_blob(&meta_key).await? {
            // Bounded: entries are written over S3 too.
            Some(b) => small_body(b.body, limits::REQUEST_BODY)
                .await
                .map_err(|e| Error::internal(format!("cannot read {meta_key}: {e}")))?,
            None => return Ok(json!({"key": key, "entry": null, "files": {}})),
        };
        let files: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("{meta_key} is not JSON: {e}")))?;
        Ok(json!({"key": key, "entry": entry, "files": files}))
    }

    /// `GET /backend/cache/{job}/file?key=K&entry=E&name=N`: a file of an
    /// entry of `key` (of job `job_id`'s stage and job name), streamed.
    pub async fn agent_cache_read(
        self: &Arc<Self>,
        auth: &AgentAuth,
        job_id: i64,
        key: &str,
        entry: i64,
        name: &str,
    ) -> Result<Blob> {
        let (job, place) = self.cache_job(auth, job_id).await?;
        let name = entry_file(name)?;
        let mut blob = None;
        for folder in lookup_folders(&place, &job, key)? {
            blob = self.read_blob(&format!("{folder}/{entry}/{name}")).await?;
            if blob.is_some() {
                break;
            }
        }
        blob.ok_or_else(|| {
            Error::not_found(format!(
                "cache file {name} of entry {entry} of key '{key}' not found (expired?)"
            ))
        })
    }

    /// Remove expired cache entries, and entries a newer one of the same
    /// key supersedes, of one branch or of all; returns how many blobs went.
    pub async fn purge_cache(
        &self,
        branch_id: Option<i64>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize> {
        let mut gone = 0;
        for root in [ROOT, DEV_ROOT] {
            let prefix = match branch_id {
                Some(b) => format!("{root}/{b:08}/"),
                None => format!("{root}/"),
            };
            let doomed = doomed(self.blobs.list(&prefix).await?, now);
            for key in &doomed {
                self.blobs.delete(key).await?;
            }
            gone += doomed.len();
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days_ago: i64, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - chrono::Duration::days(days_ago)
    }

    fn blob(key: &str, modified: chrono::DateTime<chrono::Utc>) -> Listed {
        Listed {
            key: key.into(),
            size: 1,
            modified,
        }
    }

    #[test]
    fn segments_are_cleaned_and_empty_ones_refused() {
        assert_eq!(
            cache_segment("unit tests", "job name").unwrap(),
            "unit_tests"
        );
        assert_eq!(cache_segment("deps/v1", "key").unwrap(), "deps_v1");
        assert!(cache_segment("  ", "key").is_err());
        assert!(cache_segment("..", "key").is_err());
        assert!(entry_file("a_b.tar.gz").is_ok());
        assert!(entry_file("../x").is_err());
    }

    #[test]
    fn purges_take_expired_and_superseded_entries_only() {
        let now = chrono::Utc::now();
        let k = "cache/00000001/3-build/deps";
        let other = "cache/00000001/3-build/tools";
        let listed = vec![
            // Superseded by entry 9.
            blob(&format!("{k}/7/a.tar.gz"), at(2, now)),
            blob(&format!("{k}/7/meta.json"), at(2, now)),
            // The newest complete one: kept.
            blob(&format!("{k}/9/a.tar.gz"), at(1, now)),
            blob(&format!("{k}/9/meta.json"), at(1, now)),
            // A save going on (no meta yet), newer: kept.
            blob(&format!("{k}/12/a.tar.gz"), at(0, now)),
            // Another key, expired: gone although it is its newest.
            blob(&format!("{other}/5/b.tar.gz"), at(11, now)),
            blob(&format!("{other}/5/meta.json"), at(11, now)),
            // Not a cache entry: left alone.
            blob("cache/00000001/stray", at(30, now)),
        ];
        let mut gone = doomed(listed, now);
        gone.sort();
        assert_eq!(
            gone,
            [
                format!("{k}/7/a.tar.gz"),
                format!("{k}/7/meta.json"),
                format!("{other}/5/b.tar.gz"),
                format!("{other}/5/meta.json"),
            ]
        );
    }
}
