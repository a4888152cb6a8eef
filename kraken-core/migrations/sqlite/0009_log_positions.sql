-- A page of a big job log is found by position through an index, instead of
-- counting the job's lines for every page and skipping the lines before it.
-- Kept in the transaction that stores the lines: the count of a job's lines
-- (and of its tool output) and of each step's lines, and each line's
-- position among its job's tool output and among its step's lines.
CREATE TABLE job_log_counts (
    job_id BIGINT PRIMARY KEY,
    lines BIGINT NOT NULL,
    tool_lines BIGINT NOT NULL
);
CREATE TABLE step_log_counts (
    job_id BIGINT NOT NULL,
    step BIGINT NOT NULL,
    lines BIGINT NOT NULL,
    PRIMARY KEY (job_id, step)
);
ALTER TABLE logs ADD COLUMN tool_pos BIGINT;
ALTER TABLE logs ADD COLUMN step_pos BIGINT;

-- The logs already stored.
UPDATE logs SET tool_pos = r.p FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY id) - 1 AS p
    FROM logs WHERE job_id <> 0 AND tool <> '' AND service = 'agent'
) AS r WHERE logs.id = r.id;
UPDATE logs SET step_pos = r.p FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id, step ORDER BY id) - 1 AS p
    FROM logs WHERE job_id <> 0
) AS r WHERE logs.id = r.id;
INSERT INTO job_log_counts (job_id, lines, tool_lines)
    SELECT job_id, COUNT(*), SUM(CASE WHEN tool <> '' AND service = 'agent' THEN 1 ELSE 0 END)
    FROM logs WHERE job_id <> 0 GROUP BY job_id;
INSERT INTO step_log_counts (job_id, step, lines)
    SELECT job_id, step, COUNT(*) FROM logs WHERE job_id <> 0 GROUP BY job_id, step;

CREATE INDEX logs_job_tool_pos ON logs(job_id, tool_pos) WHERE tool_pos IS NOT NULL;
CREATE INDEX logs_job_step_pos ON logs(job_id, step, step_pos) WHERE step_pos IS NOT NULL;
