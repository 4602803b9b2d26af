-- The session merge returns each session's start and end from before its batch, so that
-- exactly the minutes they moved are recomputed. It read them with a second probe of the
-- primary key per session (a LATERAL lookup beside the upsert); now the upsert keeps them
-- in the row version it writes and RETURNING has them. NULL on a row never merged since
-- its insert. Nullable, no default: adding them rewrites nothing.
ALTER TABLE wifi_sessions
    ADD COLUMN IF NOT EXISTS prev_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS prev_ends_at timestamptz;
