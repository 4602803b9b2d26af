-- Visitor flows (stream/flows, `tourpulse flows`) and fused-occupancy calibration
-- (stream/fusion). Read by the IOC API; docs/flows.md describes every column.
--
-- Everything the flows worker writes per batch is an idempotent, order-independent merge
-- (LEAST / GREATEST / bit-OR), so a replayed or reordered batch changes nothing; derived
-- tables (flow_hourly, flow_daily, flow_od_hourly) are recomputed from those merges for
-- the (site, hour) / day keys a batch marked dirty, in the same transaction as the marks.
--
-- Times: `hour` columns are the UTC instant at which a local (Asia/Ho_Chi_Minh, UTC+7,
-- no DST) hour starts; `day` is the local calendar date. Pseudonymous client ids rotate
-- daily at the edge, so "unique" is exact per local day and never across days.

-- Sessions as the flows worker sees them (its own copy: the occupancy worker's
-- wifi_sessions change detection must stay private to it). end_seen is the last evidence
-- of presence: the stop if one arrived, else the latest event.
CREATE TABLE visitor_sessions (
    site        text        NOT NULL,
    session_id  text        NOT NULL,
    client_id   text        NOT NULL,
    randomized  boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    ended_at    timestamptz,
    end_seen    timestamptz GENERATED ALWAYS AS (COALESCE(ended_at, last_seen)) STORED,
    PRIMARY KEY (site, session_id)
);
CREATE INDEX visitor_sessions_site_end ON visitor_sessions (site, end_seen);
-- Sessions still waiting for their stop, by last event: found when the watermark passes
-- last_seen + session timeout (they then count as ended for dwell).
CREATE INDEX visitor_sessions_open ON visitor_sessions (last_seen) WHERE ended_at IS NULL;

-- One row per client per site per local day. hours: bit h set = present during local
-- hour h (any session overlapping it). randomized: the client id came from a randomised
-- (locally administered) MAC, so it may stand for a device that also appears under
-- another id; analytics report *_stable counts without them.
CREATE TABLE visitor_presence (
    site        text        NOT NULL,
    day         date        NOT NULL,
    client_id   text        NOT NULL,
    randomized  boolean     NOT NULL DEFAULT false,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    hours       integer     NOT NULL,
    PRIMARY KEY (site, day, client_id)
);
-- The origin-destination recompute walks one day's visits per client in first_seen order.
CREATE INDEX visitor_presence_day_client ON visitor_presence (day, client_id, first_seen);

-- The flows watermark: the newest event time any flows worker has stored.
CREATE TABLE flow_progress (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    watermark   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys whose derived rows must be recomputed (written with the data that dirtied them, so
-- a crash between a batch and the next recompute loses nothing).
CREATE TABLE flow_dirty_hours (
    site  text        NOT NULL,
    hour  timestamptz NOT NULL,
    PRIMARY KEY (site, hour)
);
CREATE TABLE flow_dirty_days (
    day  date PRIMARY KEY
);

-- Hourly rollups per site. Exact on pseudonymous ids (not a sketch): see docs/flows.md.
--   unique_visitors         distinct clients present during the hour
--   unique_visitors_stable  the same without randomised-MAC clients
--   new_visitors            clients whose first presence at this site today is this hour
--   returning_visitors      clients present this hour and earlier today at this site
--   dwell_sessions          sessions that ended this hour (stop, or timed out)
--   dwell_median_s/p90_s    percentile_cont of their durations (seconds), NULL if none
--   peak/avg_connected      max / mean of occupancy_minute.connected over the hour
--   final                   hour end + allowed lateness has passed the watermark: the row
--                           no longer changes (later events are counted as too late)
CREATE TABLE flow_hourly (
    site                    text        NOT NULL,
    hour                    timestamptz NOT NULL,
    day                     date        NOT NULL,
    unique_visitors         integer     NOT NULL,
    unique_visitors_stable  integer     NOT NULL,
    new_visitors            integer     NOT NULL,
    returning_visitors      integer     NOT NULL,
    dwell_sessions          integer     NOT NULL,
    dwell_median_s          double precision,
    dwell_p90_s             double precision,
    peak_connected          integer,
    avg_connected           double precision,
    final                   boolean     NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, hour)
);
CREATE INDEX flow_hourly_open ON flow_hourly (hour) WHERE NOT final;

-- Daily unique visitors per site (exact within the local day).
CREATE TABLE flow_daily (
    site                    text    NOT NULL,
    day                     date    NOT NULL,
    unique_visitors         integer NOT NULL,
    unique_visitors_stable  integer NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, day)
);

-- Raw hourly origin-destination counts: a client whose visits today, ordered by first
-- presence, go ... -> origin -> destination -> ... counts once in the cell of the hour it
-- first appeared at the destination. NOT for publication as is: small cells identify
-- people. Publish through flow_od_public(k) / flow_od_published only.
CREATE TABLE flow_od_hourly (
    hour            timestamptz NOT NULL,
    origin          text        NOT NULL,
    destination     text        NOT NULL,
    day             date        NOT NULL,
    clients         integer     NOT NULL,
    clients_stable  integer     NOT NULL,
    final           boolean     NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hour, origin, destination)
);
CREATE INDEX flow_od_hourly_day ON flow_od_hourly (day);

-- The publishable OD matrix: cells with fewer than k clients are suppressed (left out,
-- not rounded); clients_stable is shown only when it too reaches k.
CREATE FUNCTION flow_od_public(k integer DEFAULT 10)
RETURNS TABLE (hour timestamptz, origin text, destination text, day date, clients integer,
               clients_stable integer, final boolean)
LANGUAGE sql STABLE AS $$
    SELECT o.hour, o.origin, o.destination, o.day, o.clients,
           CASE WHEN o.clients_stable >= k THEN o.clients_stable END, o.final
    FROM flow_od_hourly o
    WHERE o.clients >= k
$$;
-- The same with the default k = 10, for consumers that cannot pass a parameter.
CREATE VIEW flow_od_published AS SELECT * FROM flow_od_public(10);

-- Fused occupancy: per-site Wi-Fi-to-people calibration (stream/fusion), saved so a
-- restart keeps it. ratio is the EWMA of people per Wi-Fi client, variance its EWMA
-- variance, samples how many camera/Wi-Fi pairs fed it.
CREATE TABLE fusion_calibration (
    site        text             PRIMARY KEY,
    ratio       double precision NOT NULL,
    variance    double precision NOT NULL,
    samples     integer          NOT NULL,
    updated_at  timestamptz      NOT NULL DEFAULT now()
);
