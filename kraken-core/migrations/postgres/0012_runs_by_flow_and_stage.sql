-- A flow's run of a stage, found by the flow: the results history walks a
-- branch's flows and looks up each one's run of the stage. With the flow
-- alone in the index a planner without statistics could as well read every
-- run of the stage for each flow; with both it has no reason to. The id
-- gives a flow's runs of a stage in order. It serves lookups by flow alone
-- as the index it replaces did.
CREATE INDEX runs_flow_stage ON runs(flow_id, stage_id, id);
DROP INDEX runs_flow;
