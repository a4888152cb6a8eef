//! The object storage as the original agent's `git`, `artifacts` and
//! `cache` tools (and its download of uploaded tools) see it: MinIO buckets
//! in the original's layout (§5.14), served by the S3 endpoint of the
//! server (`--s3-bind`) over this instance's [`crate::storage::Storage`].
//!
//! | bucket | objects | in the storage |
//! |---|---|---|
//! | `%08d` (branch) | `<flow>/<run>/<path>` artifacts | `artifacts/<branch>/...` |
//! | `%08d-cache` | `<stage>-<job>/<key>/<job id>/...` | `cache/<branch>/...` (`cache-dev/` for DEV flows) |
//! | `%08d-git` | `<url with / : . as _>/repo.bundle` | `git/<branch>/...` |
//! | `tool-<id>` | `tool.zip` | `tools/tool-<id>/...` |
//!
//! So an artifact the original agent uploads is the one `/artifacts/...`
//! and this project's agent read, and a cache entry is restored by either.
//!
//! Credentials are per job (unlike the original's, which handed every
//! agent MinIO's root keys): access key `KKJOB<job id>` with a secret made
//! when the job's first step that needs it is handed out; they open only
//! that job's buckets, and only while the job runs. Within a bucket a job
//! writes only its own places: artifacts of its own run, cache entries of
//! its own job id, bundles of the repositories its `git` steps clone; and
//! reads artifacts of its own flow only.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::Core;
use super::cache::{CACHE_EXPIRY, META, cache_segment};
use crate::error::Error;
use crate::model::{flow_kind, job_state};
use crate::storage::{Blob, BlobMeta, ByteStream, Listed, StorageError};
use crate::store::jobs::JobRow;
use crate::store::results::JobPlace;

/// Access keys are this followed by the job id.
pub const ACCESS_KEY_PREFIX: &str = "KKJOB";

/// The largest object the S3 endpoint stores (S3's own limit for one put).
pub const MAX_OBJECT: u64 = 5 * 1024 * 1024 * 1024;

/// Where parts of multipart uploads wait for their completion.
const UPLOADS: &str = "s3-uploads";

/// The blob that says an upload was created (beside its parts `00001`...).
const CREATED: &str = "created";

/// Parts of an upload not completed within this time are removed.
pub const UPLOAD_EXPIRY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Why an S3 request is refused (each is one of S3's error codes).
#[derive(Debug, thiserror::Error)]
pub enum S3Failure {
    /// The access key names no running job.
    #[error(
        "access key {0} is unknown or its job no longer runs: S3 credentials are per job and \
         valid only while the job runs"
    )]
    InvalidAccessKeyId(String),
    /// The bucket is not one of the job's.
    #[error("bucket {0} does not exist (or is not one of this job's)")]
    NoSuchBucket(String),
    /// No object under the key.
    #[error("object {0} does not exist")]
    NoSuchKey(String),
    /// No such multipart upload (of this job).
    #[error("multipart upload {0} does not exist")]
    NoSuchUpload(String),
    /// The job may not do this with this object.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A key, prefix or part that cannot be used.
    #[error("{0}")]
    InvalidArgument(String),
    /// The object is larger than [`MAX_OBJECT`].
    #[error("the object is larger than {MAX_OBJECT} bytes")]
    EntityTooLarge,
    /// The request body broke off.
    #[error("{0}")]
    IncompleteBody(String),
    /// The server failed (database, storage).
    #[error("{0}")]
    Internal(String),
}

impl From<Error> for S3Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(m) => S3Failure::NoSuchKey(m),
            Error::Forbidden(m) => S3Failure::AccessDenied(m),
            Error::BadRequest(m) => S3Failure::InvalidArgument(m),
            other => S3Failure::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for S3Failure {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { key, .. } => S3Failure::NoSuchKey(key),
            StorageError::TooLarge { .. } => S3Failure::EntityTooLarge,
            StorageError::Body { .. } => S3Failure::IncompleteBody(e.to_string()),
            other => S3Failure::Internal(other.to_string()),
        }
    }
}

type S3Result<T> = std::result::Result<T, S3Failure>;

/// What a request does with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    /// Get, head or list.
    Read,
    /// Put (or a multipart upload).
    Write,
}

/// A running job, as the S3 endpoint knows it from its access key.
#[derive(Debug, Clone)]
pub struct S3Job {
    job: JobRow,
    place: JobPlace,
    /// The bundle folders of its `git` steps' repositories.
    git_folders: BTreeSet<String>,
    /// The uploaded tools its steps run.
    tools: BTreeSet<i64>,
}

/// The kinds of buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Artifacts,
    Cache,
    Git,
    Tool(i64),
}

/// One object listed in a bucket.
#[derive(Debug, Clone)]
pub struct S3Object {
    /// Its key in the bucket.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was written.
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A listing: objects and, with a delimiter, the common prefixes.
#[derive(Debug, Clone, Default)]
pub struct S3Listing {
    /// Objects, in key order.
    pub objects: Vec<S3Object>,
    /// Common prefixes (`folder/`), in order.
    pub prefixes: Vec<String>,
}

/// The folder of a repository's bundle in the `%08d-git` bucket: its URL
/// with `/`, `:` and `.` as `_` (the original's `minio_folder`).
pub fn git_folder(url: &str) -> String {
    url.chars()
        .map(|c| if matches!(c, '/' | ':' | '.') { '_' } else { c })
        .collect()
}

/// The job id of an access key.
fn job_of_key(access_key: &str) -> Option<i64> {
    access_key
        .strip_prefix(ACCESS_KEY_PREFIX)
        .and_then(|n| n.parse().ok())
        .filter(|n: &i64| *n > 0)
}

/// An object key as the storage takes it: `/`-separated segments, none
/// empty, `.` or `..`.
fn clean_key(key: &str) -> S3Result<&str> {
    if key.is_empty() || key.len() > 1024 {
        return Err(S3Failure::InvalidArgument(
            "an object key is 1 to 1024 bytes long".into(),
        ));
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\\'))
    {
        return Err(S3Failure::InvalidArgument(format!(
            "object key '{key}' has an empty, '.' or '..' segment (or a backslash); this store \
             takes plain relative paths"
        )));
    }
    Ok(key)
}

impl S3Job {
    /// The job's id.
    pub fn job_id(&self) -> i64 {
        self.job.id
    }

    /// The buckets this job may use, by name.
    pub fn buckets(&self) -> Vec<String> {
        let b = self.place.branch_id;
        let mut out = vec![
            format!("{b:08}"),
            format!("{b:08}-cache"),
            format!("{b:08}-git"),
        ];
        out.extend(self.tools.iter().map(|t| format!("tool-{t}")));
        out
    }

    fn kind(&self, bucket: &str) -> S3Result<Kind> {
        let branch = format!("{:08}", self.place.branch_id);
        let kind = match bucket.strip_prefix(&branch) {
            Some("") => Some(Kind::Artifacts),
            Some("-cache") => Some(Kind::Cache),
            Some("-git") => Some(Kind::Git),
            _ => bucket
                .strip_prefix("tool-")
                .and_then(|t| t.parse::<i64>().ok())
                .filter(|t| self.tools.contains(t))
                .map(Kind::Tool),
        };
        kind.ok_or_else(|| S3Failure::NoSuchBucket(bucket.to_string()))
    }

    /// The kind of `bucket` and `key` as stored, when the job may write it.
    fn writable<'k>(&self, bucket: &str, key: &'k str) -> S3Result<(Kind, &'k str)> {
        let kind = self.kind(bucket)?;
        let key = clean_key(key)?;
        self.allowed(kind, key, S3Op::Write)?;
        Ok((kind, key))
    }

    /// The job's `<stage>-<job name>` folder in its cache bucket.
    fn cache_job_folder(&self) -> S3Result<String> {
        Ok(format!(
            "{}-{}",
            self.place.stage_id,
            cache_segment(&self.job.name, "job name")?
        ))
    }

    /// Whether the job may `op` objects whose keys start with `key` (a
    /// whole key, or a listing's prefix).
    fn allowed(&self, kind: Kind, key: &str, op: S3Op) -> S3Result<()> {
        let deny = |why: String| Err(S3Failure::AccessDenied(why));
        // A listing's prefix starts with the whole folder a job may read
        // (the original's tools list exactly that), so a listing never
        // reads more of the storage than the job's own folder.
        let under = |head: &str| -> bool { key.starts_with(head) };
        match kind {
            Kind::Artifacts => {
                let flow = format!("{}/", self.place.flow_id);
                let run = format!("{flow}{}/", self.place.run_id);
                match op {
                    S3Op::Read if under(&flow) => Ok(()),
                    S3Op::Read => deny(format!(
                        "a job reads the artifacts of its own flow only (keys under {flow})"
                    )),
                    S3Op::Write if key.starts_with(&run) && key.len() > run.len() => Ok(()),
                    S3Op::Write => deny(format!(
                        "a job stores artifacts of its own run only (keys under {run})"
                    )),
                }
            }
            Kind::Cache => {
                let folder = format!("{}/", self.cache_job_folder()?);
                match op {
                    S3Op::Read if under(&folder) => Ok(()),
                    S3Op::Read => deny(format!(
                        "a job reads the cache of its own stage and job name only (keys under \
                         {folder})"
                    )),
                    S3Op::Write => {
                        let rest = key.strip_prefix(&folder).unwrap_or_default();
                        let parts: Vec<&str> = rest.split('/').collect();
                        match parts[..] {
                            [k, id, _] if id == self.job.id.to_string() => {
                                if cache_segment(k, "key").ok().as_deref() == Some(k) {
                                    Ok(())
                                } else {
                                    deny(format!("'{k}' is not a cache key folder"))
                                }
                            }
                            _ => deny(format!(
                                "a job saves cache entries of its own only ({folder}<key>/{}/<file>)",
                                self.job.id
                            )),
                        }
                    }
                }
            }
            Kind::Git => {
                if self.git_folders.iter().any(|f| under(&format!("{f}/"))) {
                    Ok(())
                } else {
                    deny(
                        "a job reads and stores the bundles of the repositories its git steps \
                         clone only"
                            .into(),
                    )
                }
            }
            Kind::Tool(_) => match op {
                S3Op::Read => Ok(()),
                S3Op::Write => deny("tool packages are read-only".into()),
            },
        }
    }

    /// The storage folders (ending in `/`) a bucket's keys live under, the
    /// one written first: a DEV flow's cache and git bundles are its own,
    /// read before CI's.
    fn roots(&self, kind: Kind) -> Vec<String> {
        let b = self.place.branch_id;
        match kind {
            Kind::Artifacts => vec![format!("artifacts/{b:08}/")],
            Kind::Cache if self.place.flow_kind == flow_kind::DEV => {
                vec![format!("cache-dev/{b:08}/"), format!("cache/{b:08}/")]
            }
            Kind::Cache => vec![format!("cache/{b:08}/")],
            // Pull requests' bundles are their own: a DEV flow's code must
            // not plant commits in the bundle CI clones from.
            Kind::Git if self.place.flow_kind == flow_kind::DEV => {
                vec![format!("git-dev/{b:08}/"), format!("git/{b:08}/")]
            }
            Kind::Git => vec![format!("git/{b:08}/")],
            Kind::Tool(t) => vec![format!("tools/tool-{t}/")],
        }
    }
}

/// Keep, of a cache listing (keys relative to the bucket), only the files
/// of complete entries (with a `meta.json`) that have not expired: what a
/// restore may take (the original's agent takes the highest entry id it
/// sees, so an entry still being written must not be seen).
fn complete_cache_entries(
    objects: Vec<S3Object>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<S3Object> {
    let expiry = chrono::Duration::from_std(CACHE_EXPIRY).unwrap_or(chrono::Duration::MAX);
    // entry folder (`<job>/<key>/<id>`) -> (has meta, newest write)
    let mut entries: BTreeMap<String, (bool, chrono::DateTime<chrono::Utc>)> = BTreeMap::new();
    let folder = |k: &str| -> Option<String> {
        let parts: Vec<&str> = k.split('/').collect();
        (parts.len() == 4).then(|| parts[..3].join("/"))
    };
    for o in &objects {
        if let Some(f) = folder(&o.key) {
            let e = entries.entry(f).or_insert((false, o.modified));
            e.0 |= o.key.ends_with(&format!("/{META}"));
            e.1 = e.1.max(o.modified);
        }
    }
    objects
        .into_iter()
        .filter(|o| {
            folder(&o.key)
                .and_then(|f| entries.get(&f))
                .is_some_and(|(meta, newest)| *meta && now - *newest <= expiry)
        })
        .collect()
}

impl Core {
    /// The secret of an access key, while its job runs.
    pub async fn s3_secret(&self, access_key: &str) -> S3Result<String> {
        let unknown = || S3Failure::InvalidAccessKeyId(access_key.to_string());
        let id = job_of_key(access_key).ok_or_else(unknown)?;
        let job = self.store().job(id).await?.ok_or_else(unknown)?;
        if !running(&job) {
            return Err(unknown());
        }
        self.store().job_s3_secret(id).await?.ok_or_else(unknown)
    }

    /// The job behind an authenticated request's access key.
    pub async fn s3_job(&self, access_key: Option<&str>) -> S3Result<S3Job> {
        let Some(access_key) = access_key else {
            return Err(S3Failure::AccessDenied(
                "anonymous requests are refused: sign with the job's minio_access_key".into(),
            ));
        };
        let unknown = || S3Failure::InvalidAccessKeyId(access_key.to_string());
        let id = job_of_key(access_key).ok_or_else(unknown)?;
        let job = self.store().job(id).await?.ok_or_else(unknown)?;
        if !running(&job) {
            return Err(unknown());
        }
        let place = self.store().job_place(id).await?.ok_or_else(unknown)?;
        let mut git_folders = BTreeSet::new();
        let mut tools = BTreeSet::new();
        for step in self.store().steps_of(&[id]).await? {
            if step.tool_name == "git"
                && let Some(url) = step.fields.0.get("checkout").and_then(Value::as_str)
            {
                git_folders.insert(git_folder(url));
            }
            if let Some(t) = step
                .tool_location
                .as_deref()
                .and_then(|l| l.strip_prefix("blob:tools/tool-"))
                .and_then(|l| l.strip_suffix("/tool.zip"))
                .and_then(|t| t.parse().ok())
            {
                tools.insert(t);
            }
        }
        Ok(S3Job {
            job,
            place,
            git_folders,
            tools,
        })
    }

    /// Whether `bucket` is one of the job's.
    pub fn s3_bucket(&self, job: &S3Job, bucket: &str) -> S3Result<()> {
        job.kind(bucket).map(|_| ())
    }

    /// Where `key` of `bucket` is read from: the first root holding it.
    async fn s3_find(&self, job: &S3Job, bucket: &str, key: &str) -> S3Result<(String, BlobMeta)> {
        let kind = job.kind(bucket)?;
        // No such key can have been stored (MinIO says NoSuchKey too, and
        // the original's artifacts tool then lists it as a folder).
        let key = clean_key(key).map_err(|_| S3Failure::NoSuchKey(key.to_string()))?;
        job.allowed(kind, key, S3Op::Read)?;
        for root in job.roots(kind) {
            let full = format!("{root}{key}");
            match self.storage().head(&full).await {
                Ok(meta) => return Ok((full, meta)),
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(S3Failure::NoSuchKey(key.to_string()))
    }

    /// `HeadObject`.
    pub async fn s3_head(&self, job: &S3Job, bucket: &str, key: &str) -> S3Result<BlobMeta> {
        Ok(self.s3_find(job, bucket, key).await?.1)
    }

    /// `GetObject`, the bytes `range` (checked against the size) only when given.
    pub async fn s3_get(
        &self,
        job: &S3Job,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> S3Result<(BlobMeta, Range<u64>, Blob)> {
        let (full, _) = self.s3_find(job, bucket, key).await?;
        Ok(self
            .storage()
            .get_ranged(&full, range.map(object_store::GetRange::from))
            .await?)
    }

    /// `PutObject`: store the body, streamed; its size and entity tag.
    pub async fn s3_put(
        &self,
        job: &S3Job,
        bucket: &str,
        key: &str,
        body: ByteStream,
    ) -> S3Result<BlobMeta> {
        let (kind, key) = job.writable(bucket, key)?;
        let full = format!("{}{key}", job.roots(kind)[0]);
        if kind == Kind::Cache {
            return self.s3_put_cache(job, &full, body).await;
        }
        self.storage().put_stream(&full, body, MAX_OBJECT).await?;
        Ok(self.storage().head(&full).await?)
    }

    /// A file of a cache entry, by the rules of this project's cache tool
    /// (`/backend/cache`): plain file names, a `meta.json` that is a small
    /// object of file names to paths and, once it is written, the purge of
    /// the branch's expired and superseded entries.
    async fn s3_put_cache(&self, job: &S3Job, full: &str, body: ByteStream) -> S3Result<BlobMeta> {
        let name = full.rsplit('/').next().unwrap_or_default();
        super::cache::entry_file(name)?;
        if name != META {
            self.storage().put_stream(full, body, MAX_OBJECT).await?;
            return Ok(self.storage().head(full).await?);
        }
        let bytes = super::cache::small_body(body, crate::model::limits::REQUEST_BODY).await?;
        super::cache::check_meta(&bytes)?;
        self.storage().put_bytes(full, bytes).await?;
        if let Err(e) = self
            .purge_cache(Some(job.place.branch_id), chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %e, branch = job.place.branch_id, "cannot purge old cache entries");
        }
        Ok(self.storage().head(full).await?)
    }

    /// `ListObjects(V2)`: the objects under `prefix` (a plain string
    /// prefix, as S3's), rolled up at `delimiter` when given.
    pub async fn s3_list(
        &self,
        job: &S3Job,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> S3Result<S3Listing> {
        let kind = job.kind(bucket)?;
        job.allowed(kind, prefix, S3Op::Read)?;
        // The storage lists whole folders: the prefix's folder, filtered.
        let folder = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut objects = Vec::new();
        for root in job.roots(kind) {
            let listed: Vec<Listed> = self.storage().list(&format!("{root}{folder}")).await?;
            objects = listed
                .into_iter()
                .filter_map(|l| {
                    let key = l.key.strip_prefix(&root)?.to_string();
                    key.starts_with(prefix).then_some(S3Object {
                        key,
                        size: l.size,
                        modified: l.modified,
                    })
                })
                .collect();
            if kind == Kind::Cache {
                objects = complete_cache_entries(objects, chrono::Utc::now());
            }
            // A DEV flow reads CI's cache only where it has none of its own.
            if !objects.is_empty() {
                break;
            }
        }
        // What the job may not read (another flow's artifacts) is left out.
        objects.retain(|o| job.allowed(kind, &o.key, S3Op::Read).is_ok());
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out = S3Listing::default();
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut prefixes = BTreeSet::new();
        for o in objects {
            let rest = &o.key[prefix.len()..];
            match delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
                Some(end) => {
                    prefixes.insert(format!("{prefix}{}", &rest[..end]));
                }
                None => out.objects.push(o),
            }
        }
        out.prefixes = prefixes.into_iter().collect();
        Ok(out)
    }

    /// `CreateMultipartUpload`: an upload id for `key`.
    pub async fn s3_create_upload(&self, job: &S3Job, bucket: &str, key: &str) -> S3Result<String> {
        job.writable(bucket, key)?;
        let id = format!("{}.{}", job.job.id, crate::auth::new_token());
        // Parts are taken only for uploads made here.
        self.storage()
            .put_bytes(&format!("{UPLOADS}/{id}/{CREATED}"), bytes::Bytes::new())
            .await?;
        Ok(id)
    }

    /// The storage folder of an upload of this job that was created.
    async fn upload_folder(&self, job: &S3Job, upload_id: &str) -> S3Result<String> {
        let folder = Self::upload_name(job, upload_id)?;
        match self.storage().head(&format!("{folder}/{CREATED}")).await {
            Ok(_) => Ok(folder),
            Err(StorageError::NotFound { .. }) => {
                Err(S3Failure::NoSuchUpload(upload_id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The storage folder an upload id names, if it is one of this job's.
    fn upload_name(job: &S3Job, upload_id: &str) -> S3Result<String> {
        let (owner, token) = upload_id
            .split_once('.')
            .ok_or_else(|| S3Failure::NoSuchUpload(upload_id.to_string()))?;
        if owner != job.job.id.to_string()
            || token.is_empty()
            || !token.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(S3Failure::NoSuchUpload(upload_id.to_string()));
        }
        Ok(format!("{UPLOADS}/{upload_id}"))
    }

    /// `UploadPart`: store part `number` (1 to 10000); its entity tag.
    pub async fn s3_upload_part(
        &self,
        job: &S3Job,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: ByteStream,
    ) -> S3Result<BlobMeta> {
        job.writable(bucket, key)?;
        if !(1..=10_000).contains(&number) {
            return Err(S3Failure::InvalidArgument(format!(
                "part number {number} is not between 1 and 10000"
            )));
        }
        let part = format!("{}/{number:05}", self.upload_folder(job, upload_id).await?);
        self.storage().put_stream(&part, body, MAX_OBJECT).await?;
        Ok(self.storage().head(&part).await?)
    }

    /// `CompleteMultipartUpload`: the parts `numbers`, in order, become
    /// the object (streamed from part to part); its size and entity tag.
    pub async fn s3_complete_upload(
        &self,
        job: &S3Job,
        bucket: &str,
        key: &str,
        upload_id: &str,
        numbers: &[i32],
    ) -> S3Result<BlobMeta> {
        let (kind, key) = job.writable(bucket, key)?;
        let folder = self.upload_folder(job, upload_id).await?;
        if numbers.is_empty() || numbers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(S3Failure::InvalidArgument(
                "give the parts in ascending order, at least one".into(),
            ));
        }
        let stored: BTreeSet<String> = self
            .storage()
            .list(&folder)
            .await?
            .into_iter()
            .map(|l| l.key)
            .collect();
        let parts: Vec<String> = numbers.iter().map(|n| format!("{folder}/{n:05}")).collect();
        if let Some(missing) = parts.iter().find(|p| !stored.contains(*p)) {
            return Err(S3Failure::InvalidArgument(format!(
                "part {} of upload {upload_id} was never uploaded",
                missing.rsplit('/').next().unwrap_or_default()
            )));
        }
        let storage = self.storage().clone();
        let body: ByteStream = Box::pin(
            futures_util::stream::iter(parts)
                .then(move |p| {
                    let storage = storage.clone();
                    async move { storage.get(&p).await.map_err(std::io::Error::other) }
                })
                .map_ok(|blob| blob.body)
                .try_flatten(),
        );
        let full = format!("{}{key}", job.roots(kind)[0]);
        self.storage().put_stream(&full, body, MAX_OBJECT).await?;
        self.s3_drop_upload(&folder).await?;
        Ok(self.storage().head(&full).await?)
    }

    /// `AbortMultipartUpload`: forget its parts.
    pub async fn s3_abort_upload(
        &self,
        job: &S3Job,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<()> {
        job.writable(bucket, key)?;
        let folder = self.upload_folder(job, upload_id).await?;
        self.s3_drop_upload(&folder).await
    }

    async fn s3_drop_upload(&self, folder: &str) -> S3Result<()> {
        for l in self.storage().list(folder).await? {
            self.storage().delete(&l.key).await?;
        }
        Ok(())
    }

    /// Remove parts of multipart uploads older than [`UPLOAD_EXPIRY`]
    /// (their job died before completing them); how many.
    pub async fn purge_s3_uploads(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::Result<usize> {
        let expiry = chrono::Duration::from_std(UPLOAD_EXPIRY).unwrap_or(chrono::Duration::MAX);
        let mut n = 0;
        for l in self.storage().list(UPLOADS).await? {
            if now - l.modified > expiry {
                self.storage().delete(&l.key).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The `minio_*` fields of a step of job `job_id` that talks to the
    /// object storage (`git`, `artifacts`, `cache`, or an uploaded tool):
    /// this server's S3 endpoint and the job's credentials. `None` when
    /// the endpoint is not running.
    pub(crate) async fn s3_step_fields(
        &self,
        job: &JobRow,
        place: &JobPlace,
        step: &mut serde_json::Map<String, Value>,
    ) -> crate::Result<()> {
        let tool = step
            .get("tool")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let location = step
            .get("tool_location")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let uploaded = location
            .strip_prefix("blob:tools/")
            .filter(|l| l.starts_with("tool-"));
        if !matches!(tool.as_str(), "git" | "artifacts" | "cache") && uploaded.is_none() {
            return Ok(());
        }
        let Some(addr) = self.s3_addr().await? else {
            return Ok(());
        };
        let b = place.branch_id;
        match tool.as_str() {
            "git" => {
                let url = step
                    .get("checkout")
                    .and_then(Value::as_str)
                    .map(git_folder)
                    .unwrap_or_default();
                step.insert("minio_bucket".into(), format!("{b:08}-git").into());
                step.insert("minio_folder".into(), url.into());
            }
            "artifacts" => {
                step.insert("minio_bucket".into(), format!("{b:08}").into());
            }
            "cache" => {
                let folder = |key: &str| -> crate::Result<String> {
                    Ok(format!(
                        "{}-{}/{}",
                        place.stage_id,
                        cache_segment(&job.name, "job name")?,
                        cache_segment(key, "key")?
                    ))
                };
                let key = step
                    .get("key")
                    .and_then(Value::as_str)
                    .filter(|k| !k.trim().is_empty())
                    .map(str::to_string);
                let mut keys: Vec<String> = step
                    .get("keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                let mut folders = serde_json::Map::new();
                if step.get("action").and_then(Value::as_str) == Some("save") {
                    if let Some(k) = key.or_else(|| keys.first().cloned()) {
                        folders.insert(k.clone(), folder(&k)?.into());
                    }
                    step.insert("minio_folder".into(), folders.into());
                } else {
                    keys.extend(key);
                    for k in keys {
                        folders.insert(k.clone(), folder(&k)?.into());
                    }
                    step.insert("minio_folders".into(), folders.into());
                }
                step.insert("minio_bucket".into(), format!("{b:08}-cache").into());
            }
            _ => {}
        }
        if let Some(rest) = uploaded {
            // The original's agent fetches `minio:<bucket>/<object>`.
            step.insert("tool_location".into(), format!("minio:{rest}").into());
        }
        let secret = self
            .store()
            .job_s3_secret_or(
                job.id,
                &format!("{}{}", crate::auth::new_token(), crate::auth::new_token()),
            )
            .await?;
        step.insert("minio_addr".into(), addr.into());
        step.insert(
            "minio_access_key".into(),
            format!("{ACCESS_KEY_PREFIX}{}", job.id).into(),
        );
        step.insert("minio_secret_key".into(), secret.into());
        Ok(())
    }

    /// The `host:port` agents reach the S3 endpoint at: the setting
    /// `general.minio_addr` when set (an address behind NAT, a proxy),
    /// else where `--s3-bind` listens, with the host of the setting
    /// `general.server_url` when that is a wildcard (`0.0.0.0`, `[::]`);
    /// `None` when the endpoint does not run.
    pub(crate) async fn s3_addr(&self) -> crate::Result<Option<String>> {
        let bound = self.s3_bound.lock().map(|a| a.clone()).unwrap_or_default();
        let Ok(bound) = bound.parse::<std::net::SocketAddr>() else {
            return Ok(None);
        };
        let setting = |name: &'static str| async move {
            Ok::<_, Error>(
                self.store()
                    .setting("general", name)
                    .await?
                    .map(|v| v.trim().to_string())
                    .filter(|s| !s.is_empty()),
            )
        };
        if let Some(configured) = setting("minio_addr").await? {
            return Ok(Some(configured));
        }
        if bound.ip().is_unspecified()
            && let Some(host) = setting("server_url")
                .await?
                .and_then(|u| reqwest::Url::parse(&u).ok())
                .and_then(|u| u.host_str().map(str::to_string))
        {
            return Ok(Some(format!("{host}:{}", bound.port())));
        }
        Ok(Some(bound.to_string()))
    }

    /// Say where the S3 endpoint listens (the server does, once bound).
    pub fn set_s3_addr(&self, addr: String) {
        if let Ok(mut a) = self.s3_bound.lock() {
            *a = addr;
        }
    }
}

/// A job whose agent works on it now.
fn running(job: &JobRow) -> bool {
    job.agent_used_id.is_some() && matches!(job.state, job_state::QUEUED | job_state::ASSIGNED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, age_days: i64) -> S3Object {
        S3Object {
            key: key.into(),
            size: 1,
            modified: chrono::Utc::now() - chrono::Duration::days(age_days),
        }
    }

    #[test]
    fn git_folders_are_the_originals() {
        assert_eq!(
            git_folder("https://github.com/Kraken-CI/kraken.git"),
            "https___github_com_Kraken-CI_kraken_git"
        );
    }

    #[test]
    fn access_keys_name_a_job() {
        assert_eq!(job_of_key("KKJOB42"), Some(42));
        for bad in ["KKJOB", "KKJOB0", "KKJOB-1", "kkjob4", "AKIA42", "KKJOB4x"] {
            assert_eq!(job_of_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_plain_relative_paths() {
        assert!(clean_key("5/7/a/b.txt").is_ok());
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a/", "a\\b"] {
            assert!(clean_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restores_see_complete_unexpired_cache_entries_only() {
        let kept = complete_cache_entries(
            vec![
                obj("3-j/k/10/a.tar.gz", 0),
                obj("3-j/k/10/meta.json", 0),
                obj("3-j/k/11/a.tar.gz", 0), // still being written
                obj("3-j/k/9/a.tar.gz", 20),
                obj("3-j/k/9/meta.json", 20), // expired
            ],
            chrono::Utc::now(),
        );
        let keys: Vec<&str> = kept.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["3-j/k/10/a.tar.gz", "3-j/k/10/meta.json"]);
    }
}
