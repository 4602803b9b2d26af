-- Which storage the migrations build: TimescaleDB (hypertables, continuous aggregates,
-- compression and retention policies) when its library is preloaded, else the plain
-- PostgreSQL equivalent (native partitions, views, the `tourpulse db retention` job).
-- The migrator may force plain PostgreSQL on a TimescaleDB server with the session
-- setting tourpulse.storage_backend = 'plain' (the test suite runs both backends so).
CREATE OR REPLACE FUNCTION tp_timescale() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('tourpulse.storage_backend', true), '') <> 'plain'
       AND (EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
            OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
                AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%'))
$$;
