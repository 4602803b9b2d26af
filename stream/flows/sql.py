"""SQL of the flows sink (batch merges) and of the debounced recompute.

Batch statements take whole column arrays (``unnest``) so a batch costs a handful of round
trips whatever its size. Times are compared as instants; ``date_trunc('hour', ...)`` runs
in the connection's UTC time zone, which gives the same instants as local hours because
Asia/Ho_Chi_Minh is a whole-hour offset without DST.
"""

from __future__ import annotations

from stream.storage.time_bins import time_bin

#: Serialises batch transactions of every flows worker (the row lock on flow_progress),
#: taken first so that later dirty-key inserts can never deadlock between workers; returns
#: the watermark before and after this batch.
ADVANCE_WATERMARK = """
WITH old AS (SELECT watermark FROM flow_progress FOR UPDATE),
up AS (
    INSERT INTO flow_progress AS p (id, watermark) VALUES (true, %s)
    ON CONFLICT (id) DO UPDATE SET watermark = GREATEST(p.watermark, EXCLUDED.watermark),
                                   updated_at = now()
    RETURNING p.watermark
)
SELECT (SELECT watermark FROM old), (SELECT watermark FROM up)
"""

#: Idempotent session merge; returns each touched session after the merge plus its
#: start and end_seen before it (NULL when new), so dwell hours that change get recomputed.
#: The values before come from the row version the update replaces, kept in
#: ``prev_started_at`` / ``prev_end_seen`` (migration 1002), so each session costs one probe
#: of the primary key (``ON CONFLICT``); a LATERAL lookup of the old values was a second
#: one. Batches are serialised by ADVANCE_WATERMARK's row lock and a batch's sessions are
#: distinct, so no row is merged twice.
UPSERT_SESSIONS = """
WITH input AS (
    SELECT * FROM unnest(%(site)b::text[], %(session_id)b::text[], %(client_id)b::text[],
                         %(randomized)b::boolean[], %(first_seen)b::timestamptz[],
                         %(last_seen)b::timestamptz[], %(stopped_at)b::timestamptz[])
        AS i(site, session_id, client_id, randomized, first_seen, last_seen, stopped_at)
)
INSERT INTO visitor_sessions AS s
    (site, session_id, client_id, randomized, started_at, last_seen, ended_at)
SELECT site, session_id, client_id, randomized, first_seen, last_seen, stopped_at
FROM input
ON CONFLICT (site, session_id) DO UPDATE SET
    randomized = s.randomized OR EXCLUDED.randomized,
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen),
    ended_at = LEAST(s.ended_at, EXCLUDED.ended_at),
    prev_started_at = s.started_at,
    prev_end_seen = s.end_seen
RETURNING s.site, s.client_id, s.randomized, s.started_at, s.end_seen, s.prev_started_at,
          s.prev_end_seen
"""

#: Idempotent presence merge (LEAST / GREATEST / bit-OR); returns old and new of every row.
#: ``old`` is read like UPSERT_SESSIONS' (a snapshot, one primary-key probe per row).
UPSERT_PRESENCE = """
WITH input AS (
    SELECT * FROM unnest(%(site)b::text[], %(day)b::date[], %(client_id)b::text[],
                         %(randomized)b::boolean[], %(first_seen)b::timestamptz[],
                         %(last_seen)b::timestamptz[], %(hours)b::int4[])
        AS i(site, day, client_id, randomized, first_seen, last_seen, hours)
), old AS (
    SELECT o.* FROM input i CROSS JOIN LATERAL (
        SELECT p.site, p.day, p.client_id, p.randomized, p.first_seen, p.hours
        FROM visitor_presence p
        WHERE p.site = i.site AND p.day = i.day AND p.client_id = i.client_id
        LIMIT 1
    ) o
), up AS (
    INSERT INTO visitor_presence AS p
        (site, day, client_id, randomized, first_seen, last_seen, hours)
    SELECT * FROM input
    ON CONFLICT (site, day, client_id) DO UPDATE SET
        randomized = p.randomized OR EXCLUDED.randomized,
        first_seen = LEAST(p.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(p.last_seen, EXCLUDED.last_seen),
        hours = p.hours | EXCLUDED.hours
    RETURNING p.site, p.day, p.client_id, p.randomized, p.first_seen, p.hours
)
SELECT up.site, up.day, old.randomized, old.first_seen, old.hours,
       up.randomized, up.first_seen, up.hours
FROM up LEFT JOIN old USING (site, day, client_id)
"""

INSERT_DIRTY_HOURS = """
INSERT INTO flow_dirty_hours (site, hour)
SELECT * FROM unnest(%b::text[], %b::timestamptz[]) ON CONFLICT DO NOTHING
"""
INSERT_DIRTY_DAYS = (
    "INSERT INTO flow_dirty_days (day) SELECT * FROM unnest(%b::date[]) ON CONFLICT DO NOTHING"
)

#: Sessions without a stop whose timeout the watermark just passed: from now on they count
#: as ended (at their last event) for dwell, so the hour of that last event is dirty.
#: ``last_hour`` (migration 1001: last_seen's UTC hour) bounds it too, for the open sessions'
#: index.
DIRTY_TIMED_OUT = f"""
INSERT INTO flow_dirty_hours (site, hour)
SELECT DISTINCT site, last_hour FROM visitor_sessions
WHERE ended_at IS NULL
  AND last_hour BETWEEN {time_bin("1 hour", "%(old)s - %(timeout)s")}
                    AND {time_bin("1 hour", "%(new)s - %(timeout)s")}
  AND last_seen > %(old)s - %(timeout)s AND last_seen <= %(new)s - %(timeout)s
ON CONFLICT DO NOTHING
"""

#: One recompute at a time across workers (they would race on the same derived rows).
LOCK_RECOMPUTE = "SELECT pg_advisory_xact_lock(hashtext('tp_flows_recompute'))"
GET_WATERMARK = "SELECT watermark FROM flow_progress"
TAKE_DIRTY_HOURS = "DELETE FROM flow_dirty_hours RETURNING site, hour"
TAKE_DIRTY_DAYS = "DELETE FROM flow_dirty_days RETURNING day"
#: Hours whose lateness has run out but that are not marked final yet.
DUE_HOURS = """
SELECT site, hour FROM flow_hourly
WHERE NOT final AND hour + interval '1 hour' + %(lateness)s <= %(wm)s
"""
#: Every hour still open (refreshed now and then for occupancy_minute, written by the
#: occupancy worker at its own pace).
OPEN_HOURS = "SELECT site, hour FROM flow_hourly WHERE NOT final"
COUNT_FINAL = """
SELECT count(*) FROM flow_hourly f
JOIN unnest(%b::text[], %b::timestamptz[]) AS t(site, hour) USING (site, hour)
WHERE f.final
"""

_DURATION = "extract(epoch FROM s.end_seen - s.started_at)::float8"

#: Recompute hourly rows from presence, sessions and minute rollups; a final row is never
#: touched again. Returns the rows that changed.
RECOMPUTE_HOURLY = f"""
INSERT INTO flow_hourly AS f (site, hour, day, unique_visitors, unique_visitors_stable,
    new_visitors, returning_visitors, dwell_sessions, dwell_median_s, dwell_p90_s,
    peak_connected, avg_connected, final)
SELECT t.site, t.hour, t.day, p.uv, p.uvs, p.nv, p.uv - p.nv, d.n, d.med, d.p90,
       o.peak, o.avg, t.hour + interval '1 hour' + %(lateness)s <= %(wm)s
FROM unnest(%(site)b::text[], %(hour)b::timestamptz[], %(day)b::date[], %(bit)b::int4[])
    AS t(site, hour, day, bit)
CROSS JOIN LATERAL (
    SELECT count(*)::int AS uv, (count(*) FILTER (WHERE NOT v.randomized))::int AS uvs,
           (count(*) FILTER (WHERE v.first_seen >= t.hour
                              AND v.first_seen < t.hour + interval '1 hour'))::int AS nv
    FROM visitor_presence v
    WHERE v.site = t.site AND v.day = t.day AND v.hours & t.bit <> 0
) p
CROSS JOIN LATERAL (
    SELECT count(*)::int AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY {_DURATION}) AS med,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY {_DURATION}) AS p90
    FROM visitor_sessions s
    WHERE s.site = t.site AND s.end_hour = t.hour  -- the index; t.hour starts a UTC hour
      AND s.end_seen >= t.hour AND s.end_seen < t.hour + interval '1 hour'
      AND (s.ended_at IS NOT NULL OR s.last_seen + %(timeout)s <= %(wm)s)
) d
CROSS JOIN LATERAL (
    SELECT max(m.connected) AS peak, avg(m.connected)::float8 AS avg
    FROM occupancy_minute m
    WHERE m.site = t.site AND m.minute >= t.hour AND m.minute < t.hour + interval '1 hour'
) o
ON CONFLICT (site, hour) DO UPDATE SET
    unique_visitors = EXCLUDED.unique_visitors,
    unique_visitors_stable = EXCLUDED.unique_visitors_stable,
    new_visitors = EXCLUDED.new_visitors,
    returning_visitors = EXCLUDED.returning_visitors,
    dwell_sessions = EXCLUDED.dwell_sessions,
    dwell_median_s = EXCLUDED.dwell_median_s,
    dwell_p90_s = EXCLUDED.dwell_p90_s,
    peak_connected = EXCLUDED.peak_connected,
    avg_connected = EXCLUDED.avg_connected,
    final = EXCLUDED.final,
    updated_at = now()
WHERE NOT f.final AND (f.unique_visitors, f.unique_visitors_stable, f.new_visitors,
    f.dwell_sessions, f.dwell_median_s, f.dwell_p90_s, f.peak_connected, f.avg_connected,
    f.final)
  IS DISTINCT FROM (EXCLUDED.unique_visitors, EXCLUDED.unique_visitors_stable,
    EXCLUDED.new_visitors, EXCLUDED.dwell_sessions, EXCLUDED.dwell_median_s,
    EXCLUDED.dwell_p90_s, EXCLUDED.peak_connected, EXCLUDED.avg_connected, EXCLUDED.final)
RETURNING f.site, f.hour
"""

RECOMPUTE_DAILY = """
INSERT INTO flow_daily AS f (site, day, unique_visitors, unique_visitors_stable)
SELECT t.site, t.day, p.uv, p.uvs
FROM unnest(%b::text[], %b::date[]) AS t(site, day)
CROSS JOIN LATERAL (
    SELECT count(*)::int AS uv, (count(*) FILTER (WHERE NOT v.randomized))::int AS uvs
    FROM visitor_presence v WHERE v.site = t.site AND v.day = t.day
) p
ON CONFLICT (site, day) DO UPDATE SET
    unique_visitors = EXCLUDED.unique_visitors,
    unique_visitors_stable = EXCLUDED.unique_visitors_stable,
    updated_at = now()
WHERE (f.unique_visitors, f.unique_visitors_stable)
    IS DISTINCT FROM (EXCLUDED.unique_visitors, EXCLUDED.unique_visitors_stable)
"""

CREATE_OD_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS flow_od_stage (
    hour timestamptz, origin text, destination text, day date, clients int,
    clients_stable int
) ON COMMIT DELETE ROWS
"""

#: The day's legs: each client's visits ordered by first presence (ties by site, so the
#: order is deterministic); consecutive visits make one leg, counted in the hour of
#: arrival at the destination.
STAGE_OD = """
INSERT INTO flow_od_stage
WITH v AS (
    SELECT day, site, first_seen, randomized,
           lag(site) OVER (PARTITION BY day, client_id ORDER BY first_seen, site) AS origin
    FROM visitor_presence WHERE day = ANY(%b::date[])
)
SELECT date_trunc('hour', first_seen), origin, site, day, count(*)::int,
       (count(*) FILTER (WHERE NOT randomized))::int
FROM v WHERE origin IS NOT NULL
GROUP BY 1, 2, 3, 4
"""

#: Open cells of the recomputed days that no longer exist (late data reordered visits).
DELETE_OD_GONE = """
DELETE FROM flow_od_hourly o
WHERE o.day = ANY(%b::date[]) AND NOT o.final
  AND NOT EXISTS (SELECT 1 FROM flow_od_stage n
                  WHERE (n.hour, n.origin, n.destination) = (o.hour, o.origin, o.destination))
RETURNING o.destination, o.hour
"""

UPSERT_OD = """
INSERT INTO flow_od_hourly AS o (hour, origin, destination, day, clients, clients_stable,
                                 final)
SELECT n.*, n.hour + interval '1 hour' + %(lateness)s <= %(wm)s FROM flow_od_stage n
ON CONFLICT (hour, origin, destination) DO UPDATE SET
    clients = EXCLUDED.clients,
    clients_stable = EXCLUDED.clients_stable,
    final = EXCLUDED.final,
    updated_at = now()
WHERE NOT o.final AND (o.clients, o.clients_stable, o.final)
    IS DISTINCT FROM (EXCLUDED.clients, EXCLUDED.clients_stable, EXCLUDED.final)
RETURNING o.destination, o.hour
"""

#: Hourly rows to publish, with their raw inflows (suppressed in Python before sending).
FETCH_UPDATES = """
SELECT f.site, f.hour, f.day, f.unique_visitors, f.unique_visitors_stable, f.new_visitors,
       f.returning_visitors, f.dwell_sessions, f.dwell_median_s, f.dwell_p90_s,
       f.peak_connected, f.avg_connected, f.final,
       ARRAY(SELECT o.origin FROM flow_od_hourly o
             WHERE o.destination = f.site AND o.hour = f.hour ORDER BY o.origin),
       ARRAY(SELECT o.clients FROM flow_od_hourly o
             WHERE o.destination = f.site AND o.hour = f.hour ORDER BY o.origin)
FROM flow_hourly f
JOIN unnest(%b::text[], %b::timestamptz[]) AS t(site, hour) USING (site, hour)
ORDER BY f.site, f.hour
"""
