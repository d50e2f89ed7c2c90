-- portable subset only (TEXT, BIGINT, INTEGER, DOUBLE PRECISION) so sqlite and postgresql share it.
-- timestamps are ISO-8601 UTC text with microseconds: fixed width, so they sort as text.

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    project TEXT NOT NULL,
    environment TEXT,
    pipeline TEXT,
    selection TEXT,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_s DOUBLE PRECISION,
    error TEXT,
    summary TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    username TEXT,
    conveyor_version TEXT
);

CREATE INDEX runs_started_at_idx ON runs (started_at);
CREATE INDEX runs_pipeline_idx ON runs (pipeline, started_at);

CREATE TABLE extracts (
    extract_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    source TEXT NOT NULL,
    table_name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_s DOUBLE PRECISION,
    rows BIGINT,
    bytes BIGINT,
    watermark_low TEXT,
    watermark_high TEXT,
    manifest_path TEXT,
    error TEXT
);

CREATE INDEX extracts_run_idx ON extracts (run_id);
CREATE INDEX extracts_table_idx ON extracts (source, table_name, started_at);

-- one row per (source, table): the latest attempt plus the committed watermark.
CREATE TABLE extract_state (
    source TEXT NOT NULL,
    table_name TEXT NOT NULL,
    status TEXT NOT NULL,
    last_extract_id TEXT NOT NULL,
    last_run_id TEXT,
    last_success_extract_id TEXT,
    last_success_at TEXT,
    watermark TEXT,
    rows BIGINT,
    bytes BIGINT,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    PRIMARY KEY (source, table_name)
);

CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    acquired_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
