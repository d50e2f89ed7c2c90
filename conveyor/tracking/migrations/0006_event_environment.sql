-- the environment each event's step ran in: a pipeline loads two environments in one run,
-- and `runs show` must tell their steps apart.

ALTER TABLE events ADD COLUMN environment TEXT;
