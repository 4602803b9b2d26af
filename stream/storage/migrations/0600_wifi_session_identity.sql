-- Issue 11: a Wi-Fi session is (site, session_id, session_start). session_id is already
-- the edge's keyed hash of (NAS, Acct-Session-Id, pseudonymous client); session_start
-- (the event's data.session_start) separates an Acct-Session-Id a NAS reuses after a stop
-- (measured: merged into the old row, the new association was hidden and the old one kept
-- alive). Existing rows, and events whose source does not know the start (hostapd, Meraki,
-- older agents), get the fixed sentinel 0001-01-01 UTC and keep merging by id as before.
-- An agent upgraded mid-session stores the rest of that session as a new row; occupancy
-- counts distinct clients, so the change-over does not double count.
ALTER TABLE wifi_sessions
    ADD COLUMN session_start timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00';
ALTER TABLE wifi_sessions DROP CONSTRAINT wifi_sessions_pkey;
ALTER TABLE wifi_sessions ADD PRIMARY KEY (site, session_id, session_start);
