-- The flows worker's session merge, made heap-only (HOT) as 1000 did for wifi_sessions.
-- Every interim moves last_seen, and with it end_seen (the stop, else the latest event):
-- one was in the (site, end_seen) index and the other in the open sessions' index, so no
-- merge could update its row in place. Both indexes now hold whole UTC hours (which are
-- also local hours in Asia/Ho_Chi_Minh): an interim moves them once an hour, PostgreSQL
-- updates the row in place whenever no indexed value changed, and the dwell recompute
-- asks for exactly one such hour; fillfactor 80 leaves each page room for the new version.
-- Adding stored generated columns rewrites the table once.
ALTER TABLE visitor_sessions
    ADD COLUMN IF NOT EXISTS end_hour timestamptz NOT NULL GENERATED ALWAYS AS
        (date_bin('1 hour', COALESCE(ended_at, last_seen), TIMESTAMPTZ '2000-01-01 00:00:00+00'))
        STORED,
    ADD COLUMN IF NOT EXISTS last_hour timestamptz NOT NULL GENERATED ALWAYS AS
        (date_bin('1 hour', last_seen, TIMESTAMPTZ '2000-01-01 00:00:00+00')) STORED;
CREATE INDEX IF NOT EXISTS visitor_sessions_site_end_hour ON visitor_sessions (site, end_hour);
CREATE INDEX IF NOT EXISTS visitor_sessions_open_hour ON visitor_sessions (last_hour)
    WHERE ended_at IS NULL;
DROP INDEX IF EXISTS visitor_sessions_site_end;
DROP INDEX IF EXISTS visitor_sessions_open;
ALTER TABLE visitor_sessions SET (fillfactor = 80);
