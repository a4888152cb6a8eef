-- Kraken schema, version 1: the whole data model of the original
-- (kraken-behaviour.md section 3). Timestamps are epoch milliseconds (UTC);
-- JSON columns hold what the original keeps in jsonb.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    password TEXT NOT NULL DEFAULT '',
    superadmin BOOLEAN NOT NULL DEFAULT FALSE,
    details TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE UNIQUE INDEX users_name ON users(name) WHERE deleted IS NULL;

CREATE TABLE user_sessions (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    details TEXT NOT NULL,
    last_used BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE UNIQUE INDEX user_sessions_token ON user_sessions(token);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    webhooks TEXT,
    user_data TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE UNIQUE INDEX projects_name ON projects(name) WHERE deleted IS NULL;

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id),
    project_id BIGINT NOT NULL REFERENCES projects(id),
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, project_id)
);

CREATE TABLE repo_changes (
    id INTEGER PRIMARY KEY,
    data TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);

CREATE TABLE branches (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    branch_name TEXT,
    ci_last_completed_flow_id BIGINT,
    ci_last_incomplete_flow_id BIGINT,
    retention_policy TEXT,
    user_data TEXT NOT NULL,
    user_data_ci TEXT NOT NULL,
    user_data_dev TEXT NOT NULL,
    env_vars TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE UNIQUE INDEX branches_name ON branches(project_id, name) WHERE deleted IS NULL;

CREATE TABLE secrets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    kind INTEGER NOT NULL,
    data TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX secrets_project ON secrets(project_id);

CREATE TABLE stages (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    schema TEXT NOT NULL,
    schema_code TEXT,
    triggers TEXT,
    timeouts TEXT,
    repo_access_token TEXT,
    repo_branch TEXT,
    repo_error TEXT,
    repo_refresh_interval TEXT,
    repo_refresh_job_id TEXT,
    repo_state INTEGER NOT NULL DEFAULT 0,
    repo_url TEXT,
    repo_version TEXT,
    schema_file TEXT,
    schema_from_repo_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    git_clone_params TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX stages_branch ON stages(branch_id);

-- Timed triggers of a stage (interval, date, cron, repo polling): what the
-- original keeps in its planner's job store.
CREATE TABLE stage_timers (
    id INTEGER PRIMARY KEY,
    stage_id BIGINT NOT NULL REFERENCES stages(id),
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    next_run_time BIGINT,
    created BIGINT NOT NULL
);
CREATE UNIQUE INDEX stage_timers_stage_kind ON stage_timers(stage_id, kind);
CREATE INDEX stage_timers_next ON stage_timers(next_run_time);

CREATE TABLE branch_sequences (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    stage_id BIGINT REFERENCES stages(id),
    value BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX branch_sequences_branch ON branch_sequences(branch_id, kind);

CREATE TABLE flows (
    id INTEGER PRIMARY KEY,
    finished BIGINT,
    state INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    branch_name TEXT,
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    args TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    label TEXT,
    trigger_data_id BIGINT REFERENCES repo_changes(id),
    summary TEXT,
    user_data TEXT NOT NULL,
    seq TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX flows_branch_kind ON flows(branch_id, kind, id);
CREATE INDEX flows_created ON flows(created);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started BIGINT,
    finished BIGINT,
    finished_again BIGINT,
    state INTEGER NOT NULL,
    email_sent BIGINT,
    note TEXT,
    stage_id BIGINT NOT NULL REFERENCES stages(id),
    flow_id BIGINT NOT NULL REFERENCES flows(id),
    hard_timeout_reached BIGINT,
    soft_timeout_reached BIGINT,
    args TEXT NOT NULL,
    fix_cnt INTEGER NOT NULL DEFAULT 0,
    new_cnt INTEGER NOT NULL DEFAULT 0,
    no_change_cnt INTEGER NOT NULL DEFAULT 0,
    regr_cnt INTEGER NOT NULL DEFAULT 0,
    issues_new INTEGER NOT NULL DEFAULT 0,
    issues_total INTEGER NOT NULL DEFAULT 0,
    jobs_error INTEGER NOT NULL DEFAULT 0,
    jobs_total INTEGER NOT NULL DEFAULT 0,
    tests_not_run INTEGER NOT NULL DEFAULT 0,
    tests_passed INTEGER NOT NULL DEFAULT 0,
    tests_total INTEGER NOT NULL DEFAULT 0,
    artifacts TEXT NOT NULL,
    label TEXT,
    reason TEXT NOT NULL,
    repo_data_id BIGINT REFERENCES repo_changes(id),
    processed_at BIGINT,
    seq TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX runs_flow ON runs(flow_id);
CREATE INDEX runs_stage ON runs(stage_id);
CREATE INDEX runs_unfinished ON runs(state) WHERE finished IS NULL;

CREATE TABLE systems (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    executor TEXT NOT NULL
);
CREATE UNIQUE INDEX systems_name_executor ON systems(name, executor);

CREATE TABLE agents_groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    project_id BIGINT REFERENCES projects(id),
    deployment TEXT,
    extra_attrs TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);

CREATE TABLE tools (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    configuration TEXT,
    fields TEXT NOT NULL,
    location TEXT,
    entry TEXT,
    version TEXT,
    url TEXT,
    tag TEXT,
    tool_file TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX tools_name ON tools(name);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    assigned BIGINT,
    started BIGINT,
    finished BIGINT,
    processing_started BIGINT,
    completed BIGINT,
    run_id BIGINT NOT NULL REFERENCES runs(id),
    state INTEGER NOT NULL,
    completion_status INTEGER,
    covered BOOLEAN NOT NULL DEFAULT FALSE,
    notes TEXT,
    agent_used_id BIGINT,
    agents_group_id BIGINT NOT NULL REFERENCES agents_groups(id),
    timeout INTEGER NOT NULL,
    system_id BIGINT NOT NULL REFERENCES systems(id),
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX jobs_run ON jobs(run_id);
CREATE INDEX jobs_agent ON jobs(agent_used_id);
CREATE INDEX jobs_waiting ON jobs(id) WHERE state = 2 AND agent_used_id IS NULL;
CREATE INDEX jobs_assigned ON jobs(state) WHERE state IN (3, 4);

CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    ip_address TEXT,
    state INTEGER NOT NULL DEFAULT 0,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    comment TEXT,
    status_line TEXT,
    job_id BIGINT REFERENCES jobs(id),
    authorized BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen BIGINT,
    host_info TEXT,
    user_attrs TEXT,
    extra_attrs TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE UNIQUE INDEX agents_address ON agents(address);

CREATE TABLE agent_assignments (
    agent_id BIGINT NOT NULL REFERENCES agents(id),
    agents_group_id BIGINT NOT NULL REFERENCES agents_groups(id),
    PRIMARY KEY (agent_id, agents_group_id)
);
CREATE INDEX agent_assignments_group ON agent_assignments(agents_group_id);

CREATE TABLE steps (
    id INTEGER PRIMARY KEY,
    idx INTEGER NOT NULL,
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    tool_id BIGINT NOT NULL REFERENCES tools(id),
    fields TEXT NOT NULL,
    result TEXT,
    status INTEGER,
    fields_masked TEXT,
    fields_raw TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE INDEX steps_job ON steps(job_id, idx);

CREATE TABLE test_cases (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    tool_id BIGINT NOT NULL REFERENCES tools(id),
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    deleted BIGINT
);
CREATE UNIQUE INDEX test_cases_name_tool ON test_cases(name, tool_id);

CREATE TABLE test_case_comments (
    id INTEGER PRIMARY KEY,
    test_case_id BIGINT NOT NULL REFERENCES test_cases(id),
    branch_id BIGINT NOT NULL REFERENCES branches(id),
    last_flow_id BIGINT REFERENCES flows(id),
    state INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX test_case_comments_tc ON test_case_comments(test_case_id, branch_id);

CREATE TABLE test_case_results (
    id INTEGER PRIMARY KEY,
    test_case_id BIGINT NOT NULL REFERENCES test_cases(id),
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    result INTEGER NOT NULL DEFAULT 0,
    vals TEXT,
    cmd_line TEXT,
    instability INTEGER NOT NULL DEFAULT 0,
    age INTEGER NOT NULL DEFAULT 0,
    change INTEGER NOT NULL DEFAULT 0,
    relevancy INTEGER NOT NULL DEFAULT 0,
    comment_id BIGINT REFERENCES test_case_comments(id)
);
CREATE INDEX test_case_results_tc ON test_case_results(test_case_id);
CREATE INDEX test_case_results_job ON test_case_results(job_id);
CREATE INDEX test_case_results_comment ON test_case_results(comment_id);

CREATE TABLE issues (
    id INTEGER PRIMARY KEY,
    issue_type INTEGER NOT NULL DEFAULT 0,
    line INTEGER,
    col INTEGER,
    path TEXT,
    symbol TEXT,
    message TEXT,
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    extra TEXT,
    age INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX issues_job ON issues(job_id);

CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL
);
CREATE UNIQUE INDEX files_path ON files(path);

CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY,
    file_id BIGINT NOT NULL REFERENCES files(id),
    flow_id BIGINT NOT NULL REFERENCES flows(id),
    run_id BIGINT NOT NULL REFERENCES runs(id),
    size BIGINT NOT NULL DEFAULT 0,
    section INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX artifacts_flow ON artifacts(flow_id);
CREATE INDEX artifacts_run ON artifacts(run_id);

CREATE TABLE settings (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    value TEXT,
    val_type TEXT NOT NULL,
    grp TEXT NOT NULL
);
CREATE UNIQUE INDEX settings_group_name ON settings(grp, name);

-- One row per log line: step output from agents and the server's own
-- (service) logs. `id` is the cursor clients follow.
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    time BIGINT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL,
    service TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '',
    lineno INTEGER NOT NULL DEFAULT 0,
    level TEXT NOT NULL DEFAULT 'INFO',
    branch_id BIGINT NOT NULL DEFAULT 0,
    flow_kind INTEGER NOT NULL DEFAULT 0,
    flow_id BIGINT NOT NULL DEFAULT 0,
    run_id BIGINT NOT NULL DEFAULT 0,
    job_id BIGINT NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT -1,
    tool TEXT NOT NULL DEFAULT '',
    agent_id BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX logs_job ON logs(job_id, id);
CREATE INDEX logs_run ON logs(run_id, id);
CREATE INDEX logs_service ON logs(service, id);

-- Background tasks of this server (what the original runs through RQ):
-- persisted so that a restart neither loses nor repeats them.
CREATE TABLE bg_tasks (
    id INTEGER PRIMARY KEY,
    func TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    created BIGINT NOT NULL,
    started BIGINT,
    ended BIGINT
);
CREATE INDEX bg_tasks_state ON bg_tasks(state, id);
