-- Notifications (commit statuses, Slack, e-mail, Discord, Radicle, webhooks;
-- see engine/notify.rs). They are sent by background tasks, retried with
-- backoff: a task waits until run_after, counts its attempts, and is queued
-- at most once per dedup_key (run, event, channel), whichever server asks.
ALTER TABLE bg_tasks ADD COLUMN run_after BIGINT;
ALTER TABLE bg_tasks ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bg_tasks ADD COLUMN dedup_key TEXT;
CREATE UNIQUE INDEX bg_tasks_dedup ON bg_tasks(dedup_key);

-- One row per notification of a run: what is sent where, and how it went.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    run_id BIGINT NOT NULL,
    -- start | end
    event TEXT NOT NULL,
    -- github | gitlab | gitea | slack | email | discord | radicle | webhook
    channel TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    -- where it goes, secrets masked
    target TEXT NOT NULL DEFAULT '',
    -- pending | delivered | failed
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    delivered BIGINT
);
CREATE INDEX notifications_run ON notifications(run_id, id);
