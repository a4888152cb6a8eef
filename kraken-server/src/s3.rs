//! The S3 endpoint (`--s3-bind`): the protocol the original agent's
//! `git`, `artifacts` and `cache` tools speak to MinIO, served with the
//! `s3s` crate over this instance's object storage. Everything it may do is
//! decided in `kraken_core::api::s3`; this is the translation between S3
//! requests and those calls.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use kraken_core::Core;
use kraken_core::api::s3::{S3Failure, S3Job};
use kraken_core::storage::{BlobMeta, ByteStream};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, Bucket, BucketLocationConstraint,
    CommonPrefix, CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CreateBucketInput,
    CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, ETag,
    GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput, GetObjectOutput,
    HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListBucketsInput,
    ListBucketsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp,
    UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The S3 operations, over a [`Core`].
struct KrakenS3 {
    core: Arc<Core>,
}

/// One page of a listing.
struct Page {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    truncated: bool,
    /// Where the next page starts (its marker or continuation token).
    next: Option<String>,
}

/// Checks signatures with the per-job secrets.
struct JobKeys {
    core: Arc<Core>,
}

// Taken by value: it is the `map_err` of every call.
#[allow(clippy::needless_pass_by_value)]
fn s3_error(f: S3Failure) -> S3Error {
    let code = match &f {
        S3Failure::InvalidAccessKeyId(_) => S3ErrorCode::InvalidAccessKeyId,
        S3Failure::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        S3Failure::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
        S3Failure::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
        S3Failure::AccessDenied(_) => S3ErrorCode::AccessDenied,
        S3Failure::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        S3Failure::EntityTooLarge => S3ErrorCode::EntityTooLarge,
        S3Failure::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
        S3Failure::Internal(_) => S3ErrorCode::InternalError,
    };
    if code == S3ErrorCode::InternalError {
        // The details (database, storage paths) are for the server's log.
        tracing::warn!(error = %f, "S3 request failed");
        return S3Error::with_message(code, "internal error: see the server's log");
    }
    S3Error::with_message(code, f.to_string())
}

fn etag(meta: &BlobMeta) -> Option<ETag> {
    meta.etag
        .as_deref()
        .map(|t| ETag::Strong(t.trim_matches('"').to_string()))
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from(std::time::SystemTime::from(t))
}

/// A request body as the core takes it.
fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(b) => b.map_err(std::io::Error::other).boxed(),
        None => futures_util::stream::empty().boxed(),
    }
}

impl KrakenS3 {
    async fn job<T>(&self, req: &S3Request<T>) -> S3Result<S3Job> {
        // Signature V2 signs no body and no time the server checks (a
        // request seen once could be replayed while its job runs): V4
        // only, as minio-py and every current client sign.
        if req.credentials.is_some() && req.region.is_none() {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "sign requests with AWS Signature Version 4",
            ));
        }
        let key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.core.s3_job(key).await.map_err(s3_error)
    }

    async fn list(
        &self,
        job: &S3Job,
        bucket: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: Option<i32>,
    ) -> S3Result<Page> {
        let listing = self
            .core
            .s3_list(job, bucket, prefix.unwrap_or_default(), delimiter)
            .await
            .map_err(s3_error)?;
        // Objects and prefixes together, in key order, after the marker,
        // at most max-keys of them (1000 unless asked for fewer).
        let max = usize::try_from(max_keys.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
        let mut all: Vec<(String, Option<kraken_core::api::s3::S3Object>)> = listing
            .objects
            .into_iter()
            .map(|o| (o.key.clone(), Some(o)))
            .chain(listing.prefixes.into_iter().map(|p| (p, None)))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        // (max-keys=0 lists nothing and is not truncated: a client would
        // ask again forever.)
        let truncated = max > 0 && all.len() > max;
        all.truncate(max);
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        for (key, o) in all {
            match o {
                Some(o) => objects.push(Object {
                    key: Some(o.key),
                    size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                    last_modified: Some(timestamp(o.modified)),
                    ..Default::default()
                }),
                None => prefixes.push(CommonPrefix { prefix: Some(key) }),
            }
        }
        // The next page starts after the last key of this one.
        let next = truncated
            .then(|| {
                objects
                    .iter()
                    .filter_map(|o| o.key.clone())
                    .chain(prefixes.iter().filter_map(|p| p.prefix.clone()))
                    .max()
            })
            .flatten();
        Ok(Page {
            objects,
            prefixes,
            truncated,
            next,
        })
    }
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for JobKeys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        self.core
            .s3_secret(access_key)
            .await
            .map(s3s::auth::SecretKey::from)
            .map_err(s3_error)
    }
}

#[async_trait::async_trait]
impl S3 for KrakenS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let job = self.job(&req).await?;
        let buckets = job
            .buckets()
            .into_iter()
            .map(|name| Bucket {
                name: Some(name),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let job = self.job(&req).await?;
        self.core
            .s3_bucket(&job, &req.input.bucket)
            .map_err(s3_error)?;
        // us-east-1, as MinIO answers by default.
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from("us-east-1".to_string())),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let job = self.job(&req).await?;
        self.core
            .s3_bucket(&job, &req.input.bucket)
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        // A job's buckets always exist; others cannot be made.
        let job = self.job(&req).await?;
        self.core.s3_bucket(&job, &req.input.bucket).map_err(|_| {
            S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "buckets are made by the server: a job has its branch's buckets only",
            )
        })?;
        Err(S3Error::with_message(
            S3ErrorCode::BucketAlreadyOwnedByYou,
            format!("bucket {} exists", req.input.bucket),
        ))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let job = self.job(&req).await?;
        let meta = self
            .core
            .s3_head(&job, &req.input.bucket, &req.input.key)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            last_modified: Some(timestamp(meta.modified)),
            e_tag: etag(&meta),
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let job = self.job(&req).await?;
        let range = match req.input.range {
            None => None,
            Some(r) => {
                let meta = self
                    .core
                    .s3_head(&job, &req.input.bucket, &req.input.key)
                    .await
                    .map_err(s3_error)?;
                let r = r
                    .check(meta.size)
                    .map_err(|_| S3Error::new(S3ErrorCode::InvalidRange))?;
                Some(r)
            }
        };
        let partial = range.is_some();
        let (meta, got, blob) = self
            .core
            .s3_get(&job, &req.input.bucket, &req.input.key, range)
            .await
            .map_err(s3_error)?;
        let body = sync_wrapper::SyncStream::new(blob.body);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(i64::try_from(got.end - got.start).unwrap_or(i64::MAX)),
            content_range: partial.then(|| {
                format!(
                    "bytes {}-{}/{}",
                    got.start,
                    got.end.saturating_sub(1),
                    meta.size
                )
            }),
            last_modified: Some(timestamp(meta.modified)),
            e_tag: etag(&meta),
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let job = self.job(&req).await?;
        let input = req.input;
        let meta = self
            .core
            .s3_put(&job, &input.bucket, &input.key, body_stream(input.body))
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: etag(&meta),
            size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let job = self.job(&req).await?;
        let i = &req.input;
        // The continuation token is the last key of the previous page.
        let after = i.continuation_token.as_deref().or(i.start_after.as_deref());
        let page = self
            .list(
                &job,
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                after,
                i.max_keys,
            )
            .await?;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            max_keys: Some(i.max_keys.unwrap_or(1000)),
            key_count: Some(
                i32::try_from(page.objects.len() + page.prefixes.len()).unwrap_or(i32::MAX),
            ),
            is_truncated: Some(page.truncated),
            next_continuation_token: page.next,
            continuation_token: i.continuation_token.clone(),
            start_after: i.start_after.clone(),
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let job = self.job(&req).await?;
        let i = &req.input;
        let page = self
            .list(
                &job,
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                i.marker.as_deref(),
                i.max_keys,
            )
            .await?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            marker: i.marker.clone(),
            max_keys: Some(i.max_keys.unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_marker: page.next,
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let job = self.job(&req).await?;
        let i = &req.input;
        let id = self
            .core
            .s3_create_upload(&job, &i.bucket, &i.key)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let job = self.job(&req).await?;
        let i = req.input;
        let meta = self
            .core
            .s3_upload_part(
                &job,
                &i.bucket,
                &i.key,
                &i.upload_id,
                i.part_number,
                body_stream(i.body),
            )
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: etag(&meta),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let job = self.job(&req).await?;
        let i = &req.input;
        let numbers: Vec<i32> = i
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.part_number)
            .collect();
        // Joining the parts takes a while for a big object: the answer is
        // kept alive (whitespace every 100 ms, as MinIO and AWS do) so a
        // client's read timeout does not fire meanwhile.
        let core = self.core.clone();
        let (bucket, key, upload_id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let future = Box::pin(async move {
            let meta = core
                .s3_complete_upload(&job, &bucket, &key, &upload_id, &numbers)
                .await
                .map_err(s3_error)?;
            Ok(CompleteMultipartUploadOutput {
                bucket: Some(bucket),
                key: Some(key),
                e_tag: etag(&meta),
                ..Default::default()
            })
        });
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            future: Some(future),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let job = self.job(&req).await?;
        let i = &req.input;
        self.core
            .s3_abort_upload(&job, &i.bucket, &i.key, &i.upload_id)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serve the S3 endpoint on `listener` until the task is aborted.
pub fn serve(core: Arc<Core>, listener: TcpListener) -> JoinHandle<()> {
    let mut b = s3s::service::S3ServiceBuilder::new(KrakenS3 { core: core.clone() });
    b.set_auth(JobKeys { core });
    // No browser-form uploads (PostObject, which s3s would buffer whole
    // before refusing), and small XML bodies (a multipart completion).
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = 0;
    config.form_max_field_size = 64 * 1024;
    config.form_max_fields_size = 256 * 1024;
    config.form_max_parts = 32;
    config.xml_max_body_size = 1024 * 1024;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    let service = b.build();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer): (_, SocketAddr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "S3 endpoint: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let service = service.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let io = hyper_util::rt::TokioIo::new(tcp);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "S3 connection ended");
                }
            });
        }
    })
}
