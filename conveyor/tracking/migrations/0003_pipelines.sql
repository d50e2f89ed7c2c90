-- installed pipelines and every scheduled slot the scheduler has handled.
-- a slot row is claimed before its run starts; the primary key makes a slot run at most once,
-- across scheduler restarts and crashes.

CREATE TABLE pipelines (
    name TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    project_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    schedule TEXT NOT NULL,
    definition TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_slot TEXT
);

CREATE TABLE pipeline_slots (
    pipeline TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    status TEXT NOT NULL,
    run_id TEXT,
    claimed_at TEXT NOT NULL,
    finished_at TEXT,
    detail TEXT,
    PRIMARY KEY (pipeline, scheduled_at)
);

CREATE INDEX pipeline_slots_recent_idx ON pipeline_slots (pipeline, claimed_at);
