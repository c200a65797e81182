-- Requests to change task instances of a run (clear, mark success/failed/skipped, mark the
-- whole run), made by the CLI or the API and carried out by the scheduler that owns the run,
-- inside its own loop, so they never race with the tries it is running.
CREATE TABLE run_request (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_pk BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    task_ids TEXT NOT NULL DEFAULT '[]',
    downstream INTEGER NOT NULL DEFAULT 0,
    upstream INTEGER NOT NULL DEFAULT 0,
    only_failed INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX run_request_by_run ON run_request (run_pk);
