-- the run list (`conveyor runs`, the dashboard's runs page) at 100,000 runs and more.
-- runs that wrote an environment are found through their events: each run listed is probed here
-- (environment, run_id); without this index that is a scan of every event ever recorded.
CREATE INDEX events_environment_idx ON events (environment, run_id);

-- the runs of one status, newest first, read in order from the index (runs_status_idx would
-- collect every failed run ever and sort them); the newest-first listing and its keyset paging
-- use runs_started_at_idx (0001), a pipeline's runs runs_pipeline_idx.
CREATE INDEX runs_status_started_idx ON runs (status, started_at);
