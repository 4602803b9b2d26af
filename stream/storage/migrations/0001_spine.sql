-- The spine: raw Wi-Fi session events, session state, per-site progress and 1-minute
-- occupancy rollups. Applied once by stream.storage.migrate (inside one transaction).

-- Raw events. The primary key includes event_time because a partitioned table's unique
-- keys must contain the partition key; a replayed event has the same (event_time,
-- event_id), so INSERT ... ON CONFLICT DO NOTHING is the authoritative deduplication.
-- Only the primary key is indexed: this table is written at full stream rate and read
-- only for audits and replays, so every extra index would cost ingest throughput.
--
-- Storage branch (tp_timescale(), 0000): with TimescaleDB the table becomes a hypertable
-- with daily chunks (policies in 0700); otherwise native daily range partitions
-- (tp_ensure_event_partitions, called by the migrator and by every worker on start and
-- hourly) plus a default partition that catches events far outside the pre-created days.
DO $$
DECLARE
    columns text := $cols$
        event_id        text        NOT NULL,
        event_time      timestamptz NOT NULL,
        ingest_time     timestamptz,
        stored_at       timestamptz NOT NULL DEFAULT now(),
        site            text        NOT NULL,
        device          text        NOT NULL,
        type            text        NOT NULL,
        client_id       text        NOT NULL,
        session_id      text        NOT NULL,
        ap              text        NOT NULL,
        ssid            text,
        randomized_mac  boolean     NOT NULL DEFAULT false,
        signal_dbm      smallint,
        rx_bytes        bigint,
        tx_bytes        bigint,
        session_seconds integer,
        terminate_cause text,
        PRIMARY KEY (event_time, event_id)
    $cols$;
    timescale boolean := tp_timescale();
BEGIN
    IF timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE format('CREATE TABLE wifi_session_events (%s)', columns);
        EXECUTE $ts$SELECT create_hypertable('wifi_session_events', 'event_time',
                                              chunk_time_interval => interval '1 day')$ts$;
    ELSE
        EXECUTE format('CREATE TABLE wifi_session_events (%s) PARTITION BY RANGE (event_time)',
                       columns);
        CREATE TABLE wifi_session_events_default PARTITION OF wifi_session_events DEFAULT;
    END IF;
END $$;

-- Creates the daily partitions [first_day, first_day + days) that do not exist yet.
-- A day whose rows already sit in the default partition is skipped (PostgreSQL refuses
-- to create it); those rows stay queryable there. No-op on a hypertable.
CREATE FUNCTION tp_ensure_event_partitions(first_day date, days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    name text;
    created integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table
                   WHERE partrelid = 'wifi_session_events'::regclass) THEN
        RETURN 0;
    END IF;
    -- Two workers starting together must not race on the same CREATE TABLE.
    PERFORM pg_advisory_xact_lock(hashtext('tp_ensure_event_partitions'));
    FOR i IN 0 .. days - 1 LOOP
        day := first_day + i;
        name := format('wifi_session_events_p%s', to_char(day, 'YYYYMMDD'));
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM wifi_session_events_default
                   WHERE event_time >= day::timestamp AT TIME ZONE 'UTC'
                     AND event_time < (day + 1)::timestamp AT TIME ZONE 'UTC') THEN
            RAISE NOTICE 'skipping partition %: its rows are in the default partition', name;
            CONTINUE;
        END IF;
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF wifi_session_events FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;

-- Serialises writers of the same sites across workers and the minute-closing timer:
-- normally a site's events are all in one Kafka partition owned by one worker, but during a
-- rebalance (or with a zombie worker) two transactions could recompute the same minutes.
-- Locks are taken in a fixed order so two multi-site transactions cannot deadlock.
CREATE FUNCTION tp_lock_sites(sites text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    k bigint;
BEGIN
    FOR k IN SELECT DISTINCT hashtextextended(s, 0) FROM unnest(sites) AS s ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
END $$;

-- One row per session, merged idempotently and order-independently: started_at is the
-- earliest event, last_seen the latest, ended_at the earliest stop. ends_at is when the
-- session stops counting as connected: ended_at, else last_seen + the worker's session
-- timeout (a client whose stop never arrives). A replayed or reordered event therefore
-- can never open or close a session twice.
CREATE TABLE wifi_sessions (
    site        text        NOT NULL,
    session_id  text        NOT NULL,
    client_id   text        NOT NULL,
    ap          text        NOT NULL,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    ended_at    timestamptz,
    ends_at     timestamptz NOT NULL,
    PRIMARY KEY (site, session_id)
);
-- The only secondary index: every rollup query bounds ends_at (a session ends after it
-- starts), and each extra index would be rewritten on every interim update.
CREATE INDEX wifi_sessions_site_ends ON wifi_sessions (site, ends_at);

-- How far each site's rollups are materialised: rows exist for every minute in
-- [first_minute, closed_through]. watermark is the site's latest event time.
CREATE TABLE site_progress (
    site            text        PRIMARY KEY,
    first_minute    timestamptz NOT NULL,
    watermark       timestamptz NOT NULL,
    closed_through  timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- 1-minute tumbling rollups per site (minute = start of the window, UTC), recomputed from
-- wifi_sessions whenever a session touching the minute changes:
--   connected      distinct clients with a session overlapping the minute
--   new_sessions   sessions whose first event falls in the minute
--   ended_sessions sessions whose ends_at falls in the minute (stop or timeout)
CREATE TABLE occupancy_minute (
    site            text        NOT NULL,
    minute          timestamptz NOT NULL,
    connected       integer     NOT NULL,
    new_sessions    integer     NOT NULL,
    ended_sessions  integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, minute)
);
