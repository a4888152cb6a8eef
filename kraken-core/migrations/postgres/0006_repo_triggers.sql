-- Builds started by repositories: webhook deliveries already taken (so the
-- same delivery never starts two flows, also across servers), the state of
-- repository polling per trigger (last commit seen per repository URL), and
-- when a stage's schema was last read from its repository.
CREATE TABLE webhook_deliveries (
    project_id BIGINT NOT NULL,
    delivery TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (project_id, delivery)
);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created);
ALTER TABLE stage_timers ADD COLUMN state TEXT;
ALTER TABLE stages ADD COLUMN last_repo_refresh BIGINT;
