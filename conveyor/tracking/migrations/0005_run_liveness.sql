-- what tells a dead run from a live one: the process's start time (so a reused pid is not
-- mistaken for the run's process) and a heartbeat (for runs on another host).
-- a run whose process died without recording its end is marked 'abandoned' by its readers.

ALTER TABLE runs ADD COLUMN process_start TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_at TEXT;

CREATE INDEX runs_status_idx ON runs (status);
