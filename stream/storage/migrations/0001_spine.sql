-- The spine: raw Wi-Fi session events, session state and 1-minute occupancy rollups.
-- Raw events are partitioned by event time (daily partitions are created by the migrator
-- and by the worker ahead of time); the primary key includes event_time because a
-- partitioned table's unique keys must contain the partition key. A replayed event has
-- the same (event_time, event_id), so ON CONFLICT DO NOTHING deduplicates it.
CREATE TABLE IF NOT EXISTS wifi_session_events (
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
) PARTITION BY RANGE (event_time);

CREATE TABLE IF NOT EXISTS wifi_session_events_default
    PARTITION OF wifi_session_events DEFAULT;

CREATE INDEX IF NOT EXISTS wifi_session_events_site_time
    ON wifi_session_events (site, event_time);

-- One row per session: merged idempotently (LEAST start, GREATEST last seen), so a
-- replayed or reordered event can never open or close a session twice.
CREATE TABLE IF NOT EXISTS wifi_sessions (
    site        text        NOT NULL,
    session_id  text        NOT NULL,
    client_id   text        NOT NULL,
    ap          text        NOT NULL,
    started_at  timestamptz,
    last_seen   timestamptz NOT NULL,
    ended_at    timestamptz,
    PRIMARY KEY (site, session_id)
);

-- 1-minute tumbling rollups per site (minute = start of the window, UTC).
CREATE TABLE IF NOT EXISTS occupancy_minute (
    site            text        NOT NULL,
    minute          timestamptz NOT NULL,
    connected       integer     NOT NULL,
    new_sessions    integer     NOT NULL,
    ended_sessions  integer     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, minute)
);
