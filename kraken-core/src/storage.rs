//! Blob storage: artifacts and uploaded tool packages live in an object
//! store (the `object_store` crate), so that several servers on one
//! database share them.
//!
//! Where (`--storage`, `KRAKEN_STORAGE`):
//! * nothing: the data dir itself, with the layout earlier versions wrote
//!   (`<data dir>/artifacts/...`, `<data dir>/tools/...`);
//! * a directory, `/srv/kraken-blobs` or `file:///srv/kraken-blobs`: a
//!   local or shared (NFS, ...) directory;
//! * `s3://bucket/prefix`: an S3-compatible store; endpoint, region and
//!   keys from the usual `AWS_*` environment variables (`AWS_ENDPOINT`,
//!   `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...) or from
//!   the URL's query (`s3://b/p?endpoint=http://127.0.0.1:9000&region=x`).
//!
//! Blobs go in and out as streams: an upload is written in parts of
//! [`PART_SIZE`] (one plain put when it is smaller), a download is read
//! chunk by chunk, so a large artifact is never held whole in memory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// A blob's bytes, chunk by chunk.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Uploads are sent in parts of this size (S3's smallest part is 5 MiB);
/// at most [`PARTS_IN_FLIGHT`] parts are held at once.
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of one upload sent concurrently.
const PARTS_IN_FLIGHT: usize = 2;
/// Chunks read from local files.
const READ_CHUNK: usize = 64 * 1024;

/// A stored blob being read: its size and its bytes.
pub struct Blob {
    /// Size in bytes.
    pub size: u64,
    /// The bytes, in chunks.
    pub body: ByteStream,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob").field("size", &self.size).finish()
    }
}

impl Blob {
    /// Read the whole blob into memory (for small blobs and tests only).
    pub async fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

/// What went wrong with the blob storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `--storage` names nothing this server can use.
    #[error(
        "storage '{spec}' is not usable: {reason}; give a directory (`/srv/kraken-blobs`, \
         `file:///srv/kraken-blobs`) or `s3://bucket/prefix`"
    )]
    BadSpec {
        /// What was given.
        spec: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A storage directory cannot be created or opened.
    #[error(
        "cannot use {} as blob storage: {source}; create it and make it writable by this \
         server, or point --storage (KRAKEN_STORAGE) elsewhere", dir.display()
    )]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The S3 store cannot be set up from its URL and environment.
    #[error(
        "cannot set up S3 storage {url}: {source}; set the bucket in the URL and the endpoint, \
         region and keys in AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (or as ?endpoint=&region= in the URL)"
    )]
    S3 {
        /// The URL given.
        url: String,
        /// Why.
        source: Box<object_store::Error>,
    },
    /// No blob under this key.
    #[error("{key} is not in {store}")]
    NotFound {
        /// The blob's key.
        key: String,
        /// The store (for the message).
        store: String,
    },
    /// The store refused or failed a write.
    #[error(
        "cannot write {key} to {store}: {source}; check that the storage is reachable and writable"
    )]
    Write {
        /// The blob's key.
        key: String,
        /// The store.
        store: String,
        /// Why.
        source: Box<object_store::Error>,
    },
    /// The store failed a read.
    #[error("cannot read {key} from {store}: {source}; check that the storage is reachable")]
    Read {
        /// The blob's key.
        key: String,
        /// The store.
        store: String,
        /// Why.
        source: Box<object_store::Error>,
    },
    /// The bytes being stored stopped coming (the upload broke off).
    #[error("the upload of {key} broke off: {source}; send it again")]
    Body {
        /// The blob's key.
        key: String,
        /// Why.
        source: std::io::Error,
    },
    /// The upload is larger than allowed.
    #[error("{key} is larger than the limit of {max} bytes: store a smaller file")]
    TooLarge {
        /// The blob's key.
        key: String,
        /// The limit.
        max: u64,
    },
}

impl From<StorageError> for crate::error::Error {
    fn from(e: StorageError) -> Self {
        use crate::error::Error;
        match e {
            StorageError::NotFound { .. } => Error::NotFound(e.to_string()),
            StorageError::TooLarge { .. } | StorageError::BadSpec { .. } => {
                Error::BadRequest(e.to_string())
            }
            StorageError::Body { .. } => Error::BadRequest(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

type SResult<T> = std::result::Result<T, StorageError>;

/// The blob store of a Kraken instance.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Prepended to every key (`s3://bucket/prefix`).
    prefix: String,
    /// How the store is named in messages and logs.
    label: String,
    /// A local store's root: blobs written by earlier versions under names
    /// `object_store` escapes (`%`, `#`, `[`...) are still read from there.
    local_root: Option<PathBuf>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl Storage {
    /// The store `spec` names (`None`: the data dir).
    pub fn open(spec: Option<&str>, data_dir: &Path) -> SResult<Storage> {
        let spec = spec.map(str::trim).filter(|s| !s.is_empty());
        let Some(spec) = spec else {
            return Storage::local(data_dir);
        };
        if let Some(rest) = spec.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(StorageError::BadSpec {
                    spec: spec.to_string(),
                    reason: "a file URL needs an absolute path (file:///dir)".into(),
                });
            }
            return Storage::local(Path::new(rest));
        }
        if spec.starts_with("s3://") || spec.starts_with("s3a://") {
            return Storage::s3(spec);
        }
        if spec.contains("://") {
            return Err(StorageError::BadSpec {
                spec: spec.to_string(),
                reason: "only file:// and s3:// URLs are known".into(),
            });
        }
        Storage::local(Path::new(spec))
    }

    /// A directory on this machine (or mounted from a shared file system).
    pub fn local(dir: &Path) -> SResult<Storage> {
        let dir_err = |source| StorageError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let root = std::fs::canonicalize(dir).map_err(dir_err)?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| StorageError::Dir {
            dir: root.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Storage {
            store: Arc::new(fs),
            prefix: String::new(),
            label: format!("directory {}", root.display()),
            local_root: Some(root),
        })
    }

    /// S3 needs the `s3` feature of kraken-core.
    #[cfg(not(feature = "s3"))]
    fn s3(spec: &str) -> SResult<Storage> {
        Err(StorageError::BadSpec {
            spec: spec.to_string(),
            reason: "this build has no S3 support (kraken-core's `s3` feature is off)".into(),
        })
    }

    /// An S3-compatible store: `s3://bucket/prefix[?key=value&...]`.
    #[cfg(feature = "s3")]
    fn s3(spec: &str) -> SResult<Storage> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let bad = |reason: &str| StorageError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (base, query) = spec.split_once('?').unwrap_or((spec, ""));
        let rest = base.split_once("://").map_or("", |(_, r)| r);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket (s3://bucket/prefix)"));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let key: AmazonS3ConfigKey = k.to_ascii_lowercase().parse().map_err(|_| {
                bad(&format!(
                    "unknown S3 option '{k}' (use endpoint, region, access_key_id, ...)"
                ))
            })?;
            b = b.with_config(key, v.into_owned());
        }
        if b.get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"))
        {
            b = b.with_allow_http(true);
        }
        // object_store's reqwest client needs the process's crypto provider.
        crate::tls::install_provider();
        let s3 = b.build().map_err(|e| StorageError::S3 {
            url: spec.to_string(),
            source: Box::new(e),
        })?;
        let prefix = prefix.trim_matches('/');
        Ok(Storage {
            store: Arc::new(s3),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            label: format!("s3://{bucket}/{prefix}"),
            local_root: None,
        })
    }

    /// Whether blobs live in a directory of this machine's file system.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    fn key(&self, key: &str) -> Key {
        Key::from(format!("{}{key}", self.prefix))
    }

    fn write_err(&self, key: &str, e: object_store::Error) -> StorageError {
        StorageError::Write {
            key: key.to_string(),
            store: self.label.clone(),
            source: Box::new(e),
        }
    }

    /// Store `body` under `key` (replacing what was there); fails with
    /// [`StorageError::TooLarge`] past `max` bytes. Returns the size.
    /// Readers see the blob only once it is complete.
    pub async fn put_stream(&self, key: &str, mut body: ByteStream, max: u64) -> SResult<u64> {
        let loc = self.key(key);
        let broke = |source| StorageError::Body {
            key: key.to_string(),
            source,
        };
        let too_large = || StorageError::TooLarge {
            key: key.to_string(),
            max,
        };
        // The first part decides: a small blob is one plain put.
        let mut first = Vec::new();
        let mut size = 0u64;
        let mut rest = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(broke)?;
            size += chunk.len() as u64;
            if size > max {
                return Err(too_large());
            }
            first.push(chunk);
            if size >= PART_SIZE as u64 {
                rest = Some(body);
                break;
            }
        }
        let Some(mut body) = rest else {
            self.store
                .put(&loc, PutPayload::from_iter(first))
                .await
                .map_err(|e| self.write_err(key, e))?;
            return Ok(size);
        };
        let upload = self
            .store
            .put_multipart(&loc)
            .await
            .map_err(|e| self.write_err(key, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for chunk in first {
            w.put(chunk);
        }
        let failed = loop {
            let Some(chunk) = body.next().await else {
                break None;
            };
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => break Some(broke(e)),
            };
            size += chunk.len() as u64;
            if size > max {
                break Some(too_large());
            }
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                break Some(self.write_err(key, e));
            }
            w.put(chunk);
        };
        if let Some(e) = failed {
            // Best effort: the error that ended the upload is what matters.
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish().await.map_err(|e| self.write_err(key, e))?;
        Ok(size)
    }

    /// Store `bytes` under `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> SResult<u64> {
        let size = bytes.len() as u64;
        self.store
            .put(&self.key(key), PutPayload::from(bytes))
            .await
            .map_err(|e| self.write_err(key, e))?;
        Ok(size)
    }

    /// Open the blob under `key` for reading.
    pub async fn get(&self, key: &str) -> SResult<Blob> {
        match self.store.get(&self.key(key)).await {
            Ok(r) => Ok(Blob {
                size: r.meta.size,
                body: r.into_stream().map_err(std::io::Error::other).boxed(),
            }),
            Err(object_store::Error::NotFound { .. }) => match self.legacy_file(key).await {
                Some(blob) => Ok(blob),
                None => Err(StorageError::NotFound {
                    key: key.to_string(),
                    store: self.label.clone(),
                }),
            },
            Err(e) => Err(StorageError::Read {
                key: key.to_string(),
                store: self.label.clone(),
                source: Box::new(e),
            }),
        }
    }

    /// The size, time and entity tag of the blob under `key`.
    pub async fn head(&self, key: &str) -> SResult<BlobMeta> {
        match self.store.head(&self.key(key)).await {
            Ok(m) => Ok(BlobMeta::from(m)),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound {
                key: key.to_string(),
                store: self.label.clone(),
            }),
            Err(e) => Err(StorageError::Read {
                key: key.to_string(),
                store: self.label.clone(),
                source: Box::new(e),
            }),
        }
    }

    /// Open the blob under `key` for reading, the bytes `range` only when
    /// given (S3's `Range: bytes=...`); with what [`Storage::head`] says.
    pub async fn get_ranged(
        &self,
        key: &str,
        range: Option<object_store::GetRange>,
    ) -> SResult<(BlobMeta, std::ops::Range<u64>, Blob)> {
        let opts = object_store::GetOptions::new().with_range(range);
        match self.store.get_opts(&self.key(key), opts).await {
            Ok(r) => {
                let meta = BlobMeta::from(r.meta.clone());
                let range = r.range.clone();
                let blob = Blob {
                    size: range.end - range.start,
                    body: r.into_stream().map_err(std::io::Error::other).boxed(),
                };
                Ok((meta, range, blob))
            }
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound {
                key: key.to_string(),
                store: self.label.clone(),
            }),
            Err(e) => Err(StorageError::Read {
                key: key.to_string(),
                store: self.label.clone(),
                source: Box::new(e),
            }),
        }
    }

    /// A blob an earlier version wrote to the data dir under its plain name
    /// (object_store escapes some characters in file names).
    async fn legacy_file(&self, key: &str) -> Option<Blob> {
        let root = self.local_root.as_ref()?;
        let file = tokio::fs::File::open(root.join(key)).await.ok()?;
        let meta = file.metadata().await.ok()?;
        meta.is_file().then(|| Blob {
            size: meta.len(),
            body: file_stream(file),
        })
    }

    /// The blobs whose keys start with the folder `prefix` (whole path
    /// segments: `cache/1` lists `cache/1/...`, not `cache/10/...`), with
    /// their keys as given to [`Storage::put_stream`].
    pub async fn list(&self, prefix: &str) -> SResult<Vec<Listed>> {
        let loc = self.key(prefix.trim_end_matches('/'));
        let read_err = |e| StorageError::Read {
            key: prefix.to_string(),
            store: self.label.clone(),
            source: Box::new(e),
        };
        let metas: Vec<object_store::ObjectMeta> =
            match self.store.list(Some(&loc)).try_collect().await {
                Ok(m) => m,
                // A local folder that was never written.
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(read_err(e)),
            };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                // object_store escapes some characters (`%#[]{}<>|^~`, ...)
                // in each segment: the key as it was given.
                let escaped = m.location.as_ref().strip_prefix(&self.prefix)?;
                let key = percent_encoding::percent_decode_str(escaped)
                    .decode_utf8()
                    .ok()?
                    .into_owned();
                Some(Listed {
                    key,
                    size: m.size,
                    modified: m.last_modified,
                })
            })
            .collect())
    }

    /// Remove the blob under `key` (nothing if there is none).
    pub async fn delete(&self, key: &str) -> SResult<()> {
        match self.store.delete(&self.key(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.write_err(key, e)),
        }
    }
}

/// What the store says of one blob ([`Storage::head`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BlobMeta {
    /// Size in bytes.
    pub size: u64,
    /// When it was written.
    pub modified: chrono::DateTime<chrono::Utc>,
    /// The store's entity tag, if it has one.
    pub etag: Option<String>,
}

impl From<object_store::ObjectMeta> for BlobMeta {
    fn from(m: object_store::ObjectMeta) -> Self {
        BlobMeta {
            size: m.size,
            modified: m.last_modified,
            etag: m.e_tag,
        }
    }
}

/// A blob found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was written.
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A file's bytes as a stream, chunk by chunk.
pub fn file_stream(file: tokio::fs::File) -> ByteStream {
    futures_util::stream::try_unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; READ_CHUNK];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), f)))
    })
    .boxed()
}

/// Write a stream to a file (created or replaced); returns its size.
pub async fn stream_to_file(mut body: ByteStream, path: &Path) -> std::io::Result<u64> {
    use tokio::io::AsyncWriteExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut f = tokio::fs::File::create(path).await?;
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        f.write_all(&chunk).await?;
    }
    f.flush().await?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
        futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
    }

    #[tokio::test]
    async fn small_and_multipart_blobs_round_trip_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(None, tmp.path()).unwrap();
        assert!(s.is_local());
        let n = s
            .put_stream(
                "artifacts/1/a b.txt",
                chunks(vec![b"hel".to_vec(), b"lo".to_vec()]),
                100,
            )
            .await
            .unwrap();
        assert_eq!(n, 5);
        // Where earlier versions put it: under the data dir, same path.
        assert_eq!(
            std::fs::read(tmp.path().join("artifacts/1/a b.txt")).unwrap(),
            b"hello"
        );
        let blob = s.get("artifacts/1/a b.txt").await.unwrap();
        assert_eq!(blob.size, 5);
        assert_eq!(blob.into_bytes().await.unwrap(), b"hello");

        // Larger than a part: written in parts, read back the same.
        let big: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 1024 * 1024]).collect();
        let want: Vec<u8> = big.concat();
        let n = s
            .put_stream("artifacts/big.bin", chunks(big), 64 * 1024 * 1024)
            .await
            .unwrap();
        assert_eq!(n, want.len() as u64);
        let got = s
            .get("artifacts/big.bin")
            .await
            .unwrap()
            .into_bytes()
            .await
            .unwrap();
        assert!(got == want, "the multipart blob differs");
        s.delete("artifacts/big.bin").await.unwrap();
        assert!(matches!(
            s.get("artifacts/big.bin").await,
            Err(StorageError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn folders_list_their_blobs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(None, tmp.path()).unwrap();
        assert!(s.list("cache/1").await.unwrap().is_empty());
        for k in [
            "cache/1/a/1/x.tgz",
            "cache/1/a/2/meta.json",
            "cache/10/b/3/meta.json",
        ] {
            s.put_bytes(k, Bytes::from_static(b"abc")).await.unwrap();
        }
        let mut keys: Vec<String> = s
            .list("cache/1/")
            .await
            .unwrap()
            .into_iter()
            .map(|l| {
                assert_eq!(l.size, 3);
                l.key
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["cache/1/a/1/x.tgz", "cache/1/a/2/meta.json"]);
        // Keys come back as they were given, whatever the store escaped.
        let odd = "artifacts/1/a~b#c[1] 100%é.txt";
        s.put_bytes(odd, Bytes::from_static(b"odd")).await.unwrap();
        let listed = s.list("artifacts/1").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, odd);
        assert_eq!(
            s.get(&listed[0].key)
                .await
                .unwrap()
                .into_bytes()
                .await
                .unwrap(),
            b"odd"
        );
    }

    #[tokio::test]
    async fn too_large_and_broken_uploads_are_refused_and_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::open(
            Some(&format!("file://{}", tmp.path().display())),
            tmp.path(),
        )
        .unwrap();
        let e = s
            .put_stream("x", chunks(vec![vec![0; 10], vec![0; 10]]), 15)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("larger than the limit of 15 bytes"),
            "{e}"
        );
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; PART_SIZE])),
            Err(std::io::Error::other("peer went away")),
        ])
        .boxed();
        let e = s.put_stream("y", broken, u64::MAX).await.unwrap_err();
        assert!(e.to_string().contains("broke off"), "{e}");
        assert!(matches!(
            s.get("x").await,
            Err(StorageError::NotFound { .. })
        ));
        assert!(matches!(
            s.get("y").await,
            Err(StorageError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn blobs_of_earlier_versions_with_escaped_names_are_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("artifacts")).unwrap();
        std::fs::write(tmp.path().join("artifacts/report[1]#2.txt"), b"old").unwrap();
        let s = Storage::open(None, tmp.path()).unwrap();
        let blob = s.get("artifacts/report[1]#2.txt").await.unwrap();
        assert_eq!(blob.into_bytes().await.unwrap(), b"old");
    }

    #[test]
    fn unusable_specs_say_what_to_give() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Storage::open(Some("ftp://x/y"), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("s3://bucket/prefix"), "{e}");
        let e = Storage::open(Some("file://relative"), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("absolute path"), "{e}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_urls_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Storage::open(Some("s3:///nobucket"), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("no bucket"), "{e}");
        let e = Storage::open(Some("s3://b/p?colour=red"), tmp.path()).unwrap_err();
        assert!(e.to_string().contains("unknown S3 option 'colour'"), "{e}");
        let s = Storage::open(
            Some("s3://b/some/prefix/?endpoint=http://127.0.0.1:1&region=x&access_key_id=a&secret_access_key=b"),
            tmp.path(),
        )
        .unwrap();
        assert!(!s.is_local());
        assert_eq!(s.to_string(), "s3://b/some/prefix");
        assert_eq!(s.key("artifacts/x").as_ref(), "some/prefix/artifacts/x");
    }
}
