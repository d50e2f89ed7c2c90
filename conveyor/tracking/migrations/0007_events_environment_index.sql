-- the runs that wrote an environment (`conveyor runs --env`, the dashboard's environment filter)
-- are found through their events: without this index that is a scan of every event ever recorded.
-- the newest-first listing and its keyset paging use runs_started_at_idx (0001).

CREATE INDEX events_environment_idx ON events (environment, run_id);
