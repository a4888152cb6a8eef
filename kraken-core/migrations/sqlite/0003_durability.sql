-- Durability: leases on work in progress, so any server finishes what a
-- stopped one left half done (see engine/recovery.rs).

-- A run being planned (jobs not created yet): until when its planner holds it.
ALTER TABLE runs ADD COLUMN planning_until BIGINT;
-- A completed run whose follow-up (counters, child stages, flow completion,
-- analysis queued) is not done yet: until when its server holds it.
ALTER TABLE runs ADD COLUMN completing_until BIGINT;
CREATE INDEX runs_planning ON runs(planning_until) WHERE planning_until IS NOT NULL;
CREATE INDEX runs_completing ON runs(completing_until) WHERE completing_until IS NOT NULL;

-- Background tasks are claimed with a lease the worker renews while it works.
ALTER TABLE bg_tasks ADD COLUMN claimed_by TEXT;
ALTER TABLE bg_tasks ADD COLUMN lease_until BIGINT;

-- A job retried on another agent after its agent went silent.
ALTER TABLE jobs ADD COLUMN retry_of BIGINT;
-- How many times a step was handed to an agent (more than 1: it was restarted).
ALTER TABLE steps ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
