-- events need an autoincrement key, which is spelled differently on each backend.

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    relation TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_s DOUBLE PRECISION,
    rows BIGINT,
    bytes BIGINT,
    error TEXT,
    detail TEXT
);

CREATE INDEX events_run_idx ON events (run_id, id);
CREATE INDEX events_relation_idx ON events (relation, started_at);
