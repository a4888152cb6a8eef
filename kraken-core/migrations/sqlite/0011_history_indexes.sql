-- Indexes that keep the work of each flow independent of how much history
-- the database holds (finished tasks, earlier flows and runs).

-- Tasks waiting or running: what a worker claims and what an enqueue
-- compares with. Finished tasks stay for the record and are never scanned.
CREATE INDEX bg_tasks_active ON bg_tasks(id) WHERE state IN ('queued', 'started');

-- The previous and the next flow of a branch and kind, in the order they
-- were created: where the results history of a stage looks for the run
-- before and after one.
CREATE INDEX flows_branch_kind_created ON flows(branch_id, kind, created, id);

-- Completed runs whose results are not analysed yet (state 2, `completed`):
-- what recovery looks for after a restart.
CREATE INDEX runs_unprocessed ON runs(finished) WHERE state = 2;

-- Runs and flows going on, for the recovery pass every few seconds: runs in
-- progress or replayed (states 1 and 5), runs being created (6), flows in
-- progress (1).
CREATE INDEX runs_open ON runs(id) WHERE state IN (1, 5);
CREATE INDEX runs_creating ON runs(id) WHERE state = 6;
CREATE INDEX flows_in_progress ON flows(id) WHERE state = 1;
