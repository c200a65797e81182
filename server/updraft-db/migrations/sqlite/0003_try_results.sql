-- How each try ended, written by the process that ran it (`updraft tasks run` in a task pod),
-- and read by the executor when the pod is gone: the pod's exit code alone cannot say
-- "skipped", "reschedule in 5 minutes" or "failed, do not retry".
CREATE TABLE try_result (
    run_pk BIGINT NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    try_number INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT,
    retryable INTEGER NOT NULL DEFAULT 0,
    reschedule_after_ms BIGINT,
    finished_at BIGINT NOT NULL,
    PRIMARY KEY (run_pk, task_id, try_number)
);
