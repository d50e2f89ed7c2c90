-- extract rows belong to the relation (the design's name), not to the upstream table: two
-- designs over one upstream table keep separate rows and watermarks. table_name now holds the
-- relation and upstream_table the upstream schema.table it reads. Older rows keep a NULL
-- upstream_table: they are keyed by the upstream table, stay readable as history, and are never
-- used for a watermark.

ALTER TABLE extracts ADD COLUMN upstream_table TEXT;
ALTER TABLE extract_state ADD COLUMN upstream_table TEXT;
