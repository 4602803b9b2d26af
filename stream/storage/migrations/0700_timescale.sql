-- Time-series storage, TimescaleDB and plain PostgreSQL kept equivalent.
--
-- occupancy_hourly: the hourly series of the 1-minute rollups, per site and UTC hour:
--   connected_max (peak), connected_sum and minutes (mean = sum / minutes, exact over any
--   range of hours), new_sessions and ended_sessions (sums). With TimescaleDB it is a
--   continuous aggregate (real-time: the newest, unmaterialised hours are computed on read)
--   refreshed every minute over the last 7 days, so late events that change old minutes
--   reach it within a minute; without, a plain view with the same columns and values.
-- Hand-computed rollups stay where a value is not an aggregate of rows: occupancy_minute
-- (distinct clients whose sessions overlap a minute, from session intervals),
-- flow_hourly / flow_daily / flow_od_hourly (exact distinct visitors, dwell percentiles,
-- new vs returning, ordered site-to-site transitions): see stream/wifi and stream/flows.
--
-- Sizes behind the chunk intervals (HCMC, docs/flows.md): raw events reach ~2 million rows
-- a day at the city's peak, so one-day chunks (about 1 GB before compression) stay well
-- inside memory; minute rollups are 20 sites x 1,440 rows a day, so a week per chunk.
--
-- Retention matches the README: raw events, sessions and presence 30 days, minute rollups
-- 90 days, hourly series and flows 2 years. With TimescaleDB the hypertables below carry
-- retention policies (the `tourpulse db retention` job deletes only in the others);
-- without it the job does everything.
DO $$
BEGIN
    IF NOT tp_timescale() THEN
        CREATE VIEW occupancy_hourly AS
            SELECT site,
                   date_trunc('hour', minute) AS hour,
                   max(connected) AS connected_max,
                   sum(connected)::bigint AS connected_sum,
                   count(*)::bigint AS minutes,
                   sum(new_sessions)::bigint AS new_sessions,
                   sum(ended_sessions)::bigint AS ended_sessions
            FROM occupancy_minute
            GROUP BY site, date_trunc('hour', minute);
        RETURN;
    END IF;
    CREATE EXTENSION IF NOT EXISTS timescaledb;

    -- Raw events: compressed per site after a week (late events arrive within hours).
    PERFORM remove_retention_policy('wifi_session_events', if_exists => true);
    PERFORM add_retention_policy('wifi_session_events', interval '30 days');
    ALTER TABLE wifi_session_events SET (
        timescaledb.compress,
        timescaledb.compress_segmentby = 'site',
        timescaledb.compress_orderby = 'event_time DESC, event_id');
    PERFORM add_compression_policy('wifi_session_events', interval '7 days');

    -- Minute rollups.
    PERFORM create_hypertable('occupancy_minute', 'minute',
                              chunk_time_interval => interval '7 days', migrate_data => true);
    ALTER TABLE occupancy_minute SET (
        timescaledb.compress,
        timescaledb.compress_segmentby = 'site',
        timescaledb.compress_orderby = 'minute DESC');
    PERFORM add_compression_policy('occupancy_minute', interval '14 days');
    PERFORM add_retention_policy('occupancy_minute', interval '90 days');
    -- WITH NO DATA: allowed inside the migration's transaction; the policy fills it.
    EXECUTE $cagg$
        CREATE MATERIALIZED VIEW occupancy_hourly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT site,
                   time_bucket(interval '1 hour', minute) AS hour,
                   max(connected) AS connected_max,
                   sum(connected)::bigint AS connected_sum,
                   count(*)::bigint AS minutes,
                   sum(new_sessions)::bigint AS new_sessions,
                   sum(ended_sessions)::bigint AS ended_sessions
            FROM occupancy_minute
            GROUP BY site, time_bucket(interval '1 hour', minute)
        WITH NO DATA
    $cagg$;
    PERFORM add_continuous_aggregate_policy('occupancy_hourly',
        start_offset => interval '7 days', end_offset => interval '1 hour',
        schedule_interval => interval '1 minute');
    PERFORM add_retention_policy('occupancy_hourly', interval '730 days');

    -- Presence and hourly flows: hypertables for their retention policies.
    PERFORM create_hypertable('visitor_presence', 'day',
                              chunk_time_interval => interval '7 days', migrate_data => true);
    PERFORM add_retention_policy('visitor_presence', interval '30 days');
    PERFORM create_hypertable('flow_hourly', 'hour',
                              chunk_time_interval => interval '30 days', migrate_data => true);
    PERFORM add_retention_policy('flow_hourly', interval '730 days');
    PERFORM create_hypertable('flow_od_hourly', 'hour',
                              chunk_time_interval => interval '30 days', migrate_data => true);
    PERFORM add_retention_policy('flow_od_hourly', interval '730 days');
    PERFORM create_hypertable('flow_daily', 'day',
                              chunk_time_interval => interval '180 days', migrate_data => true);
    PERFORM add_retention_policy('flow_daily', interval '730 days');
END $$;
