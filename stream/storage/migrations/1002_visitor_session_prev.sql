-- The flows worker's session merge returns each session's start and end_seen from before
-- its batch (the dwell hours they left need a recompute). It read them with a second probe
-- of the primary key per session (a LATERAL lookup beside the upsert); now the upsert keeps
-- them in the row version it writes, as 0900 did for wifi_sessions. NULL on a row never
-- merged since its insert. Nullable, no default: adding them rewrites nothing.
ALTER TABLE visitor_sessions
    ADD COLUMN IF NOT EXISTS prev_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS prev_end_seen timestamptz;
