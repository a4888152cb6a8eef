-- What a failed test said: its message and type (JUnit <failure>/<error>),
-- its captured output, and how long it took.
ALTER TABLE test_case_results ADD COLUMN message TEXT;
ALTER TABLE test_case_results ADD COLUMN failure_type TEXT;
ALTER TABLE test_case_results ADD COLUMN output TEXT;
ALTER TABLE test_case_results ADD COLUMN duration_ms BIGINT;
