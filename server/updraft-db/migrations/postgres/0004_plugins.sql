-- The deployment's operator plugins, shared by every scheduler, API server and task pod: each
-- component's bytes stored once under their SHA-256 (content-addressed; a version stays after
-- it is replaced, so a try dispatched with it can still run it), and the version each
-- operator name points to now. Each process compiles a component into its own cache.
CREATE TABLE plugin_component (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    stored_at BIGINT NOT NULL,
    -- Last, so that reading the other columns (the listing every process polls) never walks
    -- the bytes' overflow pages on SQLite.
    content BYTEA NOT NULL
);

CREATE TABLE plugin (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES plugin_component (sha256),
    installed_by TEXT NOT NULL,
    installed_at BIGINT NOT NULL
);
