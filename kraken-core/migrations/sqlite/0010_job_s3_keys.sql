-- Per-job credentials of the S3 endpoint (`--s3-bind`) the original
-- agent's git, artifacts and cache tools talk to: the access key is
-- `KKJOB<job id>`, the secret is made when the job's first step that needs
-- it is handed out, and both are valid only while the job runs.
CREATE TABLE job_s3_keys (
    job_id BIGINT PRIMARY KEY,
    secret TEXT NOT NULL,
    created BIGINT NOT NULL
);
