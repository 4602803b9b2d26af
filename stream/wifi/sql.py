"""SQL of the occupancy sink, kept apart so the Python around it stays readable.

Every statement takes whole column arrays (``unnest``) so a batch costs a handful of round
trips whatever its size; arrays go as binary parameters (``%b``), measured 3-4x cheaper to
encode than text ones, and the two per-event statements (raw insert, session merge) take
their text and integer columns packed (:mod:`stream.storage.packed_columns`), cheaper still.
"""

from __future__ import annotations

from stream.storage.packed_columns import column_sql
from stream.storage.time_bins import time_bin
from stream.wifi.batch import RAW_COLUMNS

RAW_TYPES = (
    "text", "timestamptz", "timestamptz", "text", "text", "text", "text", "text", "text",
    "text", "boolean", "smallint", "bigint", "bigint", "integer", "text",
)  # fmt: skip

LOCK_SITES = "SELECT tp_lock_sites(%b::text[])"


def _insert_raw(packed: bool) -> str:
    return (
        f"INSERT INTO wifi_session_events ({', '.join(RAW_COLUMNS)}) "
        "SELECT * FROM unnest("
        + ", ".join(column_sql("%b", t, packed) for t in RAW_TYPES)
        + ") ON CONFLICT DO NOTHING RETURNING event_time, event_id"
    )


def _stored(insert: str) -> str:
    """``insert`` (RETURNING event_time, event_id: exactly the events not seen before) as
    one row: how many it stored and, only when fewer than the batch (the two last
    parameters), which. Returning every key sent 2,000 rows per batch to be formatted by the
    server and parsed by the worker, to learn what a count says in a batch with no replay.
    """
    return (
        f"WITH ins AS ({insert}), got AS (SELECT count(*) AS n, array_agg(event_time) AS t,"
        " array_agg(event_id) AS i FROM ins)"
        " SELECT n, CASE WHEN n < %s THEN t END, CASE WHEN n < %s THEN i END FROM got"
    )


#: Raw insert from column arrays.
INSERT_RAW_UNNEST = _stored(_insert_raw(packed=False))
#: The same from packed columns (:mod:`stream.storage.packed_columns`), the usual case.
INSERT_RAW_PACKED = _stored(_insert_raw(packed=True))

#: Raw insert via COPY into a per-connection temp table, then one INSERT ... SELECT.
CREATE_RAW_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS wifi_events_stage "
    "(LIKE wifi_session_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
COPY_RAW_STAGE = f"COPY wifi_events_stage ({', '.join(RAW_COLUMNS)}) FROM STDIN"
INSERT_RAW_FROM_STAGE = _stored(
    f"INSERT INTO wifi_session_events ({', '.join(RAW_COLUMNS)}) "
    f"SELECT {', '.join(RAW_COLUMNS)} FROM wifi_events_stage "
    "ON CONFLICT DO NOTHING RETURNING event_time, event_id"
)

#: Idempotent, order-independent session merge returning the sessions whose start or end
#: moved, with their values before (NULL when new) and after. A session is (site,
#: session_id, session_start): an id reused after a stop is another row (0001-01-01 UTC when
#: the source does not know the start). The values before come from the row version the
#: update replaces, kept in ``prev_started_at`` / ``prev_ends_at`` (migration 0900), so
#: each session costs one probe of the primary key (``ON CONFLICT``); a LATERAL lookup of
#: the old values was a second one. Writers of a site are serialised by tp_lock_sites, and
#: the batch's sessions are distinct (``summarise``), so no row is merged twice.
_UPSERT_SESSIONS = """
WITH input AS (
    SELECT * FROM unnest({columns})
        AS i(site, session_id, client_id, ap, first_seen, last_seen, stopped_at, session_start)
), up AS (
    INSERT INTO wifi_sessions AS s
        (site, session_id, session_start, client_id, ap, started_at, last_seen, ended_at,
         ends_at)
    SELECT site, session_id, session_start, client_id, ap, first_seen, last_seen, stopped_at,
           COALESCE(stopped_at, last_seen + %(timeout)s)
    FROM input
    ON CONFLICT (site, session_id, session_start) DO UPDATE SET
        started_at = LEAST(s.started_at, EXCLUDED.started_at),
        last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen),
        ended_at = LEAST(s.ended_at, EXCLUDED.ended_at),
        ends_at = COALESCE(LEAST(s.ended_at, EXCLUDED.ended_at),
                           GREATEST(s.last_seen, EXCLUDED.last_seen) + %(timeout)s),
        prev_started_at = s.started_at,
        prev_ends_at = s.ends_at
    RETURNING s.site, s.prev_started_at, s.prev_ends_at, s.started_at, s.ends_at
)
SELECT site, prev_started_at, prev_ends_at, started_at, ends_at FROM up
WHERE prev_started_at IS DISTINCT FROM started_at OR prev_ends_at IS DISTINCT FROM ends_at
"""

#: Column parameters of the session merge (the other is ``timeout``), with their types.
SESSION_COLUMNS = (
    "site", "session_id", "client_id", "ap", "first_seen", "last_seen", "stopped_at",
    "session_start",
)  # fmt: skip
SESSION_TYPES = ("text",) * 4 + ("timestamptz",) * 4


def _upsert_sessions(packed: bool) -> str:
    typed = zip(SESSION_COLUMNS, SESSION_TYPES, strict=True)
    columns = ", ".join(column_sql(f"%({c})b", t, packed) for c, t in typed)
    return _UPSERT_SESSIONS.replace("{columns}", columns)


UPSERT_SESSIONS = _upsert_sessions(packed=False)
UPSERT_SESSIONS_PACKED = _upsert_sessions(packed=True)

#: Advance each site's watermark and materialised window; return old and new windows.
UPSERT_PROGRESS = """
WITH input AS (
    SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[])
        AS i(site, first_time, last_time)
), old AS (
    SELECT p.site, p.first_minute, p.closed_through
    FROM site_progress p JOIN input USING (site)
), up AS (
    INSERT INTO site_progress AS p (site, first_minute, watermark, closed_through)
    SELECT site, date_trunc('minute', first_time), last_time, date_trunc('minute', last_time)
    FROM input
    ON CONFLICT (site) DO UPDATE SET
        first_minute = LEAST(p.first_minute, EXCLUDED.first_minute),
        watermark = GREATEST(p.watermark, EXCLUDED.watermark),
        closed_through = GREATEST(p.closed_through, EXCLUDED.closed_through),
        updated_at = now()
    RETURNING p.site, p.first_minute, p.closed_through
)
SELECT up.site, old.first_minute, old.closed_through, up.first_minute, up.closed_through
FROM up LEFT JOIN old USING (site)
"""

#: Queue (site, minute) rollups for recomputation (in the transaction that invalidated them).
MARK_DIRTY = """
INSERT INTO occupancy_dirty (site, minute)
SELECT * FROM unnest(%b::text[], %b::timestamptz[]) ON CONFLICT DO NOTHING
"""

#: Sites with queued minutes (the sweep after a crash or another worker's batches).
DIRTY_SITES = "SELECT DISTINCT site FROM occupancy_dirty"

#: ``ends_bin`` (migration 1000) of a time: ``ends_at >= t`` implies ``ends_bin >= bin(t)``,
#: the bound that lets a query reach sessions through the (site, ends_bin) index.
_ENDS_BIN_WIDTH = "30 minutes"

#: A site's queued span of at most this many minutes is counted minute by minute, with an
#: index scan each; a wider one by a sweep over the minutes (see RECOMPUTE_DIRTY).
_BY_MINUTE_MAX = 2


def _minute(expr: str) -> str:
    return time_bin("1 minute", expr)


#: Recompute the queued minutes of the given sites from wifi_sessions and dequeue them.
#: Returns the number of minutes recomputed. Run under the sites' locks.
#:
#: Two ways to count, chosen per site by the span's width:
#: * ``by_minute`` (the usual 1-2 minutes of a live site): per queued minute, one index scan
#:   of the sessions overlapping it and ``count(DISTINCT client_id)``. A LATERAL per minute,
#:   not a join of all sessions to all minutes: once ANALYZE had seen occupancy_dirty empty,
#:   the planner made that join a nested loop re-reading every site's sessions for each
#:   queued minute (25 -> 260 ms, and the pipeline's latency ran into seconds).
#: * ``swept`` (wider spans): each client's connected minutes (``ends_at > minute``) merged
#:   into ranges (``range_agg``, so a client with several sessions counts once a minute),
#:   +1 at a range's first minute and -1 after its last, summed in minute order. A minute
#:   at a time, the work is sessions x minutes: a worker catching up, or a burst of late
#:   events, queues tens of minutes per site, and one recompute of 17 minutes of 20 busy
#:   sites took 250 ms (60 ms swept), stalling that worker's batches, and the other
#:   worker's waiting on the site locks, meanwhile. Its sessions are a LATERAL index scan
#:   per site: as a join with the spans (a CTE the planner cannot estimate) they were read
#:   by a scan of the whole table, which holds the retention period (55 ms at 200,000).
RECOMPUTE_DIRTY = f"""
WITH d AS (
    DELETE FROM occupancy_dirty WHERE site = ANY(%b::text[]) RETURNING site, minute
), span AS (
    SELECT site, min(minute) AS lo, max(minute) AS last,
        max(minute) - min(minute) < interval '{_BY_MINUTE_MAX} minutes' AS narrow
    FROM d GROUP BY site
), by_minute AS (  -- an aggregate without GROUP BY: one row per minute, sessions or not
    SELECT d.site, d.minute, c.connected, c.new_sessions, c.ended
    FROM d JOIN span USING (site) CROSS JOIN LATERAL (
        SELECT count(DISTINCT s.client_id) FILTER (WHERE s.ends_at > d.minute) AS connected,
            count(*) FILTER (WHERE s.started_at >= d.minute) AS new_sessions,
            count(*) FILTER (WHERE s.ends_at < d.minute + interval '1 minute') AS ended
        FROM wifi_sessions s
        WHERE s.site = d.site AND s.ends_bin >= {time_bin(_ENDS_BIN_WIDTH, "d.minute")}
          AND s.ends_at >= d.minute AND s.started_at < d.minute + interval '1 minute'
    ) c WHERE span.narrow
), s AS (  -- ends_at >= started_at: the lower bounds on ends_bin and ends_at use the index
    SELECT span.site, span.lo, span.last, s.client_id, s.started_at, s.ends_at
    FROM span CROSS JOIN LATERAL (
        SELECT s.client_id, s.started_at, s.ends_at FROM wifi_sessions s
        WHERE s.site = span.site AND s.ends_bin >= {time_bin(_ENDS_BIN_WIDTH, "span.lo")}
          AND s.ends_at >= span.lo AND s.started_at < span.last + interval '1 minute'
        OFFSET 0  -- keeps the planner from flattening the LATERAL back into a join
    ) s WHERE NOT span.narrow
), clients AS (  -- each client's connected minutes (ends_at > minute) in the span, merged
    SELECT site, range_agg(tstzrange(
        greatest({_minute("started_at")}, lo),
        least({_minute("ends_at - interval '1 microsecond'")}, last) + interval '1 minute'
    )) AS minutes
    FROM s GROUP BY site, client_id
), steps AS (
    SELECT site, lower(r) AS minute, 1 AS connected, 0 AS new_sessions, 0 AS ended
        FROM clients, unnest(minutes) AS r
    UNION ALL SELECT site, upper(r), -1, 0, 0 FROM clients, unnest(minutes) AS r
    UNION ALL SELECT site, {_minute("started_at")}, 0, 1, 0 FROM s WHERE started_at >= lo
    UNION ALL SELECT site, {_minute("ends_at")}, 0, 0, 1 FROM s
        WHERE ends_at < last + interval '1 minute'
    UNION ALL SELECT site, minute, 0, 0, 0 FROM d JOIN span USING (site) WHERE NOT narrow
), swept AS (
    SELECT site, minute,
        sum(sum(connected)) OVER (PARTITION BY site ORDER BY minute) AS connected,
        sum(new_sessions) AS new_sessions, sum(ended) AS ended
    FROM steps GROUP BY site, minute
), counts AS (
    SELECT site, minute, connected, new_sessions, ended FROM by_minute
    UNION ALL
    SELECT site, minute, w.connected, w.new_sessions, w.ended
    FROM swept w JOIN d USING (site, minute)
), up AS (
    INSERT INTO occupancy_minute AS o (site, minute, connected, new_sessions, ended_sessions)
    SELECT site, minute, connected, new_sessions, ended FROM counts
    ON CONFLICT (site, minute) DO UPDATE SET
        connected = EXCLUDED.connected,
        new_sessions = EXCLUDED.new_sessions,
        ended_sessions = EXCLUDED.ended_sessions,
        updated_at = now()
    WHERE (o.connected, o.new_sessions, o.ended_sessions)
        IS DISTINCT FROM (EXCLUDED.connected, EXCLUDED.new_sessions, EXCLUDED.ended_sessions)
)
SELECT count(*) FROM d
"""

#: Clients connected at each site's watermark (the live occupancy).
LIVE_OCCUPANCY = f"""
SELECT p.site, p.watermark,
    (SELECT count(DISTINCT s.client_id) FROM wifi_sessions s
      WHERE s.site = p.site AND s.ends_bin >= {time_bin(_ENDS_BIN_WIDTH, "p.watermark")}
        AND s.ends_at > p.watermark AND s.started_at <= p.watermark)
FROM site_progress p WHERE p.site = ANY(%b::text[])
"""

#: Sites whose window lags the newest watermark anywhere (they had no events lately).
LAGGING_SITES = """
WITH g AS (SELECT max(watermark) AS wm FROM site_progress)
SELECT p.site FROM site_progress p, g
WHERE p.closed_through < date_trunc('minute', g.wm) AND p.watermark > g.wm - %s
"""

#: Extend lagging sites' windows to the global watermark's minute (run under their locks).
CLOSE_SITES = """
WITH g AS (SELECT date_trunc('minute', max(watermark)) AS through FROM site_progress),
old AS (
    SELECT p.site, p.closed_through FROM site_progress p, g
    WHERE p.site = ANY(%b::text[]) AND p.closed_through < g.through
)
UPDATE site_progress p SET closed_through = g.through, updated_at = now()
FROM old, g
WHERE p.site = old.site
RETURNING p.site, p.first_minute, old.closed_through, p.closed_through
"""
