-- TimescaleDB's create_hypertable adds an index on the time column unless told otherwise
-- (create_default_indexes), which 0001 and 0700 did not say. Each is one more B-tree
-- written by every insert, and the plain-PostgreSQL layout has none of them, so both
-- backends did not do the same work: on the ingest path the minute rollups' extra index
-- made their upserts ~40% costlier in server CPU (bench storage, measured). Dropped here:
--   wifi_session_events (event_time DESC)  the primary key (event_time, event_id) leads
--                                          with event_time already
--   occupancy_minute (minute DESC)         reads are per site, on the key (site, minute);
--                                          the continuous aggregate's refresh scans only
--                                          its invalidated range's chunk (as fast without)
--   visitor_presence (day DESC)            visitor_presence_day_client leads with day
--   flow_od_hourly (hour DESC)             the primary key leads with hour
--   flow_daily (day DESC)                  20 rows a day, read by retention only
-- Chunks' copies go with the hypertable's index. No-op on plain PostgreSQL.
DROP INDEX IF EXISTS wifi_session_events_event_time_idx;
DROP INDEX IF EXISTS occupancy_minute_minute_idx;
DROP INDEX IF EXISTS visitor_presence_day_idx;
DROP INDEX IF EXISTS flow_od_hourly_hour_idx;
DROP INDEX IF EXISTS flow_daily_day_idx;
