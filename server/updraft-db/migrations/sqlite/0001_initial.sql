-- Updraft metadata schema, version 1. Timestamps are microseconds since the Unix epoch (UTC),
-- JSON values are TEXT, flags are 0/1 integers: the same SQL then runs on SQLite and PostgreSQL.

CREATE TABLE dag (
    dag_id TEXT PRIMARY KEY,
    is_paused INTEGER NOT NULL DEFAULT 0,
    is_stale INTEGER NOT NULL DEFAULT 0,
    fileloc TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    description TEXT,
    schedule TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    tags TEXT NOT NULL DEFAULT '[]',
    owners TEXT NOT NULL DEFAULT '[]',
    max_active_runs INTEGER NOT NULL DEFAULT 16,
    max_active_tasks INTEGER NOT NULL DEFAULT 16,
    task_count INTEGER NOT NULL DEFAULT 0,
    last_parsed_at BIGINT,
    last_parse_duration_us BIGINT,
    next_interval_start BIGINT,
    next_interval_end BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE import_error (
    fileloc TEXT PRIMARY KEY,
    message TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE TABLE dag_run (
    id INTEGER PRIMARY KEY,
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    run_type TEXT NOT NULL,
    state TEXT NOT NULL,
    logical_date BIGINT,
    data_interval_start BIGINT,
    data_interval_end BIGINT,
    run_after BIGINT NOT NULL,
    queued_at BIGINT,
    start_date BIGINT,
    end_date BIGINT,
    conf TEXT NOT NULL DEFAULT '{}',
    triggered_by TEXT,
    triggering_user TEXT,
    note TEXT,
    dag_version INTEGER NOT NULL DEFAULT 1,
    last_scheduling_decision BIGINT,
    scheduler_id TEXT,
    UNIQUE (dag_id, run_id)
);
CREATE INDEX dag_run_by_state ON dag_run (state, dag_id);
CREATE INDEX dag_run_by_dag ON dag_run (dag_id, run_after);

CREATE TABLE task_instance (
    run_pk BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL DEFAULT -1,
    uuid TEXT NOT NULL UNIQUE,
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'none',
    try_number INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER NOT NULL DEFAULT 0,
    operator TEXT NOT NULL,
    pool TEXT NOT NULL DEFAULT 'default_pool',
    pool_slots INTEGER NOT NULL DEFAULT 1,
    priority_weight INTEGER NOT NULL DEFAULT 1,
    scheduled_at BIGINT,
    queued_at BIGINT,
    start_date BIGINT,
    end_date BIGINT,
    duration_s REAL,
    next_attempt_at BIGINT,
    heartbeat_at BIGINT,
    hostname TEXT,
    pid INTEGER,
    executor TEXT,
    external_id TEXT,
    scheduler_id TEXT,
    rendered_fields TEXT,
    PRIMARY KEY (run_pk, task_id, map_index)
);
CREATE INDEX task_instance_by_state ON task_instance (state, priority_weight);
CREATE INDEX task_instance_by_dag ON task_instance (dag_id, task_id);

CREATE TABLE task_log (
    run_pk BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL DEFAULT -1,
    try_number INTEGER NOT NULL,
    location TEXT NOT NULL,
    PRIMARY KEY (run_pk, task_id, map_index, try_number)
);

CREATE TABLE xcom (
    run_pk BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    map_index INTEGER NOT NULL DEFAULT -1,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_pk, task_id, map_index, key)
);

CREATE TABLE pool (
    name TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    description TEXT
);
INSERT INTO pool (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

CREATE TABLE variable (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    description TEXT,
    is_encrypted INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE connection (
    conn_id TEXT PRIMARY KEY,
    conn_type TEXT NOT NULL,
    host TEXT,
    port INTEGER,
    schema_name TEXT,
    login TEXT,
    password TEXT,
    extra TEXT,
    description TEXT
);

CREATE TABLE account (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    email TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

CREATE TABLE scheduler_job (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    state TEXT NOT NULL
);
